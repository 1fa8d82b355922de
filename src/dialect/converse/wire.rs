//! The Bedrock Converse wire shapes, one declaration each: the `Converse` / `ConverseStream`
//! request as the gateway writes it, the `ConverseResponse` as read, and the payload of one
//! `ConverseStream` event as the Bedrock re-framer renders it (`event: <event type>` +
//! `data: <payload>`). AWS's Bedrock API reference: "Converse", "ConverseStream", "Message",
//! "ContentBlock", "SystemContentBlock", "InferenceConfiguration", "ToolConfiguration",
//! "TokenUsage", "ConverseStreamOutput".
//!
//! Binary fields (`ImageSource.bytes`, `DocumentSource.bytes`) travel as base64 strings: the
//! REST-JSON protocol's encoding of a blob (the SDKs base64-encode them on the wire).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::accounting::usage::Usage;

// ---------------------------------------------------------------------------------------------
// The request, as written.

/// A `Converse` request body (the model is in the path, `/model/{modelId}/converse`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Request<'a> {
    pub(crate) messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) system: Vec<SystemBlock<'a>>,
    #[serde(skip_serializing_if = "InferenceConfig::is_empty")]
    pub(crate) inference_config: InferenceConfig<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tool_config: Option<ToolConfig<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) additional_model_request_fields: Option<AdditionalFields>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) output_config: Option<OutputConfig<'a>>,
}

/// `OutputConfig`: structured output, `{"textFormat":{"type":"json_schema","structure":
/// {"jsonSchema":{"schema":"<the JSON Schema as a string>","name":…}}}}` (API reference,
/// `OutputConfig`, `OutputFormat`, `JsonSchemaDefinition`; user guide "Get validated JSON
/// results from models").
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OutputConfig<'a> {
    pub(crate) text_format: OutputFormat<'a>,
}

#[derive(Serialize)]
pub(crate) struct OutputFormat<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) structure: OutputStructure<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OutputStructure<'a> {
    pub(crate) json_schema: JsonSchemaDefinition<'a>,
}

#[derive(Serialize)]
pub(crate) struct JsonSchemaDefinition<'a> {
    /// The schema, serialised: Bedrock takes it as a string.
    pub(crate) schema: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    User,
    Assistant,
}

/// One turn of `messages`.
#[derive(Serialize)]
pub(crate) struct Message<'a> {
    pub(crate) role: Role,
    pub(crate) content: Vec<Block<'a>>,
}

/// A `ContentBlock` (a union: one member set).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Block<'a> {
    Text(Cow<'a, str>),
    Image(ImageBlock<'a>),
    Document(DocumentBlock<'a>),
    ToolUse(ToolUse<'a>),
    ToolResult(ToolResult<'a>),
}

/// A `SystemContentBlock`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum SystemBlock<'a> {
    Text(Cow<'a, str>),
    CachePoint(CachePoint),
}

/// A `CachePointBlock`: the prompt up to here may be cached (`type` is always `default`).
#[derive(Serialize)]
pub(crate) struct CachePoint {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
}

impl CachePoint {
    pub(crate) const DEFAULT: CachePoint = CachePoint { kind: "default" };
}

/// An `ImageBlock`: `format` png/jpeg/gif/webp, the bytes base64.
#[derive(Serialize)]
pub(crate) struct ImageBlock<'a> {
    pub(crate) format: &'static str,
    pub(crate) source: Source<'a>,
}

/// A `DocumentBlock`: `format` (pdf, csv, doc, docx, xls, xlsx, html, txt, md), a `name`, the
/// bytes base64.
#[derive(Serialize)]
pub(crate) struct DocumentBlock<'a> {
    pub(crate) format: &'static str,
    pub(crate) name: Cow<'a, str>,
    pub(crate) source: Source<'a>,
}

/// An `ImageSource` / `DocumentSource` with inline bytes.
#[derive(Serialize)]
pub(crate) struct Source<'a> {
    pub(crate) bytes: Cow<'a, str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolUse<'a> {
    pub(crate) tool_use_id: Cow<'a, str>,
    pub(crate) name: Cow<'a, str>,
    pub(crate) input: Box<RawValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolResult<'a> {
    pub(crate) tool_use_id: Cow<'a, str>,
    pub(crate) content: Vec<ToolResultContent<'a>>,
}

/// A `ToolResultContentBlock`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum ToolResultContent<'a> {
    Text(Cow<'a, str>),
    Json(Box<RawValue>),
    Image(ImageBlock<'a>),
}

/// `InferenceConfiguration`.
#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InferenceConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) temperature: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) top_p: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) stop_sequences: Vec<Cow<'a, str>>,
}

impl InferenceConfig<'_> {
    pub(crate) fn is_empty(&self) -> bool {
        self.max_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop_sequences.is_empty()
    }
}

/// `ToolConfiguration`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolConfig<'a> {
    pub(crate) tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tool_choice: Option<ToolChoiceOut<'a>>,
}

/// A `Tool` (a union; the gateway sends `toolSpec`s).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Tool<'a> {
    ToolSpec(ToolSpec<'a>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolSpec<'a> {
    pub(crate) name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<Cow<'a, str>>,
    pub(crate) input_schema: InputSchema<'a>,
}

/// `ToolInputSchema` (a union; `json` is the JSON Schema).
#[derive(Serialize)]
pub(crate) struct InputSchema<'a> {
    pub(crate) json: &'a RawValue,
}

/// `ToolChoice`: `{"auto":{}}`, `{"any":{}}` or `{"tool":{"name":…}}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum ToolChoiceOut<'a> {
    Auto {},
    Any {},
    Tool { name: Cow<'a, str> },
}

/// `additionalModelRequestFields`, the model family's own parameters.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AdditionalFields {
    /// Amazon Nova 2's extended thinking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reasoning_config: Option<NovaReasoning>,
}

/// Nova 2's `reasoningConfig`: `{"type":"enabled","maxReasoningEffort":"low"|"medium"|"high"}`
/// or `{"type":"disabled"}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NovaReasoning {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_reasoning_effort: Option<&'static str>,
}

// ---------------------------------------------------------------------------------------------
// The answer, as read.

/// A `ConverseResponse`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResponseIn<'a> {
    #[serde(borrow, default)]
    pub(crate) output: Option<OutputIn<'a>>,
    #[serde(borrow, default)]
    pub(crate) stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) usage: Option<UsageIn>,
}

#[derive(Deserialize)]
pub(crate) struct OutputIn<'a> {
    #[serde(borrow, default)]
    pub(crate) message: Option<MessageIn<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct MessageIn<'a> {
    #[serde(borrow, default)]
    pub(crate) content: Vec<BlockIn<'a>>,
}

/// An answer's `ContentBlock`: text, a tool call, or reasoning (other members are skipped).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BlockIn<'a> {
    #[serde(borrow, default)]
    pub(crate) text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) tool_use: Option<ToolUseIn<'a>>,
    #[serde(borrow, default)]
    pub(crate) reasoning_content: Option<ReasoningIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolUseIn<'a> {
    #[serde(borrow, default)]
    pub(crate) tool_use_id: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) input: Option<&'a RawValue>,
}

/// `ReasoningContentBlock`: `reasoningText` {text, signature} or `redactedContent`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReasoningIn<'a> {
    #[serde(borrow, default)]
    pub(crate) reasoning_text: Option<ReasoningTextIn<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct ReasoningTextIn<'a> {
    #[serde(borrow, default)]
    pub(crate) text: Cow<'a, str>,
}

/// `TokenUsage` (every count in tokens).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageIn {
    pub(crate) input_tokens: Option<u64>,
    pub(crate) output_tokens: Option<u64>,
    pub(crate) total_tokens: Option<u64>,
    pub(crate) cache_read_input_tokens: Option<u64>,
    pub(crate) cache_write_input_tokens: Option<u64>,
}

impl UsageIn {
    /// The gateway's usage. Bedrock's `inputTokens` counts only the input not read from nor
    /// written to the cache (as Anthropic's `input_tokens` does; "Prompt caching for faster
    /// model inference", the response's `usage`), so the prompt is their sum.
    pub(crate) fn usage(&self) -> Option<Usage> {
        if self.input_tokens.is_none() && self.output_tokens.is_none() {
            return None;
        }
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let write = self.cache_write_input_tokens.unwrap_or(0);
        let prompt = self
            .input_tokens
            .unwrap_or(0)
            .saturating_add(read)
            .saturating_add(write);
        let completion = self.output_tokens.unwrap_or(0);
        Some(Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: self
                .total_tokens
                .unwrap_or(0)
                .max(prompt.saturating_add(completion)),
            cached_tokens: read,
            cache_write_tokens: write,
            reasoning_tokens: 0,
            ..Usage::default()
        })
    }
}

// ---------------------------------------------------------------------------------------------
// `ConverseStream` event payloads, as read.

/// The payload of one `ConverseStream` event, any type: which members are set tells which
/// (`messageStart`: `role`; `contentBlockStart`: `start`; `contentBlockDelta`: `delta`;
/// `contentBlockStop`: only `contentBlockIndex`; `messageStop`: `stopReason`; `metadata`:
/// `usage`; the re-framer's `error` event: `type: "error"` and `error`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventIn<'a> {
    #[serde(default)]
    pub(crate) content_block_index: Option<u32>,
    #[serde(borrow, default)]
    pub(crate) start: Option<StartIn<'a>>,
    #[serde(borrow, default)]
    pub(crate) delta: Option<DeltaIn<'a>>,
    #[serde(borrow, default)]
    pub(crate) stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) usage: Option<UsageIn>,
    #[serde(borrow, default, rename = "type")]
    pub(crate) kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) error: Option<StreamErrorIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StartIn<'a> {
    #[serde(borrow, default)]
    pub(crate) tool_use: Option<ToolUseStartIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolUseStartIn<'a> {
    #[serde(borrow, default)]
    pub(crate) tool_use_id: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) name: Cow<'a, str>,
}

/// `ContentBlockDelta`: `text`, `toolUse.input` (a fragment of the arguments' JSON), or
/// `reasoningContent` (`text`, `signature`, `redactedContent`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeltaIn<'a> {
    #[serde(borrow, default)]
    pub(crate) text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) tool_use: Option<ToolUseDeltaIn<'a>>,
    #[serde(borrow, default)]
    pub(crate) reasoning_content: Option<ReasoningDeltaIn<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct ToolUseDeltaIn<'a> {
    #[serde(borrow, default)]
    pub(crate) input: Cow<'a, str>,
}

#[derive(Deserialize)]
pub(crate) struct ReasoningDeltaIn<'a> {
    #[serde(borrow, default)]
    pub(crate) text: Option<Cow<'a, str>>,
}

/// The re-framer's rendering of an exception frame: `{"type":"<exception type>","message":…}`.
#[derive(Deserialize)]
pub(crate) struct StreamErrorIn<'a> {
    #[serde(borrow, default, rename = "type")]
    pub(crate) kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) message: Cow<'a, str>,
}
