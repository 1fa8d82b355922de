//! Vendor state the gateway keeps for chat-door clients that drop it (`crate::convert::
//! kept_state` says what and why): where the client's dialect has a slot the state rides
//! there (`thinking_blocks` in chat, thinking blocks in Messages, `reasoning` items at the
//! Responses door); a chat-door client that sends back only `role`, `content` and
//! `tool_calls` gets it put back from here.
//!
//! - Keep ([`ResponseStore::keep_vendor_state`], called by `gateway::answer` when a translated
//!   chat-door answer from Gemini or Anthropic completes, before its end goes out): under
//!   (team, each tool-call id the client sees), the `thinking_blocks` array of the assistant
//!   message that made the call, for `[state] vendor_state_ttl_s` (default 24 h).
//! - Recall ([`recall`], before routing, after `super::expand`): the ids of assistant tool
//!   calls with no `thinking_blocks` are looked up in one batched call (memory: one lock per
//!   id; Redis: one `MGET`); what is found is spliced in as `thinking_blocks` into the chat
//!   pivot, so every vendor leg reads it exactly as if the client had sent it. Pass-through
//!   routes (a chat vendor) still get the client's own bytes.
//!
//! The entries share the response store's backend, keys (`switchyard:{resp}:b:{team}:vs_{call id}`,
//! an id no `GET /v1/responses/{id}` takes: only minted `resp_sy…` ids are answered) and
//! bounds in bytes (`responses_max_bytes`, `responses_team_max_bytes`; memory also
//! `responses_max_entries`): one store, evicting its oldest first, whatever it holds. Another
//! team's key finds nothing. A backend failure never fails the request: it goes on without the
//! state, counted in `switchyard_vendor_state_errors_total{op="load"|"save"}`; turns given
//! state back are counted (per tool call) in `switchyard_vendor_state_recalled_total`.

use std::collections::HashMap;

use bytes::Bytes;

use crate::config::Config;
use crate::convert::{self, kept_state};
use crate::dialect::request::FrontRequest;
use crate::dialect::Dialect;

use super::{Kind, ResponseStore};

/// The store id of a tool call's kept state: `vs_` + the call id (which holds no `:`).
fn entry_id(call_id: &str) -> String {
    format!("vs_{call_id}")
}

impl ResponseStore {
    /// Keeps `state` (`(tool-call id, thinking_blocks array)`, from
    /// `convert::AnswerTranslation::take_vendor_state`) for `team`. A failure is logged and
    /// counted, never returned: the answer is on its way.
    pub async fn keep_vendor_state(
        &self,
        config: &Config,
        team: &str,
        state: Vec<(String, Bytes)>,
    ) {
        for (call_id, blocks) in state {
            self.save(
                Kind::VendorState,
                team,
                &entry_id(&call_id),
                blocks,
                &config.stored_responses,
            )
            .await;
        }
    }
}

/// Before routing, at the chat door: puts back the vendor state kept for the history's
/// assistant tool calls that came without `thinking_blocks` (one batched lookup), in the
/// request's chat pivot. Any other door, a history that needs none, nothing found, or the
/// backend down (counted): the request as it was.
pub async fn recall(store: &ResponseStore, team: &str, mut req: FrontRequest) -> FrontRequest {
    if req.dialect != Dialect::Chat {
        return req;
    }
    let wanted = kept_state::wanted(&req.body);
    if wanted.is_empty() {
        return req;
    }
    let ids: Vec<String> = wanted.iter().map(|id| entry_id(id)).collect();
    let Ok(bodies) = store.load_many(Kind::VendorState, team, &ids).await else {
        return req;
    };
    let found: HashMap<String, Bytes> = wanted
        .into_iter()
        .zip(bodies)
        .filter_map(|(id, body)| Some((id, body?)))
        .collect();
    let Some(body) = kept_state::splice(&req.body, &found) else {
        return req;
    };
    if convert::set_chat_pivot(&mut req, body).is_ok() {
        store
            .vendor_state_recalled
            .inc_by(u64::try_from(found.len()).unwrap_or(0));
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observability::metrics::Metrics;
    use serde_json::{json, Value};

    fn request(body: &Value) -> FrontRequest {
        FrontRequest::read(Dialect::Chat, Bytes::from(body.to_string())).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn kept_per_team_and_spliced_into_the_pivot_only() {
        let metrics = Metrics::new();
        let store = ResponseStore::memory(&metrics);
        let config = crate::config::load_str("", std::path::Path::new("t.toml")).unwrap();
        let blocks = json!([{"type":"thinking","thinking":"","signature":"gemini:call_a:U0lH"}]);
        store
            .keep_vendor_state(
                &config,
                "a",
                vec![("call_a".into(), Bytes::from(blocks.to_string()))],
            )
            .await;
        let body = json!({"model":"m","messages":[{"role":"user","content":"hi"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"call_a","type":"function",
                "function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"call_a","content":"42"}]});
        let mut req = recall(&store, "a", request(&body)).await;
        assert_eq!(
            req.body,
            Bytes::from(body.to_string()),
            "client's bytes kept"
        );
        let pivot: Value =
            serde_json::from_slice(&convert::chat_pivot(&mut req).unwrap().body).unwrap();
        assert_eq!(pivot["messages"][1]["thinking_blocks"], blocks);
        // Another team's key finds nothing.
        let mut other = recall(&store, "b", request(&body)).await;
        let pivot: Value =
            serde_json::from_slice(&convert::chat_pivot(&mut other).unwrap().body).unwrap();
        assert!(pivot["messages"][1].get("thinking_blocks").is_none());
    }
}
