//! JWT clients (issue 31 item 1), through the real binary: an identity provider made in the
//! test (keys from openssl and rcgen, tokens from `jsonwebtoken`, a JWK Set served by axum)
//! and `[[auth.jwt]]` issuers. A token of each algorithm is a client whose team comes from a
//! group claim and whose user is in the usage log, the metrics' `key` label being the
//! issuer's name; each bad token is a 401 naming why (and nothing of the token); a rotated
//! key is taken after one refetch, bounded; a JWKS that hangs or serves garbage keeps the
//! last good keys; a user's budget comes from the token's user.

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::support;
use support::jwks::{now_s, JwksMode, JwksServer, SigningKey};
use support::*;

const ISSUER: &str = "https://id.example.com";
const AUDIENCE: &str = "switchyard";
/// A key client beside the JWTs.
const KEY_SECRET: &str = "sk-jwt-test-key";

/// The config: a mock model `m`, teams `research` (each user 400 tokens a day) and `ops`, a
/// key, and the issuer `corp-idp` of `jwks_url` (refetch at most every second unless `extra`
/// says otherwise).
fn config(jwks_url: &str, extra: &str) -> String {
    let min_refetch = if extra.contains("jwks_min_refetch_s") {
        ""
    } else {
        "jwks_min_refetch_s = 1\n"
    };
    ConfigBody::new()
        .usage_log()
        .mock_provider("builtin")
        .model("m", &[("builtin", "mock-1")])
        .team("research", "user_tokens_per_day = 400")
        .team("ops", "")
        .key("svc", "ops", KEY_SECRET, "")
        .text(&format!(
            "[[auth.jwt]]\nname = \"corp-idp\"\nissuer = \"{ISSUER}\"\n\
             audiences = [\"other-service\", \"{AUDIENCE}\"]\njwks_url = \"{jwks_url}\"\n\
             team_claim = \"groups\"\nuser_claim = \"email\"\n{min_refetch}{extra}"
        ))
        .build()
}

/// Good claims for `email` in `groups`, valid for ten minutes.
fn claims(email: &str, groups: &[&str]) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": format!("id-{email}"), "email": email,
           "groups": groups, "iat": now_s(), "exp": now_s() + 600})
}

async fn chat(gw: &Gateway, token: &str) -> (u16, String, Value) {
    send(gw, "/v1/chat/completions", token, &[]).await
}

/// Sends a small request at the chat or Messages door; status, request id, body.
async fn send(
    gw: &Gateway,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Value) {
    let body = if path == "/v1/messages" {
        json!({"model": "m", "max_tokens": 60, "messages": [{"role": "user", "content": "hi"}]})
    } else {
        json!({"model": "m", "max_tokens": 60, "messages": [{"role": "user", "content": "spend some tokens"}]})
    };
    let mut req = gw
        .client()
        .post(gw.url(path))
        .header("authorization", format!("Bearer {token}"))
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
    (status, id, resp.json().await.unwrap_or(Value::Null))
}

/// The message of an error answer at either door.
fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Expects a 401 whose message contains `reason`, at the chat door and, in Anthropic's
/// shape, at the Messages door; the token appears neither in the answer nor in the logs.
async fn refused(gw: &Gateway, token: &str, reason: &str) {
    let (status, _, body) = chat(gw, token).await;
    assert_eq!(status, 401, "{reason}: {body}");
    assert!(message(&body).contains(reason), "wanted {reason:?}: {body}");
    let (status, _, body) = send(gw, "/v1/messages", token, &[]).await;
    assert_eq!(status, 401, "{reason}: {body}");
    assert_eq!(body["type"], "error", "Anthropic's error shape: {body}");
    assert!(message(&body).contains(reason), "wanted {reason:?}: {body}");
    let signature = token.rsplit('.').next().unwrap_or_default();
    let logs = gw.logs();
    assert!(
        !logs.contains(token) && (signature.len() < 8 || !logs.contains(signature)),
        "the token is in the logs"
    );
}

/// `alg: none`: an unsecured JWS (RFC 7519 §6.1), no signature.
fn unsecured(claims: &Value) -> String {
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    )
}

#[tokio::test]
async fn a_token_of_each_algorithm_is_a_client_with_its_team_user_and_the_issuer_as_key() {
    let (rsa, ec, ed) = (
        SigningKey::rsa("rsa-1"),
        SigningKey::es256("ec-1"),
        SigningKey::ed25519("ed-1"),
    );
    let idp = JwksServer::start(&[&rsa, &ec, &ed]).await;
    let gw = Gateway::start(&config(&idp.url(), "")).await;
    for (key, email) in [
        (&rsa, "ana@example.com"),
        (&ec, "ben@example.com"),
        (&ed, "cy@example.com"),
    ] {
        // The first group that names a team wins: `everyone` names none.
        let token = key.sign(&claims(email, &["everyone", "research", "ops"]));
        // The header cannot rename a JWT's user: the signed claim wins.
        let (status, id, body) = send(
            &gw,
            "/v1/chat/completions",
            &token,
            &[("x-switchyard-user", "mallory")],
        )
        .await;
        assert_eq!(status, 200, "{:?}: {body}\n{}", key.alg, gw.logs());
        let line = gw.usage_line(&id).await;
        assert_eq!(line["user"], email, "{line}");
        assert_eq!(line["team"], "research", "{line}");
        assert_eq!(line["key"], "corp-idp", "{line}");
        let (status, _, body) = send(&gw, "/v1/messages", &token, &[]).await;
        assert_eq!(status, 200, "{:?} at the Messages door: {body}", key.alg);
        // Anthropic's SDKs send their `api_key` as `x-api-key`: a JWT there works too.
        let resp = gw
            .client()
            .post(gw.url("/v1/messages"))
            .header("x-api-key", &token)
            .header("anthropic-version", "2023-06-01")
            .json(&json!({"model": "m", "max_tokens": 16,
                          "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            200,
            "x-api-key: {}",
            resp.text().await.unwrap()
        );
    }
    // A list of one string, or a plain string claim, works as well.
    let token = ed.sign(
        &json!({"iss": ISSUER, "aud": [AUDIENCE], "email": "dee@example.com",
                               "groups": "ops", "exp": now_s() + 60}),
    );
    let (status, id, body) = chat(&gw, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gw.usage_line(&id).await["team"], "ops");
    // The metrics' key label is the issuer's name, never a user.
    let n = gw
        .metric_until(
            "switchyard_requests_total",
            &[("team", "research"), ("key", "corp-idp"), ("status", "200")],
            9.0,
        )
        .await;
    assert_eq!(n, 9.0, "{}", gw.metrics().await);
    let metrics = gw.metrics().await;
    assert!(
        !metrics.contains("example.com"),
        "a user in the metrics:\n{metrics}"
    );
    // Keys work as before beside the issuer.
    let (status, _, body) = chat(&gw, KEY_SECRET).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(idp.fetches(), 1, "one fetch at start served every request");
}

#[tokio::test]
async fn each_bad_token_is_a_401_that_says_why() {
    let good = SigningKey::es256("k1");
    let rsa = SigningKey::rsa("r1");
    let idp = JwksServer::start(&[&good, &rsa]).await;
    // Header lines up to 64 KiB, so that the token's own 16 KiB bound is what refuses (by
    // default a header line over 8 KiB is a 431 before any of this).
    let mut gw = Gateway::builder(&config(&idp.url(), "leeway_s = 30"))
        .server_extra("max_header_line_bytes = 65536\nmax_header_bytes = 131072")
        .start()
        .await;
    let ok = claims("ana@example.com", &["research"]);
    let with = |k: &str, v: Value| {
        let mut c = ok.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = ok.clone();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    // Within the clock skew: still good.
    let (status, _, body) = chat(&gw, &good.sign(&with("exp", json!(now_s() - 10)))).await;
    assert_eq!(status, 200, "10 s past exp, 30 s of leeway: {body}");
    let (status, _, body) = chat(&gw, &good.sign(&with("nbf", json!(now_s() + 10)))).await;
    assert_eq!(status, 200, "nbf 10 s ahead, 30 s of leeway: {body}");

    refused(
        &gw,
        &good.sign(&with("exp", json!(now_s() - 120))),
        "token expired",
    )
    .await;
    refused(
        &gw,
        &good.sign(&with("nbf", json!(now_s() + 120))),
        "not yet valid",
    )
    .await;
    refused(&gw, &good.sign(&without("exp")), "no `exp` claim").await;
    refused(
        &gw,
        &good.sign(&with("aud", json!("another-service"))),
        "wrong audience",
    )
    .await;
    refused(&gw, &good.sign(&without("aud")), "wrong audience").await;
    refused(
        &gw,
        &good.sign(&with("iss", json!("https://evil.example"))),
        "unknown issuer",
    )
    .await;
    refused(
        &gw,
        &good.sign(&with("groups", json!(["nobody"]))),
        "no team",
    )
    .await;
    refused(&gw, &good.sign(&without("email")), "no user claim").await;

    // Signed by a key the JWKS does not have, under a kid it has: a bad signature.
    let impostor = SigningKey::es256("k1");
    refused(&gw, &impostor.sign(&ok), "bad signature").await;
    // A kid the JWKS lacks (after one refetch).
    refused(
        &gw,
        &SigningKey::es256("k-unknown").sign(&ok),
        "unknown signing key",
    )
    .await;
    // The header names ES256 but the kid is the RSA key's.
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("r1".into());
    refused(&gw, &good.sign_with(header, &ok), "algorithm not allowed").await;

    // `alg: none`.
    refused(&gw, &unsecured(&ok), "algorithm not allowed").await;
    // HS256 with the JWKS's public key as the shared secret (the classic confusion).
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("r1".into());
    let public = rsa.jwk.to_string();
    for secret in [public.as_bytes(), rsa.jwk["n"].as_str().unwrap().as_bytes()] {
        let token = jsonwebtoken::encode(&header, &ok, &EncodingKey::from_secret(secret)).unwrap();
        refused(&gw, &token, "algorithm not allowed").await;
    }
    // A huge header, or thousands of claims: refused before parsing.
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("x".repeat(20_000));
    refused(&gw, &good.sign_with(header, &ok), "token too large").await;
    let mut many = ok.clone();
    for i in 0..3000 {
        many[format!("c{i}")] = json!(i);
    }
    refused(&gw, &good.sign(&many), "token too large").await;
    // A thousand small claims fit in 16 KiB and are fine.
    let mut some = ok.clone();
    for i in 0..800 {
        some[format!("c{i}")] = json!(1);
    }
    let (status, _, body) = chat(&gw, &good.sign(&some)).await;
    assert_eq!(status, 200, "{body}");
    // Not JSON inside.
    refused(&gw, "bm90IGpzb24.bm90IGpzb24.c2ln", "malformed token").await;
    let (status, _, _) = chat(&gw, "sk-not-a-jwt").await;
    assert_eq!(status, 401, "a non-JWT bearer is a key, unknown");
    assert!(gw.is_running(), "no crash");
}

#[tokio::test]
async fn a_rotated_key_is_taken_after_one_bounded_refetch() {
    let old = SigningKey::rsa("2026-old");
    let new = SigningKey::ed25519("2026-new");
    let idp = JwksServer::start(&[&old]).await;
    // A long schedule: only an unknown kid brings a refetch here.
    let gw = Gateway::start(&config(
        &idp.url(),
        "jwks_refresh_s = 3600\njwks_min_refetch_s = 2",
    ))
    .await;
    let (status, _, body) = chat(&gw, &old.sign(&claims("ana@example.com", &["research"]))).await;
    assert_eq!(status, 200, "{body}\n{}", gw.logs());
    assert_eq!(idp.fetches(), 1);
    // The identity provider rotates: the new key signs, the old is gone.
    idp.set_keys(&[&new]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, _, body) = chat(&gw, &new.sign(&claims("ana@example.com", &["research"]))).await;
    assert_eq!(status, 200, "the new kid brought a refetch: {body}");
    assert_eq!(idp.fetches(), 2);
    refused(
        &gw,
        &old.sign(&claims("ana@example.com", &["research"])),
        "unknown signing key",
    )
    .await;
    // A flood of made-up kids: at most one fetch per jwks_min_refetch_s, no waiting queue.
    let started = Instant::now();
    let before = idp.fetches();
    for i in 0..20 {
        let token = SigningKey::ed25519(&format!("made-up-{i}"))
            .sign(&claims("ana@example.com", &["research"]));
        let (status, _, _) = chat(&gw, &token).await;
        assert_eq!(status, 401);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let fetched = idp.fetches() - before;
    let bound = (elapsed / 2.0).ceil() as usize + 1;
    assert!(fetched <= bound, "{fetched} fetches in {elapsed:.1} s");
    assert!(
        elapsed < 15.0,
        "refused without waiting each time: {elapsed:.1} s"
    );
}

#[tokio::test]
async fn a_jwks_that_serves_garbage_or_hangs_keeps_the_last_good_keys() {
    let key = SigningKey::es256("k1");
    // The issuer's JWKS is down at start: its tokens are refused, keys still work.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}/jwks");
    let gw = Gateway::start(&config(&url, "jwks_refresh_s = 2")).await;
    let token = key.sign(&claims("ana@example.com", &["research"]));
    refused(&gw, &token, "unknown signing key").await;
    assert_eq!(chat(&gw, KEY_SECRET).await.0, 200);
    // It comes up: within a refetch interval the tokens pass.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let idp = JwksServer::serve(listener, &[&key]);
    idp.wait_fetches(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _, body) = chat(&gw, &token).await;
    assert_eq!(status, 200, "{body}\n{}", gw.logs());

    for mode in [JwksMode::Garbage, JwksMode::Hang] {
        idp.set_mode(mode);
        let before = idp.fetches();
        idp.wait_fetches(before + 1).await; // the schedule (2 s) fetched
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let (status, _, body) = chat(&gw, &token).await;
        assert_eq!(status, 200, "{mode:?}: the last good keys serve: {body}");
        let stranger = SigningKey::es256("k2").sign(&claims("ana@example.com", &["research"]));
        let (status, _, body) = chat(&gw, &stranger).await;
        assert_eq!(status, 401, "{mode:?}: {body}");
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{mode:?}: bounded wait"
        );
    }
    let logs = gw.wait_for_log("JWKS fetch failed").await;
    assert!(logs.contains("corp-idp"), "the failure names the issuer");
}

#[tokio::test]
async fn a_users_budget_comes_from_the_tokens_user() {
    let key = SigningKey::ed25519("k1");
    let idp = JwksServer::start(&[&key]).await;
    let gw = Gateway::start(&config(&idp.url(), "")).await;
    let alice = key.sign(&claims("alice@example.com", &["research"]));
    let bob = key.sign(&claims("bob@example.com", &["research"]));
    let mut ok = 0;
    let mut refused_in_a_row = 0;
    while refused_in_a_row < 2 {
        let (status, _, body) = chat(&gw, &alice).await;
        match status {
            200 => {
                ok += 1;
                refused_in_a_row = 0;
            }
            429 => {
                refused_in_a_row += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            s => panic!("status {s}: {body}"),
        }
        assert!(ok < 100, "alice's budget never ran out");
    }
    assert!(ok > 0);
    let (status, _, body) = chat(&gw, &alice).await;
    assert_eq!(status, 429, "{body}");
    assert!(
        message(&body).contains("user `alice@example.com` of team `research`"),
        "{body}"
    );
    // Another user of the same issuer and team is not held to alice's budget; a header
    // naming bob does not move alice's spending to him.
    let (status, _, body) = chat(&gw, &bob).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = send(
        &gw,
        "/v1/chat/completions",
        &alice,
        &[("x-switchyard-user", "bob@example.com")],
    )
    .await;
    assert_eq!(status, 429);
}

#[tokio::test]
async fn an_issuer_added_by_a_reload_is_served_and_without_one_a_jwt_is_a_plain_401() {
    let key = SigningKey::ed25519("k1");
    let idp = JwksServer::start(&[&key]).await;
    let without = ConfigBody::new()
        .mock_provider("builtin")
        .model("m", &[("builtin", "mock-1")])
        .team("research", "")
        .key("svc", "research", KEY_SECRET, "")
        .build();
    let gw = Gateway::start(&without).await;
    let token = key.sign(&claims("ana@example.com", &["research"]));
    // No issuer configured: the token is looked up as a key, like any unknown bearer.
    let (status, _, body) = chat(&gw, &token).await;
    assert_eq!(status, 401, "{body}");
    assert!(message(&body).contains("invalid API key"), "{body}");
    assert_eq!(idp.fetches(), 0);
    // A reload adds the issuer: its fetcher starts and its tokens pass.
    gw.write_config(&config(&idp.url(), ""));
    let mut status = 0;
    for _ in 0..100 {
        status = chat(&gw, &token).await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "{}", gw.logs());
    assert!(idp.fetches() >= 1);
}

/// Claims nested as identity providers nest them (Keycloak's `realm_access.roles`) give the
/// team and user; a limits claim gives the user its own limits (an rpm of 1, a day's budget
/// of 5 tokens, in a team with no per-user limits), which bind that user alone; a malformed limits claim is a 401
/// that names the claim and not its value.
#[tokio::test]
async fn nested_claims_give_the_team_and_a_limits_claim_the_users_own_limits() {
    let key = SigningKey::ed25519("k1");
    let idp = JwksServer::start(&[&key]).await;
    let cfg = ConfigBody::new()
        .usage_log()
        .mock_provider("builtin")
        .model("m", &[("builtin", "mock-1")])
        .team("ops", "")
        .text(&format!(
            "[[auth.jwt]]\nname = \"keycloak\"\nissuer = \"{ISSUER}\"\naudiences = [\"{AUDIENCE}\"]\n\
             jwks_url = \"{}\"\nteam_claim = \"realm_access.roles\"\nuser_claim = \"profile.login\"\n\
             limits_claim = \"switchyard.limits\"\n",
            idp.url()
        ))
        .build();
    let gw = Gateway::start(&cfg).await;
    let token = |login: &str, limits: Value| {
        key.sign(
            &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "s", "profile": {"login": login},
            "realm_access": {"roles": ["offline_access", "ops"]},
            "switchyard": {"limits": limits}, "iat": now_s(), "exp": now_s() + 600}),
        )
    };
    let carol = token("carol", json!({"rpm": 1}));
    let (status, id, body) = chat(&gw, &carol).await;
    assert_eq!(status, 200, "{body}");
    let line = gw.usage_line(&id).await;
    assert_eq!(
        (&line["user"], &line["team"]),
        (&json!("carol"), &json!("ops"))
    );
    let (status, _, body) = chat(&gw, &carol).await;
    assert_eq!(status, 429, "carol's own rpm of 1: {body}");
    assert!(
        message(&body).contains("user `carol` of team `ops`"),
        "{body}"
    );
    // Another user of the team, without limits in the token, is not held to carol's.
    let dave = token("dave", Value::Null);
    for _ in 0..3 {
        let (status, _, body) = chat(&gw, &dave).await;
        assert_eq!(status, 200, "{body}");
    }

    // A budget from the claims: a day of 5 tokens cannot take even this small request.
    let frank = token("frank", json!({"tokens_per_day": 5}));
    let (status, _, body) = chat(&gw, &frank).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
    assert!(
        message(&body).contains("user `frank` of team `ops`"),
        "{body}"
    );

    let bad = token("erin", json!({"rpm": "unlimited-please"}));
    refused(&gw, &bad, "malformed limits claim").await;
    let logs = gw.logs();
    assert!(
        !logs.contains("unlimited-please"),
        "a claim's value is never logged"
    );
}
