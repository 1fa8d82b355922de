//! `GET /v1/responses/{id}`, `DELETE /v1/responses/{id}` and
//! `GET /v1/responses/{id}/input_items`, answered in-process from the response store in
//! OpenAI's shapes: the `response` object; `{"id","object":"response","deleted":true}`;
//! `{"object":"list","data":[…],"first_id","last_id","has_more"}` (query `limit` 1–100,
//! default 20; `order` `asc` or `desc`, default `desc`; `after`, an item id). Only ids the
//! gateway minted are in the store; any other, and another team's, is a 404.

use bytes::Bytes;
use serde_json::{json, Value};

use super::{is_minted, unavailable, ResponseStore};
use crate::error::GatewayError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Get,
    Delete,
    InputItems,
}

/// One call on a stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub op: Op,
    pub id: String,
}

/// The call a request line names, if its path is under `/v1/responses/` (or `/responses/`);
/// a method these paths do not take is a 405.
pub fn route(method: &http::Method, path: &str) -> Option<Result<Call, GatewayError>> {
    let rest = path
        .strip_prefix("/v1/responses/")
        .or_else(|| path.strip_prefix("/responses/"))?;
    let (id, op) = match rest.split_once('/') {
        None => (rest, None),
        Some((id, "input_items")) => (id, Some(Op::InputItems)),
        Some(_) => return None,
    };
    if id.is_empty() {
        return None;
    }
    let op = match (op, method) {
        (None, &http::Method::GET) => Op::Get,
        (None, &http::Method::DELETE) => Op::Delete,
        (Some(op), &http::Method::GET) => op,
        _ => {
            return Some(Err(GatewayError::MethodNotAllowed {
                method: method.as_str().chars().take(16).collect(),
                allow: if op.is_some() { "GET" } else { "GET, DELETE" },
            }))
        }
    };
    Some(Ok(Call {
        op,
        id: id.chars().take(256).collect(),
    }))
}

/// The 404 of a response that is not stored for this team.
fn not_found(id: &str) -> GatewayError {
    let id: String = id.chars().take(128).collect();
    GatewayError::NotFound(format!("Response with id '{id}' not found."))
}

/// The answer's body to `call` for a key of `team`.
pub async fn answer(
    store: &ResponseStore,
    team: &str,
    call: &Call,
    query: Option<&str>,
) -> Result<Bytes, GatewayError> {
    if !is_minted(&call.id) {
        return Err(not_found(&call.id));
    }
    let id = call.id.as_str();
    if call.op == Op::Delete {
        let deleted = store
            .delete(team, id)
            .await
            .map_err(|e| unavailable(id, &e))?;
        if !deleted {
            return Err(not_found(id));
        }
        let body = json!({"id": id, "object": "response", "deleted": true});
        return Ok(Bytes::from(body.to_string()));
    }
    let stored = store
        .load(team, id)
        .await
        .map_err(|e| unavailable(id, &e))?
        .ok_or_else(|| not_found(id))?;
    let body = match call.op {
        Op::InputItems => input_items(id, stored.input, &Page::read(query)?),
        Op::Get | Op::Delete => stored.response,
    };
    Ok(Bytes::from(serde_json::to_vec(&body).unwrap_or_default()))
}

/// The query of an `input_items` list.
#[derive(Debug, PartialEq, Eq)]
struct Page {
    limit: usize,
    descending: bool,
    after: Option<String>,
}

impl Page {
    fn read(query: Option<&str>) -> Result<Page, GatewayError> {
        let mut page = Page {
            limit: 20,
            descending: true,
            after: None,
        };
        let bad = |param: &str, message: &str| GatewayError::InvalidParam {
            message: message.to_string(),
            param: param.to_string(),
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "limit" => {
                    page.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=100).contains(n))
                        .ok_or_else(|| {
                            bad("limit", "`limit` must be a whole number from 1 to 100")
                        })?
                }
                "order" => {
                    page.descending = match value {
                        "asc" => false,
                        "desc" => true,
                        _ => return Err(bad("order", "`order` must be `asc` or `desc`")),
                    }
                }
                "after" if !value.is_empty() => page.after = Some(value.to_string()),
                _ => {}
            }
        }
        Ok(page)
    }
}

/// The input items as OpenAI's list: each with an `id` (the client's, or one derived from
/// the response id and its place), in the asked order, after the cursor, up to the limit.
fn input_items(id: &str, input: Vec<Value>, page: &Page) -> Value {
    let mut items: Vec<Value> = input
        .into_iter()
        .enumerate()
        .map(|(i, mut item)| {
            if let Some(o) = item.as_object_mut() {
                if !o.get("id").is_some_and(Value::is_string) {
                    o.insert("id".into(), json!(format!("in_{id}_{i}")));
                }
                if !o.contains_key("type") {
                    o.insert("type".into(), json!("message"));
                }
            }
            item
        })
        .collect();
    if page.descending {
        items.reverse();
    }
    if let Some(after) = &page.after {
        if let Some(at) = items.iter().position(|i| i["id"] == after.as_str()) {
            items.drain(..=at);
        }
    }
    let has_more = items.len() > page.limit;
    items.truncate(page.limit);
    let first = items
        .first()
        .map(|i| i["id"].clone())
        .unwrap_or(Value::Null);
    let last = items.last().map(|i| i["id"].clone()).unwrap_or(Value::Null);
    json!({"object": "list", "data": items, "first_id": first, "last_id": last,
           "has_more": has_more})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let get = &http::Method::GET;
        let call = |op, id: &str| {
            Some(Ok(Call {
                op,
                id: id.to_string(),
            }))
        };
        assert_eq!(route(get, "/v1/responses/resp_1"), call(Op::Get, "resp_1"));
        assert_eq!(
            route(&http::Method::DELETE, "/responses/resp_1"),
            call(Op::Delete, "resp_1")
        );
        assert_eq!(
            route(get, "/v1/responses/resp_1/input_items"),
            call(Op::InputItems, "resp_1")
        );
        assert!(matches!(
            route(&http::Method::POST, "/v1/responses/resp_1"),
            Some(Err(GatewayError::MethodNotAllowed { .. }))
        ));
        assert_eq!(route(get, "/v1/responses"), None);
        assert_eq!(route(get, "/v1/responses/"), None);
        assert_eq!(route(get, "/v1/responses/r/cancel"), None);
    }

    #[test]
    fn input_item_pages() {
        let input: Vec<Value> = (0..5)
            .map(|i| json!({"role": "user", "content": i.to_string()}))
            .collect();
        let page = Page::read(Some("limit=2&order=asc")).unwrap();
        let v = input_items("r", input.clone(), &page);
        assert_eq!(v["data"][0]["id"], "in_r_0");
        assert_eq!(v["data"][0]["type"], "message");
        assert_eq!(
            (v["first_id"].as_str(), v["last_id"].as_str()),
            (Some("in_r_0"), Some("in_r_1"))
        );
        assert_eq!(v["has_more"], true);
        let v = input_items(
            "r",
            input.clone(),
            &Page::read(Some("order=asc&after=in_r_3")).unwrap(),
        );
        assert_eq!(v["data"].as_array().unwrap().len(), 1);
        assert_eq!(v["has_more"], false);
        let v = input_items("r", input, &Page::read(None).unwrap());
        assert_eq!(v["first_id"], "in_r_4", "newest first by default");
        assert!(Page::read(Some("limit=0")).is_err());
        assert!(Page::read(Some("order=up")).is_err());
    }
}
