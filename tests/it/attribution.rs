//! Attribution below the key (issue 29 item 4), through the real binary and the strict mock
//! vendors: the end user from the `x-switchyard-user` header or from the body's own field
//! (`safety_identifier`/`user` at the chat and Responses doors, `metadata.user_id` at the
//! Messages door) as the team's `[teams.attribution] user_from` says, and the tags of
//! `x-switchyard-tags`, in the usage log; neither header goes upstream; a header over its cap
//! is a 400 in the door's shape naming it.

use crate::support;

use serde_json::{json, Value};
use support::*;

const ANTH_KEY: &str = "sk-ant-attribution-1";
/// The key of team `by-header` (the default source) and of team `by-body`.
const HEADER_SECRET: &str = "sk-attr-header-team";
const BODY_SECRET: &str = "sk-attr-body-team";

struct Setup {
    anth: MockAnthropic,
    oai: MockUpstream,
    gw: Gateway,
}

async fn setup() -> Setup {
    let anth = MockAnthropic::start(ANTH_KEY).await;
    let oai = MockUpstream::start().await;
    let body = ConfigBody::new()
        .usage_log()
        .provider(
            "claude",
            "anthropic",
            &anth.origin(),
            "api_key_env = \"SY_AT_ANTH\"",
        )
        .provider("oai", "openai", &oai.base_url(), "")
        .model("claude", &[("claude", "claude-sonnet-4-5")])
        .model("gpt", &[("oai", "gpt-5")])
        .team("by-header", "")
        .team("by-body", "[teams.attribution]\nuser_from = [\"body\"]")
        .key("kh", "by-header", HEADER_SECRET, "")
        .key("kb", "by-body", BODY_SECRET, "")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_AT_ANTH", ANTH_KEY)
        .start()
        .await;
    Setup { anth, oai, gw }
}

/// The three doors: path, model, and a body carrying the door's own user field `user`.
fn door_request(door: &str, body_user: &str) -> (&'static str, Value) {
    match door {
        "chat" => (
            "/v1/chat/completions",
            json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}],
                   "safety_identifier": body_user, "user": "the-older-field"}),
        ),
        "responses" => (
            "/v1/responses",
            json!({"model": "gpt", "input": "hi", "user": body_user}),
        ),
        _ => (
            "/v1/messages",
            json!({"model": "claude", "max_tokens": 64,
                   "messages": [{"role": "user", "content": "hi"}],
                   "metadata": {"user_id": body_user}}),
        ),
    }
}

/// Sends one request at `door` with `secret` and the given `x-switchyard-*` headers; returns
/// its status and request id.
async fn send(
    gw: &Gateway,
    door: &str,
    secret: &str,
    body_user: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Value) {
    let (path, body) = door_request(door, body_user);
    let mut req = gw
        .client()
        .post(gw.url(path))
        .header("authorization", format!("Bearer {secret}"))
        .header("anthropic-version", "2023-06-01")
        .json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("the gateway answers");
    let status = resp.status().as_u16();
    let id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, id, body)
}

#[tokio::test]
async fn the_user_and_tags_from_each_source_at_each_door_are_in_the_usage_log() {
    let s = setup().await;
    for door in ["chat", "responses", "messages"] {
        // Team `by-header` reads the header (its default), not the body.
        let user = format!("alice-{door}");
        let (status, id, body) = send(
            &s.gw,
            door,
            HEADER_SECRET,
            "from-the-body",
            &[
                ("x-switchyard-user", user.as_str()),
                ("x-switchyard-tags", " nightly,batch, nightly ,"),
            ],
        )
        .await;
        assert_eq!(status, 200, "{door}: {body}\n{}", s.gw.logs());
        let line = s.gw.usage_line(&id).await;
        assert_eq!(line["user"], user.as_str(), "{door}: {line}");
        assert_eq!(line["tags"], json!(["nightly", "batch"]), "{door}: {line}");

        // Team `by-body` reads the door's own field, not the header.
        let body_user = format!("bob-{door}");
        let (status, id, body) = send(
            &s.gw,
            door,
            BODY_SECRET,
            &body_user,
            &[("x-switchyard-user", "from-the-header")],
        )
        .await;
        assert_eq!(status, 200, "{door}: {body}");
        let line = s.gw.usage_line(&id).await;
        assert_eq!(line["user"], body_user.as_str(), "{door}: {line}");
        assert!(line.get("tags").is_none(), "no tags, no field: {line}");

        // No user from the team's sources, no tags: both fields are left out.
        let (status, id, _) = send(&s.gw, door, HEADER_SECRET, "from-the-body", &[]).await;
        assert_eq!(status, 200);
        let line = s.gw.usage_line(&id).await;
        assert!(
            line.get("user").is_none() && line.get("tags").is_none(),
            "{line}"
        );
    }
    // Neither header went upstream; the body's own fields did, untouched.
    for r in s.oai.requests() {
        assert!(
            r.headers.keys().all(|k| !k.starts_with("x-switchyard-")),
            "{:?}",
            r.headers
        );
    }
    for r in s.anth.requests() {
        assert!(r
            .headers
            .keys()
            .all(|k| !k.as_str().starts_with("x-switchyard-")));
    }
    let last_chat = s
        .oai
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/chat/completions"))
        .expect("a chat request went upstream");
    let sent: Value = serde_json::from_slice(&last_chat.body).unwrap();
    assert_eq!(sent["user"], "the-older-field");
}

#[tokio::test]
async fn a_header_over_its_cap_is_a_400_naming_it_in_the_doors_shape() {
    let s = setup().await;
    let long_user = "u".repeat(257);
    let long_tag = "t".repeat(65);
    let many_tags = (0..17)
        .map(|i| format!("t{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let cases = [
        ("x-switchyard-user", long_user.as_str()),
        ("x-switchyard-tags", long_tag.as_str()),
        ("x-switchyard-tags", many_tags.as_str()),
    ];
    for (header, value) in cases {
        // Chat door: OpenAI's error shape, `param` naming the header.
        let (status, _, body) = send(&s.gw, "chat", HEADER_SECRET, "x", &[(header, value)]).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["param"], header, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(header));
        // Messages door: Anthropic's error shape, the message naming the header.
        let (status, _, body) =
            send(&s.gw, "messages", HEADER_SECRET, "x", &[(header, value)]).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["type"], "error", "{body}");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(body["error"]["message"].as_str().unwrap().contains(header));
    }
    // At the caps exactly: admitted.
    let user = "u".repeat(256);
    let tags = (0..16)
        .map(|i| format!("{i}{}", "t".repeat(60)))
        .collect::<Vec<_>>()
        .join(",");
    let (status, _, body) = send(
        &s.gw,
        "chat",
        HEADER_SECRET,
        "x",
        &[("x-switchyard-user", &user), ("x-switchyard-tags", &tags)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // A body field over the cap, from a team that reads the body: 400 naming the field.
    let (status, _, body) = send(&s.gw, "messages", BODY_SECRET, &"b".repeat(300), &[]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("metadata.user_id"));
    assert_eq!(
        s.anth.requests().len(),
        0,
        "no refused request went upstream"
    );
}

/// Found by a hostile review: a user or tag with a control character (an escape sequence
/// that would drive the terminal of whoever reads `switchyard usage`) and a user header given
/// twice are 400s naming their source; repeated tags headers are one list.
#[tokio::test]
async fn control_characters_and_a_second_user_header_are_refused_repeated_tags_joined() {
    let s = setup().await;
    for door in ["chat", "responses", "messages"] {
        let (status, _, body) = send(&s.gw, door, BODY_SECRET, "\u{1b}[31mred", &[]).await;
        assert_eq!(status, 400, "{door}: {body}");
        let field = match door {
            "chat" => "safety_identifier",
            "responses" => "user",
            _ => "metadata.user_id",
        };
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(field) && message.contains("control character"),
            "{door}: {body}"
        );
    }
    for headers in [
        &[("x-switchyard-user", "a\tb")][..],
        &[("x-switchyard-tags", "ok,a\tb")][..],
        &[("x-switchyard-user", "alice"), ("x-switchyard-user", "bob")][..],
    ] {
        let (status, _, body) = send(&s.gw, "chat", HEADER_SECRET, "x", headers).await;
        assert_eq!(status, 400, "{headers:?}: {body}");
        assert_eq!(body["error"]["param"], headers[0].0, "{body}");
    }
    let (status, id, body) = send(
        &s.gw,
        "chat",
        HEADER_SECRET,
        "x",
        &[("x-switchyard-tags", "a, b"), ("x-switchyard-tags", "c,a")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let line = s.gw.usage_line(&id).await;
    assert_eq!(line["tags"], json!(["a", "b", "c"]), "{line}");
    assert_eq!(
        s.anth.requests().len() + s.oai.requests().len(),
        1,
        "no refused request went upstream"
    );
}
