//! Graceful stop and upgrade.
//!
//! - SIGTERM during a running stream lets the stream finish byte for byte, refuses new
//!   connections from the moment the drain starts, and then exits 0.
//! - The drain is bounded (`SWITCHYARD_DRAIN_SECONDS`): a stream longer than the bound is cut
//!   and the process still exits 0, on time.
//! - SIGQUIT with a new process started with `serve --upgrade` hands the listening sockets
//!   over: not one request is refused, the old process's stream finishes, and the new process
//!   serves on.

use crate::support;

use std::io::ErrorKind;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use support::*;

const CHUNKS: usize = 40;
const CHUNK_DELAY_MS: u64 = 50;

fn config(base_url: &str) -> String {
    ConfigBody::new()
        .provider("up", "openai", base_url, "")
        .model("slow", &[("up", "upstream-slow")])
        .team("ops", "")
        .demo_key("ops", "ops")
        .build()
}

/// What the client has received so far, and whether the body ended (and how).
#[derive(Default)]
struct Received {
    bytes: Vec<u8>,
    done: Option<Result<(), String>>,
}

type Shared = Arc<Mutex<Received>>;

/// Starts a stream of `chunks` content chunks, `delay_ms` apart, and a task that collects it.
async fn start_stream(
    gw: &Gateway,
    chunks: usize,
    delay_ms: u64,
) -> (Shared, tokio::task::JoinHandle<()>) {
    let resp = gw
        .client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET)
        .header("x-mock-chunks", chunks.to_string())
        .header("x-mock-chunk-delay-ms", delay_ms.to_string())
        .json(&chat_body("slow", "tell me a long story", true))
        .send()
        .await
        .expect("send the stream request");
    assert_eq!(resp.status().as_u16(), 200, "the stream's status");
    let received: Shared = Arc::default();
    let reader = {
        let received = Arc::clone(&received);
        tokio::spawn(async move {
            let mut body = resp.bytes_stream();
            while let Some(item) = body.next().await {
                match item {
                    Ok(chunk) => received.lock().unwrap().bytes.extend_from_slice(&chunk),
                    Err(e) => {
                        received.lock().unwrap().done = Some(Err(e.to_string()));
                        return;
                    }
                }
            }
            received.lock().unwrap().done = Some(Ok(()));
        })
    };
    (received, reader)
}

/// Waits until the client has received `needle` (at most 10 s).
async fn wait_for_text(received: &Shared, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if String::from_utf8_lossy(&received.lock().unwrap().bytes).contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the stream never got to {needle:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_a_running_stream_refuses_new_connections_and_exits_0() {
    let mock = MockUpstream::start().await;
    let mut gw = Gateway::builder(&config(&mock.base_url())).start().await;

    // A stream of 40 chunks, 50 ms apart: about 2 s.
    let (received, reader) = start_stream(&gw, CHUNKS, CHUNK_DELAY_MS).await;

    // Mid-stream: a few content chunks have arrived, most are still to come.
    wait_for_text(&received, "tok3 ").await;
    gw.signal(libc::SIGTERM);
    let signalled = Instant::now();

    // New connections: refused once the drain has started, while the old stream still runs.
    let refused_at = loop {
        match tokio::net::TcpStream::connect(gw.api_addr()).await {
            // A connection caught in the backlog of the closing listener is reset: refused too.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
                ) =>
            {
                break Instant::now()
            }
            Err(e) => panic!("connect to the API port after SIGTERM: unexpected error {e}"),
            Ok(conn) => drop(conn),
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(5),
            "the API port still accepts connections 5 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    {
        let r = received.lock().unwrap();
        assert!(
            r.done.is_none(),
            "the stream ended before new connections were refused: the drain was not observed \
             while a stream ran ({:?} after SIGTERM)",
            refused_at - signalled
        );
    }
    // A request started after SIGTERM is not served: it cannot even connect, and the vendor
    // never sees it.
    let late = gw
        .client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET)
        .json(&chat_body("slow", "too late", false))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    match late {
        Err(e) => assert!(e.is_connect(), "a request after SIGTERM: {e}"),
        Ok(r) => panic!(
            "a request sent after SIGTERM was answered with {}",
            r.status()
        ),
    }

    // The running stream completes, byte-identical to what the vendor sent.
    tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the stream did not finish within 30 s of SIGTERM")
        .expect("reader task");
    {
        let r = received.lock().unwrap();
        assert_eq!(
            r.done,
            Some(Ok(())),
            "the stream did not end cleanly after SIGTERM"
        );
        let sent = mock.requests();
        assert_eq!(
            sent.len(),
            1,
            "the vendor saw exactly the one stream request"
        );
        assert!(sent[0].finished, "the vendor finished its stream");
        let client_text = String::from_utf8_lossy(&r.bytes).into_owned();
        assert_eq!(
            r.bytes.as_slice(),
            &sent[0].response_body[..],
            "the client's bytes differ from the vendor's"
        );
        assert!(
            client_text.ends_with("data: [DONE]\n\n"),
            "the stream ends with [DONE]: {client_text:?}"
        );
        let contents = stream_text(&parse_sse_json(&client_text));
        assert_eq!(
            contents,
            (0..CHUNKS).map(|i| format!("tok{i} ")).collect::<String>()
        );
    }

    // Then the process exits, with status 0.
    let status = gw
        .wait_exit(Duration::from_secs(60))
        .await
        .expect("the gateway did not exit within 60 s of SIGTERM");
    assert!(
        status.success(),
        "exit status after SIGTERM: {status}\n{}",
        gw.logs()
    );
    eprintln!(
        "SIGTERM → refused after {:?}, exit after {:?}",
        refused_at - signalled,
        signalled.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_drain_is_bounded_a_longer_stream_is_cut_and_the_process_still_exits_0() {
    let mock = MockUpstream::start().await;
    let mut gw = Gateway::builder(&config(&mock.base_url()))
        .env("SWITCHYARD_DRAIN_SECONDS", "1")
        .start()
        .await;
    // 100 chunks, 100 ms apart: 10 s, far beyond the 1 s bound.
    let (received, reader) = start_stream(&gw, 100, 100).await;
    wait_for_text(&received, "tok1 ").await;
    gw.signal(libc::SIGTERM);
    let signalled = Instant::now();

    let status = gw
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("the gateway did not exit within 30 s of SIGTERM");
    let took = signalled.elapsed();
    assert!(status.success(), "exit status: {status}\n{}", gw.logs());
    // The bound (1 s) plus pingora's runtime stop (at most 5 s), with room for a slow machine.
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(9),
        "exited {took:?} after SIGTERM with a 1 s drain bound"
    );
    tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the client never saw the cut stream end")
        .expect("reader task");
    let r = received.lock().unwrap();
    let text = String::from_utf8_lossy(&r.bytes);
    assert!(
        !text.contains("[DONE]") && !text.contains("tok99 "),
        "a 10 s stream completed within a 1 s drain: {text:?}"
    );
}

/// Kills and reaps a child process on drop.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigquit_hands_the_sockets_to_a_process_started_with_upgrade() {
    let mock = MockUpstream::start().await;
    let mut old = Gateway::builder(&config(&mock.base_url())).start().await;

    // A 6 s stream on the old process: it spans the handover (after SIGQUIT the old process
    // keeps accepting for pingora's 5 s, then drains).
    let (received, reader) = start_stream(&old, 60, 100).await;
    wait_for_text(&received, "tok1 ").await;

    // Steady traffic on new connections all along: every request must be answered.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let stop = Arc::clone(&stop);
        let url = old.url("/v1/chat/completions");
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .no_proxy()
                .http1_only()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let (mut ok, mut failures) = (0usize, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let resp = client
                    .post(&url)
                    .bearer_auth(DEMO_SECRET)
                    .json(&chat_body("slow", "hello", false))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().is_success() => ok += 1,
                    Ok(r) => failures.push(format!("status {}", r.status())),
                    Err(e) => failures.push(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (ok, failures)
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The documented procedure: start the new binary with --upgrade, then SIGQUIT the old one.
    // The new process is given the ports the old one bound (its config says port 0).
    let new_config = old.dir().join("upgrade.toml");
    std::fs::write(&new_config, old.config_with_bound_addresses()).unwrap();
    let log_path = old.dir().join("new.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let new = Command::new(switchyard_bin())
        .args(["serve", "-c"])
        .arg(&new_config)
        .arg("--upgrade")
        .current_dir(old.dir())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .env("RUST_LOG", "info")
        .spawn()
        .expect("spawn the new switchyard");
    let mut new = Reaper(new);
    old.signal(libc::SIGQUIT);
    let signalled = Instant::now();
    let new_logs = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // The old process hands over, finishes its stream, and exits 0.
    let status = old
        .wait_exit(Duration::from_secs(40))
        .await
        .expect("the old process did not exit within 40 s of SIGQUIT");
    assert!(
        status.success(),
        "old process: {status}\n{}\nnew process:\n{}",
        old.logs(),
        new_logs()
    );
    tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the old process's stream did not end")
        .expect("reader task");
    {
        let r = received.lock().unwrap();
        assert_eq!(r.done, Some(Ok(())), "the old process's stream was cut");
        let stream_req = mock
            .requests()
            .into_iter()
            .find(|rec| rec.stream)
            .expect("the vendor saw the stream");
        assert_eq!(
            r.bytes.as_slice(),
            &stream_req.response_body[..],
            "the stream's bytes differ from the vendor's"
        );
        assert!(String::from_utf8_lossy(&r.bytes).ends_with("data: [DONE]\n\n"));
    }

    // Only the new process is left: it still answers, on the same ports.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, failures) = traffic.await.expect("traffic task");
    assert!(
        failures.is_empty(),
        "{} of {} requests failed during the upgrade: {:?}\nnew process:\n{}",
        failures.len(),
        ok + failures.len(),
        &failures[..failures.len().min(5)],
        new_logs()
    );
    assert!(ok >= 20, "only {ok} requests during the upgrade");
    assert!(
        new.0.try_wait().unwrap().is_none(),
        "the new process exited:\n{}",
        new_logs()
    );
    let ready = client()
        .get(old.admin_url("/readyz"))
        .send()
        .await
        .expect("the new process's /readyz");
    assert_eq!(ready.status().as_u16(), 200);
    let answer = old
        .chat(DEMO_SECRET, &chat_body("slow", "still there?", false))
        .await;
    assert_eq!(answer.status().as_u16(), 200);

    // The new process stops as cleanly.
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(new.0.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = new.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the new process did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "new process: {status}\n{}", new_logs());
    eprintln!(
        "upgrade: old exited {:?} after SIGQUIT; {ok} requests, none failed",
        signalled.elapsed()
    );
}
