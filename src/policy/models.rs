//! What a model is for: `GET /v1/models` and `GET /v1/models/{id}` (the models a key may use,
//! in the shape of the client that asks), and the check that a door asks a model for what it
//! does (`[[models]] kind`).
//!
//! The shape: Anthropic's when the request carries `anthropic-version` (every Anthropic SDK
//! sends it) or authenticates with `x-api-key` ([`anthropic_client`]), OpenAI's otherwise.
//! Either lists each model the key's team may use, then each of its aliases (a name a client
//! may send as `model`), in the config's order.
//!
//! - OpenAI (API reference, "Models": list `{"object":"list","data":[Model]}`, retrieve a
//!   `Model` `{"id","object":"model","created","owned_by"}`): `created` 0, `owned_by`
//!   `switchyard`; a model marked with a `kind` has a `type` (`"chat"` or `"embedding"`)
//!   beside OpenAI's fields.
//! - Anthropic (API reference, "List Models" and "Get a Model", platform.claude.com/docs/en/api/
//!   models-list: `{"data":[ModelInfo],"has_more","first_id","last_id"}`, `ModelInfo` =
//!   `{"type":"model","id","display_name","created_at"}`, `created_at` RFC 3339 "may be set to
//!   an epoch value if the release date is unknown"): `created_at` the epoch, `display_name`
//!   the id; pages by `limit` (1–1000, default 20), `after_id`, `before_id`, as Anthropic's.
//!
//! Errors, in the door's shape ([`crate::error`] by the asking client's dialect): a retrieve
//! of a model that does not exist or that the team may not use is a 404 `model_not_found`
//! (the same answer, so a key cannot probe other teams' models); a bad page query a 400
//! naming the parameter.

use bytes::Bytes;
use pingora::http::RequestHeader;
use serde_json::{json, Value};

use crate::config::{Config, Model, ModelKind};
use crate::error::{printable, GatewayError};
use crate::policy::auth::Principal;
use crate::providers::Operation;

/// Anthropic's `created_at` for a model whose release date the gateway does not know.
const EPOCH: &str = "1970-01-01T00:00:00Z";
/// Anthropic's default and largest page.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 1000;

/// Whether the asking client is Anthropic's: it sends `anthropic-version` or `x-api-key`.
pub fn anthropic_client(req: &RequestHeader) -> bool {
    req.headers.contains_key("anthropic-version") || req.headers.contains_key("x-api-key")
}

/// One listed id: a model's name or one of its aliases.
struct Listed<'a> {
    id: &'a str,
    kind: ModelKind,
}

/// The ids the team may send as `model`: each model it may use, then its aliases (not the
/// patterns, `claude-*`, which name no one model id).
fn listed<'a>(config: &'a Config, principal: &Principal) -> Vec<Listed<'a>> {
    config
        .models
        .iter()
        .filter(|m| principal.team.allows(&m.name))
        .flat_map(|m| {
            std::iter::once(m.name.as_str())
                .chain(
                    m.aliases
                        .iter()
                        .map(String::as_str)
                        .filter(|a| !a.contains('*')),
                )
                .map(|id| Listed { id, kind: m.kind })
        })
        .collect()
}

fn openai_entry(l: &Listed<'_>) -> Value {
    let mut entry = json!({
        "id": l.id,
        "object": "model",
        "created": 0,
        "owned_by": "switchyard",
    });
    if let Some(kind) = l.kind.as_str() {
        entry["type"] = kind.into();
    }
    entry
}

fn anthropic_entry(l: &Listed<'_>) -> Value {
    json!({
        "type": "model",
        "id": l.id,
        "display_name": l.id,
        "created_at": EPOCH,
    })
}

/// `GET /v1/models`: the models this key's team may use, with their aliases, in OpenAI's list
/// shape or (`anthropic`) Anthropic's, one page of it by the `query`'s `limit`, `after_id`,
/// `before_id`. A bad page query: 400 naming the parameter.
pub fn list(
    config: &Config,
    principal: &Principal,
    anthropic: bool,
    query: Option<&str>,
) -> Result<Bytes, GatewayError> {
    let all = listed(config, principal);
    let body = if anthropic {
        anthropic_page(&all, &Page::read(query)?)?
    } else {
        let data: Vec<Value> = all.iter().map(openai_entry).collect();
        json!({"object": "list", "data": data})
    };
    Ok(Bytes::from(body.to_string()))
}

/// `GET /v1/models/{id}`: the model (or alias) `id` in OpenAI's `Model` shape or Anthropic's
/// `ModelInfo`; 404 when the team may not use it or there is none.
pub fn retrieve(
    config: &Config,
    principal: &Principal,
    anthropic: bool,
    id: &str,
) -> Result<Bytes, GatewayError> {
    let all = listed(config, principal);
    let found = all
        .iter()
        .find(|l| l.id == id)
        .ok_or_else(|| GatewayError::ModelNotFound(printable(id, 128)))?;
    let body = if anthropic {
        anthropic_entry(found)
    } else {
        openai_entry(found)
    };
    Ok(Bytes::from(body.to_string()))
}

/// Anthropic's page query.
#[derive(Debug, Default, PartialEq)]
struct Page {
    limit: Option<usize>,
    after_id: Option<String>,
    before_id: Option<String>,
}

impl Page {
    fn read(query: Option<&str>) -> Result<Page, GatewayError> {
        let mut page = Page::default();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decoded(value);
            match name {
                "limit" => {
                    let n = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| GatewayError::InvalidParam {
                            message: format!(
                                "limit: must be an integer from 1 to {MAX_LIMIT}, not `{}`",
                                printable(&value, 32)
                            ),
                            param: "limit".into(),
                        })?;
                    page.limit = Some(n);
                }
                "after_id" => page.after_id = Some(value),
                "before_id" => page.before_id = Some(value),
                _ => {}
            }
        }
        Ok(page)
    }
}

/// One page of Anthropic's list: after `after_id` (or before `before_id`), `limit` entries.
fn anthropic_page(all: &[Listed<'_>], page: &Page) -> Result<Value, GatewayError> {
    let limit = page.limit.unwrap_or(DEFAULT_LIMIT);
    let position = |param: &str, id: &str| {
        all.iter()
            .position(|l| l.id == id)
            .ok_or_else(|| GatewayError::InvalidParam {
                message: format!("{param}: no model `{}` in this list", printable(id, 128)),
                param: param.to_string(),
            })
    };
    let (start, end, more) = match (&page.after_id, &page.before_id) {
        (Some(after), _) => {
            let start = position("after_id", after)? + 1;
            let end = (start + limit).min(all.len());
            (start, end, end < all.len())
        }
        (None, Some(before)) => {
            let end = position("before_id", before)?;
            let start = end.saturating_sub(limit);
            (start, end, start > 0)
        }
        (None, None) => {
            let end = limit.min(all.len());
            (0, end, end < all.len())
        }
    };
    let data: Vec<Value> = all[start..end].iter().map(anthropic_entry).collect();
    let first = data.first().map(|e| e["id"].clone()).unwrap_or(Value::Null);
    let last = data.last().map(|e| e["id"].clone()).unwrap_or(Value::Null);
    Ok(json!({"data": data, "has_more": more, "first_id": first, "last_id": last}))
}

/// `%XX` escapes decoded (a model id in a query or a path may hold `/` or `:`); invalid
/// escapes are kept as they are.
pub fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A 400 when the door asks `model` for what it does not do: an embeddings request to a chat
/// model, or a generation (chat, Messages, Responses, token counting) to an embedding model.
pub fn check_kind(model: &Model, operation: Operation) -> Result<(), GatewayError> {
    let wanted = match operation {
        Operation::Embed => ModelKind::Embedding,
        Operation::Generate | Operation::CountTokens | Operation::Respond => ModelKind::Chat,
    };
    if model.kind == wanted || model.kind == ModelKind::Unmarked {
        return Ok(());
    }
    let message = match model.kind {
        ModelKind::Embedding => format!(
            "`{}` is an embedding model: use it on /v1/embeddings",
            model.name
        ),
        ModelKind::Chat | ModelKind::Unmarked => format!(
            "`{}` is a chat model (`kind = \"chat\"`), not an embedding model",
            model.name
        ),
    };
    Err(GatewayError::InvalidParam {
        message,
        param: "model".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &Value) -> Vec<&str> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn anthropic_pages() {
        let names = ["a", "b", "c", "d", "e"];
        let all: Vec<Listed<'_>> = names
            .iter()
            .map(|id| Listed {
                id,
                kind: ModelKind::Unmarked,
            })
            .collect();
        let page = |q: &str| anthropic_page(&all, &Page::read(Some(q)).unwrap());
        let v = page("limit=2").unwrap();
        assert_eq!(ids(&v), ["a", "b"]);
        assert_eq!(
            (v["has_more"].clone(), v["last_id"].clone()),
            (json!(true), json!("b"))
        );
        let v = page("limit=2&after_id=d").unwrap();
        assert_eq!(ids(&v), ["e"]);
        assert_eq!(v["has_more"], false);
        let v = page("limit=2&before_id=c").unwrap();
        assert_eq!(ids(&v), ["a", "b"]);
        assert_eq!(v["has_more"], false);
        let v = page("").unwrap();
        assert_eq!(ids(&v).len(), 5);
        assert_eq!(v["first_id"], "a");
        assert_eq!(v["data"][0]["type"], "model");
        assert_eq!(v["data"][0]["created_at"], EPOCH);
        let e = page("after_id=zz").unwrap_err();
        assert_eq!(e.param(), Some("after_id"));
        let e = Page::read(Some("limit=0")).unwrap_err();
        assert_eq!((e.status(), e.param()), (400, Some("limit")));
    }

    #[test]
    fn percent_escapes() {
        assert_eq!(percent_decoded("a%2Fb%3a"), "a/b:");
        assert_eq!(percent_decoded("100%"), "100%");
        assert_eq!(percent_decoded("%zz%4"), "%zz%4");
    }
}
