//! `[[content_filters]]`: a deny pattern that matches a message answers exactly the seed's
//! "Contents Filtered" error, per team, before any upstream is called.

use crate::support;

use serde_json::{json, Value};
use support::*;

const OTHER_SECRET: &str = "sk-test-other-team";

#[tokio::test]
async fn a_matching_prompt_gets_the_seed_error_and_never_reaches_the_vendor() {
    let mock = MockUpstream::start().await;
    let cfg = ConfigBody::new()
        .provider("up", "openai", &mock.base_url(), "")
        .model("m", &[("up", "u")])
        .team("search", "")
        .team("research", "")
        .demo_key("s", "search")
        .key("r", "research", OTHER_SECRET, "")
        .text(
            r#"[[content_filters]]
name = "no-secrets"
deny = ['(?i)BEGIN (RSA|OPENSSH) PRIVATE KEY']
teams = ["sea*"]"#,
        )
        .build();
    let gw = Gateway::start(&cfg).await;
    let leaky = "here: -----begin rsa private key----- MIIE...";
    for body in [
        chat_body("m", leaky, false),
        json!({"model": "m", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "fine"}, {"type": "text", "text": leaky}]}
        ]}),
    ] {
        let resp = gw.chat(DEMO_SECRET, &body).await;
        assert_eq!(resp.status(), 400);
        let v: Value = resp.json().await.unwrap();
        let e = &v["error"];
        assert_eq!(e["reason"], "content_filter");
        assert_eq!(e["param"], "prompt");
        assert_eq!(e["status"], 400);
        assert_eq!(
            e["message"],
            "This content may violate our content policy, please check https://Slier.ai/terms to learn more. If you believe this to be in error, please contact us at safety@Slier.ai to keep our systems safe and available."
        );
    }
    assert_eq!(mock.request_count(), 0);
    // Another team is not under this policy; a clean prompt passes.
    assert_eq!(
        gw.chat(OTHER_SECRET, &chat_body("m", leaky, false))
            .await
            .status(),
        200
    );
    assert_eq!(
        gw.chat(DEMO_SECRET, &chat_body("m", "all clean", false))
            .await
            .status(),
        200
    );
    let m = gw.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            "switchyard_content_filtered_total",
            &[("team", "search"), ("filter", "no-secrets")]
        ),
        Some(2.0)
    );
    assert_eq!(
        metric_value(
            &m,
            "switchyard_requests_total",
            &[("team", "search"), ("status", "400")]
        ),
        Some(2.0)
    );
}
