//! The Gemini wire shapes, one declaration each: the `generateContent` request as the gateway
//! writes it (its `Content` and `Part` also carry `batchEmbedContents` requests), the
//! `GenerateContentResponse` as read (a whole answer or one stream event), and the
//! `batchEmbedContents` answer. Google's API reference: "Generating content", "Embeddings".

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::accounting::usage::Usage;

// ---------------------------------------------------------------------------------------------
// The `generateContent` request, as written.

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Request<'a> {
    pub(crate) contents: Vec<Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) system_instruction: Option<Content<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) tools: Vec<ToolOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tool_config: Option<ToolConfig<'a>>,
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    pub(crate) generation_config: GenerationConfig<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    User,
    Model,
}

/// A `Content`: a turn of `contents` (with its role), or a role-less `systemInstruction` or
/// `batchEmbedContents` request content.
#[derive(Serialize)]
pub(crate) struct Content<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) role: Option<Role>,
    pub(crate) parts: Vec<Part<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Part<'a> {
    Text(Cow<'a, str>),
    InlineData(Blob<'a>),
    FileData(FileData<'a>),
    FunctionCall(FunctionCall<'a>),
    FunctionResponse(FunctionResponse<'a>),
    /// A function call with the `thoughtSignature` Gemini gave it (a sibling of
    /// `functionCall` in the part).
    #[serde(untagged)]
    SignedFunctionCall(SignedFunctionCall<'a>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignedFunctionCall<'a> {
    pub(crate) function_call: FunctionCall<'a>,
    pub(crate) thought_signature: Cow<'a, str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Blob<'a> {
    pub(crate) mime_type: Cow<'a, str>,
    pub(crate) data: Cow<'a, str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileData<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) mime_type: Option<&'static str>,
    pub(crate) file_uri: Cow<'a, str>,
}

#[derive(Serialize)]
pub(crate) struct FunctionCall<'a> {
    pub(crate) name: Cow<'a, str>,
    pub(crate) args: Box<RawValue>,
}

#[derive(Serialize)]
pub(crate) struct FunctionResponse<'a> {
    pub(crate) name: Cow<'a, str>,
    pub(crate) response: ResponseValue<'a>,
    /// Images the tool returned, as Gemini's multimodal function responses take them
    /// (`FunctionResponsePart`: `inlineData` only; "URI based data … is not supported in
    /// Gemini API", ai.google.dev "Function calling", Multimodal function responses).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) parts: Vec<FunctionResponsePart<'a>>,
}

/// One medium of a multimodal function response.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FunctionResponsePart<'a> {
    pub(crate) inline_data: Blob<'a>,
}

/// A tool's result: its own JSON object, or its text under `output` (Gemini takes an object).
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum ResponseValue<'a> {
    Object(Box<RawValue>),
    Text { output: Cow<'a, str> },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolOut<'a> {
    pub(crate) function_declarations: Vec<FunctionDecl<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FunctionDecl<'a> {
    pub(crate) name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) parameters_json_schema: Option<&'a RawValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolConfig<'a> {
    pub(crate) function_calling_config: FunctionCallingConfig<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FunctionCallingConfig<'a> {
    pub(crate) mode: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) allowed_function_names: Vec<Cow<'a, str>>,
}

#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerationConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) temperature: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) top_p: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) top_k: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) candidate_count: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) stop_sequences: Vec<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) seed: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) presence_penalty: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) frequency_penalty: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) response_json_schema: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) thinking_config: Option<ThinkingConfig>,
}

impl GenerationConfig<'_> {
    pub(crate) fn is_empty(&self) -> bool {
        let raws = [
            self.temperature,
            self.top_p,
            self.top_k,
            self.candidate_count,
            self.seed,
            self.presence_penalty,
            self.frequency_penalty,
            self.response_json_schema,
        ];
        raws.iter().all(Option::is_none)
            && self.max_output_tokens.is_none()
            && self.stop_sequences.is_empty()
            && self.response_mime_type.is_none()
    }
}

/// `generationConfig.thinkingConfig.thinkingBudget` (tokens; 0 turns thinking off where the
/// model allows it).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ThinkingConfig {
    pub(crate) thinking_budget: u64,
}

// ---------------------------------------------------------------------------------------------
// The `GenerateContentResponse`, as read.

/// A `GenerateContentResponse`: a whole answer, or one event of a stream.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResponseIn<'a> {
    #[serde(borrow, default)]
    pub(crate) candidates: Vec<CandidateIn<'a>>,
    #[serde(default)]
    pub(crate) usage_metadata: Option<UsageIn>,
    #[serde(borrow, default)]
    pub(crate) model_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) response_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) prompt_feedback: Option<PromptFeedback<'a>>,
    #[serde(borrow, default)]
    pub(crate) error: Option<ErrorIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CandidateIn<'a> {
    #[serde(borrow, default)]
    pub(crate) content: Option<ContentIn<'a>>,
    #[serde(borrow, default)]
    pub(crate) finish_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) index: u32,
}

/// A `Content` as read: a candidate's (an answer), or a turn of a request at the Gemini door
/// (with its `role`).
#[derive(Deserialize)]
pub(crate) struct ContentIn<'a> {
    #[serde(borrow, default)]
    pub(crate) role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) parts: Vec<PartIn<'a>>,
}

/// A `Part` as read (an answer's, or a request's at the Gemini door). proto3 JSON: parsers
/// take the proto's snake_case names too, and the SDKs send some (`inline_data`,
/// `function_call`, `thought_signature`, …), so each has its alias (reading only).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PartIn<'a> {
    #[serde(borrow, default)]
    pub(crate) text: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) thought: Option<bool>,
    #[serde(borrow, default, alias = "function_call")]
    pub(crate) function_call: Option<FunctionCallIn<'a>>,
    #[serde(borrow, default, alias = "thought_signature")]
    pub(crate) thought_signature: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "inline_data")]
    pub(crate) inline_data: Option<BlobIn<'a>>,
    #[serde(borrow, default, alias = "file_data")]
    pub(crate) file_data: Option<FileDataIn<'a>>,
    #[serde(borrow, default, alias = "function_response")]
    pub(crate) function_response: Option<FunctionResponseIn<'a>>,
    /// Code execution's parts (`executableCode`, `codeExecutionResult`): read to be named.
    #[serde(borrow, default, alias = "executable_code")]
    pub(crate) executable_code: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "code_execution_result")]
    pub(crate) code_execution_result: Option<&'a RawValue>,
}

/// `inlineData`: a medium's bytes, base64 (standard or URL-safe).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BlobIn<'a> {
    #[serde(borrow, default, alias = "mime_type")]
    pub(crate) mime_type: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) data: Cow<'a, str>,
}

/// `fileData`: a medium by URI.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileDataIn<'a> {
    #[serde(borrow, default, alias = "mime_type")]
    pub(crate) mime_type: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "file_uri")]
    pub(crate) file_uri: Cow<'a, str>,
}

/// `functionResponse`: a tool's result, paired with its call by `id` or by name and order.
#[derive(Deserialize)]
pub(crate) struct FunctionResponseIn<'a> {
    #[serde(borrow, default)]
    pub(crate) id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) response: Option<&'a RawValue>,
    /// Multimodal function responses (`FunctionResponsePart`: `inlineData`).
    #[serde(borrow, default)]
    pub(crate) parts: Vec<FunctionResponsePartIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FunctionResponsePartIn<'a> {
    #[serde(borrow, default, alias = "inline_data")]
    pub(crate) inline_data: Option<BlobIn<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct FunctionCallIn<'a> {
    #[serde(borrow, default)]
    pub(crate) name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) args: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) id: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageIn {
    pub(crate) prompt_token_count: Option<u64>,
    pub(crate) candidates_token_count: Option<u64>,
    pub(crate) total_token_count: Option<u64>,
    pub(crate) thoughts_token_count: Option<u64>,
    pub(crate) tool_use_prompt_token_count: Option<u64>,
    pub(crate) cached_content_token_count: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PromptFeedback<'a> {
    #[serde(borrow, default)]
    pub(crate) block_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(crate) struct ErrorIn<'a> {
    #[serde(default)]
    pub(crate) code: Option<u16>,
    #[serde(borrow, default)]
    pub(crate) message: Cow<'a, str>,
}

impl UsageIn {
    pub(crate) fn usage(&self) -> Option<Usage> {
        if self.prompt_token_count.is_none()
            && self.candidates_token_count.is_none()
            && self.total_token_count.is_none()
        {
            return None;
        }
        let prompt =
            self.prompt_token_count.unwrap_or(0) + self.tool_use_prompt_token_count.unwrap_or(0);
        let reasoning = self.thoughts_token_count.unwrap_or(0);
        let completion = self.candidates_token_count.unwrap_or(0) + reasoning;
        Some(Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: self
                .total_token_count
                .unwrap_or(prompt.saturating_add(completion)),
            // `promptTokenCount` already includes the cached content.
            cached_tokens: self.cached_content_token_count.unwrap_or(0).min(prompt),
            cache_write_tokens: 0,
            reasoning_tokens: reasoning,
            ..Usage::default()
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The `generateContent` request, as read at the Gemini door (`crate::convert::gemini_to_chat`).
// Google's reference: "Generating content" (`GenerateContentRequest`), "Caching"
// (`cachedContent`), "Function calling" (`Tool`, `ToolConfig`), `GenerationConfig`.

/// A `GenerateContentRequest` as a client sends it (camelCase, or the proto's snake_case).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RequestIn<'a> {
    #[serde(borrow, default)]
    pub(crate) contents: Vec<ContentIn<'a>>,
    /// A `Content` (its text parts are read), or a bare string.
    #[serde(borrow, default, alias = "system_instruction")]
    pub(crate) system_instruction: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) tools: Vec<ToolIn<'a>>,
    #[serde(borrow, default, alias = "tool_config")]
    pub(crate) tool_config: Option<ToolConfigIn<'a>>,
    #[serde(borrow, default, alias = "generation_config")]
    pub(crate) generation_config: Option<GenerationConfigIn<'a>>,
    #[serde(borrow, default, alias = "safety_settings")]
    pub(crate) safety_settings: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "cached_content")]
    pub(crate) cached_content: Option<Cow<'a, str>>,
    /// Vertex AI's billing labels.
    #[serde(borrow, default)]
    pub(crate) labels: Option<&'a RawValue>,
}

/// A `Tool`: function declarations, or one of Google's own tools.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolIn<'a> {
    #[serde(borrow, default, alias = "function_declarations")]
    pub(crate) function_declarations: Vec<FunctionDeclIn<'a>>,
    #[serde(borrow, default, alias = "google_search")]
    pub(crate) google_search: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "google_search_retrieval")]
    pub(crate) google_search_retrieval: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "code_execution")]
    pub(crate) code_execution: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "url_context")]
    pub(crate) url_context: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "google_maps")]
    pub(crate) google_maps: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "file_search")]
    pub(crate) file_search: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "computer_use")]
    pub(crate) computer_use: Option<&'a RawValue>,
}

/// A `FunctionDeclaration`: its schema as Google's OpenAPI subset (`parameters`) or as JSON
/// Schema (`parametersJsonSchema`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FunctionDeclIn<'a> {
    #[serde(borrow, default)]
    pub(crate) name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) description: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) parameters: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "parameters_json_schema")]
    pub(crate) parameters_json_schema: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolConfigIn<'a> {
    #[serde(borrow, default, alias = "function_calling_config")]
    pub(crate) function_calling_config: Option<FunctionCallingConfigIn<'a>>,
}

/// `functionCallingConfig`: `mode` AUTO, ANY, NONE or VALIDATED, and for ANY the names the
/// model may call.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FunctionCallingConfigIn<'a> {
    #[serde(borrow, default)]
    pub(crate) mode: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "allowed_function_names")]
    pub(crate) allowed_function_names: Vec<Cow<'a, str>>,
}

/// `generationConfig` as read. Numbers the pivot takes as they are stay raw.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerationConfigIn<'a> {
    #[serde(borrow, default)]
    pub(crate) temperature: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "top_p")]
    pub(crate) top_p: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "top_k")]
    pub(crate) top_k: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "candidate_count")]
    pub(crate) candidate_count: Option<&'a RawValue>,
    #[serde(default, alias = "max_output_tokens")]
    pub(crate) max_output_tokens: Option<u64>,
    #[serde(borrow, default, alias = "stop_sequences")]
    pub(crate) stop_sequences: Vec<Cow<'a, str>>,
    #[serde(borrow, default, alias = "presence_penalty")]
    pub(crate) presence_penalty: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "frequency_penalty")]
    pub(crate) frequency_penalty: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) seed: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "response_mime_type")]
    pub(crate) response_mime_type: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "response_schema")]
    pub(crate) response_schema: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "response_json_schema")]
    pub(crate) response_json_schema: Option<&'a RawValue>,
    #[serde(default, alias = "response_logprobs")]
    pub(crate) response_logprobs: Option<bool>,
    #[serde(default)]
    pub(crate) logprobs: Option<u32>,
    #[serde(default, alias = "thinking_config")]
    pub(crate) thinking_config: Option<ThinkingConfigIn<'a>>,
    #[serde(borrow, default, alias = "response_modalities")]
    pub(crate) response_modalities: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "speech_config")]
    pub(crate) speech_config: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "media_resolution")]
    pub(crate) media_resolution: Option<&'a RawValue>,
    #[serde(borrow, default, alias = "image_config")]
    pub(crate) image_config: Option<&'a RawValue>,
}

/// `thinkingConfig`: a budget in tokens (-1: dynamic, 0: off) or a level (Gemini 3);
/// `includeThoughts` is not read (the thoughts a vendor shows are shown).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ThinkingConfigIn<'a> {
    #[serde(default, alias = "thinking_budget")]
    pub(crate) thinking_budget: Option<i64>,
    #[serde(borrow, default, alias = "thinking_level")]
    pub(crate) thinking_level: Option<Cow<'a, str>>,
}

// ---------------------------------------------------------------------------------------------
// `batchEmbedContents`: the request (its contents are [`Content`]s) and the answer.

#[derive(Serialize)]
pub(crate) struct BatchRequest<'a> {
    pub(crate) requests: Vec<EmbedRequest<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EmbedRequest<'a> {
    pub(crate) model: String,
    pub(crate) content: Content<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) output_dimensionality: Option<u64>,
}

#[derive(Deserialize)]
pub(crate) struct BatchAnswer {
    #[serde(default)]
    pub(crate) embeddings: Vec<Embedding>,
}

#[derive(Deserialize)]
pub(crate) struct Embedding {
    #[serde(default)]
    pub(crate) values: Vec<f32>,
}
