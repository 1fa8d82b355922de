//! Request headers go upstream by allow-list (`switchyard::providers::headers`), through the
//! binary to the strict mock vendors: a client's organisation, project, cookies, forwarding
//! and gateway headers never reach a vendor, on pass-through and translated routes; what a
//! vendor defines (`anthropic-beta`) does; a provider's `forward_headers` adds names and
//! prefixes, and `switchyard check` refuses a credential there.

use crate::support;

use serde_json::json;
use support::*;

const ANTH_KEY: &str = "sk-ant-provider-headers";
const GEM_KEY: &str = "gem-provider-headers";

/// Headers no vendor may see, as a client (or a proxy in front of the gateway) sends them.
const NEVER_SENT: &[(&str, &str)] = &[
    ("cookie", "session=client-secret"),
    ("forwarded", "for=192.0.2.7"),
    ("x-forwarded-for", "192.0.2.7"),
    ("x-forwarded-host", "gateway.example"),
    ("x-real-ip", "192.0.2.7"),
    ("x-switchyard-user", "alice"),
    ("x-switchyard-tags", "team:a"),
    ("openai-organization", "org-client"),
    ("openai-project", "proj-client"),
    ("x-goog-user-project", "billed-project"),
    ("x-stainless-os", "Linux"),
    ("x-unknown-extension", "1"),
];

fn assert_none_of_never_sent(names: &[String], route: &str) {
    for (name, _) in NEVER_SENT {
        assert!(
            !names.iter().any(|n| n == name),
            "{route}: `{name}` reached the vendor: {names:?}"
        );
    }
}

fn sent(builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    NEVER_SENT
        .iter()
        .fold(builder, |b, (name, value)| b.header(*name, *value))
}

/// The OpenAI Python SDK with `organization=` and `project=` (as it sends them whenever
/// `OPENAI_ORG_ID`/`OPENAI_PROJECT_ID` are set): the mock answers them 401
/// `mismatched_organization` as OpenAI does, so before the allow-list the client got a 502
/// and the route was cooled for everyone. Now the client gets its answer, the vendor never
/// sees the headers, and no route fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdks_organization_and_project_never_reach_the_vendor() {
    let mock = MockUpstream::start().await;
    let body = ConfigBody::new()
        .provider("up", "openai", &mock.base_url(), "")
        .model("m", &[("up", "upstream-m")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::start(&body).await;
    let script = r#"
import sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1], api_key=sys.argv[2], organization="org-client", project="proj-client", max_retries=0)
for _ in range(2):
    r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello there"}])
    print("answer:", r.choices[0].message.content)
"#;
    let out = tokio::process::Command::new(support::python())
        .arg("-c")
        .arg(script)
        .arg(gw.url("/v1"))
        .arg(DEMO_SECRET)
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}\ngateway:\n{}",
        gw.logs()
    );
    assert_eq!(stdout.matches("answer:").count(), 2, "{stdout}");
    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        assert_eq!(r.status, 200);
        assert_eq!(r.header("openai-organization"), None);
        assert_eq!(r.header("openai-project"), None);
    }
    let metrics = gw.metrics().await;
    let failed = metrics
        .lines()
        .filter(|l| l.starts_with("switchyard_upstream_errors_total{"))
        .filter(|l| !l.ends_with(" 0"))
        .collect::<Vec<_>>();
    assert!(failed.is_empty(), "a route failed: {failed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_forwarding_and_gateway_headers_stay_home_on_every_vendor_kind() {
    let oai = MockUpstream::start().await;
    let anth = MockAnthropic::start(ANTH_KEY).await;
    let gem = MockGemini::start(GEM_KEY).await;
    let body = ConfigBody::new()
        .provider("oai", "openai", &oai.base_url(), "")
        .provider(
            "claude",
            "anthropic",
            &anth.origin(),
            "api_key_env = \"SY_RH_ANTH\"",
        )
        .provider(
            "gem",
            "gemini",
            &gem.origin(),
            "api_key_env = \"SY_RH_GEM\"",
        )
        .model("gpt", &[("oai", "gpt-x")])
        .model("claude", &[("claude", "claude-sonnet-4-5")])
        .model("gemini", &[("gem", "gemini-2.5-flash")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_RH_ANTH", ANTH_KEY)
        .env("SY_RH_GEM", GEM_KEY)
        .start()
        .await;
    let c = gw.client();

    // Chat door → openai (pass-through).
    let r = sent(c.post(gw.url("/v1/chat/completions")))
        .bearer_auth(DEMO_SECRET)
        .header("openai-beta", "assistants=v2")
        .header("x-client-request-id", "client-7")
        .json(&json!({"model":"gpt","messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(status, 200, "{}", r.text().await.unwrap());
    let seen = oai.last_request().unwrap();
    let names: Vec<String> = seen.headers.keys().cloned().collect();
    assert_none_of_never_sent(&names, "openai");
    assert_eq!(seen.header("openai-beta"), Some("assistants=v2"));
    assert_eq!(seen.header("x-client-request-id"), Some("client-7"));
    assert_eq!(seen.header("x-request-id"), Some(request_id.as_str()));
    // The client's key is the gateway's: it never goes on (this provider has no key).
    assert_eq!(seen.header("authorization"), None);

    // Messages door → anthropic (pass-through): anthropic-version and -beta go, nothing else.
    let r = sent(c.post(gw.url("/v1/messages")))
        .header("x-api-key", DEMO_SECRET)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "interleaved-thinking-2025-05-14")
        .json(&json!({"model":"claude","max_tokens":64,
                      "messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let seen = anth.last();
    let names: Vec<String> = seen.headers.keys().map(|n| n.to_string()).collect();
    assert_none_of_never_sent(&names, "anthropic");
    let header = |n: &str| seen.headers.get(n).map(|v| v.to_str().unwrap().to_string());
    assert_eq!(
        header("anthropic-beta").as_deref(),
        Some("interleaved-thinking-2025-05-14")
    );
    assert_eq!(header("anthropic-version").as_deref(), Some("2023-06-01"));
    assert_eq!(header("x-api-key").as_deref(), Some(ANTH_KEY));

    // Chat door → gemini (translated; this gateway has no Gemini door).
    let r = sent(c.post(gw.url("/v1/chat/completions")))
        .bearer_auth(DEMO_SECRET)
        .json(&json!({"model":"gemini","messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let heads = gem.heads();
    let seen = heads.last().unwrap();
    let names: Vec<String> = seen.keys().map(|n| n.to_string()).collect();
    assert_none_of_never_sent(&names, "gemini");
    assert_eq!(seen["x-goog-api-key"], GEM_KEY);
}

/// `forward_headers` lets named headers and prefixes through, and nothing else; the test
/// builder's `x-mock-*` entry is what lets the mock's steering through (without it the
/// steering never reaches the mock: the default allow-list holds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_headers_adds_what_the_config_names_and_nothing_else() {
    let mock = MockUpstream::start().await;
    let body = ConfigBody::new()
        .provider(
            "ext",
            "openai",
            &mock.base_url(),
            "forward_headers = [\"X-Portkey-Trace\", \"x-acme-*\"]",
        )
        .provider("steered", "openai", &mock.base_url(), "")
        .model("ext", &[("ext", "u")])
        .model("steered", &[("steered", "u")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::start(&body).await;
    let send = |model: &'static str| {
        gw.client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(DEMO_SECRET)
            .header("x-portkey-trace", "trace-1")
            .header("x-acme-a", "a")
            .header("x-acme-b", "b")
            .header("x-other", "no")
            .header("x-mock-status", "503")
            .json(&json!({"model": model, "messages":[{"role":"user","content":"hi"}]}))
            .send()
    };
    // `ext` names its headers but not x-mock-*: the steering does not reach the mock.
    let r = send("ext").await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.header("x-portkey-trace"), Some("trace-1"));
    assert_eq!(seen.header("x-acme-a"), Some("a"));
    assert_eq!(seen.header("x-acme-b"), Some("b"));
    assert_eq!(seen.header("x-other"), None);
    assert!(seen.mock_headers().is_empty(), "{:?}", seen.mock_headers());

    // The builder's provider forwards x-mock-*: the 503 reaches the mock (a 502 here).
    let r = send("steered").await.unwrap();
    assert_eq!(r.status(), 502);
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.mock_headers(), ["x-mock-status"]);
    assert_eq!(seen.header("x-portkey-trace"), None);
}

#[tokio::test]
async fn check_refuses_forwarding_a_credential() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.toml");
    for (entry, says) in [
        ("\"authorization\"", "`authorization` never goes upstream"),
        (
            "\"OpenAI-Organization\"",
            "`openai-organization` never goes upstream",
        ),
        ("\"x-forwarded-*\"", "would match"),
    ] {
        let text = format!(
            "[[providers]]\nname = \"up\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nforward_headers = [{entry}]\n\n\
             [[models]]\nname = \"m\"\n  [[models.routes]]\n  provider = \"up\"\n  model = \"u\"\n"
        );
        std::fs::write(&path, text).unwrap();
        let out = run_switchyard(&["check", "-c", path.to_str().unwrap()], dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{entry}: {stdout}{stderr}");
        let said = format!("{stdout}{stderr}");
        assert!(
            said.contains("providers[0].forward_headers[0]") && said.contains(says),
            "{entry}: {said}"
        );
    }
}
