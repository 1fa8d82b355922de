//! Keys issued at runtime (issue 31 item 2), through the real binary: the admin API on the
//! admin listener (`POST/GET/PATCH/DELETE /v1/keys`), a key used on the chat door, its limit
//! updated, then disabled and deleted; the admin credential and each malformed request with
//! its documented status; both stores surviving a restart (the memory backend's keys file,
//! a real Redis); two instances sharing one Redis, where a revoke on one is refused by both
//! within a second; and no secret or hash in the gateway's output.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support;
use support::*;

const ADMIN_TOKEN: &str = "admin-token-5b1f0c7e2d";
const TOKEN_ENV: (&str, &str) = ("SY_TEST_ADMIN_TOKEN", ADMIN_TOKEN);
const CONFIG_SECRET: &str = "sk-config-key-rk";

/// A mock model `m`, teams `research` and `ops`, a config key `svc`, the usage log, and
/// `state` (a `[state]` table, or empty for the harness's memory one).
fn body(state: &str) -> String {
    ConfigBody::new()
        .usage_log()
        .mock_provider("builtin")
        .model("m", &[("builtin", "mock-1")])
        .team("research", "")
        .team("ops", "")
        .key("svc", "ops", CONFIG_SECRET, "")
        .text(state)
        .build()
}

async fn start(state: &str) -> Gateway {
    Gateway::builder(&body(state))
        .server_extra("admin_token_env = \"SY_TEST_ADMIN_TOKEN\"")
        .env(TOKEN_ENV.0, TOKEN_ENV.1)
        .start()
        .await
}

/// An admin API call with the admin token (`token` = `None`: without one).
async fn admin(
    gw: &Gateway,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = client().request(method, gw.admin_url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.expect("admin call");
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("not JSON ({status}): {text:?}\n{}", gw.logs()));
    (status, value)
}

async fn create(gw: &Gateway, body: &str) -> (StatusCode, Value) {
    admin(
        gw,
        reqwest::Method::POST,
        "/v1/keys",
        Some(ADMIN_TOKEN),
        Some(body),
    )
    .await
}

async fn patch(gw: &Gateway, id: &str, body: &str) -> (StatusCode, Value) {
    let path = format!("/v1/keys/{id}");
    admin(
        gw,
        reqwest::Method::PATCH,
        &path,
        Some(ADMIN_TOKEN),
        Some(body),
    )
    .await
}

async fn delete(gw: &Gateway, id: &str) -> (StatusCode, Value) {
    let path = format!("/v1/keys/{id}");
    admin(gw, reqwest::Method::DELETE, &path, Some(ADMIN_TOKEN), None).await
}

async fn chat_status(gw: &Gateway, secret: &str) -> u16 {
    gw.chat(secret, &chat_body("m", "hello", false))
        .await
        .status()
        .as_u16()
}

/// Polls `gw` with `secret` until the chat status is `want`, up to `within`; the time taken.
async fn until_status(gw: &Gateway, secret: &str, want: u16, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got = chat_status(gw, secret).await;
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "still {got}, not {want}, after {within:?}\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Neither the secret nor its hash (whole) appears in the gateway's output or usage log.
fn assert_no_secret(gw: &Gateway, secret: &str) {
    let hash = sha256_hex(secret);
    let usage = std::fs::read_to_string(gw.dir().join("usage.jsonl")).unwrap_or_default();
    for (name, text) in [("logs", gw.logs()), ("usage log", usage)] {
        assert!(!text.contains(secret), "the secret is in the {name}");
        assert!(!text.contains(&hash), "the secret's hash is in the {name}");
    }
}

#[tokio::test]
async fn a_runtime_key_is_created_used_limited_disabled_and_deleted() {
    let gw = start("").await;
    let (status, created) = create(
        &gw,
        r#"{"team":"research","id":"portal-1","metadata":{"project":"p1"}}"#,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["key"].as_str().unwrap().to_string();
    assert!(secret.starts_with("sk-sy-"), "{secret}");
    assert_eq!(created["id"], "portal-1");
    assert_eq!(created["team"], "research");
    assert_eq!(created["metadata"]["project"], "p1");
    assert_eq!(
        created["sha256_prefix"].as_str().unwrap(),
        &sha256_hex(&secret)[..8]
    );

    // Used at once, counted under its id.
    let resp = gw.chat(&secret, &chat_body("m", "hello", false)).await;
    assert_eq!(resp.status(), 200);
    let lines = gw.wait_usage_lines(1).await;
    assert_eq!(lines[0]["key"], "portal-1", "{}", lines[0]);
    assert_eq!(lines[0]["team"], "research");
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("key=\"portal-1\""),
        "no metric with key=\"portal-1\""
    );

    // Listed and read without the secret or the hash.
    let (status, list) = admin(
        &gw,
        reqwest::Method::GET,
        "/v1/keys",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["data"][0]["id"], "portal-1");
    let (status, one) = admin(
        &gw,
        reqwest::Method::GET,
        "/v1/keys/portal-1",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200);
    for shown in [list.to_string(), one.to_string()] {
        assert!(!shown.contains(&secret) && !shown.contains(&sha256_hex(&secret)));
    }

    // rpm 1: the next request passes, the one after is refused.
    let (status, updated) = patch(&gw, "portal-1", r#"{"limits":{"rpm":1}}"#).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["limits"]["rpm"], 1);
    assert_eq!(chat_status(&gw, &secret).await, 200);
    assert_eq!(chat_status(&gw, &secret).await, 429);

    // Disabled: refused; enabled again: in force (its rpm lifted).
    let (status, _) = patch(&gw, "portal-1", r#"{"disabled":true,"limits":null}"#).await;
    assert_eq!(status, 200);
    let resp = gw.chat(&secret, &chat_body("m", "hello", false)).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.unwrap().contains("disabled"));
    patch(&gw, "portal-1", r#"{"disabled":false}"#).await;
    assert_eq!(chat_status(&gw, &secret).await, 200);

    // Expired: refused; its expiry removed: in force again.
    let (status, _) = patch(&gw, "portal-1", r#"{"expires_at":"2020-01-01T00:00:00Z"}"#).await;
    assert_eq!(status, 200);
    let resp = gw.chat(&secret, &chat_body("m", "hello", false)).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.unwrap().contains("expired"));
    patch(&gw, "portal-1", r#"{"expires_at":null}"#).await;
    assert_eq!(chat_status(&gw, &secret).await, 200);

    // Deleted: refused as unknown; a second delete is a 404.
    let (status, gone) = delete(&gw, "portal-1").await;
    assert_eq!((status, &gone["deleted"]), (StatusCode::OK, &json!(true)));
    assert_eq!(chat_status(&gw, &secret).await, 401);
    let (status, e) = delete(&gw, "portal-1").await;
    assert_eq!(status, 404, "{e}");
    assert_eq!(e["error"]["type"], "not_found_error");

    // The config's key still works; each change has its audit line, without secrets.
    assert_eq!(chat_status(&gw, CONFIG_SECRET).await, 200);
    let logs = gw.wait_for_log("runtime key delete").await;
    for action in ["create", "update", "disable", "delete"] {
        assert!(
            logs.lines().any(|l| l.contains("switchyard::audit")
                && l.contains(&format!("action=\"{action}\""))
                && l.contains("portal-1")
                && l.contains("admin token")),
            "no audit line for {action}:\n{logs}"
        );
    }
    assert_no_secret(&gw, &secret);
    assert!(!gw.logs().contains(ADMIN_TOKEN));
}

#[tokio::test]
async fn the_admin_key_api_refuses_bad_requests_with_their_status() {
    let gw = start("").await;
    let get = reqwest::Method::GET;
    // No credential, a wrong one.
    let (status, e) = admin(&gw, get.clone(), "/v1/keys", None, None).await;
    assert_eq!(status, 401, "{e}");
    assert_eq!(e["error"]["type"], "authentication_error");
    let (status, _) = admin(&gw, get.clone(), "/v1/keys", Some("wrong-token"), None).await;
    assert_eq!(status, 401);
    let (status, _) = admin(
        &gw,
        reqwest::Method::POST,
        "/v1/keys",
        Some("wrong-token"),
        Some(r#"{"team":"ops"}"#),
    )
    .await;
    assert_eq!(status, 401);
    // Malformed bodies name their field.
    for (body, field) in [
        (r#"{"team":"ops""#, "body: not valid JSON"),
        (r#"{"team":"nobody"}"#, "team: no team named"),
        (
            r#"{"team":"ops","limits":{"rpm":0}}"#,
            "limits.rpm: must be a positive",
        ),
        (
            r#"{"team":"ops","limits":{"rpm":"5"}}"#,
            "limits.rpm: must be an integer",
        ),
        (r#"{"team":"ops","id":"a b"}"#, "id: "),
        (r#"{"team":"ops","expires_at":"soon"}"#, "expires_at: "),
        (r#"{"team":"ops","sha256":"ab"}"#, "sha256: unknown field"),
    ] {
        let (status, e) = create(&gw, body).await;
        assert_eq!(status, 400, "{body}: {e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{body}: {message}");
    }
    // Duplicates: another runtime key's id, a config key's id.
    let (status, _) = create(&gw, r#"{"team":"ops","id":"dup"}"#).await;
    assert_eq!(status, 201);
    let (status, e) = create(&gw, r#"{"team":"ops","id":"dup"}"#).await;
    assert_eq!(status, 409, "{e}");
    assert_eq!(e["error"]["type"], "conflict_error");
    let (status, e) = create(&gw, r#"{"team":"ops","id":"svc"}"#).await;
    assert_eq!(status, 409, "{e}");
    // Unknown ids, a huge body, a wrong method.
    let (status, _) = patch(&gw, "nobody", r#"{"disabled":true}"#).await;
    assert_eq!(status, 404);
    let (status, _) = delete(&gw, "nobody").await;
    assert_eq!(status, 404);
    let huge = format!(
        r#"{{"team":"ops","metadata":{{"x":"{}"}}}}"#,
        "a".repeat(100_000)
    );
    let (status, e) = create(&gw, &huge).await;
    assert_eq!(status, 413, "{e}");
    let (status, _) = admin(
        &gw,
        reqwest::Method::PUT,
        "/v1/keys/dup",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 405);
    // The rest of the admin listener is as before.
    let health = client().get(gw.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    // Without `admin_token_env` (and no mTLS) the key API is off.
    let off = Gateway::start(&body("")).await;
    let (status, e) = admin(&off, get, "/v1/keys", Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, 403, "{e}");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("admin_token_env"));
}

#[tokio::test]
async fn a_runtime_key_whose_team_left_the_config_is_refused_until_it_returns() {
    let gw = start("").await;
    let (_, created) = create(&gw, r#"{"team":"research","id":"r1"}"#).await;
    let secret = created["key"].as_str().unwrap().to_string();
    assert_eq!(chat_status(&gw, &secret).await, 200);
    let without = body("").replace("[[teams]]\nname = \"research\"\n", "");
    assert_ne!(without, body(""));
    gw.write_config(&without);
    until_status(&gw, &secret, 403, Duration::from_secs(10)).await;
    let resp = gw.chat(&secret, &chat_body("m", "hello", false)).await;
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("\\\"research\\\" is not in"));
    gw.write_config(&body(""));
    until_status(&gw, &secret, 200, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn the_memory_backend_keeps_runtime_keys_across_a_restart() {
    let state_dir = tempfile::tempdir().unwrap();
    let file = state_dir.path().join("keys.json");
    let state = format!(
        "[state]\nbackend = \"memory\"\ndir = {:?}\nkeys_file = {:?}\n",
        state_dir.path().join("data").display().to_string(),
        file.display().to_string()
    );
    let mut first = start(&state).await;
    let (status, created) = create(&first, r#"{"team":"ops","limits":{"tpm":100000}}"#).await;
    assert_eq!(status, 201);
    let secret = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("rk-"), "{id}");
    assert_eq!(chat_status(&first, &secret).await, 200);
    first.stop_async().await;

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(!stored.contains(&secret), "the secret is in the keys file");

    let second = start(&state).await;
    assert_eq!(chat_status(&second, &secret).await, 200);
    let (status, one) = admin(
        &second,
        reqwest::Method::GET,
        &format!("/v1/keys/{id}"),
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(one["limits"]["tpm"], 100000);
}

fn redis_state(redis: &RedisServer) -> String {
    format!(
        "[state]\nbackend = \"redis\"\nredis_url = \"{}\"\n",
        redis.url()
    )
}

#[tokio::test]
async fn two_instances_on_one_redis_share_runtime_keys_and_a_revoke_within_a_second() {
    let redis = RedisServer::start();
    let state = redis_state(&redis);
    let a = start(&state).await;
    let b = start(&state).await;
    let (status, created) = create(
        &a,
        r#"{"team":"research","id":"shared-1","limits":{"tokens_per_day":100000}}"#,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["key"].as_str().unwrap().to_string();
    assert_eq!(chat_status(&a, &secret).await, 200);
    // Created on A, in force on B within the poll.
    until_status(&b, &secret, 200, Duration::from_secs(1)).await;
    // Its budget is in both instances' gauges, read from Redis: what A's request spent.
    for gw in [&a, &b] {
        let metrics = gw.metrics().await;
        let labels = [("key", "shared-1"), ("period", "day"), ("unit", "tokens")];
        assert_eq!(
            metric_value(&metrics, "switchyard_budget_limit", &labels),
            Some(100000.0),
            "{metrics}"
        );
        let spent = metric_value(&metrics, "switchyard_budget_spent", &labels);
        assert!(spent.is_some_and(|s| s > 0.0), "{metrics}");
    }
    // Created twice (on B): one id, one key.
    let (status, _) = create(&b, r#"{"team":"ops","id":"shared-1"}"#).await;
    assert_eq!(status, 409);

    // Disabled on A: both refuse within a second.
    let revoked = Instant::now();
    let (status, _) = patch(&a, "shared-1", r#"{"disabled":true}"#).await;
    assert_eq!(status, 200);
    until_status(&a, &secret, 401, Duration::from_secs(1)).await;
    until_status(&b, &secret, 401, Duration::from_secs(1)).await;
    let disable_took = revoked.elapsed();
    patch(&a, "shared-1", r#"{"disabled":false}"#).await;
    until_status(&b, &secret, 200, Duration::from_secs(1)).await;

    // Deleted on A: both refuse within a second.
    let revoked = Instant::now();
    let (status, _) = delete(&a, "shared-1").await;
    assert_eq!(status, 200);
    until_status(&a, &secret, 401, Duration::from_secs(1)).await;
    until_status(&b, &secret, 401, Duration::from_secs(1)).await;
    let delete_took = revoked.elapsed();
    eprintln!(
        "revoke refused by both instances after: disable {disable_took:?}, delete {delete_took:?}"
    );
    assert!(disable_took < Duration::from_secs(1) && delete_took < Duration::from_secs(1));

    // The poll alone keeps the bound: a change made in Redis without a PUBLISH (as if the
    // message were lost) is followed by both within a second.
    let (_, polled) = create(&a, r#"{"team":"ops","id":"polled"}"#).await;
    let polled_secret = polled["key"].as_str().unwrap().to_string();
    until_status(&b, &polled_secret, 200, Duration::from_secs(1)).await;
    let revoked = Instant::now();
    redis
        .command(&["HSET", "switchyard:{rkeys}:key:polled", "disabled", "1"])
        .unwrap();
    redis.command(&["INCR", "switchyard:{rkeys}:gen"]).unwrap();
    until_status(&a, &polled_secret, 401, Duration::from_secs(1)).await;
    until_status(&b, &polled_secret, 401, Duration::from_secs(1)).await;
    let poll_took = revoked.elapsed();
    eprintln!("without pub/sub (the poll alone): refused by both after {poll_took:?}");
    assert!(poll_took < Duration::from_secs(1));

    // Stored in Redis as documented, without the secret.
    let (_, kept) = create(&a, r#"{"team":"ops","id":"kept","limits":{"rpm":5}}"#).await;
    let kept_secret = kept["key"].as_str().unwrap().to_string();
    assert_eq!(
        redis.hget("switchyard:{rkeys}:key:kept", "team").as_deref(),
        Some("ops")
    );
    assert_eq!(
        redis
            .hget("switchyard:{rkeys}:key:kept", "sha256")
            .as_deref(),
        Some(sha256_hex(&kept_secret).as_str())
    );
    // A restart (a third instance, the first two gone) keeps it.
    drop(a);
    drop(b);
    let c = start(&state).await;
    assert_eq!(chat_status(&c, &kept_secret).await, 200);
    assert_no_secret(&c, &kept_secret);
}

/// `switchyard key …` with `args`, the admin token in `SWITCHYARD_ADMIN_TOKEN`.
fn cli(gw: &Gateway, args: &[&str]) -> std::process::Output {
    let url = format!("http://{}", gw.admin_addr());
    std::process::Command::new(switchyard_bin())
        .arg("key")
        .args(args)
        .args(["--admin-url", &url])
        .env("SWITCHYARD_ADMIN_TOKEN", ADMIN_TOKEN)
        .current_dir(gw.dir())
        .output()
        .expect("run switchyard")
}

fn stdout_json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[tokio::test]
async fn the_key_subcommands_drive_a_running_gateway() {
    let gw = start("").await;
    let created = stdout_json(&cli(
        &gw,
        &[
            "create", "--team", "research", "--id", "cli-1", "--tpm", "100000",
        ],
    ));
    let secret = created["key"].as_str().unwrap().to_string();
    assert_eq!(chat_status(&gw, &secret).await, 200);

    let listed = stdout_json(&cli(&gw, &["list"]));
    assert_eq!(listed["data"][0]["id"], "cli-1");
    assert!(!listed.to_string().contains(&secret));

    // update keeps the limits not named: tpm stays, rpm 1 is added.
    let updated = stdout_json(&cli(&gw, &["update", "cli-1", "--rpm", "1"]));
    assert_eq!(updated["limits"], json!({"rpm": 1, "tpm": 100000}));
    assert_eq!(chat_status(&gw, &secret).await, 200);
    assert_eq!(chat_status(&gw, &secret).await, 429);

    stdout_json(&cli(&gw, &["revoke", "cli-1", "--disable"]));
    assert_eq!(chat_status(&gw, &secret).await, 401);
    stdout_json(&cli(&gw, &["revoke", "cli-1"]));
    let again = cli(&gw, &["revoke", "cli-1"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("404"));

    // Without a token: told, exit 2.
    let out = std::process::Command::new(switchyard_bin())
        .args([
            "key",
            "list",
            "--admin-url",
            &format!("http://{}", gw.admin_addr()),
        ])
        .args(["-c", "/nonexistent.toml"])
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SWITCHYARD_ADMIN_TOKEN"));
}

#[tokio::test]
async fn the_admin_listeners_mtls_is_a_credential_of_its_own() {
    let ca = TestCa::new();
    let leaf = ca.leaf_for_localhost();
    let dir = tempfile::tempdir().unwrap();
    leaf.write_pem_files(dir.path());
    let server = format!(
        "tls_cert = {:?}\ntls_key = {:?}\nadmin_tls = true\nadmin_tls_client_ca = {:?}\n",
        dir.path().join("cert.pem").display().to_string(),
        dir.path().join("key.pem").display().to_string(),
        ca.ca_pem_path().display().to_string()
    );
    let mut gw = Gateway::builder(&body("")).server_extra(&server).spawn();
    gw.wait_bound().await;
    let client_cert = ca.client_leaf("key-portal");
    let identity = reqwest::Identity::from_pem(
        format!("{}{}", client_cert.cert_pem, client_cert.key_pem).as_bytes(),
    )
    .unwrap();
    let tls_client = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .add_root_certificate(ca.reqwest_certificate())
        .identity(identity)
        .build()
        .unwrap();
    let url = format!("https://127.0.0.1:{}/v1/keys", gw.admin_addr().port());
    let deadline = Instant::now() + Duration::from_secs(20);
    let resp = loop {
        let sent = tls_client
            .post(&url)
            .body(r#"{"team":"ops","id":"by-mtls"}"#)
            .send()
            .await;
        match sent {
            Ok(r) => break r,
            Err(e) => assert!(Instant::now() < deadline, "{e}\n{}", gw.logs()),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let secret = created["key"].as_str().unwrap().to_string();
    // The key works on the API listener (TLS too).
    let api = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .add_root_certificate(ca.reqwest_certificate())
        .build()
        .unwrap();
    let chat = api
        .post(format!(
            "https://127.0.0.1:{}/v1/chat/completions",
            gw.api_addr().port()
        ))
        .bearer_auth(&secret)
        .json(&chat_body("m", "hello", false))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    let logs = gw.wait_for_log("runtime key create").await;
    assert!(
        logs.lines()
            .any(|l| l.contains("switchyard::audit") && l.contains("mTLS client")),
        "{logs}"
    );
    assert_no_secret(&gw, &secret);
}
