//! Attribution below the key: the end user and the tags of a request, for the usage log and
//! the trace (never metric labels: their values come from clients, without bound) and for the
//! per-user budgets of a team (`user_tokens_per_day`, `user_usd_per_month`).
//!
//! # Sources
//!
//! - **Tags**: the `x-switchyard-tags` header, comma-separated (`"batch,nightly"`); blanks
//!   around a tag are trimmed, empty tags dropped, a repeated tag kept once, in order.
//! - **User**: the first of the team's `[teams.attribution] user_from` sources that gives one
//!   (default `["header"]`):
//!   - `"header"`: the `x-switchyard-user` header;
//!   - `"body"`: the door's own field: `safety_identifier`, else `user`, at the chat
//!     completions and Responses doors (OpenAI, "Safety checks",
//!     <https://developers.openai.com/api/docs/guides/safety-checks>: `safety_identifier`
//!     supersedes `user`); `metadata.user_id` at the Messages door (Anthropic, Messages API,
//!     `metadata.user_id`: "an external identifier for the user who is associated with the
//!     request"). A body field that is not a string is not a user (the vendor judges it).
//!
//!   The body is read once, by the door's view ([`crate::dialect::request::FrontRequest`]),
//!   which keeps the field ([`BodyUser`], `crate::dialect::request::body_user`); nothing
//!   here parses the body again.
//!
//! # Caps
//!
//! A user is at most [`MAX_USER_BYTES`] (256) bytes, a request at most [`MAX_TAGS`] (16)
//! tags of at most [`MAX_TAG_BYTES`] (64) bytes each (OpenAI's `safety_identifier` is at most
//! 64 characters, Anthropic gives no bound: 256 bytes hold any opaque id or hash). A header
//! over its cap, or not UTF-8, is a 400 naming the header; a body field over the cap (from a
//! team that reads it) is a 400 naming the field. Nothing is truncated: a truncated user
//! would be charged someone else's budget. A user or tag holding a control character (an
//! escape that would drive the terminal of whoever reads the report, a tab or line break) is a
//! 400 naming its source, as is an `x-switchyard-user` header given twice; `x-switchyard-tags`
//! headers given several times are one list (RFC 9110 §5.3: a repeated list header is the
//! comma-joined values).
//!
//! `x-switchyard-*` headers are never forwarded upstream (`crate::providers` forwards only
//! each vendor's own list and the provider's `forward_headers`).

use http::HeaderMap;

use crate::config::{Team, UserSource};
pub use crate::dialect::request::BodyUser;
use crate::error::GatewayError;

/// The header naming the end user.
pub const USER_HEADER: &str = "x-switchyard-user";
/// The header of the request's tags, comma-separated.
pub const TAGS_HEADER: &str = "x-switchyard-tags";
/// The longest user, in bytes.
pub const MAX_USER_BYTES: usize = 256;
/// The most tags of one request.
pub const MAX_TAGS: usize = 16;
/// The longest tag, in bytes.
pub const MAX_TAG_BYTES: usize = 64;

/// Who a request is for below its key, and how it is tagged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    /// The end user; `None`: none was given by the team's sources.
    pub user: Option<String>,
    /// The tags, in the client's order, each once; empty: none.
    pub tags: Vec<String>,
}

/// The attribution of a request of `team`: its tags from the headers, its user from the
/// team's sources in order. A value over its cap is a 400 naming the header or field.
pub fn read(
    team: &Team,
    headers: &HeaderMap,
    body: Option<&BodyUser>,
) -> Result<Attribution, GatewayError> {
    // Repeated tags headers are one comma-separated list (RFC 9110 §5.3).
    let mut tag_values = Vec::new();
    for v in headers.get_all(TAGS_HEADER) {
        tag_values.push(header_text(v.as_bytes(), TAGS_HEADER)?);
    }
    let tags = tags(&tag_values.join(","))?;
    let mut user = None;
    for source in &team.user_from {
        let found = match source {
            UserSource::Header => match one_header(headers, USER_HEADER)? {
                None => None,
                Some(v) => Some((header_text(v.as_bytes(), USER_HEADER)?.trim(), USER_HEADER)),
            },
            // Trimmed like the header's value: " alice" and "alice" are one user (one budget).
            UserSource::Body => body.map(|b| (b.value.trim(), b.field)),
        };
        if let Some((value, name)) = found.filter(|(v, _)| !v.is_empty()) {
            if value.len() > MAX_USER_BYTES {
                return Err(invalid(
                    name,
                    format!(
                        "`{name}` is {} bytes: at most {MAX_USER_BYTES}",
                        value.len()
                    ),
                ));
            }
            if value.chars().any(char::is_control) {
                return Err(invalid(name, format!("`{name}` holds a control character")));
            }
            user = Some(value.to_string());
            break;
        }
    }
    Ok(Attribution { user, tags })
}

/// The one value of header `name`, if any; given twice, a 400 naming it (two users: whose
/// budget would it be?).
fn one_header<'h>(
    headers: &'h HeaderMap,
    name: &str,
) -> Result<Option<&'h http::HeaderValue>, GatewayError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(invalid(name, format!("`{name}` is given more than once")));
    }
    Ok(first)
}

/// A header's value as UTF-8 text, or a 400 naming it.
fn header_text<'a>(bytes: &'a [u8], name: &str) -> Result<&'a str, GatewayError> {
    std::str::from_utf8(bytes).map_err(|_| GatewayError::InvalidParam {
        message: format!("`{name}` must be UTF-8 text"),
        param: name.to_string(),
    })
}

/// The tags of an `x-switchyard-tags` value.
fn tags(value: &str) -> Result<Vec<String>, GatewayError> {
    let mut out: Vec<String> = Vec::new();
    for tag in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if tag.len() > MAX_TAG_BYTES {
            return Err(invalid(
                TAGS_HEADER,
                format!(
                    "`{TAGS_HEADER}` holds a tag of {} bytes: at most {MAX_TAG_BYTES} each",
                    tag.len()
                ),
            ));
        }
        if tag.chars().any(char::is_control) {
            return Err(invalid(
                TAGS_HEADER,
                format!("`{TAGS_HEADER}` holds a control character"),
            ));
        }
        if out.iter().any(|t| t == tag) {
            continue;
        }
        if out.len() == MAX_TAGS {
            return Err(invalid(
                TAGS_HEADER,
                format!("`{TAGS_HEADER}` holds more than {MAX_TAGS} tags"),
            ));
        }
        out.push(tag.to_string());
    }
    Ok(out)
}

/// A 400 `invalid_request_error` naming `param`.
fn invalid(param: &str, message: String) -> GatewayError {
    GatewayError::InvalidParam {
        message,
        param: param.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limits;
    use crate::dialect::request::body_user;
    use crate::dialect::Dialect;
    use serde_json::value::RawValue;
    use std::borrow::Cow;

    fn team(user_from: Vec<UserSource>) -> Team {
        Team {
            name: "t".into(),
            models: None,
            limits: Limits::default(),
            user_limits: Limits::default(),
            user_from,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn fields(json: &str) -> Vec<(String, Box<RawValue>)> {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json).unwrap();
        map.into_iter()
            .map(|(k, v)| (k, RawValue::from_string(v.to_string()).unwrap()))
            .collect()
    }

    fn body(door: Dialect, json: &str) -> Option<BodyUser> {
        let owned = fields(json);
        let borrowed: Vec<(Cow<'_, str>, &RawValue)> = owned
            .iter()
            .map(|(k, v)| (Cow::Borrowed(k.as_str()), &**v))
            .collect();
        body_user(door, &borrowed)
    }

    #[test]
    fn each_door_has_its_field() {
        let chat = body(Dialect::Chat, r#"{"user":"u1","safety_identifier":"s1"}"#).unwrap();
        assert_eq!(
            (chat.field, chat.value.as_str()),
            ("safety_identifier", "s1")
        );
        let chat = body(Dialect::Responses, r#"{"user":"u1"}"#).unwrap();
        assert_eq!((chat.field, chat.value.as_str()), ("user", "u1"));
        let m = body(Dialect::Messages, r#"{"metadata":{"user_id":"m1"}}"#).unwrap();
        assert_eq!((m.field, m.value.as_str()), ("metadata.user_id", "m1"));
        assert_eq!(body(Dialect::Messages, r#"{"user":"u1"}"#), None);
        assert_eq!(body(Dialect::Chat, r#"{"user":42}"#), None, "not a string");
    }

    #[test]
    fn the_teams_sources_are_read_in_order() {
        let h = headers(&[(USER_HEADER, " alice ")]);
        let b = BodyUser {
            field: "user",
            value: " bob\u{20}".into(),
        };
        let header_first = team(vec![UserSource::Header, UserSource::Body]);
        assert_eq!(
            read(&header_first, &h, Some(&b)).unwrap().user.as_deref(),
            Some("alice")
        );
        let body_first = team(vec![UserSource::Body, UserSource::Header]);
        assert_eq!(
            read(&body_first, &h, Some(&b)).unwrap().user.as_deref(),
            Some("bob")
        );
        let header_only = team(vec![UserSource::Header]);
        assert_eq!(
            read(&header_only, &HeaderMap::new(), Some(&b))
                .unwrap()
                .user,
            None
        );
        assert_eq!(read(&team(vec![]), &h, Some(&b)).unwrap().user, None);
    }

    #[test]
    fn tags_are_trimmed_deduplicated_and_capped() {
        let t = team(vec![UserSource::Header]);
        let a = read(
            &t,
            &headers(&[(TAGS_HEADER, "batch, nightly,,batch ")]),
            None,
        )
        .unwrap();
        assert_eq!(a.tags, ["batch", "nightly"]);
        let sixteen: Vec<String> = (0..16).map(|i| format!("t{i}")).collect();
        assert!(read(&t, &headers(&[(TAGS_HEADER, &sixteen.join(","))]), None).is_ok());
        let seventeen = format!("{},x", sixteen.join(","));
        let e = read(&t, &headers(&[(TAGS_HEADER, &seventeen)]), None).unwrap_err();
        assert_eq!(e.param(), Some(TAGS_HEADER));
        let long = "x".repeat(65);
        let e = read(&t, &headers(&[(TAGS_HEADER, &long)]), None).unwrap_err();
        assert_eq!(e.param(), Some(TAGS_HEADER));
    }

    #[test]
    fn control_characters_and_a_second_user_are_refused_repeated_tags_joined() {
        let t = team(vec![UserSource::Header, UserSource::Body]);
        let e = read(&t, &headers(&[(USER_HEADER, "a\tb")]), None).unwrap_err();
        assert_eq!(e.param(), Some(USER_HEADER));
        let b = BodyUser {
            field: "user",
            value: "\u{1b}[31mred".into(),
        };
        let e = read(&t, &HeaderMap::new(), Some(&b)).unwrap_err();
        assert_eq!(e.param(), Some("user"));
        let e = read(&t, &headers(&[(TAGS_HEADER, "ok,a\tb")]), None).unwrap_err();
        assert_eq!(e.param(), Some(TAGS_HEADER));
        let mut two = HeaderMap::new();
        two.append(USER_HEADER, "alice".parse().unwrap());
        two.append(USER_HEADER, "bob".parse().unwrap());
        let e = read(&t, &two, None).unwrap_err();
        assert_eq!(e.param(), Some(USER_HEADER));
        let mut tags = HeaderMap::new();
        tags.append(TAGS_HEADER, "a, b".parse().unwrap());
        tags.append(TAGS_HEADER, "c,a".parse().unwrap());
        assert_eq!(read(&t, &tags, None).unwrap().tags, ["a", "b", "c"]);
    }

    #[test]
    fn a_user_over_its_cap_is_refused_naming_its_source() {
        let t = team(vec![UserSource::Header, UserSource::Body]);
        let ok = "u".repeat(256);
        assert!(read(&t, &headers(&[(USER_HEADER, &ok)]), None).is_ok());
        let long = "u".repeat(257);
        let e = read(&t, &headers(&[(USER_HEADER, &long)]), None).unwrap_err();
        assert_eq!(e.param(), Some(USER_HEADER));
        let b = BodyUser {
            field: "metadata.user_id",
            value: long,
        };
        let e = read(&t, &HeaderMap::new(), Some(&b)).unwrap_err();
        assert_eq!(e.param(), Some("metadata.user_id"));
    }
}
