//! TLS and HTTP/2 on the listeners, through the real binary: the OpenAI Python SDK over HTTPS
//! (HTTP/1.1), reqwest over HTTP/2 negotiated by ALPN (streaming, limits, metering), a
//! certificate rotated under an open stream, a bad pair kept out, a plain-HTTP request to the
//! TLS port, `check`/`serve` refusing bad pairs, and mTLS on the admin listener.
//!
//! Certificates are made at test time by `support::tls::TestCa`.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    chat_body, metric_value, parse_sse, parse_sse_json, run_switchyard, stream_text, ConfigBody,
    Gateway, LeafCert, MockUpstream, TestCa, DEMO_SECRET,
};

const WAIT: Duration = Duration::from_secs(15);

/// The mock vendor as model `m`, the demo key in team `t` (with `team_extra`).
fn body(base_url: &str, team_extra: &str) -> String {
    ConfigBody::new()
        .provider("up", "openai", base_url, "")
        .model("m", &[("up", "upstream-m")])
        .team("t", team_extra)
        .demo_key("demo", "t")
        .build()
}

/// The built-in mock vendor as model `m` (its streamed text equals its non-streamed text, as
/// the SDK script checks), the demo key.
fn builtin_mock_body() -> String {
    body("http://127.0.0.1:9/v1", "").replace(
        "kind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nforward_headers = [\"x-mock-*\"]",
        "kind = \"mock\"",
    )
}

/// The `[server]` lines that serve `cert`/`key` on the API listener.
fn tls_lines(cert: &Path, key: &Path) -> String {
    format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    )
}

/// A CA, a `localhost`/127.0.0.1 leaf written to `cert.pem`/`key.pem` in a temp dir.
struct Certs {
    ca: TestCa,
    leaf: LeafCert,
    dir: tempfile::TempDir,
}

impl Certs {
    fn new() -> Certs {
        let ca = TestCa::new();
        let leaf = ca.leaf_for_localhost();
        let dir = tempfile::tempdir().expect("tempdir");
        leaf.write_pem_files(dir.path());
        Certs { ca, leaf, dir }
    }
    fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }
    fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }
}

/// A client that trusts the test CA and reports the peer's certificate; `h1` forces HTTP/1.1,
/// otherwise HTTP/2 is offered by ALPN.
fn https_client(ca: &TestCa, h1: bool) -> reqwest::Client {
    let b = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .tls_info(true)
        .add_root_certificate(ca.reqwest_certificate());
    let b = if h1 { b.http1_only() } else { b };
    b.build().expect("https client")
}

fn https(gw: &Gateway, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", gw.api_addr().port())
}

/// Starts a TLS gateway and waits until its API listener completes a request.
async fn start_tls(certs: &Certs, base_url: &str, team_extra: &str) -> Gateway {
    let lines = tls_lines(&certs.cert(), &certs.key());
    start_tls_with(certs, &body(base_url, team_extra), &lines).await
}

async fn start_tls_with(certs: &Certs, config_body: &str, server_lines: &str) -> Gateway {
    let gw = Gateway::builder(config_body)
        .server_extra(server_lines)
        .start()
        .await;
    let client = https_client(&certs.ca, true);
    let deadline = Instant::now() + WAIT;
    while client.get(https(&gw, "/v1/models")).send().await.is_err() {
        assert!(Instant::now() < deadline, "no TLS answer\n{}", gw.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw
}

/// The DER of the certificate the server presented on this response's connection.
fn peer_cert(resp: &reqwest::Response) -> Vec<u8> {
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("the peer certificate")
        .to_vec()
}

async fn chat(client: &reqwest::Client, gw: &Gateway, stream: bool) -> reqwest::Response {
    client
        .post(https(gw, "/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET)
        .json(&chat_body("m", "hello", stream))
        .send()
        .await
        .unwrap_or_else(|e| panic!("HTTPS request: {e}\n{}", gw.logs()))
}

/// Polls the admin metrics until `name{labels}` reads `want`.
async fn until_metric(gw: &Gateway, name: &str, labels: &[(&str, &str)], want: f64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let m = gw.metrics().await;
        if metric_value(&m, name, labels) == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}{labels:?} never read {want}\n{m}\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The demo key's `switchyard_requests_total` for status 200 and 429, summed over their
/// other labels.
fn requests_counted(m: &str) -> (f64, f64) {
    let sum = |status: &str| {
        m.lines()
            .filter(|l| l.starts_with("switchyard_requests_total{"))
            .filter(|l| l.contains("key=\"demo\"") && l.contains(&format!("status=\"{status}\"")))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum::<f64>()
    };
    (sum("200"), sum("429"))
}

/// Polls the metrics until [`requests_counted`] reads `want`; returns the metrics text.
async fn until_requests_counted(gw: &Gateway, want: (f64, f64)) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let m = gw.metrics().await;
        if requests_counted(&m) == want {
            return m;
        }
        assert!(Instant::now() < deadline, "wanted {want:?}\n{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes `text` to `path` as certificate tools do: a temporary file renamed over it (a
/// reader never sees half a file).
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Writes a new pair, key first, each file atomically.
fn rotate(certs: &Certs, leaf: &LeafCert) {
    write_atomic(&certs.key(), &leaf.key_pem);
    write_atomic(&certs.cert(), &leaf.cert_pem);
}

#[tokio::test]
async fn the_openai_python_sdk_works_over_https() {
    let certs = Certs::new();
    let lines = tls_lines(&certs.cert(), &certs.key());
    let gw = start_tls_with(&certs, &builtin_mock_body(), &lines).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/openai_sdk.py");
    let out = tokio::process::Command::new(support::python())
        .arg(script)
        .arg(https(&gw, "/v1"))
        .arg(DEMO_SECRET)
        .arg("m")
        // The SDK's HTTP client trusts this file instead of the system roots.
        .env("SSL_CERT_FILE", certs.ca.ca_pem_path())
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}\ngateway:\n{}",
        gw.logs()
    );
    assert!(stdout.contains("streaming ok"), "{stdout}");
    assert!(stdout.contains("models ok"), "{stdout}");
}

#[tokio::test]
async fn the_openai_python_sdk_works_over_http2() {
    let certs = Certs::new();
    let lines = tls_lines(&certs.cert(), &certs.key());
    let gw = start_tls_with(&certs, &builtin_mock_body(), &lines).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/openai_sdk_h2.py");
    let out = tokio::process::Command::new(support::python())
        .arg(script)
        .arg(https(&gw, "/v1"))
        .arg(DEMO_SECRET)
        .arg("m")
        .env("SSL_CERT_FILE", certs.ca.ca_pem_path())
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}\ngateway:\n{}",
        gw.logs()
    );
    assert!(stdout.contains("streaming ok over HTTP/2"), "{stdout}");
}

#[tokio::test]
async fn http2_by_alpn_streams_limits_and_meters_like_http1() {
    let certs = Certs::new();
    let mock = MockUpstream::start().await;
    let gw = start_tls(&certs, &mock.base_url(), "rpm = 6").await;
    let h1 = https_client(&certs.ca, true);
    let h2 = https_client(&certs.ca, false);
    // start_tls used one request of the team's 6 per minute? No: GET /v1/models is not limited.
    for (client, version) in [(&h1, http::Version::HTTP_11), (&h2, http::Version::HTTP_2)] {
        let resp = chat(client, &gw, false).await;
        assert_eq!(resp.version(), version);
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().contains_key("x-request-id"));
        assert!(resp
            .headers()
            .contains_key("x-ratelimit-remaining-requests"));
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["object"], "chat.completion", "{v}");

        let resp = chat(client, &gw, true).await;
        assert_eq!(resp.version(), version);
        assert_eq!(resp.status(), 200);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        let text = resp.text().await.unwrap();
        let events = parse_sse_json(&text);
        assert_eq!(stream_text(&events), "tok0 tok1 tok2 tok3 tok4 ");
        assert!(events.last().unwrap()["usage"]["completion_tokens"].as_u64() > Some(0));
        assert_eq!(parse_sse(&text).last().map(String::as_str), Some("[DONE]"));
    }
    // The same limit counts both protocols: 4 used, 2 left, then a 429 over HTTP/2.
    for _ in 0..2 {
        let resp = chat(&h2, &gw, false).await;
        assert_eq!(resp.status(), 200);
        // Read to the end: a dropped HTTP/2 response is a client gone (499).
        resp.bytes().await.unwrap();
    }
    let refused = chat(&h2, &gw, false).await;
    assert_eq!(refused.version(), http::Version::HTTP_2);
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let v: Value = refused.json().await.unwrap();
    assert_eq!(v["error"]["reason"], "rate_limit", "{v}");
    // Metered alike: 6 answered, 1 refused (counted as each request ends: wait for them).
    let m = until_requests_counted(&gw, (6.0, 1.0)).await;
    assert!(
        metric_value(&m, "switchyard_tokens_total", &[("type", "completion")]).is_some(),
        "{m}"
    );
    let expiry = metric_value(
        &m,
        "switchyard_tls_certificate_expiry_timestamp_seconds",
        &[],
    )
    .expect("the expiry gauge");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(expiry > now, "{expiry}");
    // /readyz completes a TLS handshake with the API listener: ready, and nothing logged.
    for _ in 0..3 {
        let r = support::client()
            .get(gw.admin_url("/readyz"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert!(!gw.logs().contains("handshake error"), "{}", gw.logs());
}

#[tokio::test]
async fn a_large_prompt_over_http2_reaches_the_vendor_whole() {
    let certs = Certs::new();
    let mock = MockUpstream::start().await;
    let gw = start_tls(&certs, &mock.base_url(), "").await;
    let prompt = "x".repeat(1024 * 1024);
    let resp = https_client(&certs.ca, false)
        .post(https(&gw, "/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET)
        .json(&chat_body("m", &prompt, false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200, "{}", gw.logs());
    resp.bytes().await.unwrap();
    let sent: Value = serde_json::from_slice(&mock.last_request().unwrap().body).unwrap();
    assert_eq!(
        sent["messages"][0]["content"].as_str().map(str::len),
        Some(prompt.len())
    );
    assert_eq!(sent["model"], "upstream-m");
}

#[tokio::test]
async fn the_anthropic_front_door_streams_over_http2() {
    let certs = Certs::new();
    let mock = MockUpstream::start().await;
    let gw = start_tls(&certs, &mock.base_url(), "").await;
    let resp = https_client(&certs.ca, false)
        .post(https(&gw, "/v1/messages"))
        .header("x-api-key", DEMO_SECRET)
        .header("anthropic-version", "2023-06-01")
        .json(&serde_json::json!({
            "model": "m",
            "max_tokens": 64,
            "stream": true,
            "messages": [{"role": "user", "content": "hello"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200, "{}", gw.logs());
    let text = resp.text().await.unwrap();
    assert!(text.contains("event: message_start"), "{text}");
    assert!(text.contains("tok4"), "{text}");
    assert!(
        text.trim_end()
            .ends_with("data: {\"type\":\"message_stop\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn a_rotated_certificate_serves_new_connections_while_an_open_stream_finishes() {
    let certs = Certs::new();
    let mock = MockUpstream::start().await;
    let gw = start_tls(&certs, &mock.base_url(), "").await;

    // A stream of 20 chunks, 100 ms apart, on its own connection.
    let old_conn = https_client(&certs.ca, true);
    let resp = old_conn
        .post(https(&gw, "/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET)
        .header("x-mock-chunks", "20")
        .header("x-mock-chunk-delay-ms", "100")
        .json(&chat_body("m", "a long story", true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(peer_cert(&resp), certs.leaf.cert_chain[0].to_vec());
    let reader = tokio::spawn(async move { resp.text().await });

    // cert-manager writes a new pair (same CA, new key) while the stream runs.
    let new_leaf = certs.ca.leaf_for_localhost();
    rotate(&certs, &new_leaf);
    until_metric(
        &gw,
        "switchyard_tls_certificate_reloads_total",
        &[("result", "success")],
        1.0,
    )
    .await;
    assert!(
        !reader.is_finished(),
        "the stream ended before the rotation"
    );

    // A new connection gets the new certificate…
    let resp = chat(&https_client(&certs.ca, false), &gw, false).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(peer_cert(&resp), new_leaf.cert_chain[0].to_vec());
    // …and the open stream finishes on the old one, complete.
    let text = tokio::time::timeout(WAIT, reader)
        .await
        .expect("the stream finishes")
        .unwrap()
        .expect("the stream's body");
    let events = parse_sse_json(&text);
    assert_eq!(stream_text(&events).split_whitespace().count(), 20);
    assert_eq!(parse_sse(&text).last().map(String::as_str), Some("[DONE]"));
    assert!(
        gw.logs().contains("TLS certificate reloaded"),
        "{}",
        gw.logs()
    );
}

/// Lays `leaf` out as a Kubernetes Secret volume does (`tls.crt -> ..data/tls.crt`,
/// `..data -> ..genN`), swapping `..data` atomically as the kubelet does on an update.
fn secret_volume(dir: &Path, generation: u32, leaf: &LeafCert) {
    let data = dir.join(format!("..gen{generation}"));
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("tls.crt"), &leaf.cert_pem).unwrap();
    std::fs::write(data.join("tls.key"), &leaf.key_pem).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..gen{generation}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for name in ["tls.crt", "tls.key"] {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link).unwrap();
        }
    }
}

#[tokio::test]
async fn a_kubernetes_secret_update_is_served_without_a_restart() {
    let certs = Certs::new();
    let volume = tempfile::tempdir().unwrap();
    secret_volume(volume.path(), 0, &certs.leaf);
    let gw = start_tls_with(
        &certs,
        &body("http://127.0.0.1:9/v1", ""),
        &tls_lines(
            &volume.path().join("tls.crt"),
            &volume.path().join("tls.key"),
        ),
    )
    .await;
    for generation in 1..=2 {
        let leaf = certs.ca.leaf_for_localhost();
        let swapped = Instant::now();
        secret_volume(volume.path(), generation, &leaf);
        until_metric(
            &gw,
            "switchyard_tls_certificate_reloads_total",
            &[("result", "success")],
            f64::from(generation),
        )
        .await;
        eprintln!(
            "generation {generation}: reload seen {:?} after the ..data swap (100 ms debounce, 50 ms polls)",
            swapped.elapsed()
        );
        let resp = chat(&https_client(&certs.ca, true), &gw, false).await;
        assert_eq!(
            peer_cert(&resp),
            leaf.cert_chain[0].to_vec(),
            "generation {generation}"
        );
    }
}

#[tokio::test]
async fn a_bad_pair_is_kept_out_and_the_last_good_pair_keeps_serving() {
    let certs = Certs::new();
    let mock = MockUpstream::start().await;
    let gw = start_tls(&certs, &mock.base_url(), "").await;

    // A new certificate whose key never arrives: it does not match the running key.
    let other = certs.ca.leaf_for_localhost();
    write_atomic(&certs.cert(), &other.cert_pem);
    until_metric(
        &gw,
        "switchyard_tls_certificate_reloads_total",
        &[("result", "failure")],
        1.0,
    )
    .await;
    let logs = gw.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("TLS certificate reload rejected"))
        .unwrap_or_else(|| panic!("no rejection line\n{logs}"));
    assert!(
        line.contains(&certs.key().display().to_string())
            && line.contains("does not match the certificate"),
        "{line}"
    );
    assert!(!logs.contains(other.key_pem.lines().nth(1).unwrap()));
    // The bad pair on disk does not block a config edit (a leaked key can still be disabled).
    gw.write_config(&body(&mock.base_url(), "rpm = 1000"));
    until_metric(
        &gw,
        "switchyard_config_reloads_total",
        &[("result", "success")],
        1.0,
    )
    .await;
    // New connections still get the last good certificate.
    let resp = chat(&https_client(&certs.ca, true), &gw, false).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(peer_cert(&resp), certs.leaf.cert_chain[0].to_vec());

    // Garbage in place of the certificate: refused too; then the good pair comes back.
    assert_eq!(logs.matches("TLS certificate reload rejected").count(), 1);
    write_atomic(&certs.cert(), "not a certificate\n");
    until_metric(
        &gw,
        "switchyard_tls_certificate_reloads_total",
        &[("result", "failure")],
        2.0,
    )
    .await;
    rotate(&certs, &other);
    until_metric(
        &gw,
        "switchyard_tls_certificate_reloads_total",
        &[("result", "success")],
        1.0,
    )
    .await;
    let resp = chat(&https_client(&certs.ca, true), &gw, false).await;
    assert_eq!(peer_cert(&resp), other.cert_chain[0].to_vec());
    // One line per refused pair (a busy machine may also see the half-written rotation).
    let m = gw.metrics().await;
    let failures = metric_value(
        &m,
        "switchyard_tls_certificate_reloads_total",
        &[("result", "failure")],
    );
    let lines = gw.logs().matches("TLS certificate reload rejected").count();
    assert_eq!(Some(lines as f64), failures, "{}", gw.logs());
}

#[tokio::test]
async fn plain_http_on_the_tls_listener_gets_a_closed_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let certs = Certs::new();
    let gw = start_tls(&certs, "http://127.0.0.1:9/v1", "").await;
    let mut s = tokio::net::TcpStream::connect(gw.api_addr()).await.unwrap();
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(WAIT, s.read_to_end(&mut got))
        .await
        .expect("the connection is closed, not left hanging");
    // Closed (EOF or reset), with at most a TLS alert, never an HTTP answer.
    assert!(read.is_err() || !got.starts_with(b"HTTP/"), "{got:?}");
    // The listener still serves TLS.
    let resp = chat(&https_client(&certs.ca, true), &gw, false).await;
    assert!(resp.status().is_server_error(), "{}", resp.status());
}

fn write_config(dir: &Path, server: &str) -> PathBuf {
    let path = dir.join("switchyard.toml");
    std::fs::write(
        &path,
        format!("[server]\nlisten = \"127.0.0.1:0\"\n{server}"),
    )
    .unwrap();
    path
}

/// An expired self-signed pair.
fn expired_pair(dir: &Path) -> (PathBuf, PathBuf) {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (c, k) = (dir.join("old.pem"), dir.join("old-key.pem"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

#[test]
fn check_and_serve_name_the_config_line_and_the_pem_file_of_a_bad_pair() {
    let certs = Certs::new();
    let dir = tempfile::tempdir().unwrap();
    let (old_cert, old_key) = expired_pair(dir.path());
    let other = certs.ca.leaf_for_localhost();
    let other_key = dir.path().join("other-key.pem");
    std::fs::write(&other_key, &other.key_pem).unwrap();
    let missing = dir.path().join("missing.pem");
    let cases = [
        (
            tls_lines(&old_cert, &old_key),
            format!(
                "switchyard.toml:3: server.tls_cert: {}: the certificate expired at 2021-01-01T00:00:00Z",
                old_cert.display()
            ),
        ),
        (
            tls_lines(&certs.cert(), &other_key),
            format!(
                "switchyard.toml:4: server.tls_key: {}: the private key does not match the certificate in {}",
                other_key.display(),
                certs.cert().display()
            ),
        ),
        (
            tls_lines(&missing, &certs.key()),
            format!(
                "switchyard.toml:3: server.tls_cert: {}: cannot read the file",
                missing.display()
            ),
        ),
    ];
    for (server, want) in cases {
        let config = write_config(dir.path(), &server);
        for cmd in ["check", "serve"] {
            let out = run_switchyard(&[cmd, "-c", &config.to_string_lossy()], dir.path());
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd}: {stderr}");
            assert!(
                stderr.contains(&want),
                "{cmd}: wanted {want:?} in\n{stderr}"
            );
        }
    }
    let good = write_config(dir.path(), &tls_lines(&certs.cert(), &certs.key()));
    let out = run_switchyard(&["check", "-c", &good.to_string_lossy()], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_admin_listener_can_require_client_certificates() {
    let certs = Certs::new();
    let server = format!(
        "{}admin_tls = true\nadmin_tls_client_ca = \"{}\"\n",
        tls_lines(&certs.cert(), &certs.key()),
        certs.ca.ca_pem_path().display()
    );
    let mut gw = Gateway::builder(&body("http://127.0.0.1:9/v1", ""))
        .server_extra(&server)
        .spawn();
    gw.wait_bound().await;
    let admin = format!("https://127.0.0.1:{}/metrics", gw.admin_addr().port());
    let client_cert = certs.ca.client_leaf("prometheus");
    let identity = reqwest::Identity::from_pem(
        format!("{}{}", client_cert.cert_pem, client_cert.key_pem).as_bytes(),
    )
    .unwrap();
    let with_cert = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .add_root_certificate(certs.ca.reqwest_certificate())
        .identity(identity)
        .build()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let metrics = loop {
        match with_cert.get(&admin).send().await {
            Ok(r) => break r,
            Err(e) => assert!(Instant::now() < deadline, "{e}\n{}", gw.logs()),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("switchyard_tls_certificate_expiry_timestamp_seconds"),
        "{text}"
    );
    // Without a client certificate the handshake is refused; plain HTTP gets nothing.
    let without = https_client(&certs.ca, true).get(&admin).send().await;
    assert!(without.is_err(), "{without:?}");
    let plain = support::client()
        .get(format!(
            "http://127.0.0.1:{}/metrics",
            gw.admin_addr().port()
        ))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
}
