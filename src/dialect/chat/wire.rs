//! The OpenAI Chat Completions wire shapes the translations read and write: the request as a
//! client sends it (typed views that borrow from the body, read off [`super::ChatRequest`]),
//! the request as the gateway writes it for a chat vendor, the `chat.completion` answer both
//! ways, and the `chat.completion.chunk` events of a stream as read. OpenAI's API reference:
//! "Create chat completion", "The chat completion object", "The chat completion chunk object".
//!
//! Raw JSON (`&RawValue`) is kept for every value that is only carried across (tool schemas,
//! tool arguments, sampling numbers): `serde_json` here has no `preserve_order`, and re-encoding
//! a JSON schema through `Value` would reorder its `properties`, which models read in order.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::ChatRequest;
use crate::accounting::usage::Usage;
use crate::error::GatewayError;

// ---------------------------------------------------------------------------------------------
// The request, as a client sends it (read off the pivot).

/// A string that borrows from the body when it has no escapes (a bare `Cow<str>` always
/// allocates under serde; `#[serde(borrow)]` makes it borrow).
#[derive(Deserialize)]
pub(crate) struct Str<'a>(#[serde(borrow)] pub Cow<'a, str>);

/// One message of the client's `messages`.
#[derive(Deserialize)]
pub(crate) struct OaMessage<'a> {
    #[serde(borrow)]
    pub role: Cow<'a, str>,
    /// A string, an array of content parts, or null.
    #[serde(borrow, default)]
    pub content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub tool_calls: Option<Vec<OaToolCall<'a>>>,
    #[serde(borrow, default)]
    pub tool_call_id: Option<Cow<'a, str>>,
    /// An assistant turn's reasoning blocks as this gateway hands them to chat clients
    /// (Anthropic's `thinking` with its `signature`, `redacted_thinking`), sent back so the
    /// vendor can check them.
    #[serde(borrow, default)]
    pub thinking_blocks: Option<Vec<ThinkingBlock<'a>>>,
}

/// A reasoning block a vendor needs back on the next turn, carried in chat messages as
/// `thinking_blocks` (the OpenAI-compatible ecosystem's name) next to `reasoning_content`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ThinkingBlock<'a> {
    Thinking {
        #[serde(borrow)]
        thinking: Cow<'a, str>,
        #[serde(borrow)]
        signature: Cow<'a, str>,
    },
    RedactedThinking {
        #[serde(borrow)]
        data: Cow<'a, str>,
    },
}

/// An assistant message's tool call.
#[derive(Deserialize)]
pub(crate) struct OaToolCall<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub function: OaFunctionCall<'a>,
}

#[derive(Deserialize)]
pub(crate) struct OaFunctionCall<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// A JSON object serialised as a string.
    #[serde(borrow, default)]
    pub arguments: Cow<'a, str>,
}

/// A message's content.
pub(crate) enum OaContent<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<OaPart<'a>>),
}

/// One content part: `text`, `image_url`, `refusal`, or a kind no translator takes.
#[derive(Deserialize)]
pub(crate) struct OaPart<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub image_url: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub refusal: Option<Cow<'a, str>>,
    /// A `file` part's `{"file_data": <data: URL>, "filename": …}` (or `file_id`).
    #[serde(borrow, default)]
    pub file: Option<&'a RawValue>,
}

/// An image the client gave: inline (a `data:` URL) or by URL.
#[derive(Debug, PartialEq)]
pub(crate) enum Image<'a> {
    Base64 {
        media_type: Cow<'a, str>,
        data: Cow<'a, str>,
    },
    Url(Cow<'a, str>),
}

/// One of the client's `tools`: a function tool, or another type (OpenAI's built-in tools).
#[derive(Deserialize)]
pub(crate) struct OaTool<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub function: Option<OaFunctionDef<'a>>,
}

/// The client's `response_format`: `text`, `json_object`, or `json_schema` with its schema.
#[derive(Deserialize)]
pub(crate) struct ResponseFormat<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub json_schema: Option<JsonSchema<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct JsonSchema<'a> {
    #[serde(borrow, default)]
    pub schema: Option<&'a RawValue>,
}

/// A function tool of the client's `tools`.
#[derive(Deserialize)]
pub(crate) struct OaFunctionDef<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub description: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub parameters: Option<&'a RawValue>,
}

/// The client's `tool_choice`.
#[derive(Debug, PartialEq)]
pub(crate) enum ToolChoice<'a> {
    Auto,
    None,
    Required,
    Function(Cow<'a, str>),
}

/// The messages of the request, typed. `body::parse` checked each has a string `role`.
pub(crate) fn messages<'a>(req: &ChatRequest<'a>) -> Result<Vec<OaMessage<'a>>, GatewayError> {
    req.messages
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            serde_json::from_str(raw.get()).map_err(|e| {
                GatewayError::InvalidRequest(format!("`messages[{i}]` is not a valid message: {e}"))
            })
        })
        .collect()
}

/// A top-level field, typed; absent and `null` are `None`, a wrong type is a 400.
pub(crate) fn field<'a, T: Deserialize<'a>>(
    req: &ChatRequest<'a>,
    name: &str,
) -> Result<Option<T>, GatewayError> {
    match req.field(name) {
        None => Ok(None),
        Some(raw) if raw.get() == "null" => Ok(None),
        Some(raw) => serde_json::from_str(raw.get())
            .map(Some)
            .map_err(|e| GatewayError::InvalidRequest(format!("`{name}` is not valid: {e}"))),
    }
}

/// A top-level field kept raw (numbers carried across as the client wrote them).
pub(crate) fn raw_field<'a>(req: &ChatRequest<'a>, name: &str) -> Option<&'a RawValue> {
    req.field(name).filter(|raw| raw.get() != "null")
}

/// The content of a message: a string, parts, or `None` for null or absent.
pub(crate) fn content<'a>(
    raw: Option<&'a RawValue>,
) -> Result<Option<OaContent<'a>>, GatewayError> {
    let Some(raw) = raw else { return Ok(None) };
    match raw.get().as_bytes().first() {
        Some(b'"') => serde_json::from_str::<Str<'a>>(raw.get())
            .map(|s| Some(OaContent::Text(s.0)))
            .map_err(|e| GatewayError::InvalidRequest(format!("bad message content: {e}"))),
        Some(b'[') => serde_json::from_str(raw.get())
            .map(|p| Some(OaContent::Parts(p)))
            .map_err(|e| GatewayError::InvalidRequest(format!("bad message content parts: {e}"))),
        Some(b'n') => Ok(None),
        _ => Err(GatewayError::InvalidRequest(
            "a message's `content` must be a string, an array of parts, or null".into(),
        )),
    }
}

/// The text of a content (parts' texts joined by `sep`); other parts are not text and are left
/// out. Used where a vendor takes only text (system prompts, tool results).
pub(crate) fn plain_text<'a>(content: Option<OaContent<'a>>, sep: &str) -> Cow<'a, str> {
    match content {
        None => Cow::Borrowed(""),
        Some(OaContent::Text(t)) => t,
        Some(OaContent::Parts(parts)) => {
            let mut texts = parts.into_iter().filter_map(|p| p.text);
            match (texts.next(), texts.next()) {
                (None, _) => Cow::Borrowed(""),
                (Some(one), None) => one,
                (Some(a), Some(b)) => {
                    let mut s = format!("{a}{sep}{b}");
                    for t in texts {
                        s.push_str(sep);
                        s.push_str(&t);
                    }
                    Cow::Owned(s)
                }
            }
        }
    }
}

impl<'a> OaPart<'a> {
    /// The image of an `image_url` part (`{"url":…}` or a bare string).
    pub fn image(&self) -> Result<Image<'a>, GatewayError> {
        #[derive(Deserialize)]
        struct Url<'a> {
            #[serde(borrow)]
            url: Cow<'a, str>,
        }
        let bad = || GatewayError::InvalidRequest("an `image_url` part needs a `url`".into());
        let raw = self.image_url.ok_or_else(bad)?;
        let url = serde_json::from_str::<Url<'a>>(raw.get())
            .map(|u| u.url)
            .or_else(|_| serde_json::from_str::<Str<'a>>(raw.get()).map(|s| s.0))
            .map_err(|_| bad())?;
        if url.starts_with("data:") {
            return data_url(url).ok_or_else(|| {
                GatewayError::InvalidRequest(
                    "an image `data:` URL must be `data:<media type>;base64,<data>`".into(),
                )
            });
        }
        Ok(Image::Url(url))
    }
}

/// `data:image/png;base64,AAAA` → media type and data, borrowed when the URL is.
pub(crate) fn data_url(url: Cow<'_, str>) -> Option<Image<'_>> {
    fn split(s: &str) -> Option<(&str, &str)> {
        let (meta, data) = s.strip_prefix("data:")?.split_once(',')?;
        let meta = meta.strip_suffix(";base64")?;
        let media = meta.split(';').next().unwrap_or(meta);
        (!media.is_empty()).then_some((media, data))
    }
    match url {
        Cow::Borrowed(s) => split(s).map(|(m, d)| Image::Base64 {
            media_type: Cow::Borrowed(m),
            data: Cow::Borrowed(d),
        }),
        Cow::Owned(s) => split(&s).map(|(m, d)| Image::Base64 {
            media_type: Cow::Owned(m.to_owned()),
            data: Cow::Owned(d.to_owned()),
        }),
    }
}

/// The client's `tool_choice`.
pub(crate) fn tool_choice<'a>(
    req: &ChatRequest<'a>,
) -> Result<Option<ToolChoice<'a>>, GatewayError> {
    #[derive(Deserialize)]
    struct Named<'a> {
        #[serde(borrow)]
        function: Name<'a>,
    }
    #[derive(Deserialize)]
    struct Name<'a> {
        #[serde(borrow)]
        name: Cow<'a, str>,
    }
    let Some(raw) = raw_field(req, "tool_choice") else {
        return Ok(None);
    };
    let bad = || {
        GatewayError::InvalidRequest(
            "`tool_choice` must be \"auto\", \"none\", \"required\" or a function".into(),
        )
    };
    if let Ok(Str(s)) = serde_json::from_str::<Str<'a>>(raw.get()) {
        return match s.as_ref() {
            "auto" => Ok(Some(ToolChoice::Auto)),
            "none" => Ok(Some(ToolChoice::None)),
            "required" => Ok(Some(ToolChoice::Required)),
            _ => Err(bad()),
        };
    }
    serde_json::from_str::<Named<'a>>(raw.get())
        .map(|n| Some(ToolChoice::Function(n.function.name)))
        .map_err(|_| bad())
}

/// The client's `stop`: a string or an array of strings.
pub(crate) fn stop_sequences<'a>(req: &ChatRequest<'a>) -> Result<Vec<Cow<'a, str>>, GatewayError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stop<'a> {
        One(#[serde(borrow)] Cow<'a, str>),
        Many(Vec<Str<'a>>),
    }
    Ok(match field::<Stop<'a>>(req, "stop")? {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v.into_iter().map(|s| s.0).collect(),
    })
}

// ---------------------------------------------------------------------------------------------
// The answer, as written to a chat client (a translated vendor's).

/// A non-streaming `chat.completion`.
#[derive(Serialize)]
pub(crate) struct Completion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<Choice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Serialize)]
pub(crate) struct Choice {
    pub index: u32,
    pub message: AssistantMessage,
    pub finish_reason: &'static str,
}

/// `content` is null when the answer is only tool calls, as OpenAI sends it.
#[derive(Serialize)]
pub(crate) struct AssistantMessage {
    pub role: &'static str,
    pub content: Option<String>,
    /// The vendor's reasoning text, when it showed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// The reasoning blocks the client must send back on the next turn.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub thinking_blocks: Vec<ThinkingBlock<'static>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallOut<'static>>,
}

/// A tool call as written: in an answer's message, or in an assistant message of a request.
#[derive(Serialize)]
pub(crate) struct ToolCallOut<'a> {
    pub id: Cow<'a, str>,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionOut<'a>,
}

#[derive(Serialize)]
pub(crate) struct FunctionOut<'a> {
    pub name: Cow<'a, str>,
    /// A JSON object serialised as a string.
    pub arguments: Cow<'a, str>,
}

impl AssistantMessage {
    pub fn new(text: String, tool_calls: Vec<ToolCallOut<'static>>) -> Self {
        let content = (!text.is_empty() || tool_calls.is_empty()).then_some(text);
        AssistantMessage {
            role: "assistant",
            content,
            reasoning_content: None,
            thinking_blocks: Vec::new(),
            tool_calls,
        }
    }
}

impl<'a> ToolCallOut<'a> {
    pub fn new(
        id: impl Into<Cow<'a, str>>,
        name: impl Into<Cow<'a, str>>,
        arguments: impl Into<Cow<'a, str>>,
    ) -> Self {
        ToolCallOut {
            id: id.into(),
            kind: "function",
            function: FunctionOut {
                name: name.into(),
                arguments: arguments.into(),
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The request, as written for a chat vendor (a translated door's).

#[derive(Serialize)]
pub(crate) struct ChatRequestOut<'a> {
    pub(crate) model: Cow<'a, str>,
    pub(crate) messages: Vec<MessageOut<'a>>,
    /// OpenAI's name for the output cap: reasoning models (o-series, gpt-5) refuse
    /// `max_tokens`, and every current OpenAI-compatible server takes this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_completion_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reasoning_effort: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) temperature: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) top_p: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) stop: Vec<Cow<'a, str>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) tools: Vec<ToolOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tool_choice: Option<ToolChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) response_format: Option<ResponseFormatOut<'a>>,
}

/// `response_format` as the gateway writes it: `{"type":"json_schema","json_schema":{"name",
/// "schema"}}` (API reference, "Create chat completion", `response_format`; `name` is required,
/// `^[a-zA-Z0-9_-]{1,64}$`).
#[derive(Serialize)]
pub(crate) struct ResponseFormatOut<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) json_schema: JsonSchemaOut<'a>,
}

#[derive(Serialize)]
pub(crate) struct JsonSchemaOut<'a> {
    pub(crate) name: &'static str,
    pub(crate) schema: &'a RawValue,
}

#[derive(Serialize)]
pub(crate) struct StreamOptions {
    pub(crate) include_usage: bool,
}

#[derive(Serialize)]
pub(crate) struct MessageOut<'a> {
    pub(crate) role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) content: Option<ContentOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) tool_calls: Vec<ToolCallOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tool_call_id: Option<Cow<'a, str>>,
    /// An assistant message's reasoning state, for the vendor leg that takes it back
    /// (`crate::convert::vendor_state`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) thinking_blocks: Vec<ThinkingBlock<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum ContentOut<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<PartOut<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum PartOut<'a> {
    Text { text: Cow<'a, str> },
    ImageUrl { image_url: ImageUrl<'a> },
}

#[derive(Serialize)]
pub(crate) struct ImageUrl<'a> {
    pub(crate) url: Cow<'a, str>,
}

#[derive(Serialize)]
pub(crate) struct ToolOut<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) function: FunctionDefOut<'a>,
}

#[derive(Serialize)]
pub(crate) struct FunctionDefOut<'a> {
    pub(crate) name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) parameters: Option<&'a RawValue>,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum ToolChoiceOut<'a> {
    Mode(&'static str),
    Function {
        #[serde(rename = "type")]
        kind: &'static str,
        function: FunctionName<'a>,
    },
}

#[derive(Serialize)]
pub(crate) struct FunctionName<'a> {
    pub(crate) name: Cow<'a, str>,
}

// ---------------------------------------------------------------------------------------------
// The answer and its stream chunks, as read from a chat vendor (lenient: servers differ).

#[derive(Deserialize)]
pub(crate) struct CompletionIn<'a> {
    #[serde(borrow, default)]
    pub(crate) id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) model: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) created: Option<u64>,
    #[serde(borrow, default)]
    pub(crate) choices: Vec<ChoiceIn<'a>>,
    #[serde(default, deserialize_with = "lenient_usage")]
    pub(crate) usage: Option<Usage>,
}

#[derive(Deserialize)]
pub(crate) struct ChoiceIn<'a> {
    #[serde(default)]
    pub(crate) index: u32,
    #[serde(borrow, default)]
    pub(crate) message: Option<AnswerIn<'a>>,
    #[serde(borrow, default)]
    pub(crate) finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(crate) struct AnswerIn<'a> {
    #[serde(borrow, default)]
    pub(crate) content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) refusal: Option<Cow<'a, str>>,
    /// The reasoning text some chat servers send (DeepSeek, vLLM, OpenRouter).
    #[serde(borrow, default)]
    pub(crate) reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) tool_calls: Option<Vec<ToolCallIn<'a>>>,
    /// The vendor's reasoning state (a translated vendor's, `crate::convert::vendor_state`).
    #[serde(borrow, default)]
    pub(crate) thinking_blocks: Option<Vec<ThinkingBlock<'a>>>,
}

/// A tool call of an answer's message, read leniently (servers differ): a missing `id`,
/// `name` or `arguments` reads as empty.
#[derive(Deserialize)]
pub(crate) struct ToolCallIn<'a> {
    #[serde(borrow, default)]
    pub(crate) id: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) function: FunctionIn<'a>,
}

#[derive(Deserialize)]
pub(crate) struct FunctionIn<'a> {
    #[serde(borrow, default)]
    pub(crate) name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) arguments: Cow<'a, str>,
}

/// OpenAI's `usage` (every count optional, servers differ): read as [`Usage`] when it has
/// both counts; one without them, or of an odd shape, reads as none rather than failing.
pub(crate) fn lenient_usage<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Usage>, D::Error> {
    let v = <Option<Box<RawValue>>>::deserialize(d)?;
    Ok(v.and_then(|v| serde_json::from_str::<Usage>(v.get()).ok()))
}

#[derive(Deserialize)]
pub(crate) struct ChunkIn<'a> {
    #[serde(borrow, default)]
    pub(crate) id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) choices: Vec<ChunkChoiceIn<'a>>,
    #[serde(default, deserialize_with = "lenient_usage")]
    pub(crate) usage: Option<Usage>,
    #[serde(borrow, default)]
    pub(crate) error: Option<&'a RawValue>,
}

/// A stream chunk's `error` object: the gateway's own (with its `status`) or a vendor's.
#[derive(Deserialize)]
pub(crate) struct ChunkErrorIn<'a> {
    #[serde(borrow, default)]
    pub(crate) message: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) status: Option<u16>,
}

#[derive(Deserialize)]
pub(crate) struct ChunkChoiceIn<'a> {
    #[serde(default)]
    pub(crate) index: u32,
    #[serde(borrow, default)]
    pub(crate) delta: Option<DeltaIn<'a>>,
    #[serde(borrow, default)]
    pub(crate) finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(crate) struct DeltaIn<'a> {
    #[serde(borrow, default)]
    pub(crate) content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) refusal: Option<Cow<'a, str>>,
    /// The reasoning text some chat servers stream (DeepSeek, vLLM, OpenRouter).
    #[serde(borrow, default)]
    pub(crate) reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) tool_calls: Option<Vec<ToolDeltaIn<'a>>>,
    /// Whole reasoning blocks (a translated vendor's, `crate::convert::vendor_state`).
    #[serde(borrow, default)]
    pub(crate) thinking_blocks: Option<Vec<ThinkingBlock<'a>>>,
}

#[derive(Deserialize)]
pub(crate) struct ToolDeltaIn<'a> {
    #[serde(default)]
    pub(crate) index: u32,
    #[serde(borrow, default)]
    pub(crate) id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) function: Option<FunctionDeltaIn<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct FunctionDeltaIn<'a> {
    #[serde(borrow, default)]
    pub(crate) name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) arguments: Option<Cow<'a, str>>,
}
