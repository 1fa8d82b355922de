//! What a model is for: `GET /v1/models` and `GET /v1/models/{id}` (the models a key may use,
//! in the shape of the client that asks), and the check that a door asks a model for what it
//! does (`[[models]] kind`).
//!
//! The shape: Google's on the Gemini door's `/v1beta/models[/{id}]`, and on `/v1/models` when
//! the client authenticates the Google way, `x-goog-api-key` or `?key=` ([`google_client`]);
//! Anthropic's when the request carries `anthropic-version` (every Anthropic SDK sends it) or
//! authenticates with `x-api-key` ([`anthropic_client`]); OpenAI's otherwise. Each lists each
//! model the key's team may use, then each of its aliases (a name a client may send as
//! `model`), in the config's order.
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
//! - Google (Gemini API reference, "Models": `models.list` → `{"models":[Model],
//!   "nextPageToken"}`, `pageSize` default 50 and at most 1000 "even if you pass a larger
//!   pageSize", `pageToken` the previous page's `nextPageToken`; `Model` = `{"name":
//!   "models/{id}","baseModelId","version","displayName","description","inputTokenLimit",
//!   "outputTokenLimit","supportedGenerationMethods"}`): `name` `models/` and the id,
//!   `displayName` the id, `version` `switchyard`, the methods the model's `kind` serves at the
//!   Gemini door (a chat model `generateContent`, `streamGenerateContent`, `countTokens`; an
//!   embedding model `embedContent`, `batchEmbedContents`; an unmarked one all five); no token
//!   limits (the config knows none). The page token is the next entry's position, opaque to
//!   the client.
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

/// Google's default and largest page.
const GOOGLE_DEFAULT_PAGE: usize = 50;
const GOOGLE_MAX_PAGE: usize = 1000;

/// Whether the asking client is Anthropic's: it sends `anthropic-version` or `x-api-key`.
pub fn anthropic_client(req: &RequestHeader) -> bool {
    req.headers.contains_key("anthropic-version") || req.headers.contains_key("x-api-key")
}

/// Whether the asking client is Google's: it sends its key as Google's SDKs do,
/// `x-goog-api-key` or the query's `key`, and no `Authorization`.
pub fn google_client(req: &RequestHeader) -> bool {
    !req.headers.contains_key(http::header::AUTHORIZATION)
        && (req.headers.contains_key("x-goog-api-key")
            || crate::dialect::gemini::door::query_value(req.uri.query(), "key").is_some())
}

/// The shape a model list answers in: the asking client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    OpenAi,
    Anthropic,
    Google,
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

fn google_entry(l: &Listed<'_>) -> Value {
    let methods: &[&str] = match l.kind {
        ModelKind::Chat => &["generateContent", "streamGenerateContent", "countTokens"],
        ModelKind::Embedding => &["embedContent", "batchEmbedContents"],
        ModelKind::Unmarked => &[
            "generateContent",
            "streamGenerateContent",
            "countTokens",
            "embedContent",
            "batchEmbedContents",
        ],
    };
    json!({
        "name": format!("models/{}", l.id),
        "baseModelId": l.id,
        "version": "switchyard",
        "displayName": l.id,
        "description": format!("{} through Switchyard", l.id),
        "supportedGenerationMethods": methods,
    })
}

/// `GET /v1/models`: the models this key's team may use, with their aliases, in the asking
/// client's `shape`, one page of it by the `query` (Anthropic's `limit`, `after_id`,
/// `before_id`; Google's `pageSize`, `pageToken`; OpenAI's list is whole). A bad page query:
/// 400 naming the parameter.
pub fn list(
    config: &Config,
    principal: &Principal,
    shape: Shape,
    query: Option<&str>,
) -> Result<Bytes, GatewayError> {
    let all = listed(config, principal);
    let body = match shape {
        Shape::Anthropic => anthropic_page(&all, &Page::read(query)?)?,
        Shape::Google => google_page(&all, query)?,
        Shape::OpenAi => {
            let data: Vec<Value> = all.iter().map(openai_entry).collect();
            json!({"object": "list", "data": data})
        }
    };
    Ok(Bytes::from(body.to_string()))
}

/// `GET /v1/models/{id}`: the model (or alias) `id` in OpenAI's `Model` shape, Anthropic's
/// `ModelInfo` or Google's `Model` (`id` without Google's `models/`); 404 when the team may not
/// use it or there is none.
pub fn retrieve(
    config: &Config,
    principal: &Principal,
    shape: Shape,
    id: &str,
) -> Result<Bytes, GatewayError> {
    let all = listed(config, principal);
    let id = match shape {
        Shape::Google => id.strip_prefix("models/").unwrap_or(id),
        _ => id,
    };
    let found = all
        .iter()
        .find(|l| l.id == id)
        .ok_or_else(|| GatewayError::ModelNotFound(printable(id, 128)))?;
    let body = match shape {
        Shape::Anthropic => anthropic_entry(found),
        Shape::Google => google_entry(found),
        Shape::OpenAi => openai_entry(found),
    };
    Ok(Bytes::from(body.to_string()))
}

/// One page of Google's list: `pageSize` entries (50 by default, at most 1000) from the
/// position `pageToken` names; `nextPageToken` when more follow.
fn google_page(all: &[Listed<'_>], query: Option<&str>) -> Result<Value, GatewayError> {
    use crate::dialect::gemini::door::query_value;
    let bad = |param: &str, message: String| GatewayError::InvalidParam {
        message: format!("{param}: {message}"),
        param: param.to_string(),
    };
    let size = match query_value(query, "pageSize") {
        None => GOOGLE_DEFAULT_PAGE,
        Some(v) => match v.parse::<usize>() {
            Ok(0) => GOOGLE_DEFAULT_PAGE,
            Ok(n) => n.min(GOOGLE_MAX_PAGE),
            Err(_) => {
                let shown = printable(&v, 32);
                return Err(bad(
                    "pageSize",
                    format!("must be a whole number, not `{shown}`"),
                ));
            }
        },
    };
    let start = match query_value(query, "pageToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= all.len())
            .ok_or_else(|| bad("pageToken", "not a page token of this list".to_string()))?,
    };
    let end = (start + size).min(all.len());
    let models: Vec<Value> = all[start..end].iter().map(google_entry).collect();
    let mut body = json!({ "models": models });
    if end < all.len() {
        body["nextPageToken"] = end.to_string().into();
    }
    Ok(body)
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
        Operation::Embed | Operation::EmbedOne => ModelKind::Embedding,
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
    fn google_pages() {
        let names = ["a", "b", "c"];
        let all: Vec<Listed<'_>> = names
            .iter()
            .map(|id| Listed {
                id,
                kind: ModelKind::Embedding,
            })
            .collect();
        let v = google_page(&all, Some("pageSize=2")).unwrap();
        assert_eq!(v["models"][0]["name"], "models/a");
        assert_eq!(
            v["models"][0]["supportedGenerationMethods"],
            json!(["embedContent", "batchEmbedContents"])
        );
        assert_eq!(v["nextPageToken"], "2");
        let v = google_page(&all, Some("pageSize=2&pageToken=2")).unwrap();
        assert_eq!(v["models"].as_array().unwrap().len(), 1);
        assert!(v.get("nextPageToken").is_none());
        assert_eq!(
            google_page(&all, None).unwrap()["models"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        let e = google_page(&all, Some("pageToken=x")).unwrap_err();
        assert_eq!((e.status(), e.param()), (400, Some("pageToken")));
        let e = google_page(&all, Some("pageSize=-1")).unwrap_err();
        assert_eq!(e.param(), Some("pageSize"));
    }

    #[test]
    fn percent_escapes() {
        assert_eq!(percent_decoded("a%2Fb%3a"), "a/b:");
        assert_eq!(percent_decoded("100%"), "100%");
        assert_eq!(percent_decoded("%zz%4"), "%zz%4");
    }
}
