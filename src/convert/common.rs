//! What the translated pairs share: the OpenAI request as the client sent it (typed views
//! that borrow from the body), the OpenAI answer written back, the writer of OpenAI
//! `chat.completion.chunk` events, and the driver of stream translators over [`crate::dialect::sse`].
//!
//! Everything here is pure (bytes in, bytes out, no I/O, no pingora type), so every translator
//! can be tested by feeding it recorded vendor streams cut at every byte.
//!
//! Raw JSON (`&RawValue`) is kept for every value that is only carried across (tool schemas,
//! tool arguments, sampling numbers): `serde_json` here has no `preserve_order`, and re-encoding
//! a JSON schema through `Value` would reorder its `properties`, which models read in order.

use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::accounting::usage::Usage;
use crate::dialect::chat::wire::{field, OaFunctionDef, OaTool, Str, ThinkingBlock};
use crate::dialect::chat::ChatRequest;
use crate::dialect::messages::wire::ThinkingIn;
use crate::dialect::sse::Decoder;
use crate::gateway::error::GatewayError;

/// The `max_tokens` sent to Anthropic (which requires one) when neither the client nor the
/// provider's `default_max_tokens` gives it.
pub const FALLBACK_MAX_TOKENS: u64 = 4096;

/// A vendor's non-streaming answer, re-encoded in the client's dialect.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    /// The answer's body: an OpenAI `chat.completion` (or an Anthropic `message` for the
    /// `/v1/messages` front door).
    pub body: Bytes,
    /// The usage the vendor reported, to meter; `None` when it reported none.
    pub usage: Option<Usage>,
    /// The first choice's finish reason in the body's dialect (`stop`, `length`, `tool_calls`,
    /// `content_filter`; or `end_turn`, `max_tokens`, `tool_use`, `refusal`).
    pub finish_reason: &'static str,
}

/// A streaming translator: upstream SSE bytes in, client SSE bytes out, chunk by chunk, keeping
/// only an unterminated line and the event being read between chunks.
///
/// Feed it every chunk of the upstream body as it arrives, cut anywhere; forward what it
/// returns (possibly empty). Call [`finish`](SseTranslator::finish) once when the upstream
/// body ended cleanly: it emits what only the end can tell (the last chunk and `[DONE]`, or an
/// error event for a stream cut short). After a transport error, do not call `finish`; the
/// proxy ends the stream with its own error event instead.
///
/// [`AnthropicStream`] and [`GeminiStream`] write OpenAI streams, so [`crate::dialect::chat_stream::Scanner`]
/// can meter their output like any pass-through stream;
/// [`super::messages_chat::OpenAiToAnthropicStream`] writes Anthropic events (meter its
/// OpenAI input with the scanner instead). Translators chain: Gemini → OpenAI → Anthropic.
pub trait SseTranslator: Send + Sync {
    /// Translates the next chunk of the vendor's body.
    fn feed(&mut self, chunk: &[u8]) -> Bytes;
    /// Ends the stream; calling it again returns nothing more.
    fn finish(&mut self) -> Bytes;
    /// The usage the vendor reported so far (complete once the stream ended).
    fn usage(&self) -> Option<Usage>;
    /// Whether any text or tool call reached the output.
    fn has_content(&self) -> bool;
    /// Whether the output ended properly (`[DONE]`, or Anthropic's `message_stop`).
    fn is_done(&self) -> bool;
    /// Whether the output ended with an error event.
    fn is_failed(&self) -> bool;
    /// A Responses stream that ended well: its whole `response` object (what
    /// `response.completed` carried), for the response store. `None` for other dialects.
    fn completed_response(&self) -> Option<serde_json::Value> {
        None
    }
}

/// Seconds since the Unix epoch, for `created`.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// ---------------------------------------------------------------------------------------------
// The OpenAI request, as read from the client.

/// A 400 about the client's request, saying which vendor could not take what.
pub(crate) fn unsupported(vendor: &str, what: impl std::fmt::Display) -> GatewayError {
    GatewayError::InvalidRequest(format!("{what} (provider kind `{vendor}`)"))
}

/// The client's function tools; any other tool type is a 400 (no vendor here runs OpenAI's
/// built-in tools).
pub(crate) fn function_tools<'a>(
    req: &ChatRequest<'a>,
    vendor: &str,
) -> Result<Vec<OaFunctionDef<'a>>, GatewayError> {
    let tools: Vec<OaTool<'a>> = field(req, "tools")?.unwrap_or_default();
    tools
        .into_iter()
        .map(|t| match (t.kind.as_ref(), t.function) {
            ("function", Some(f)) => Ok(f),
            (kind, _) => Err(unsupported(
                vendor,
                format!("tools of type `{kind}` are not supported"),
            )),
        })
        .collect()
}

/// How much the client asked the model to reason, read from OpenAI's `reasoning_effort`
/// (`none`/`minimal`: no reasoning; `low`, `medium`, `high`) or from Anthropic's
/// `thinking` (`{"type":"enabled","budget_tokens":N}` / `{"type":"disabled"}`, e.g. in
/// `model_params`), as a budget of reasoning tokens: low 1,024, medium 8,192, high 24,576
/// (Gemini 2.5's documented budget range; Anthropic's minimum is 1,024). `Ok(None)`: not asked;
/// `Ok(Some(0))`: asked to not reason. An effort that is not one of these is a 400.
pub(crate) fn reasoning_budget(req: &ChatRequest<'_>) -> Result<Option<u64>, GatewayError> {
    if let Some(t) = field::<ThinkingIn<'_>>(req, "thinking")? {
        return match t.kind.as_ref() {
            "disabled" => Ok(Some(0)),
            "enabled" => Ok(Some(t.budget_tokens.unwrap_or(1024))),
            other => Err(GatewayError::InvalidRequest(format!(
                "`thinking.type` `{other}` is not `enabled` or `disabled`"
            ))),
        };
    }
    match field::<Str<'_>>(req, "reasoning_effort")?
        .as_ref()
        .map(|s| s.0.as_ref())
    {
        None => Ok(None),
        Some("none" | "minimal") => Ok(Some(0)),
        Some("low") => Ok(Some(1024)),
        Some("medium") => Ok(Some(8192)),
        Some("high") => Ok(Some(24576)),
        Some(other) => Err(GatewayError::InvalidRequest(format!(
            "`reasoning_effort` `{other}` is not one of none, minimal, low, medium, high"
        ))),
    }
}

/// A tool call's `arguments` string as the JSON object vendors take; empty means `{}`.
pub(crate) fn arguments_object(args: &str) -> Result<Box<RawValue>, GatewayError> {
    let args = args.trim();
    let args = if args.is_empty() { "{}" } else { args };
    let bad = || {
        GatewayError::InvalidRequest(
            "a tool call's `function.arguments` must be a JSON object in a string".into(),
        )
    };
    if !args.starts_with('{') {
        return Err(bad());
    }
    serde_json::from_str::<Box<RawValue>>(args).map_err(|_| bad())
}

/// Appends `blocks` to the last message when it has the same role (both vendors want the
/// results of one turn's tool calls, and any text after them, in one message).
pub(crate) fn push_merged<R: PartialEq, T>(list: &mut Vec<(R, Vec<T>)>, role: R, blocks: Vec<T>) {
    // A turn without content (`"content": ""` in agent histories) is left out: Anthropic and
    // Gemini refuse empty turns, and the turns around it then merge.
    if blocks.is_empty() {
        return;
    }
    match list.last_mut() {
        Some((last, existing)) if *last == role => existing.extend(blocks),
        _ => list.push((role, blocks)),
    }
}

// ---------------------------------------------------------------------------------------------
// The OpenAI answer, as written to the client.

/// Serialises an answer; plain strings and numbers cannot fail to serialise.
pub(crate) fn to_bytes<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// A JSON string literal.
pub(crate) fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A vendor's error reported with a status (a mid-stream error event, or an error body in a
/// 200 answer), in the gateway's shape: the client gets the vendor's 4xx about its request,
/// and a 502 for the vendor's own failures and for the gateway's key being refused.
pub(crate) fn vendor_failure(vendor: &str, status: u16, message: &str) -> GatewayError {
    let message: String = message.chars().take(1024).collect();
    match crate::providers::client_status_for_vendor(status) {
        502 => GatewayError::Upstream(format!(
            "the {vendor} provider failed (status {status}): {message}"
        )),
        client => GatewayError::Vendor {
            status: client,
            message,
        },
    }
}

/// A 502 for a vendor answer the gateway cannot read.
pub(crate) fn unreadable(vendor: &str, what: &str, e: impl std::fmt::Display) -> GatewayError {
    GatewayError::Upstream(format!(
        "the {vendor} provider sent {what} that cannot be read: {e}"
    ))
}

// ---------------------------------------------------------------------------------------------
// OpenAI stream output.

/// Writes `chat.completion.chunk` events. The envelope (id, created, model) is the same for
/// every chunk of a stream, so it is serialised once and each chunk only adds its delta.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChunkWriter {
    head: String,
}

/// The first delta of every choice, as OpenAI sends it.
pub(crate) const ROLE_DELTA: &str = r#"{"role":"assistant","content":""}"#;

impl ChunkWriter {
    pub fn new(id: &str, created: u64, model: &str) -> Self {
        ChunkWriter {
            head: format!(
                r#"{{"id":{},"object":"chat.completion.chunk","created":{created},"model":{},"choices":["#,
                json_str(id),
                json_str(model)
            ),
        }
    }

    /// One event with one choice's delta.
    pub fn chunk(&self, out: &mut Vec<u8>, index: u32, delta: &str) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(self.head.as_bytes());
        push_choice(out, index, delta, None);
        out.extend_from_slice(b"]}\n\n");
    }

    /// The last event: every choice's finish reason, and the usage (the seed's shape).
    pub fn last(&self, out: &mut Vec<u8>, finishes: &[(u32, &str)], usage: Option<Usage>) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(self.head.as_bytes());
        for (i, (index, reason)) in finishes.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_choice(out, *index, "{}", Some(reason));
        }
        out.push(b']');
        if let Some(u) = usage {
            out.extend_from_slice(usage_json(&u).as_bytes());
        }
        out.extend_from_slice(b"}\n\ndata: [DONE]\n\n");
    }
}

fn push_choice(out: &mut Vec<u8>, index: u32, delta: &str, finish: Option<&str>) {
    out.extend_from_slice(format!(r#"{{"index":{index},"delta":"#).as_bytes());
    out.extend_from_slice(delta.as_bytes());
    out.extend_from_slice(b",\"finish_reason\":");
    match finish {
        Some(f) => out.extend_from_slice(json_str(f).as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

/// `,"usage":{…}` as [`Usage`]'s Serialize writes it (details included when not zero).
fn usage_json(u: &Usage) -> String {
    let json = serde_json::to_string(u).unwrap_or_else(|_| "null".into());
    format!(r#","usage":{json}"#)
}

/// A text delta.
pub(crate) fn content_delta(text: &str) -> String {
    format!(r#"{{"content":{}}}"#, json_str(text))
}

/// The delta that opens a tool call (with its first arguments, possibly all of them).
pub(crate) fn tool_start_delta(index: u32, id: &str, name: &str, arguments: &str) -> String {
    format!(
        r#"{{"tool_calls":[{{"index":{index},"id":{},"type":"function","function":{{"name":{},"arguments":{}}}}}]}}"#,
        json_str(id),
        json_str(name),
        json_str(arguments)
    )
}

/// A reasoning text delta.
pub(crate) fn reasoning_delta(text: &str) -> String {
    format!(r#"{{"reasoning_content":{}}}"#, json_str(text))
}

/// A delta carrying whole reasoning blocks to hand back on the next turn.
pub(crate) fn thinking_blocks_delta(blocks: &[ThinkingBlock<'_>]) -> String {
    let blocks = serde_json::to_string(blocks).unwrap_or_else(|_| "[]".into());
    format!(r#"{{"thinking_blocks":{blocks}}}"#)
}

/// A fragment of a tool call's arguments.
pub(crate) fn tool_args_delta(index: u32, fragment: &str) -> String {
    format!(
        r#"{{"tool_calls":[{{"index":{index},"function":{{"arguments":{}}}}}]}}"#,
        json_str(fragment)
    )
}

/// How a translated stream stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum End {
    #[default]
    Open,
    /// Ended properly.
    Done,
    /// Ended with an error event.
    Failed,
}

/// What a stream translator keeps between events: the dialect's part, driven by
/// [`Translating`], which owns the SSE decoding and the stop at the first end.
pub(crate) trait EventState: Send + Sync {
    /// Translates one upstream event's data, writing what the client gets to `out`.
    fn on_event(&mut self, data: &[u8], out: &mut Vec<u8>);
    /// The body ended with the stream still open: write its proper end, or an error event
    /// when the stream was cut short.
    fn at_eof(&mut self, out: &mut Vec<u8>);
    fn end(&self) -> End;
    fn usage(&self) -> Option<Usage>;
    fn has_content(&self) -> bool;
    /// See [`SseTranslator::completed_response`].
    fn completed_response(&self) -> Option<serde_json::Value> {
        None
    }
}

/// A stream translator: an SSE decoder feeding a dialect's `EventState` event by event,
/// until the stream ends (what follows its end is dropped).
#[derive(Debug)]
pub struct Translating<S> {
    sse: Decoder,
    st: S,
}

impl<S> Translating<S> {
    pub(crate) fn over(st: S) -> Self {
        Translating {
            sse: Decoder::default(),
            st,
        }
    }
}

impl<S: EventState> SseTranslator for Translating<S> {
    fn feed(&mut self, chunk: &[u8]) -> Bytes {
        let mut out = Vec::new();
        let mut rest = chunk;
        while self.st.end() == End::Open {
            let Some(ev) = self.sse.next_event(&mut rest) else {
                break;
            };
            self.st.on_event(ev.data, &mut out);
        }
        Bytes::from(out)
    }

    fn finish(&mut self) -> Bytes {
        let mut out = Vec::new();
        if self.st.end() == End::Open {
            if let Some(ev) = self.sse.finish() {
                self.st.on_event(ev.data, &mut out);
            }
        }
        if self.st.end() == End::Open {
            self.st.at_eof(&mut out);
        }
        Bytes::from(out)
    }

    fn usage(&self) -> Option<Usage> {
        self.st.usage()
    }

    fn has_content(&self) -> bool {
        self.st.has_content()
    }

    fn is_done(&self) -> bool {
        self.st.end() == End::Done
    }

    fn is_failed(&self) -> bool {
        self.st.end() == End::Failed
    }

    fn completed_response(&self) -> Option<serde_json::Value> {
        self.st.completed_response()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dialect::chat::parse;
    use crate::dialect::chat::wire::{
        content, messages, stop_sequences, tool_choice, Image, OaContent, ToolChoice,
    };
    use crate::dialect::chat_stream::Scanner;

    fn req(body: &str) -> ChatRequest<'_> {
        parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn images_from_data_and_http_urls() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":[
            {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBO"}},
            {"type":"image_url","image_url":"https://x/y.jpg"},
            {"type":"image_url","image_url":{"url":"data:image\/gif;base64,R0lG"}},
            {"type":"image_url","image_url":{"url":"data:text/plain,hi"}}]}]}"#;
        let r = req(body);
        let msgs = messages(&r).unwrap();
        let Some(OaContent::Parts(parts)) = content(msgs[0].content).unwrap() else {
            panic!("parts")
        };
        assert_eq!(
            parts[0].image().unwrap(),
            Image::Base64 {
                media_type: "image/png".into(),
                data: "iVBO".into()
            }
        );
        assert_eq!(
            parts[1].image().unwrap(),
            Image::Url("https://x/y.jpg".into())
        );
        assert_eq!(
            parts[2].image().unwrap(),
            Image::Base64 {
                media_type: "image/gif".into(),
                data: "R0lG".into()
            }
        );
        assert_eq!(parts[3].image().unwrap_err().status(), 400);
    }

    #[test]
    fn stop_tool_choice_and_arguments() {
        let r = req(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stop":"x","tool_choice":"required"}"#,
        );
        assert_eq!(stop_sequences(&r).unwrap(), vec!["x"]);
        assert_eq!(tool_choice(&r).unwrap(), Some(ToolChoice::Required));
        let r = req(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b"],
                "tool_choice":{"type":"function","function":{"name":"f"}}}"#,
        );
        assert_eq!(stop_sequences(&r).unwrap(), vec!["a", "b"]);
        assert_eq!(
            tool_choice(&r).unwrap(),
            Some(ToolChoice::Function("f".into()))
        );
        let r = req(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stop":3,"tool_choice":"x"}"#,
        );
        assert_eq!(stop_sequences(&r).unwrap_err().status(), 400);
        assert_eq!(tool_choice(&r).unwrap_err().status(), 400);
        assert_eq!(arguments_object("").unwrap().get(), "{}");
        assert_eq!(
            arguments_object(r#" {"a": [1]} "#).unwrap().get(),
            r#"{"a": [1]}"#
        );
        assert!(arguments_object("[1]").is_err());
        assert!(arguments_object("{").is_err());
    }

    #[test]
    fn function_tools_refuse_other_types() {
        let r = req(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search"}]}"#,
        );
        let e = function_tools(&r, "anthropic").err().unwrap();
        assert!(e.to_string().contains("web_search"), "{e}");
    }

    #[test]
    fn chunk_writer_shapes() {
        let w = ChunkWriter::new("id\"1", 7, "m");
        let mut out = Vec::new();
        w.chunk(&mut out, 0, &content_delta("a\"b"));
        let usage = Usage {
            prompt_tokens: 10,
            completion_tokens: 2,
            total_tokens: 12,
            cached_tokens: 6,
            cache_write_tokens: 3,
            reasoning_tokens: 1,
        };
        w.last(&mut out, &[(0, "stop")], Some(usage));
        let events = events_of(&out);
        assert_eq!(events.len(), 3);
        assert_eq!(events[0]["id"], "id\"1");
        assert_eq!(events[0]["choices"][0]["delta"]["content"], "a\"b");
        assert_eq!(events[1]["choices"][0]["finish_reason"], "stop");
        assert_eq!(events[1]["usage"]["total_tokens"], 12);
        // The details go out as a non-streaming answer writes them, and read back whole.
        assert_eq!(events[1]["usage"], serde_json::to_value(usage).unwrap());
        let back: Usage = serde_json::from_value(events[1]["usage"].clone()).unwrap();
        assert_eq!(back, usage);
        assert_eq!(events[2], serde_json::Value::String("[DONE]".into()));
    }

    /// The data of every event of an SSE byte string, as JSON (`[DONE]` as a JSON string).
    pub(crate) fn events_of(bytes: &[u8]) -> Vec<serde_json::Value> {
        let mut d = Decoder::default();
        let mut rest = bytes;
        let mut out = Vec::new();
        while let Some(e) = d.next_event(&mut rest) {
            out.push(serde_json::from_slice(e.data).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(e.data).into())
            }));
        }
        assert!(d.finish().is_none(), "unterminated output event");
        out
    }

    /// The output of a translator fed `input` in `pieces`, then finished.
    fn run_pieces(t: &mut dyn SseTranslator, pieces: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in pieces {
            out.extend_from_slice(&t.feed(p));
        }
        out.extend_from_slice(&t.finish());
        assert!(t.finish().is_empty(), "finish twice");
        out
    }

    /// Feeds `input` whole, cut in two at every byte, and byte by byte, to fresh translators
    /// from `make`, and checks the output is the same every time. Returns it.
    pub(crate) fn same_at_every_cut(
        make: &dyn Fn() -> Box<dyn SseTranslator>,
        input: &[u8],
    ) -> Vec<u8> {
        let whole = run_pieces(make().as_mut(), &[input]);
        for i in 0..=input.len() {
            let got = run_pieces(make().as_mut(), &[&input[..i], &input[i..]]);
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&whole),
                "cut at byte {i}"
            );
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run_pieces(make().as_mut(), &bytes), whole, "byte by byte");
        whole
    }

    /// What the gateway's own scanner reads from a translated OpenAI stream.
    pub(crate) fn scan(output: &[u8]) -> Scanner {
        let mut s = Scanner::new();
        s.feed(output);
        s.finish();
        s
    }
}
