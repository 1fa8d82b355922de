//! The built-in `mock` provider: answers in-process, with no network and no key, so that the
//! example config serves a working API out of the box and tests have a vendor that is always up.
//!
//! Its answers are deterministic: a fixed sentence that echoes the start of the last message,
//! one completion token per word, prompt tokens counted as the words of the messages' text.
//! `max_tokens` cuts the answer with `finish_reason: "length"`.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::accounting::usage::Usage;
use crate::dialect::chat::{message_text, ChatRequest};

/// What the mock will say, and how many tokens it counts for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub words: Vec<String>,
    pub prompt_tokens: u64,
    pub finish_reason: &'static str,
}

impl Reply {
    pub fn completion_tokens(&self) -> u64 {
        self.words.len() as u64
    }
    /// The usage the mock reports, as the gateway counts it.
    pub fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens(),
            total_tokens: self.prompt_tokens + self.completion_tokens(),
            ..Usage::default()
        }
    }
    fn usage_json(&self) -> Value {
        let u = self.usage();
        json!({
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens,
        })
    }
}

/// The mock's answer to a request.
pub fn reply(req: &ChatRequest<'_>) -> Reply {
    let texts: Vec<String> = req.messages.iter().map(|m| message_text(m.get())).collect();
    reply_to(&texts, req.max_tokens)
}

/// The mock's answer to a request whose texts are `texts` (the last one echoed), cut at
/// `max_tokens` words.
pub fn reply_to(texts: &[String], max_tokens: Option<u64>) -> Reply {
    let prompt_tokens = texts
        .iter()
        .map(|t| t.split_whitespace().count() as u64)
        .sum::<u64>()
        .max(1);
    let echo: Vec<&str> = texts
        .last()
        .map(|t| t.split_whitespace().take(8).collect())
        .unwrap_or_default();
    let mut words: Vec<String> = "Hello from Switchyard's mock provider. You said:"
        .split(' ')
        .map(str::to_string)
        .collect();
    words.extend(echo.iter().map(|w| w.to_string()));
    let mut finish_reason = "stop";
    if let Some(max) = max_tokens {
        if (words.len() as u64) > max {
            words.truncate(max as usize);
            finish_reason = "length";
        }
    }
    Reply {
        words,
        prompt_tokens,
        finish_reason,
    }
}

/// The mock's embeddings: for each input, `dimensions` (default 8) numbers in [-1, 1) drawn
/// from a hash of the input, so equal inputs get equal vectors; one prompt token per word (a
/// token id input: one per id).
pub fn embeddings(
    req: &crate::dialect::embeddings::EmbeddingsRequest<'_>,
    model: &str,
) -> (Bytes, Usage) {
    use crate::dialect::embeddings::Input;
    let dims = req.dimensions.unwrap_or(8).min(4096) as usize;
    let mut prompt_tokens = 0u64;
    let data: Vec<Value> = req
        .inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let (seed, tokens) = match input {
                Input::Text(t) => (t.as_bytes().to_vec(), t.split_whitespace().count() as u64),
                Input::Tokens(ids) => (
                    ids.iter().flat_map(|i| i.to_le_bytes()).collect(),
                    ids.len() as u64,
                ),
            };
            prompt_tokens += tokens.max(1);
            let values = vector(&seed, dims);
            let embedding = if req.base64 {
                Value::from(base64_floats(&values))
            } else {
                json!(values)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let usage = Usage::new(prompt_tokens, 0);
    let body = json!({"object": "list", "data": data, "model": model,
                      "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}});
    (Bytes::from(body.to_string()), usage)
}

/// `dims` numbers in [-1, 1) from an FNV-1a hash of `seed`, stepped by a xorshift.
fn vector(seed: &[u8], dims: usize) -> Vec<f32> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    (0..dims)
        .map(|_| {
            h ^= h << 13;
            h ^= h >> 7;
            h ^= h << 17;
            ((h >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn base64_floats(values: &[f32]) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A non-streaming `chat.completion` body.
pub fn completion(id: &str, created: u64, model: &str, reply: &Reply) -> Bytes {
    let body = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": reply.words.join(" ")},
            "finish_reason": reply.finish_reason,
        }],
        "usage": reply.usage_json(),
    });
    Bytes::from(body.to_string())
}

/// The SSE events of a streamed answer: a role chunk, one chunk per word, a final chunk with
/// `finish_reason` and `usage` (as the chat API shows), then `[DONE]`.
pub fn stream_events(id: &str, created: u64, model: &str, reply: &Reply) -> Vec<Bytes> {
    let chunk = |delta: Value, finish: Option<&str>, usage: Option<Value>| {
        let mut c = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        if let Some(u) = usage {
            c["usage"] = u;
        }
        Bytes::from(format!("data: {c}\n\n"))
    };
    let mut out = Vec::with_capacity(reply.words.len() + 3);
    out.push(chunk(
        json!({"role": "assistant", "content": ""}),
        None,
        None,
    ));
    let last = reply.words.len().saturating_sub(1);
    for (i, w) in reply.words.iter().enumerate() {
        let text = if i == last {
            w.clone()
        } else {
            format!("{w} ")
        };
        out.push(chunk(json!({"content": text}), None, None));
    }
    out.push(chunk(
        json!({}),
        Some(reply.finish_reason),
        Some(reply.usage_json()),
    ));
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    out
}

/// The mock's answer at the Gemini door: a `GenerateContentResponse` (Gemini API reference,
/// "Generating content"), whole or as the server-sent events of a stream (one per word, the
/// last with `finishReason` and the `usageMetadata` totals).
pub fn gemini(id: &str, model: &str, reply: &Reply, stream: bool) -> Vec<Bytes> {
    let finish = match reply.finish_reason {
        "length" => "MAX_TOKENS",
        _ => "STOP",
    };
    let u = reply.usage();
    let usage = json!({
        "promptTokenCount": u.prompt_tokens,
        "candidatesTokenCount": u.completion_tokens,
        "totalTokenCount": u.total_tokens,
    });
    let response = |text: String, last: bool| {
        let mut candidate =
            json!({"content": {"role": "model", "parts": [{"text": text}]}, "index": 0});
        let mut r = json!({"candidates": [], "modelVersion": model, "responseId": id});
        if last {
            candidate["finishReason"] = finish.into();
            r["usageMetadata"] = usage.clone();
        }
        r["candidates"] = json!([candidate]);
        r
    };
    if !stream {
        return vec![Bytes::from(
            response(reply.words.join(" "), true).to_string(),
        )];
    }
    let last = reply.words.len().saturating_sub(1);
    reply
        .words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let text = if i == last {
                w.clone()
            } else {
                format!("{w} ")
            };
            Bytes::from(format!("data: {}\r\n\r\n", response(text, i == last)))
        })
        .collect()
}

/// The mock's embeddings at the Gemini door: `embedContent`'s `{"embedding":{"values"}}` for
/// one text, or `batchEmbedContents`' `{"embeddings":[…]}` (Gemini API reference,
/// "Embeddings"), the vectors as [`embeddings`] draws them; one prompt token per word.
pub fn gemini_embeddings(texts: &[String], batch: bool) -> (Bytes, Usage) {
    let dims = 8;
    let tokens: u64 = texts
        .iter()
        .map(|t| (t.split_whitespace().count() as u64).max(1))
        .sum();
    let values: Vec<Value> = texts
        .iter()
        .map(|t| json!({"values": vector(t.as_bytes(), dims)}))
        .collect();
    let body = match (batch, values.first()) {
        (true, _) => json!({"embeddings": values}),
        (false, Some(one)) => json!({"embedding": one}),
        (false, None) => json!({"embedding": {"values": vector(b"", dims)}}),
    };
    (Bytes::from(body.to_string()), Usage::new(tokens, 0))
}

/// The built-in mock as a vendor kind (`kind = "mock"`): it speaks chat (and embeddings),
/// answers in-process, and takes neither `base_url` nor `api_key_env`.
pub struct Mock;

impl super::vendor::Vendor for Mock {
    fn name(&self) -> &'static str {
        "mock"
    }

    fn telemetry_name(&self) -> &'static str {
        "switchyard.mock"
    }

    fn dialect(&self) -> crate::dialect::Dialect {
        crate::dialect::Dialect::Chat
    }

    /// The mock answers Responses through the chat translation.
    fn speaks(&self, dialect: crate::dialect::Dialect) -> bool {
        use crate::dialect::Dialect;
        matches!(dialect, Dialect::Chat | Dialect::Embeddings)
    }

    fn path(
        &self,
        _provider: &crate::config::Provider,
        _model: &str,
        _stream: bool,
        op: super::Operation,
    ) -> String {
        match op {
            super::Operation::Embed | super::Operation::EmbedOne => "/embeddings".to_string(),
            _ => "/chat/completions".to_string(),
        }
    }

    fn is_local(&self) -> bool {
        true
    }

    fn fields(&self) -> super::vendor::ConfigFields {
        super::vendor::ConfigFields {
            base_url: super::vendor::Need::Refused,
            api_key_env: false,
            forward_headers: false,
            ..super::vendor::ConfigFields::REMOTE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::chat::parse;

    #[test]
    fn counts_words_and_honours_max_tokens() {
        let body = br#"{"model":"m","messages":[{"role":"system","content":"be brief"},
            {"role":"user","content":[{"type":"text","text":"how are you today"}]}]}"#;
        let req = parse(body).unwrap();
        let r = reply(&req);
        assert_eq!(r.prompt_tokens, 6);
        assert_eq!(r.finish_reason, "stop");
        assert_eq!(r.words.last().unwrap(), "today");

        let body = br#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":3}"#;
        let r = reply(&parse(body).unwrap());
        assert_eq!(r.completion_tokens(), 3);
        assert_eq!(r.finish_reason, "length");
    }

    #[test]
    fn stream_reassembles_to_the_completion() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"one two"}]}"#;
        let r = reply(&parse(body).unwrap());
        let events = stream_events("id", 1, "mock", &r);
        assert_eq!(events.last().unwrap().as_ref(), b"data: [DONE]\n\n");
        let mut text = String::new();
        let mut usage = Value::Null;
        for e in &events[..events.len() - 1] {
            let s = std::str::from_utf8(e).unwrap();
            let v: Value = serde_json::from_str(s.trim_start_matches("data: ").trim()).unwrap();
            if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
                text.push_str(c);
            }
            if !v["usage"].is_null() {
                usage = v["usage"].clone();
            }
        }
        let full: Value = serde_json::from_slice(&completion("id", 1, "mock", &r)).unwrap();
        assert_eq!(full["choices"][0]["message"]["content"], text);
        assert_eq!(full["usage"], usage);
        assert_eq!(usage["completion_tokens"], r.completion_tokens());
    }
}
