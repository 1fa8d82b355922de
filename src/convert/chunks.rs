//! The writer of OpenAI `chat.completion.chunk` events (what a vendor's stream becomes on its
//! way to the chat pivot), its deltas, and the JSON output helpers every translation uses.

use bytes::Bytes;
use serde::Serialize;

use crate::accounting::usage::Usage;
use crate::dialect::chat::wire::ThinkingBlock;

/// Serialises an answer; plain strings and numbers cannot fail to serialise.
pub(crate) fn to_bytes<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// A JSON string literal.
pub(crate) fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

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

    /// The last event: every choice's finish reason, and the usage (the chat API's shape).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::translate::tests::events_of;

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
            ..Usage::default()
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
}
