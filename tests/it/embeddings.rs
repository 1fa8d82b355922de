//! `POST /v1/embeddings` through the binary: passed through to OpenAI-compatible vendors
//! (bytes both ways, usage counted), translated for Gemini (`batchEmbedContents`, a strict mock),
//! answered by the built-in mock, and driven by the official OpenAI SDK.

use crate::support;

use serde_json::{json, Value};
use support::*;

const OPENAI_ANSWER: &str = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.25,-0.5]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":6,"total_tokens":6}}"#;

struct Setup {
    oai: MockUpstream,
    gem: MockGemini,
    gw: Gateway,
}

const CHAT_ONLY_SECRET: &str = "sk-chat-only-team";

async fn setup() -> Setup {
    let oai = MockUpstream::start().await;
    let gem = MockGemini::start("gem-embed-key").await;
    let only_chat_key = format!(
        "[[keys]]\nid = \"c\"\nteam = \"only-chat\"\nsha256 = \"{}\"",
        sha256_hex(CHAT_ONLY_SECRET)
    );
    let body = ConfigBody::new()
        .usage_log()
        .provider("oai", "openai", &oai.base_url(), "")
        .provider("gem", "gemini", &gem.origin(), "api_key_env = \"SY_E_GEM\"")
        .mock_provider("local")
        .model_with(
            "embed-oai",
            "kind = \"embedding\"\ninput_usd_per_mtok = 0.02",
            &[("oai", "text-embedding-3-small")],
        )
        .model_with(
            "embed-gem",
            "kind = \"embedding\"",
            &[("gem", "text-embedding-004")],
        )
        .model_with(
            "embed-mock",
            "kind = \"embedding\"",
            &[("local", "mock-embed")],
        )
        .model_with("chat-mock", "kind = \"chat\"", &[("local", "mock-1")])
        .model("unmarked-mock", &[("local", "mock-1")])
        .team("t", "")
        .team("only-chat", "models = [\"chat-*\"]")
        .text(&only_chat_key)
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_E_GEM", "gem-embed-key")
        .start()
        .await;
    Setup { oai, gem, gw }
}

async fn embed(gw: &Gateway, body: &str) -> (u16, String) {
    let r = gw
        .client()
        .post(gw.url("/v1/embeddings"))
        .bearer_auth(DEMO_SECRET)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passed_through_translated_and_mocked() {
    let s = setup().await;
    // OpenAI: the client's bytes but the model, the vendor's bytes back, its usage counted.
    s.oai.enqueue(Behaviour {
        body: Some(OPENAI_ANSWER.to_string()),
        ..Behaviour::default()
    });
    let body = r#"{"model":"embed-oai","input":["hello  world"],"dimensions":2,"user":"u1"}"#;
    let (status, text) = embed(&s.gw, body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, OPENAI_ANSWER);
    let sent = s.oai.last_request().unwrap();
    assert_eq!(sent.path, "/v1/embeddings");
    assert_eq!(
        String::from_utf8_lossy(&sent.body),
        body.replacen("embed-oai", "text-embedding-3-small", 1)
    );

    // Gemini: batchEmbedContents, answered in OpenAI's shape (base64 when asked).
    let (status, text) = embed(
        &s.gw,
        r#"{"model":"embed-gem","input":["a b c","d"],"encoding_format":"float"}"#,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["embedding"], json!([0.5, -1.0]));
    assert_eq!(v["data"][1]["embedding"], json!([1.5, -1.0]));
    assert_eq!(v["data"][1]["index"], 1);
    let sent = s.gem.bodies().pop().unwrap();
    assert_eq!(sent["requests"][1]["model"], "models/text-embedding-004");
    assert_eq!(sent["requests"][1]["content"]["parts"][0]["text"], "d");
    let (status, text) = embed(
        &s.gw,
        r#"{"model":"embed-gem","input":"x","encoding_format":"base64"}"#,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["data"][0]["embedding"], "AAAAPwAAgL8=",
        "[0.5, -1] as f32 LE"
    );

    // Token ids cannot go to Gemini: a 400 naming the field, before the vendor.
    let before = s.gem.bodies().len();
    let (status, text) = embed(&s.gw, r#"{"model":"embed-gem","input":[[1,2,3]]}"#).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("`input`"), "{text}");
    assert_eq!(s.gem.bodies().len(), before);

    // The built-in mock answers with no vendor at all; equal inputs, equal vectors.
    let (status, text) = embed(
        &s.gw,
        r#"{"model":"embed-mock","input":["same","same","other"],"dimensions":4}"#,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["data"][0]["embedding"], v["data"][1]["embedding"]);
    assert_ne!(v["data"][0]["embedding"], v["data"][2]["embedding"]);
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 4);

    // Usage: the vendor's count, Gemini's estimated, the mock's own; no output tokens.
    // A line is written once its answer went out: lines of requests sent one after another
    // may come in another order, so each is found by its provider.
    let lines = s.gw.wait_usage_lines(5).await;
    let ok: Vec<&Value> = lines.iter().filter(|l| l["status"] == 200).collect();
    assert_eq!(ok.len(), 4, "{lines:?}");
    let of = |provider: &str| -> Vec<&Value> {
        ok.iter()
            .copied()
            .filter(|l| l["provider"] == provider)
            .collect()
    };
    let (oai, gem, local) = (of("oai"), of("gem"), of("local"));
    assert_eq!((oai.len(), gem.len(), local.len()), (1, 2, 1), "{ok:?}");
    assert_eq!(oai[0]["prompt_tokens"], 6);
    assert_eq!(oai[0]["usage_source"], "reported");
    assert!(oai[0]["cost_usd"].as_f64().unwrap() > 0.0, "{}", oai[0]);
    assert!(
        gem.iter().all(|l| l["usage_source"] == "estimated"),
        "{gem:?}"
    );
    assert!(gem.iter().all(|l| l["prompt_tokens"].as_u64().unwrap() > 0));
    assert!(ok.iter().all(|l| l["completion_tokens"] == 0), "{ok:?}");
    assert_eq!(
        local[0]["prompt_tokens"], 3,
        "the mock counts a token a word"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_embeds_through_the_gateway() {
    let s = setup().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/openai_embeddings.py"
    );
    for model in ["embed-gem", "embed-mock"] {
        let out = std::process::Command::new(support::python())
            .args([script, &s.gw.url("/v1"), DEMO_SECRET, model])
            .output()
            .expect("python3 runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(v["vectors"].as_array().map(Vec::len), Some(2), "{v}");
        assert_eq!(v["floats"].as_array().map(Vec::len), Some(1), "{v}");
        if model == "embed-gem" {
            // The SDK asked for base64 and decoded what the gateway encoded.
            assert_eq!(v["vectors"][1], json!([1.5, -1.0]), "{v}");
            assert_eq!(v["floats"][0], json!([0.5, -1.0]), "{v}");
        }
        assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{v}");
    }
    // The SDK's requests asked for base64 (its default) and float.
    let sent = s.gem.bodies();
    assert_eq!(sent.len(), 2);
}

/// `[[models]] kind = "embedding"`: `/v1/models` marks each model's type (and lists only what
/// the key's team may use); a door that asks a model for what it does not do is a 400 naming
/// `model`, before any vendor is called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedding_models_are_marked_and_kept_to_their_door() {
    let s = setup().await;
    let models = |secret: &'static str| {
        let gw = &s.gw;
        async move {
            let r = gw
                .client()
                .get(gw.url("/v1/models"))
                .bearer_auth(secret)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["object"], "list");
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    assert_eq!(m["object"], "model");
                    (
                        m["id"].as_str().unwrap().to_string(),
                        m["type"].as_str().unwrap_or("-").to_string(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let all = models(DEMO_SECRET).await;
    assert!(
        all.contains(&("embed-oai".into(), "embedding".into())),
        "{all:?}"
    );
    assert!(
        all.contains(&("chat-mock".into(), "chat".into())),
        "{all:?}"
    );
    assert_eq!(
        models(CHAT_ONLY_SECRET).await,
        vec![("chat-mock".to_string(), "chat".to_string())]
    );

    // An embeddings request to a chat model.
    let (status, text) = embed(&s.gw, r#"{"model":"chat-mock","input":"x"}"#).await;
    assert_eq!(status, 400, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["param"], "model", "{text}");
    assert!(text.contains("not an embedding model"), "{text}");
    // A model without `kind` (a config written before kinds) serves every door, untyped.
    assert!(
        all.contains(&("unmarked-mock".into(), "-".into())),
        "{all:?}"
    );
    let (status, text) = embed(&s.gw, r#"{"model":"unmarked-mock","input":"x"}"#).await;
    assert_eq!(status, 200, "{text}");
    // A chat request and a Responses request to an embedding model.
    for (path, body) in [
        (
            "/v1/chat/completions",
            r#"{"model":"embed-oai","messages":[{"role":"user","content":"hi"}]}"#,
        ),
        ("/v1/responses", r#"{"model":"embed-oai","input":"hi"}"#),
    ] {
        let r =
            s.gw.client()
                .post(s.gw.url(path))
                .bearer_auth(DEMO_SECRET)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{path}");
        let text = r.text().await.unwrap();
        assert!(text.contains("is an embedding model"), "{path}: {text}");
    }
    // The allow-list applies on the embeddings door too.
    let r =
        s.gw.client()
            .post(s.gw.url("/v1/embeddings"))
            .bearer_auth(CHAT_ONLY_SECRET)
            .header("content-type", "application/json")
            .body(r#"{"model":"embed-oai","input":"x"}"#)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(s.oai.request_count(), 0);
}
