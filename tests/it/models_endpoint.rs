//! `GET /v1/models` and `GET /v1/models/{id}` through the binary, in the shape of the client
//! that asks (#27, "Anthropic clients listing models"): Anthropic's for a request with
//! `anthropic-version` or `x-api-key` (either key header accepted), OpenAI's otherwise; aliases
//! listed; a model the key's team may not use, or none, is a 404 in the asking client's error
//! shape. The official Anthropic and OpenAI Python SDKs list and retrieve.

use crate::support;

use serde_json::{json, Value};
use support::*;

const NARROW_SECRET: &str = "sk-narrow-team";

fn config() -> String {
    format!(
        r#"
[[providers]]
name = "local"
kind = "mock"

[[models]]
name = "claude-sonnet"
aliases = ["sonnet", "claude-sonnet-latest"]
  [[models.routes]]
  provider = "local"
  model = "mock-1"

[[models]]
name = "gpt-small"
  [[models.routes]]
  provider = "local"
  model = "mock-2"

[[models]]
name = "team-only"
  [[models.routes]]
  provider = "local"
  model = "mock-3"

[[teams]]
name = "t"

[[teams]]
name = "narrow"
models = ["claude-*"]

[[keys]]
id = "k"
team = "t"
sha256 = "{DEMO_SHA256}"

[[keys]]
id = "n"
team = "narrow"
sha256 = "{}"
"#,
        sha256_hex(NARROW_SECRET)
    )
}

/// GET `path` with `headers`: (status, JSON body).
async fn get(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut r = gw.client().get(gw.url(path));
    for (name, value) in headers {
        r = r.header(*name, *value);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}")),
    )
}

fn ids(v: &Value) -> Vec<&str> {
    v["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_answer_in_the_asking_clients_shape() {
    let gw = Gateway::start(&config()).await;
    let bearer = format!("Bearer {DEMO_SECRET}");
    let all = [
        "claude-sonnet",
        "sonnet",
        "claude-sonnet-latest",
        "gpt-small",
        "team-only",
    ];

    // OpenAI's shape, aliases listed.
    let (status, v) = get(&gw, "/v1/models", &[("authorization", &bearer)]).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "list", "{v}");
    assert_eq!(ids(&v), all);
    assert_eq!(v["data"][1]["object"], "model", "{v}");

    // Anthropic's: by `x-api-key` alone, by `anthropic-version` with a bearer key.
    for headers in [
        vec![
            ("x-api-key", DEMO_SECRET),
            ("anthropic-version", "2023-06-01"),
        ],
        vec![("x-api-key", DEMO_SECRET)],
        vec![
            ("authorization", bearer.as_str()),
            ("anthropic-version", "2023-06-01"),
        ],
    ] {
        let (status, v) = get(&gw, "/v1/models", &headers).await;
        assert_eq!(status, 200, "{headers:?}: {v}");
        assert_eq!(ids(&v), all, "{v}");
        assert_eq!(v["has_more"], false, "{v}");
        assert_eq!(v["first_id"], "claude-sonnet", "{v}");
        assert_eq!(v["last_id"], "team-only", "{v}");
        assert_eq!(
            v["data"][0],
            json!({"type": "model", "id": "claude-sonnet", "display_name": "claude-sonnet",
                   "created_at": "1970-01-01T00:00:00Z"}),
            "{v}"
        );
        assert!(v.get("object").is_none(), "{v}");
    }
    let anth = [
        ("x-api-key", DEMO_SECRET),
        ("anthropic-version", "2023-06-01"),
    ];
    let (_, v) = get(&gw, "/v1/models?limit=2&after_id=sonnet", &anth).await;
    assert_eq!(ids(&v), ["claude-sonnet-latest", "gpt-small"], "{v}");
    assert_eq!(v["has_more"], true, "{v}");

    // Retrieve, both shapes, by name and by alias.
    let (status, v) = get(&gw, "/v1/models/sonnet", &[("authorization", &bearer)]).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v,
        json!({"id": "sonnet", "object": "model", "created": 0, "owned_by": "switchyard"})
    );
    let (status, v) = get(&gw, "/v1/models/gpt-small", &anth).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["type"], "model", "{v}");
    assert_eq!(v["display_name"], "gpt-small", "{v}");

    // A model of no team, and one this key's team may not use: 404 in the client's shape.
    let narrow_bearer = format!("Bearer {NARROW_SECRET}");
    for (path, secret) in [
        ("/v1/models/nope", DEMO_SECRET),
        ("/v1/models/gpt-small", NARROW_SECRET),
    ] {
        let (status, v) = get(&gw, path, &[("x-api-key", secret)]).await;
        assert_eq!(status, 404, "{v}");
        assert_eq!(v["type"], "error", "Anthropic's error shape: {v}");
        assert_eq!(v["error"]["type"], "not_found_error", "{v}");
        let auth = if secret == DEMO_SECRET {
            bearer.as_str()
        } else {
            narrow_bearer.as_str()
        };
        let (status, v) = get(&gw, path, &[("authorization", auth)]).await;
        assert_eq!(status, 404, "{v}");
        assert_eq!(v["error"]["code"], "model_not_found", "OpenAI's shape: {v}");
    }
    let (_, v) = get(&gw, "/v1/models", &[("x-api-key", NARROW_SECRET)]).await;
    assert_eq!(
        ids(&v),
        ["claude-sonnet", "sonnet", "claude-sonnet-latest"],
        "{v}"
    );
    // A bad key, either header: 401 in the client's shape.
    let (status, v) = get(&gw, "/v1/models", &[("x-api-key", "sk-nope")]).await;
    assert_eq!((status, v["type"].clone()), (401, json!("error")), "{v}");
    let (status, v) = get(&gw, "/v1/models?limit=0", &anth).await;
    assert_eq!(
        (status, v["error"]["type"].clone()),
        (400, json!("invalid_request_error")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_anthropic_and_openai_sdks_list_and_retrieve_models() {
    let gw = Gateway::start(&config()).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/models_sdk.py");
    let base = gw.url("");
    let out = std::process::Command::new(support::python())
        .args([script, base.trim_end_matches('/'), DEMO_SECRET, "sonnet"])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{stdout}"));
    let all = json!([
        "claude-sonnet",
        "sonnet",
        "claude-sonnet-latest",
        "gpt-small",
        "team-only"
    ]);
    // Five ids in pages of two: the Anthropic SDK followed `has_more` and `last_id`.
    assert_eq!(v["anthropic"]["ids"], all, "{v}");
    assert_eq!(v["anthropic"]["types"], json!(["model"]), "{v}");
    assert_eq!(v["anthropic"]["retrieved"]["id"], "sonnet", "{v}");
    assert_eq!(v["anthropic"]["retrieved"]["display_name"], "sonnet", "{v}");
    assert_eq!(v["anthropic"]["unknown"]["error"], "NotFoundError", "{v}");
    assert_eq!(v["anthropic"]["unknown"]["body"]["type"], "error", "{v}");
    assert_eq!(v["openai"]["ids"], all, "{v}");
    assert_eq!(v["openai"]["retrieved"]["object"], "model", "{v}");
    assert_eq!(v["openai"]["unknown"]["error"], "NotFoundError", "{v}");
    assert_eq!(v["openai"]["unknown"]["status"], 404, "{v}");
}
