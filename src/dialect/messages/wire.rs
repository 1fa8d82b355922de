//! The Anthropic Messages wire shapes, one declaration each: the request (as the gateway
//! writes it for an `anthropic` vendor, and as the `/v1/messages` door reads it), the content
//! blocks (one set written, one read), the `message` answer and the stream events as read, the
//! `message` answer as written, and the `usage` object. Anthropic's API reference, "Messages"
//! and "Streaming Messages".

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::accounting::usage::Usage;
use crate::dialect::chat::wire::Str;

// ---------------------------------------------------------------------------------------------
// The request, as written for an `anthropic` vendor.

#[derive(Serialize)]
pub(crate) struct Request<'a> {
    pub(crate) model: &'a str,
    pub(crate) max_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) system: Option<Cow<'a, str>>,
    pub(crate) messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) temperature: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) top_p: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) top_k: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) stop_sequences: Vec<Cow<'a, str>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) stream: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tool_choice: Option<ToolChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) metadata: Option<Metadata<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) thinking: Option<ThinkingOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) output_config: Option<OutputConfigOut<'a>>,
}

/// `output_config` as the gateway writes it: `format`, the answer constrained to a JSON
/// schema (Anthropic, "Structured outputs": `output_config.format` = `{"type":"json_schema",
/// "schema"}`; generally available, the older `output_format` beta field is deprecated).
#[derive(Serialize)]
pub(crate) struct OutputConfigOut<'a> {
    pub(crate) format: OutputFormat<'a>,
}

/// A structured-output format: today only `json_schema`.
#[derive(Serialize, Deserialize)]
pub(crate) struct OutputFormat<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub(crate) schema: Option<&'a RawValue>,
}

/// Anthropic's `thinking`: on with a budget of reasoning tokens (below `max_tokens`), or off.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ThinkingOut {
    Enabled { budget_tokens: u64 },
    Disabled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    User,
    Assistant,
}

#[derive(Serialize)]
pub(crate) struct Message<'a> {
    pub(crate) role: Role,
    pub(crate) content: Vec<Block<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Block<'a> {
    Thinking {
        thinking: Cow<'a, str>,
        signature: Cow<'a, str>,
    },
    RedactedThinking {
        data: Cow<'a, str>,
    },
    Text {
        text: Cow<'a, str>,
    },
    Image {
        source: Source<'a>,
    },
    ToolUse {
        id: Cow<'a, str>,
        name: Cow<'a, str>,
        input: Box<RawValue>,
    },
    ToolResult {
        tool_use_id: Cow<'a, str>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        content: Vec<Block<'a>>,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Source<'a> {
    Base64 {
        media_type: Cow<'a, str>,
        data: Cow<'a, str>,
    },
    Url {
        url: Cow<'a, str>,
    },
}

#[derive(Serialize)]
pub(crate) struct Tool<'a> {
    pub(crate) name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<Cow<'a, str>>,
    pub(crate) input_schema: Schema<'a>,
}

/// A tool's schema: the client's, or an empty object schema for a function without
/// parameters (Anthropic requires `input_schema`).
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum Schema<'a> {
    Given(&'a RawValue),
    Empty {
        #[serde(rename = "type")]
        kind: &'static str,
        properties: serde_json::Map<String, serde_json::Value>,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ToolChoiceOut<'a> {
    Auto {
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        disable_parallel_tool_use: bool,
    },
    Any {
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        disable_parallel_tool_use: bool,
    },
    Tool {
        name: Cow<'a, str>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        disable_parallel_tool_use: bool,
    },
    None,
}

#[derive(Serialize)]
pub(crate) struct Metadata<'a> {
    pub(crate) user_id: Cow<'a, str>,
}

// ---------------------------------------------------------------------------------------------
// Answers and stream events, as read from an `anthropic` vendor.

/// Anthropic's `usage`. `input_tokens` excludes the prompt tokens read from
/// (`cache_read_input_tokens`) or written to (`cache_creation_input_tokens`) the cache, which
/// the normalised `prompt_tokens` includes. `output_tokens` includes thinking, which Anthropic
/// does not count apart: reasoning stays 0. `cache_creation` splits the cache writes by
/// lifetime (`ephemeral_5m_input_tokens`, `ephemeral_1h_input_tokens`: "Messages" API
/// reference, `usage.cache_creation`, <https://docs.anthropic.com/en/api/messages>); its 1-hour
/// part is priced apart.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(crate) struct UsageIn {
    pub(crate) input_tokens: Option<u64>,
    pub(crate) output_tokens: Option<u64>,
    pub(crate) cache_creation_input_tokens: Option<u64>,
    pub(crate) cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) cache_creation: Option<CacheCreationIn>,
}

/// Anthropic's `usage.cache_creation`: the cache writes by lifetime.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(crate) struct CacheCreationIn {
    pub(crate) ephemeral_5m_input_tokens: Option<u64>,
    pub(crate) ephemeral_1h_input_tokens: Option<u64>,
}

impl CacheCreationIn {
    fn total(&self) -> u64 {
        self.ephemeral_5m_input_tokens
            .unwrap_or(0)
            .saturating_add(self.ephemeral_1h_input_tokens.unwrap_or(0))
    }
}

impl UsageIn {
    /// A stream's usage so far: `later` (a `message_delta`) overrides what `message_start`
    /// said, count by count.
    pub(crate) fn merge(self, later: UsageIn) -> UsageIn {
        UsageIn {
            input_tokens: later.input_tokens.or(self.input_tokens),
            output_tokens: later.output_tokens.or(self.output_tokens),
            cache_creation_input_tokens: later
                .cache_creation_input_tokens
                .or(self.cache_creation_input_tokens),
            cache_read_input_tokens: later
                .cache_read_input_tokens
                .or(self.cache_read_input_tokens),
            cache_creation: later.cache_creation.or(self.cache_creation),
        }
    }

    /// Tokens written to the cache (`cache_creation_input_tokens`, else the sum of
    /// `cache_creation`'s parts) and the 1-hour part of them.
    fn written(&self) -> (u64, u64) {
        let parts = self.cache_creation.unwrap_or_default();
        let written = self
            .cache_creation_input_tokens
            .unwrap_or_else(|| parts.total());
        let one_hour = parts.ephemeral_1h_input_tokens.unwrap_or(0).min(written);
        (written, one_hour)
    }

    /// The normalised usage as the meter reads it from a pass-through answer; `None` without
    /// `output_tokens` or `input_tokens`.
    pub(crate) fn reported(&self) -> Option<Usage> {
        let output = self.output_tokens?;
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let (written, one_hour) = self.written();
        let prompt = self
            .input_tokens?
            .saturating_add(cached)
            .saturating_add(written);
        Some(Usage {
            cached_tokens: cached,
            cache_write_tokens: written,
            cache_write_1h_tokens: one_hour,
            ..Usage::new(prompt, output)
        })
    }

    /// The normalised usage; `None` when the vendor said nothing.
    pub(crate) fn usage(&self) -> Option<Usage> {
        let counts = [
            self.input_tokens,
            self.output_tokens,
            self.cache_creation_input_tokens,
            self.cache_read_input_tokens,
        ];
        if counts.iter().all(Option::is_none) {
            return None;
        }
        let cached_tokens = self.cache_read_input_tokens.unwrap_or(0);
        let (cache_write_tokens, cache_write_1h_tokens) = self.written();
        let prompt = self
            .input_tokens
            .unwrap_or(0)
            .saturating_add(cached_tokens)
            .saturating_add(cache_write_tokens);
        Some(Usage {
            cached_tokens,
            cache_write_tokens,
            cache_write_1h_tokens,
            ..Usage::new(prompt, self.output_tokens.unwrap_or(0))
        })
    }
}

/// A content block as read: of a request's message (the `/v1/messages` door), of an answer,
/// or of a stream's `content_block_start`. Every field but `type` is optional so that one
/// shape reads every block type (`text`, `image`, `tool_use`, `tool_result`, `thinking`,
/// `redacted_thinking`, server-tool blocks).
#[derive(Default, Deserialize)]
pub(crate) struct BlockIn<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) thinking: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) signature: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) data: Option<Cow<'a, str>>,
    /// An `image` block's source.
    #[serde(borrow, default)]
    pub(crate) source: Option<SourceIn<'a>>,
    #[serde(borrow, default)]
    pub(crate) tool_use_id: Option<Cow<'a, str>>,
    /// A `tool_result` block's content: a string or an array of blocks.
    #[serde(borrow, default)]
    pub(crate) content: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(crate) struct ErrorIn<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) message: Cow<'a, str>,
}

#[derive(Deserialize)]
pub(crate) struct AnswerIn<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(crate) kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) content: Vec<BlockIn<'a>>,
    #[serde(borrow, default)]
    pub(crate) stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) usage: Option<UsageIn>,
    #[serde(borrow, default)]
    pub(crate) error: Option<ErrorIn<'a>>,
}

/// One event of a Messages stream; every field is optional so that one shape reads them all.
#[derive(Deserialize)]
pub(crate) struct EventIn<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(default)]
    pub(crate) index: u64,
    #[serde(borrow, default)]
    pub(crate) message: Option<AnswerIn<'a>>,
    #[serde(borrow, default)]
    pub(crate) content_block: Option<BlockIn<'a>>,
    #[serde(borrow, default)]
    pub(crate) delta: Option<DeltaIn<'a>>,
    #[serde(default)]
    pub(crate) usage: Option<UsageIn>,
    #[serde(borrow, default)]
    pub(crate) error: Option<ErrorIn<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct DeltaIn<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(crate) kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) partial_json: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) thinking: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) signature: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) stop_reason: Option<Cow<'a, str>>,
}

// ---------------------------------------------------------------------------------------------
// The request, as read at the `/v1/messages` door.

#[derive(Deserialize)]
pub(crate) struct MessagesRequest<'a> {
    #[serde(borrow)]
    pub(crate) model: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) messages: Vec<MessageIn<'a>>,
    #[serde(borrow, default)]
    pub(crate) system: Option<&'a RawValue>,
    #[serde(default)]
    pub(crate) max_tokens: Option<u64>,
    #[serde(borrow, default)]
    pub(crate) thinking: Option<ThinkingIn<'a>>,
    #[serde(borrow, default)]
    pub(crate) stop_sequences: Option<Vec<Str<'a>>>,
    #[serde(borrow, default)]
    pub(crate) temperature: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) top_p: Option<&'a RawValue>,
    #[serde(default)]
    pub(crate) stream: Option<bool>,
    #[serde(borrow, default)]
    pub(crate) tools: Option<Vec<ToolIn<'a>>>,
    #[serde(borrow, default)]
    pub(crate) tool_choice: Option<ToolChoiceIn<'a>>,
    #[serde(borrow, default)]
    pub(crate) metadata: Option<MetadataIn<'a>>,
    #[serde(borrow, default)]
    pub(crate) output_config: Option<OutputConfigIn<'a>>,
}

/// `output_config`: `effort` (`low`, `medium`, `high`, `max`) bounds the whole answer's token
/// spend, thinking included; with `thinking: {"type":"adaptive"}` it sets how much the model
/// thinks (Anthropic, "Effort": platform.claude.com/docs/en/build-with-claude/effort).
#[derive(Deserialize)]
pub(crate) struct OutputConfigIn<'a> {
    #[serde(borrow, default)]
    pub(crate) effort: Option<Cow<'a, str>>,
    /// `{"type":"json_schema","schema"}`: the answer constrained to the schema ("Structured
    /// outputs").
    #[serde(borrow, default)]
    pub(crate) format: Option<OutputFormat<'a>>,
}

/// `thinking`: `{"type":"enabled","budget_tokens":N}`, `{"type":"adaptive"}` (the model decides
/// when and how much, by `output_config.effort`; Claude 4.6 and later) or `{"type":"disabled"}`.
#[derive(Deserialize)]
pub(crate) struct ThinkingIn<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(default)]
    pub(crate) budget_tokens: Option<u64>,
}

#[derive(Deserialize)]
pub(crate) struct MessageIn<'a> {
    #[serde(borrow)]
    pub(crate) role: Cow<'a, str>,
    /// A string or an array of blocks.
    #[serde(borrow)]
    pub(crate) content: &'a RawValue,
}

#[derive(Deserialize)]
pub(crate) struct SourceIn<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) media_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) data: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) url: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(crate) struct ToolIn<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(crate) kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) description: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) input_schema: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(crate) struct ToolChoiceIn<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) name: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) disable_parallel_tool_use: Option<bool>,
}

#[derive(Deserialize)]
pub(crate) struct MetadataIn<'a> {
    #[serde(borrow, default)]
    pub(crate) user_id: Option<Cow<'a, str>>,
}

// ---------------------------------------------------------------------------------------------
// The answer, as written to a `/v1/messages` client (its blocks are [`Block`]s).

#[derive(Serialize)]
pub(crate) struct MessageOutBody<'a> {
    pub(crate) id: &'a str,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) role: &'static str,
    pub(crate) model: &'a str,
    pub(crate) content: Vec<Block<'a>>,
    pub(crate) stop_reason: &'static str,
    pub(crate) stop_sequence: Option<&'static str>,
    pub(crate) usage: AnthropicUsage,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct AnthropicUsage {
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) cache_creation_input_tokens: u64,
    pub(crate) cache_read_input_tokens: u64,
}

impl AnthropicUsage {
    /// Anthropic's `input_tokens` leaves out the tokens read from and written to the cache,
    /// which go to `cache_read_input_tokens` and `cache_creation_input_tokens`.
    pub(crate) fn of(usage: Option<Usage>) -> Self {
        let u = usage.unwrap_or_default();
        let read = u.cached_tokens.min(u.prompt_tokens);
        let written = u.cache_write_tokens.min(u.prompt_tokens - read);
        AnthropicUsage {
            input_tokens: u.prompt_tokens - read - written,
            output_tokens: u.completion_tokens,
            cache_creation_input_tokens: written,
            cache_read_input_tokens: read,
        }
    }

    pub(crate) fn json(&self) -> String {
        format!(
            r#"{{"input_tokens":{},"output_tokens":{},"cache_creation_input_tokens":{},"cache_read_input_tokens":{}}}"#,
            self.input_tokens,
            self.output_tokens,
            self.cache_creation_input_tokens,
            self.cache_read_input_tokens
        )
    }
}
