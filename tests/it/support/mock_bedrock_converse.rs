//! What the mock Bedrock server answers to `Converse` (`POST /model/{modelId}/converse`) and
//! `ConverseStream` (`…/converse-stream`): pure functions of the request body and the model
//! id, which the server (`mock_bedrock`) calls once it checked the signature and the path.
//!
//! Every request is first checked by [`super::strict::converse`] (its module doc lists the
//! rules with their AWS sources); a refusal is `Err((400, {"message": …}))`, Bedrock's
//! `ValidationException` body (the server sends the error type in `x-amzn-errortype`).
//!
//! Answers, as a model would by the request's content:
//!
//! - the last user turn holds `toolResult`s → a text that uses them: "It is cold in Oslo.";
//! - else, tools declared → a `toolUse` of the tool `toolChoice.tool` names, else of the
//!   first declared tool, with `{"city":"Oslo"}` (`stopReason` `tool_use`);
//! - else a text saying how many images and documents the request held and what the first
//!   system text was: "Seen 1 image(s), 0 document(s). System: Be brief. The answer is 42.",
//!   cut at the first stop sequence it holds (`stopReason` `stop_sequence`), else
//!   `end_turn`;
//! - `additionalModelRequestFields.reasoningConfig.type: enabled` (Nova 2) → a
//!   `reasoningContent` block first.
//!
//! Usage: `inputTokens` 10 + the request's text characters / 4, `outputTokens` 5; a request
//! with a `cachePoint` writes its prefix (`cacheWriteInputTokens` 100) on its first turn and
//! reads it (`cacheReadInputTokens` 100) on later turns (more than one message).
//!
//! Failures are the server's ([`super::mock_bedrock::BedrockBehaviour`]); in a stream
//! ([`frames`]) an exception frame, a bad CRC or a drop after K text deltas.
//!
//! The stream is the same answer as `ConverseStream` events `(event type, payload)`:
//! `messageStart`, per block `contentBlockStart` (tool uses) / `contentBlockDelta` (text in two
//! pieces, tool input in two fragments) / `contentBlockStop`, `messageStop`, `metadata`; every
//! payload carries Bedrock's `p` padding field.

use serde_json::{json, Value};

use super::mock_bedrock::{encode_frame, BedrockBehaviour};
use super::strict;

/// The text the mock answers once a tool's result came back.
pub const CONVERSE_TOOL_ANSWER: &str = "It is cold in Oslo.";

/// The sentence every plain text answer ends with.
pub const CONVERSE_ANSWER_TAIL: &str = "The answer is 42.";

/// A `Converse` answer to `body` for `model`, or Bedrock's refusal (status, body).
pub fn converse(body: &Value, model: &str) -> Result<Value, (u16, Value)> {
    let a = answer_of(body, model)?;
    let content: Vec<Value> = a
        .blocks
        .iter()
        .map(|b| match b {
            Out::Reasoning(t) => json!({"reasoningContent":{"reasoningText":{"text":t}}}),
            Out::Text(t) => json!({"text":t}),
            Out::Tool { id, name, input } => {
                json!({"toolUse":{"toolUseId":id,"name":name,"input":input}})
            }
        })
        .collect();
    Ok(json!({
        "output":{"message":{"role":"assistant","content":content}},
        "stopReason":a.stop_reason,
        "usage":a.usage,
        "metrics":{"latencyMs":42}
    }))
}

/// The `ConverseStream` events `(event type, payload)` answering `body` for `model`, or
/// Bedrock's refusal (status, body).
pub fn converse_stream(body: &Value, model: &str) -> Result<Vec<(String, Value)>, (u16, Value)> {
    let a = answer_of(body, model)?;
    let mut events = vec![ev("messageStart", json!({"role":"assistant"}))];
    for (i, b) in a.blocks.iter().enumerate() {
        match b {
            Out::Reasoning(t) => events.push(ev(
                "contentBlockDelta",
                json!({"contentBlockIndex":i,"delta":{"reasoningContent":{"text":t}}}),
            )),
            Out::Text(t) => {
                let cut = t
                    .char_indices()
                    .nth(t.chars().count() / 2)
                    .map_or(0, |(at, _)| at);
                for piece in [&t[..cut], &t[cut..]] {
                    events.push(ev(
                        "contentBlockDelta",
                        json!({"contentBlockIndex":i,"delta":{"text":piece}}),
                    ));
                }
            }
            Out::Tool { id, name, input } => {
                events.push(ev(
                    "contentBlockStart",
                    json!({"contentBlockIndex":i,"start":{"toolUse":{"toolUseId":id,"name":name}}}),
                ));
                let args = input.to_string();
                let (a1, a2) = args.split_at(args.len() / 2);
                for piece in [a1, a2] {
                    events.push(ev(
                        "contentBlockDelta",
                        json!({"contentBlockIndex":i,"delta":{"toolUse":{"input":piece}}}),
                    ));
                }
            }
        }
        events.push(ev("contentBlockStop", json!({"contentBlockIndex":i})));
    }
    events.push(ev("messageStop", json!({"stopReason":a.stop_reason})));
    events.push(ev(
        "metadata",
        json!({"usage":a.usage,"metrics":{"latencyMs":42}}),
    ));
    Ok(events)
}

/// The event-stream frames of `events` (`:message-type` `event`, `:event-type` each one's
/// type), with the behaviour's failure after K text deltas: an exception frame
/// (`exception_after`), a frame with a wrong CRC (`corrupt_after`), or half a frame and the
/// connection dropped (`drop_after`: an empty frame marks the drop).
pub fn frames(events: &[(String, Value)], behaviour: &BedrockBehaviour) -> Vec<Vec<u8>> {
    let frame = |kind: &str, payload: &Value| {
        encode_frame(
            &[
                (":event-type", kind),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            payload.to_string().as_bytes(),
        )
    };
    let mut out = Vec::new();
    let mut deltas = 0;
    for (kind, payload) in events {
        if let Some((k, exception)) = &behaviour.exception_after {
            if deltas == *k {
                out.push(encode_frame(
                    &[
                        (":exception-type", exception.as_str()),
                        (":content-type", "application/json"),
                        (":message-type", "exception"),
                    ],
                    json!({"message": format!("mock {exception}")})
                        .to_string()
                        .as_bytes(),
                ));
                return out;
            }
        }
        if behaviour.corrupt_after == Some(deltas) {
            let mut f = frame(kind, payload);
            let at = f.len() - 6;
            f[at] ^= 0x20;
            out.push(f);
            return out;
        }
        if behaviour.drop_after == Some(deltas) {
            let f = frame(kind, payload);
            out.push(f[..f.len() / 2].to_vec());
            out.push(Vec::new());
            return out;
        }
        out.push(frame(kind, payload));
        if kind == "contentBlockDelta" && payload["delta"]["text"].is_string() {
            deltas += 1;
        }
    }
    out
}

/// An event with Bedrock's `p` padding field in its payload.
fn ev(kind: &str, mut payload: Value) -> (String, Value) {
    payload["p"] = json!("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ");
    (kind.to_string(), payload)
}

enum Out {
    Reasoning(String),
    Text(String),
    Tool {
        id: String,
        name: String,
        input: Value,
    },
}

struct Answer {
    blocks: Vec<Out>,
    stop_reason: &'static str,
    usage: Value,
}

fn answer_of(body: &Value, model: &str) -> Result<Answer, (u16, Value)> {
    strict::converse::check(body, model).map_err(|r| (r.status, json!({"message": r.message})))?;
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last = messages.last().cloned().unwrap_or(Value::Null);
    let blocks_of = |m: &Value, key: &str| -> usize {
        m["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b.get(key).is_some())
            .count()
    };
    let answered = last["role"] == "user" && blocks_of(&last, "toolResult") > 0;
    let tools: Vec<String> = body["toolConfig"]["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["toolSpec"]["name"].as_str().map(str::to_string))
        .collect();
    let mut blocks = Vec::new();
    if body["additionalModelRequestFields"]["reasoningConfig"]["type"] == "enabled" {
        blocks.push(Out::Reasoning("The user asks; I answer.".into()));
    }
    let stop_reason = if answered {
        blocks.push(Out::Text(CONVERSE_TOOL_ANSWER.into()));
        "end_turn"
    } else if let Some(first) = tools.first() {
        let name = body["toolConfig"]["toolChoice"]["tool"]["name"]
            .as_str()
            .map_or(first.clone(), str::to_string);
        blocks.push(Out::Tool {
            id: format!("tooluse_{}", messages.len()),
            name,
            input: json!({"city":"Oslo"}),
        });
        "tool_use"
    } else {
        let count = |key: &str| -> usize { messages.iter().map(|m| blocks_of(m, key)).sum() };
        let system = body["system"][0]["text"].as_str().unwrap_or("none");
        let text = format!(
            "Seen {} image(s), {} document(s). System: {system} {CONVERSE_ANSWER_TAIL}",
            count("image"),
            count("document")
        );
        let stops: Vec<&str> = body["inferenceConfig"]["stopSequences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let cut = stops.iter().filter_map(|s| text.find(s)).min();
        match cut {
            Some(at) => {
                let kept = &text[..at];
                if !kept.is_empty() {
                    blocks.push(Out::Text(kept.to_string()));
                }
                "stop_sequence"
            }
            None => {
                blocks.push(Out::Text(text));
                "end_turn"
            }
        }
    };
    Ok(Answer {
        blocks,
        stop_reason,
        usage: usage(body, &messages),
    })
}

/// `inputTokens` from the request's text, 5 out; a `cachePoint` writes on the first turn and
/// reads on later ones.
fn usage(body: &Value, messages: &[Value]) -> Value {
    let text = body.to_string();
    let input = 10 + text.len() as u64 / 4;
    let cached = text.contains("\"cachePoint\"");
    let (read, write) = match (cached, messages.len() > 1) {
        (false, _) => (0, 0),
        (true, true) => (100, 0),
        (true, false) => (0, 100),
    };
    let mut u =
        json!({"inputTokens":input,"outputTokens":5,"totalTokens":input + 5 + read + write});
    if cached {
        u["cacheReadInputTokens"] = json!(read);
        u["cacheWriteInputTokens"] = json!(write);
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOVA: &str = "amazon.nova-pro-v1:0";

    #[test]
    fn answers_by_content() {
        let body = json!({"messages":[{"role":"user","content":[{"text":"hi"},
            {"image":{"format":"png","source":{"bytes":"iVBORw0KGgo="}}}]}],
            "system":[{"text":"Be brief."},{"cachePoint":{"type":"default"}}],
            "inferenceConfig":{"stopSequences":["42"]}});
        let a = converse(&body, NOVA).unwrap();
        assert_eq!(
            a["output"]["message"]["content"][0]["text"],
            "Seen 1 image(s), 0 document(s). System: Be brief. The answer is "
        );
        assert_eq!(a["stopReason"], "stop_sequence");
        assert_eq!(a["usage"]["cacheWriteInputTokens"], 100);
        let tools = json!({"messages":[{"role":"user","content":[{"text":"wx?"}]}],
            "toolConfig":{"tools":[{"toolSpec":{"name":"wx","inputSchema":{"json":{"type":"object"}}}}]}});
        let a = converse(&tools, "meta.llama3-1-70b-instruct-v1:0").unwrap();
        assert_eq!(a["stopReason"], "tool_use");
        assert_eq!(
            a["output"]["message"]["content"][0]["toolUse"]["name"],
            "wx"
        );
        let events = converse_stream(&tools, NOVA).unwrap();
        let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "messageStart",
                "contentBlockStart",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockStop",
                "messageStop",
                "metadata"
            ]
        );
        let (status, body) = converse(&json!({"messages":[]}), NOVA).unwrap_err();
        assert_eq!(status, 400);
        assert!(body["message"]
            .as_str()
            .unwrap()
            .contains("must not be empty"));
    }
}
