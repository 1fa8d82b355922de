//! Hot reload end to end (issue 6): the real binary, a mock vendor, and config files rewritten
//! in place, by rename, and by a Kubernetes-style `..data` swap while requests flow.
//!
//! Every wait polls for the effect (every 20 ms, up to 10 s): the bound is against hangs, not
//! a timing assertion. The measured write-to-effect time is printed (`--nocapture`).

use crate::support;

use std::future::Future;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const POLL: Duration = Duration::from_millis(20);
const EFFECT_BOUND: Duration = Duration::from_secs(10);

/// A key present in every config (team `wide`, every model).
const STABLE: &str = "sk-hot-stable";
/// Present only in version A.
const OLD: &str = "sk-hot-old";
/// Present only in version B.
const NEW: &str = "sk-hot-new";
/// Team `narrow`: every model in A, only `chat` in B.
const NARROW: &str = "sk-hot-narrow";

/// One version of the test config.
struct Version {
    /// The upstream model name of `chat`'s route.
    route: &'static str,
    /// Weights of `split`'s routes `left` and `right`.
    left: u32,
    right: u32,
    /// The secret of the changing key.
    key: &'static str,
    /// `teams.models` of team `narrow`.
    narrow_models: &'static str,
}

const A: Version = Version {
    route: "up-a",
    left: 1_000_000,
    right: 1,
    key: OLD,
    narrow_models: r#"["*"]"#,
};

const B: Version = Version {
    route: "up-b",
    left: 1,
    right: 1_000_000,
    key: NEW,
    narrow_models: r#"["chat"]"#,
};

/// A with another route and weights but the same keys and teams (for the load test, whose
/// requests must all succeed whichever of the two serves).
const A2: Version = Version {
    route: "up-b",
    left: 1,
    right: 1_000_000,
    ..A
};

/// The config body of a version (the harness adds `[server]` and `[state]`).
fn config(base_url: &str, v: &Version) -> String {
    format!(
        r#"
[[providers]]
name = "up"
kind = "openai"
base_url = "{base_url}"
forward_headers = ["x-mock-*"]

[[models]]
name = "chat"
  [[models.routes]]
  provider = "up"
  model = "{route}"

[[models]]
name = "split"
  [[models.routes]]
  provider = "up"
  model = "left"
  weight = {left}
  [[models.routes]]
  provider = "up"
  model = "right"
  weight = {right}

[[teams]]
name = "wide"

[[teams]]
name = "narrow"
models = {narrow_models}

[[keys]]
id = "stable"
team = "wide"
sha256 = "{stable}"

[[keys]]
id = "changing"
team = "wide"
sha256 = "{changing}"

[[keys]]
id = "narrow"
team = "narrow"
sha256 = "{narrow}"
"#,
        route = v.route,
        left = v.left,
        right = v.right,
        narrow_models = v.narrow_models,
        stable = sha256_hex(STABLE),
        changing = sha256_hex(v.key),
        narrow = sha256_hex(NARROW),
    )
}

/// A config without `chat` nor the `up` provider (only the built-in mock).
fn config_without_chat() -> String {
    format!(
        r#"
[[providers]]
name = "builtin"
kind = "mock"

[[models]]
name = "other"
  [[models.routes]]
  provider = "builtin"
  model = "mock-1"

[[teams]]
name = "wide"

[[keys]]
id = "stable"
team = "wide"
sha256 = "{}"
"#,
        sha256_hex(STABLE)
    )
}

/// Polls `probe` every 20 ms until it returns `Some`, up to 10 s (then panics with the logs).
async fn wait_for<T, F, Fut>(gw: &Gateway, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + EFFECT_BOUND;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("gave up waiting for: {what}\n{}", gw.logs());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The status and (for 200) the `model` the upstream answered, for a non-streaming request.
async fn ask(gw: &Gateway, secret: &str, model: &str) -> (u16, String) {
    let resp = gw.chat(secret, &chat_body(model, "hi", false)).await;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let answered = body["model"].as_str().unwrap_or_default().to_string();
    (status, answered)
}

/// Whether every effect of a version shows: `chat`'s route, `split`'s weights (five picks in a
/// row on the heavy route), which changing key works, and the narrow team's allow-list.
async fn shows(gw: &Gateway, v: &Version) -> bool {
    if ask(gw, STABLE, "chat").await != (200, v.route.to_string()) {
        return false;
    }
    let heavy = if v.left > v.right { "left" } else { "right" };
    for _ in 0..5 {
        if ask(gw, STABLE, "split").await != (200, heavy.to_string()) {
            return false;
        }
    }
    let (gone, kept) = if v.key == OLD { (NEW, OLD) } else { (OLD, NEW) };
    if ask(gw, kept, "chat").await.0 != 200 || ask(gw, gone, "chat").await.0 != 401 {
        return false;
    }
    let narrow_split = if v.narrow_models.contains('*') {
        200
    } else {
        403
    };
    ask(gw, NARROW, "split").await.0 == narrow_split
}

async fn wait_shows(gw: &Gateway, v: &'static Version, what: &str) -> Duration {
    let start = Instant::now();
    wait_for(
        gw,
        what,
        move || async move { shows(gw, v).await.then_some(()) },
    )
    .await;
    start.elapsed()
}

/// `switchyard_config_reloads_total{result}` (0 when absent).
async fn reloads(gw: &Gateway, result: &str) -> f64 {
    let text = gw.metrics().await;
    metric_value(
        &text,
        "switchyard_config_reloads_total",
        &[("result", result)],
    )
    .unwrap_or(0.0)
}

async fn readyz(gw: &Gateway) -> Value {
    gw.client()
        .get(gw.admin_url("/readyz"))
        .send()
        .await
        .expect("GET /readyz")
        .json()
        .await
        .expect("/readyz is JSON")
}

#[derive(Clone, Copy, Debug)]
enum Write {
    InPlace,
    Rename,
    ConfigMap,
}

fn write(gw: &Gateway, how: Write, body: &str) {
    match how {
        Write::InPlace => gw.write_config(body),
        Write::Rename => gw.write_config_atomic(body),
        Write::ConfigMap => gw.write_config_configmap(body),
    }
}

/// A → B → A with one write pattern; every change must show.
async fn changes_take_effect(how: Write) {
    let mock = MockUpstream::start().await;
    let mut builder = Gateway::builder(&config(&mock.base_url(), &A));
    if let Write::ConfigMap = how {
        builder = builder.configmap();
    }
    let gw = builder.start().await;
    assert!(shows(&gw, &A).await, "version A at start\n{}", gw.logs());

    write(&gw, how, &config(&mock.base_url(), &B));
    let to_b = wait_shows(&gw, &B, "version B to take effect").await;
    write(&gw, how, &config(&mock.base_url(), &A));
    let to_a = wait_shows(&gw, &A, "version A to take effect again").await;
    eprintln!("{how:?}: write to effect {to_b:?} (A -> B), {to_a:?} (B -> A)");
    if !matches!(how, Write::InPlace) {
        // An in-place write is not atomic: a reader stalled mid-write could see half a file
        // (and reject it before the next event brings the rest). The other two are atomic.
        assert_eq!(reloads(&gw, "failure").await, 0.0, "{}", gw.logs());
    }
    assert!(reloads(&gw, "success").await >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_take_effect_after_an_in_place_write() {
    changes_take_effect(Write::InPlace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_take_effect_after_a_rename_over_the_file() {
    changes_take_effect(Write::Rename).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_take_effect_after_a_configmap_data_swap() {
    changes_take_effect(Write::ConfigMap).await;
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the config"))
        + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_keeps_the_old_config_until_a_good_one_comes() {
    let mock = MockUpstream::start().await;
    let good_a = config(&mock.base_url(), &A);
    let gw = Gateway::builder(&good_a).start().await;
    let hash_a = readyz(&gw).await["config_hash"].clone();
    let filter = "\n[[content_filters]]\nname = \"f\"\ndeny = [\"(unclosed\"]\n";
    let bad: [(&str, String, &str, Write); 4] = [
        (
            "syntax error",
            good_a.replace("name = \"chat\"", "name = \"chat"),
            "name = \"chat",
            Write::InPlace,
        ),
        (
            "unknown field",
            good_a.replace("name = \"chat\"", "name = \"chat\"\ncolour = \"blue\""),
            "colour",
            Write::Rename,
        ),
        (
            "route to an undefined provider",
            good_a.replacen("provider = \"up\"", "provider = \"nowhere\"", 1),
            "nowhere",
            Write::InPlace,
        ),
        (
            "invalid regex",
            format!("{good_a}{filter}"),
            "(unclosed",
            Write::Rename,
        ),
    ];
    for (what, body, marker, how) in bad {
        let failures = reloads(&gw, "failure").await;
        let line = line_of(&gw.render_config(&body), marker);
        let named = format!("{}:{line}: ", gw.config_path().display());
        write(&gw, how, &body);
        wait_for(
            &gw,
            &format!("{what}: a log line naming {named}"),
            || async {
                let logged = gw
                    .logs()
                    .lines()
                    .any(|l| l.contains("config reload rejected") && l.contains(&named));
                (logged && reloads(&gw, "failure").await > failures).then_some(())
            },
        )
        .await;
        let logs = gw.logs();
        assert_eq!(readyz(&gw).await["config_hash"], hash_a, "{what}");
        assert!(shows(&gw, &A).await, "{what}: A no longer serves\n{logs}");
    }
    assert_eq!(reloads(&gw, "success").await, 0.0);

    gw.write_config_atomic(&config(&mock.base_url(), &B));
    wait_shows(&gw, &B, "the good file after the bad ones").await;
    assert_eq!(reloads(&gw, "success").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_started_before_a_reload_removing_its_model_finishes_intact() {
    let mock = MockUpstream::start().await;
    let gw = Gateway::builder(&config(&mock.base_url(), &A))
        .start()
        .await;
    let resp = gw
        .client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(STABLE)
        .header("x-mock-chunks", "100")
        .header("x-mock-chunk-delay-ms", "100")
        .json(&chat_body("chat", "a long answer please", true))
        .send()
        .await
        .expect("stream request");
    assert_eq!(resp.status(), 200);
    let received = tokio::spawn(async move { resp.bytes().await });
    mock.wait_for_requests(1).await;

    gw.write_config_atomic(&config_without_chat());
    wait_for(&gw, "chat to be gone", || async {
        (ask(&gw, STABLE, "chat").await.0 == 404).then_some(())
    })
    .await;
    assert!(
        !mock.requests()[0].finished,
        "the reload must land while the stream is still running"
    );

    let received = received.await.expect("join").expect("the stream's body");
    let sent = mock
        .wait_until("the stream to finish", |r| r[0].finished)
        .await[0]
        .response_body
        .clone();
    assert_eq!(
        received, sent,
        "the client got other bytes than the vendor sent"
    );
    let text = String::from_utf8_lossy(&received);
    assert_eq!(
        stream_text(&parse_sse_json(&text))
            .split_whitespace()
            .count(),
        100
    );
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
}

/// Errors seen by the load clients (empty when all is well).
type Errors = Arc<Mutex<Vec<String>>>;

/// One request, alternately streamed or not; any answer but a well-formed 200 is an error.
async fn one_request(gw: &Gateway, stream: bool) -> Result<(), String> {
    let resp = gw
        .client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(STABLE)
        .header("x-mock-chunks", "3")
        .json(&chat_body("chat", "steady load", stream))
        .send()
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| format!("body: {e}"))?;
    if status != 200 {
        return Err(format!("status {status}: {text}"));
    }
    let model = if stream {
        if !text.ends_with("data: [DONE]\n\n") {
            return Err(format!("stream without [DONE]: {text}"));
        }
        let events = parse_sse_json(&text);
        if stream_text(&events).split_whitespace().count() != 3 {
            return Err(format!("stream content: {text}"));
        }
        events
            .first()
            .map(|e| e["model"].clone())
            .unwrap_or_default()
    } else {
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("JSON ({e}): {text}"))?;
        if !v["choices"][0]["message"]["content"].is_string() {
            return Err(format!("no content: {text}"));
        }
        v["model"].clone()
    };
    if model != "up-a" && model != "up-b" {
        return Err(format!("model {model}: {text}"));
    }
    Ok(())
}

async fn client_loop(gw: Arc<Gateway>, done: Arc<AtomicBool>, errors: Errors) -> usize {
    let mut sent = 0;
    while !done.load(Ordering::SeqCst) {
        if let Err(e) = one_request(&gw, sent % 2 == 1).await {
            errors.lock().unwrap().push(e);
        }
        sent += 1;
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_reloads_under_load_give_no_error() {
    let mock = MockUpstream::start().await;
    let bodies = [config(&mock.base_url(), &A), config(&mock.base_url(), &A2)];
    let gw = Arc::new(Gateway::builder(&bodies[0]).start().await);
    let hashes = bodies.each_ref().map(|b| sha256_hex(&gw.render_config(b)));

    let done = Arc::new(AtomicBool::new(false));
    let errors: Errors = Arc::default();
    let clients: Vec<_> = (0..4)
        .map(|_| tokio::spawn(client_loop(gw.clone(), done.clone(), errors.clone())))
        .collect();

    let start = Instant::now();
    for i in 1..=100 {
        gw.write_config_atomic(&bodies[i % 2]);
        let want = hashes[i % 2].as_str();
        wait_for(&gw, &format!("reload #{i}"), || async {
            (readyz(&gw).await["config_hash"] == want).then_some(())
        })
        .await;
    }
    let took = start.elapsed();
    done.store(true, Ordering::SeqCst);
    let mut sent = 0;
    for c in clients {
        sent += c.await.expect("client task");
    }
    eprintln!("100 reloads in {took:?}, {sent} requests meanwhile");

    let errors = errors.lock().unwrap().clone();
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(sent >= 100, "only {sent} requests during the reloads");
    assert_eq!(reloads(&gw, "success").await, 100.0, "{}", gw.logs());
    assert_eq!(reloads(&gw, "failure").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_a_listen_change_waits_for_a_restart() {
    let mock = MockUpstream::start().await;
    let mut gw = Gateway::builder(&config(&mock.base_url(), &A))
        .start()
        .await;
    gw.signal(libc::SIGHUP);
    wait_for(&gw, "the SIGHUP reload", || async {
        (reloads(&gw, "success").await == 1.0).then_some(())
    })
    .await;
    assert!(gw.logs().contains("trigger=Signal"), "{}", gw.logs());
    assert!(gw.is_running(), "SIGHUP must not end the process");
    assert!(shows(&gw, &A).await);

    let new_listen = closed_port_addr();
    let old_line = format!("listen = \"{ANY_PORT}\"");
    let text = gw.render_config(&config(&mock.base_url(), &B));
    assert!(text.contains(&old_line), "{text}");
    let text = text.replacen(&old_line, &format!("listen = \"{new_listen}\""), 1);
    std::fs::write(gw.config_path(), text).expect("write config");
    wait_shows(&gw, &B, "B, on the old address").await;
    let logs = gw.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("server.listen") && l.contains("requires a restart")),
        "{logs}"
    );
    assert!(
        TcpStream::connect_timeout(&new_listen, Duration::from_secs(1)).is_err(),
        "nothing may listen on the new address before a restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_and_metrics_show_the_new_hash() {
    let mock = MockUpstream::start().await;
    let body_a = config(&mock.base_url(), &A);
    let gw = Gateway::builder(&body_a).start().await;
    let hash_a = sha256_hex(&gw.render_config(&body_a));
    let ready = readyz(&gw).await;
    assert_eq!(ready["config_hash"], hash_a.as_str());
    assert_eq!(ready["config_file"], gw.config_path().display().to_string());
    let started_at = ready["config_loaded_at"]
        .as_u64()
        .expect("config_loaded_at");
    let text = gw.metrics().await;
    let info = |t: &str, h: &str| metric_value(t, "switchyard_config_info", &[("hash", h)]);
    assert_eq!(info(&text, &hash_a), Some(1.0), "{text}");

    let body_b = config(&mock.base_url(), &B);
    let hash_b = sha256_hex(&gw.render_config(&body_b));
    gw.write_config_atomic(&body_b);
    let ready = wait_for(&gw, "/readyz to show the new hash", || async {
        let r = readyz(&gw).await;
        (r["config_hash"] == hash_b.as_str()).then_some(r)
    })
    .await;
    let loaded_at = ready["config_loaded_at"]
        .as_u64()
        .expect("config_loaded_at");
    assert!(loaded_at >= started_at);
    let text = gw.metrics().await;
    assert_eq!(info(&text, &hash_b), Some(1.0), "{text}");
    assert_eq!(
        info(&text, &hash_a),
        None,
        "only the running hash has a series"
    );
    let last = metric_value(
        &text,
        "switchyard_config_last_reload_success_timestamp_seconds",
        &[],
    );
    assert_eq!(last, Some(loaded_at as f64));
    assert_eq!(
        metric_value(
            &text,
            "switchyard_config_reloads_total",
            &[("result", "success")]
        ),
        Some(1.0)
    );
}

/// An unchanged provider keeps its pooled upstream connections across a reload: the vendor
/// sees the same client connection before and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_provider_keeps_its_pooled_connection() {
    let mock = MockUpstream::start().await;
    let config = |extra_key: &str| {
        format!(
            "[[providers]]\nname = \"up\"\nkind = \"openai\"\nbase_url = \"{}\"\n\n\
             [[models]]\nname = \"m\"\n  [[models.routes]]\n  provider = \"up\"\n  model = \"u\"\n\n\
             [[teams]]\nname = \"t\"\n\n\
             [[keys]]\nid = \"k\"\nteam = \"t\"\nsha256 = \"{DEMO_SHA256}\"\n{extra_key}",
            mock.base_url()
        )
    };
    let gw = Gateway::start(&config("")).await;
    let peer = |_: ()| mock.last_request().and_then(|r| r.peer);
    assert_eq!(
        gw.chat(DEMO_SECRET, &chat_body("m", "one", false))
            .await
            .status(),
        200
    );
    let first = peer(());
    assert_eq!(
        gw.chat(DEMO_SECRET, &chat_body("m", "two", false))
            .await
            .status(),
        200
    );
    assert_eq!(peer(()), first, "the gateway pools upstream connections");

    // A reload that adds a key and leaves the provider as it was.
    let added = format!(
        "\n[[keys]]\nid = \"k2\"\nteam = \"t\"\nsha256 = \"{}\"\n",
        sha256_hex(NEW)
    );
    gw.write_config_atomic(&config(&added));
    let deadline = Instant::now() + EFFECT_BOUND;
    while gw
        .chat(NEW, &chat_body("m", "new key", false))
        .await
        .status()
        != 200
    {
        assert!(Instant::now() < deadline, "the reload never took effect");
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(
        gw.chat(DEMO_SECRET, &chat_body("m", "three", false))
            .await
            .status(),
        200
    );
    assert_eq!(
        peer(()),
        first,
        "the reload dropped the provider's pooled connection"
    );
}
