//! The Redis backend over TLS with a password: a real `redis-server` serving `--tls-port`
//! with a certificate of a test CA and `--requirepass`, two gateways sharing limits through it
//! (`rediss://`, `redis_ca_file`, `redis_password_env`), and a wrong password handled as an
//! outage (served, limited per instance, never logged).

use crate::support;

use std::time::{Duration, Instant};

use support::{chat_body, metric_value, Gateway, RedisServer, TestCa, DEMO_SECRET, DEMO_SHA256};

const PASSWORD: &str = "redis-pw-9c2e41d7";
const RPM: usize = 5;

fn config(url: &str, ca: &std::path::Path) -> String {
    format!(
        r#"
[state]
backend = "redis"
redis_url = "{url}"
redis_password_env = "SY_TEST_REDIS_PASSWORD"
redis_ca_file = "{}"
redis_timeout_ms = 1000

[[providers]]
name = "builtin"
kind = "mock"

[[models]]
name = "m"
  [[models.routes]]
  provider = "builtin"
  model = "mock-1"

[[teams]]
name = "t"

[[keys]]
id = "demo"
team = "t"
sha256 = "{DEMO_SHA256}"
rpm = {RPM}
"#,
        ca.display()
    )
}

/// A gateway given `password` for Redis, logging at `trace` (a password must not appear even
/// there).
async fn start(config: &str, password: &str) -> Gateway {
    Gateway::builder(config)
        .env("SY_TEST_REDIS_PASSWORD", password)
        .env("RUST_LOG", "trace")
        .start()
        .await
}

async fn status(gw: &Gateway) -> u16 {
    gw.chat(DEMO_SECRET, &chat_body("m", "hi", false))
        .await
        .status()
        .as_u16()
}

/// A `redis-server` with TLS (a leaf of `ca`) and [`PASSWORD`].
fn redis_with_tls(ca: &TestCa) -> RedisServer {
    let leaf = ca.leaf_for_localhost();
    RedisServer::start_tls(&leaf.cert_pem, &leaf.key_pem, ca.ca_pem(), PASSWORD)
}

async fn backend_up(gw: &Gateway) -> Option<f64> {
    metric_value(&gw.metrics().await, "switchyard_limits_backend_up", &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_limits_through_redis_over_tls_with_a_password() {
    let ca = TestCa::new();
    let redis = redis_with_tls(&ca);
    let config = config(&redis.tls_url(), ca.ca_pem_path());
    let one = start(&config, PASSWORD).await;
    let two = start(&config, PASSWORD).await;

    // Requests one at a time, alternating: the key's limit holds across both instances.
    let started = Instant::now();
    let mut statuses = Vec::new();
    for i in 0..2 * RPM {
        statuses.push(status(if i % 2 == 0 { &one } else { &two }).await);
    }
    let elapsed = started.elapsed();
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    // GCRA: the burst of RPM, plus one more for each 60/RPM s the run took.
    let refills = (elapsed.as_secs_f64() / (60.0 / RPM as f64)).floor() as usize;
    assert!(
        (RPM..=RPM + refills).contains(&ok),
        "{statuses:?} in {elapsed:?}\n{}\n{}",
        one.logs(),
        two.logs()
    );
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 429),
        "{statuses:?}"
    );
    assert_eq!(statuses[..RPM], [200; RPM], "{statuses:?}");
    for gw in [&one, &two] {
        assert_eq!(backend_up(gw).await, Some(1.0), "{}", gw.logs());
        assert!(!gw.logs().contains(PASSWORD), "{}", gw.logs());
    }
    // The counters are in this Redis (read on its password-protected plain port).
    assert!(
        !redis.keys("switchyard:*").is_empty(),
        "no switchyard keys in Redis"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_redis_password_is_an_outage_not_a_failure() {
    let ca = TestCa::new();
    let redis = redis_with_tls(&ca);
    let gw = start(
        &config(&redis.tls_url(), ca.ca_pem_path()),
        "not-the-password",
    )
    .await;
    // Served, limited by this instance alone; the gauge says Redis is not answering.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert_eq!(status(&gw).await, 200, "{}", gw.logs());
        if backend_up(&gw).await == Some(0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never marked down\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = gw.logs();
    assert!(logs.contains("Password authentication failed"), "{logs}");
    assert!(!logs.contains("not-the-password"), "{logs}");
    assert!(redis.keys("switchyard:*").is_empty());
}
