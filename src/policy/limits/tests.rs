//! The limiter through its public API, on the memory backend and a manual clock.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::config::{self, Config};

/// 2026-03-10T12:00:00Z.
const NOON: u64 = 1_773_144_000;
/// Seconds in a day.
const DAY: u64 = 86_400;

fn config(text: &str) -> Config {
    config::load_str(text, Path::new("test.toml")).expect("valid config")
}

/// Team `t` and keys `a` and `b`, with the given extra lines for the team and for key `a`.
fn two_keys(team: &str, key_a: &str) -> Config {
    config(&format!(
        "[[teams]]\nname = \"t\"\n{team}\n\
         [[keys]]\nid = \"a\"\nteam = \"t\"\nsha256 = \"{}\"\n{key_a}\n\
         [[keys]]\nid = \"b\"\nteam = \"t\"\nsha256 = \"{}\"\n",
        "a".repeat(64),
        "b".repeat(64)
    ))
}

struct Rig {
    limiter: Limiter,
    clock: Clock,
    config: Config,
    metrics: Arc<Metrics>,
    _dir: tempfile::TempDir,
}

impl Rig {
    fn new(config: Config) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        Rig::in_dir(config, dir, Duration::from_secs(NOON))
    }

    fn in_dir(config: Config, dir: tempfile::TempDir, unix: Duration) -> Rig {
        let clock = Clock::manual(unix);
        let metrics = Arc::new(Metrics::new());
        let state = config::State::Memory {
            dir: dir.path().to_path_buf(),
        };
        let limiter = Limiter::with_clock(&state, metrics.clone(), clock.clone()).unwrap();
        limiter.sync(&config);
        Rig {
            limiter,
            clock,
            config,
            metrics,
            _dir: dir,
        }
    }

    fn key(&self, id: &str) -> (&config::Key, &config::Team) {
        let k = self.config.keys.iter().find(|k| k.id == id).unwrap();
        (k, &self.config.teams[k.team])
    }

    async fn admit(&self, id: &str, tokens: u64) -> Result<Admission, Rejection> {
        let (k, t) = self.key(id);
        self.limiter
            .admit(
                k,
                t,
                Demand {
                    tokens,
                    ..Demand::default()
                },
            )
            .await
    }

    async fn admit_usd(&self, id: &str, tokens: u64, usd: f64) -> Result<Admission, Rejection> {
        let (k, t) = self.key(id);
        self.limiter
            .admit(
                k,
                t,
                Demand {
                    tokens,
                    usd,
                    ..Demand::default()
                },
            )
            .await
    }

    async fn admit_demand(&self, id: &str, demand: Demand) -> Result<Admission, Rejection> {
        let (k, t) = self.key(id);
        self.limiter.admit(k, t, demand).await
    }

    /// A request of key `a` as end user `user`.
    async fn admit_user(&self, user: Option<&str>, tokens: u64) -> Result<Admission, Rejection> {
        self.admit_user_with(user, None, tokens).await
    }

    /// A request of key `a` as end user `user` whose credential names `limits`.
    async fn admit_user_with(
        &self,
        user: Option<&str>,
        limits: Option<&config::Limits>,
        tokens: u64,
    ) -> Result<Admission, Rejection> {
        let (k, t) = self.key("a");
        let demand = Demand {
            tokens,
            ..Demand::default()
        };
        let user = user.map(|name| EndUser { name, limits });
        self.limiter.admit_for(k, t, user, demand).await
    }

    async fn peek(&self, id: &str) -> RateHeaders {
        let (k, t) = self.key(id);
        self.limiter.peek_headers(k, t).await
    }

    fn rejected(&self, id: &str, limit: &str) -> u64 {
        self.metrics
            .rate_limited
            .with_label_values(&["t", id, limit])
            .get()
    }
}

fn spent(tokens: u64) -> Option<Spent> {
    Some(Spent { tokens, usd: 0.0 })
}

#[tokio::test]
async fn exactly_the_limit_passes_then_one_per_refill() {
    let rig = Rig::new(two_keys("", "rpm = 30"));
    let mut held = Vec::new();
    for _ in 0..30 {
        held.push(rig.admit("a", 1).await.expect("within the burst"));
    }
    let r = rig.admit("a", 1).await.unwrap_err();
    assert_eq!(r.limit, LimitKind::Rpm);
    assert_eq!(r.scope, Scope::Key);
    assert_eq!(r.retry_after, Duration::from_secs(2), "60 s / 30");
    assert_eq!(r.retry_after_secs(), 2);
    assert_eq!(rig.rejected("a", "rpm"), 1);
    rig.clock.advance(Duration::from_secs(2));
    held.push(rig.admit("a", 1).await.expect("one refilled"));
    assert!(rig.admit("a", 1).await.is_err());
    for a in held {
        rig.limiter.settle(a, spent(1)).await;
    }
    assert!(
        rig.admit("a", 1).await.is_err(),
        "a settled request is not given back"
    );
}

#[tokio::test]
async fn one_keys_exhaustion_does_not_touch_another() {
    let rig = Rig::new(two_keys("", "rpm = 2"));
    rig.admit("a", 1).await.unwrap();
    rig.admit("a", 1).await.unwrap();
    assert!(rig.admit("a", 1).await.is_err());
    for _ in 0..50 {
        rig.admit("b", 1).await.expect("b has no limit of its own");
    }
}

#[tokio::test]
async fn a_team_limit_binds_across_its_keys_and_the_tighter_wins() {
    let rig = Rig::new(two_keys("rpm = 5", "rpm = 3"));
    for _ in 0..3 {
        rig.admit("a", 1).await.unwrap();
    }
    let r = rig.admit("a", 1).await.unwrap_err();
    assert_eq!(
        (r.scope, r.limit),
        (Scope::Key, LimitKind::Rpm),
        "the key's 3 is tighter"
    );
    rig.admit("b", 1).await.unwrap();
    rig.admit("b", 1).await.unwrap();
    let r = rig.admit("b", 1).await.unwrap_err();
    assert_eq!(
        (r.scope, r.name.as_str()),
        (Scope::Team, "t"),
        "the team's 5 are used"
    );
    assert!(r
        .to_error()
        .to_string()
        .contains("team `t` allows 5 requests per minute"));
}

#[tokio::test]
async fn a_rejected_request_consumes_nothing() {
    // The team's budget refuses: the key's rpm, tpm, concurrency slot and budget, which all
    // passed their checks, must be as before.
    let rig = Rig::new(two_keys(
        "tokens_per_day = 400",
        "rpm = 2\ntpm = 1000\nmax_concurrent = 1\ntokens_per_day = 1000",
    ));
    let before = rig.peek("a").await;
    for _ in 0..5 {
        let r = rig.admit("a", 500).await.unwrap_err();
        assert_eq!((r.scope, r.limit), (Scope::Team, LimitKind::TokensPerDay));
    }
    assert_eq!(rig.peek("a").await, before);
    assert_eq!(rig.rejected("a", "budget"), 5);
    // Both of the key's 2 requests and its one concurrency slot are still there.
    let first = rig.admit("a", 100).await.expect("nothing was taken");
    rig.limiter.settle(first, spent(100)).await;
    let second = rig.admit("a", 100).await.expect("second request");
    rig.limiter.settle(second, spent(100)).await;
    // The team's budget lost only what was spent: 400 − 200.
    rig.admit("b", 200).await.expect("200 left");
    assert!(rig.admit("b", 1).await.is_err());
}

#[tokio::test]
async fn reservation_settle_and_refund_arithmetic() {
    let rig = Rig::new(two_keys("", "tpm = 1000"));
    let a = rig.admit("a", 600).await.unwrap();
    assert_eq!(a.headers().remaining_tokens, Some(400));
    assert_eq!(a.reserved_tokens(), 600);
    // Used 100 of 600: 500 come back.
    rig.limiter.settle(a, spent(100)).await;
    assert_eq!(rig.peek("a").await.remaining_tokens, Some(900));
    // Used 700 of 300: 400 more are taken (debt), never refused.
    let a = rig.admit("a", 300).await.unwrap();
    assert_eq!(a.headers().remaining_tokens, Some(600));
    rig.limiter.settle(a, spent(700)).await;
    assert_eq!(rig.peek("a").await.remaining_tokens, Some(200));
    // Refund everything: as if the request never came.
    let a = rig.admit("a", 200).await.unwrap();
    assert_eq!(a.headers().remaining_tokens, Some(0));
    rig.limiter.settle(a, None).await;
    assert_eq!(rig.peek("a").await.remaining_tokens, Some(200));
    // A dropped, unsettled admission counts as having used what it reserved.
    let a = rig.admit("a", 150).await.unwrap();
    drop(a);
    assert_eq!(rig.peek("a").await.remaining_tokens, Some(50));
    // Refills never overfill: a minute later the bucket is full, not more.
    rig.clock.advance(Duration::from_secs(120));
    let h = rig.peek("a").await;
    assert_eq!(
        (h.limit_tokens, h.remaining_tokens),
        (Some(1000), Some(1000))
    );
    assert_eq!(h.reset_tokens, Some(Duration::ZERO));
}

#[tokio::test]
async fn refunds_give_back_the_request_and_concurrency_slots() {
    let rig = Rig::new(two_keys("max_concurrent = 2", "rpm = 1"));
    let a = rig.admit("a", 1).await.unwrap();
    assert_eq!(rig.admit("a", 1).await.unwrap_err().limit, LimitKind::Rpm);
    rig.limiter.settle(a, None).await;
    let a = rig
        .admit("a", 1)
        .await
        .expect("the refunded request came back");
    let b = rig.admit("b", 1).await.unwrap();
    let r = rig.admit("b", 1).await.unwrap_err();
    assert_eq!((r.scope, r.limit), (Scope::Team, LimitKind::Concurrency));
    assert_eq!(r.retry_after_secs(), 1);
    assert_eq!(r.limit_label(), "concurrency");
    rig.limiter.settle(b, spent(1)).await;
    let b = rig.admit("b", 1).await.expect("a slot was released");
    rig.limiter.settle(a, spent(1)).await;
    rig.limiter.settle(b, spent(1)).await;
}

#[tokio::test]
async fn a_day_budget_is_spent_then_renews_at_midnight_utc() {
    let rig = Rig::new(two_keys("tokens_per_day = 1000", ""));
    let a = rig.admit("a", 600).await.unwrap();
    let r = rig.admit("b", 500).await.unwrap_err();
    assert_eq!(
        r.limit,
        LimitKind::TokensPerDay,
        "600 reserved + 500 > 1000"
    );
    assert_eq!(
        r.retry_after,
        Duration::from_secs(12 * 3600),
        "noon to midnight"
    );
    let e = r.to_error();
    assert_eq!(e.reason(), "quota_exceeded");
    assert_eq!(e.retry_after(), Some(12 * 3600));
    assert_eq!(rig.rejected("b", "budget"), 1);
    rig.limiter.settle(a, spent(900)).await;
    rig.admit("b", 100).await.expect("900 spent, 100 left");
    assert_eq!(
        rig.admit("b", 1).await.unwrap_err().limit,
        LimitKind::TokensPerDay
    );
    // One second before midnight: still spent. At midnight: a new day.
    rig.clock
        .set_unix(Duration::from_secs(NOON + 12 * 3600 - 1));
    assert!(rig.admit("b", 1).await.is_err());
    rig.clock.advance(Duration::from_secs(1));
    rig.admit("b", 1000).await.expect("a new day");
}

/// An agent's `max_tokens = 128000` against 300 tokens left: admitted when its likely cost
/// (prompt + the default output) fits, reserving all that is left; the next request is refused
/// until it settles; the budget ends over by at most that request's real usage.
#[tokio::test]
async fn a_large_max_tokens_reserves_what_the_budget_has_left() {
    let rig = Rig::new(two_keys("tokens_per_day = 1000", ""));
    let a = rig.admit("a", 700).await.unwrap();
    rig.limiter.settle(a, spent(700)).await;
    let agent = Demand {
        tokens: 100 + 128_000,
        floor_tokens: 100 + 100,
        ..Demand::default()
    };
    let big = rig
        .admit_demand("a", agent)
        .await
        .expect("200 likely ≤ 300 left");
    let r = rig.admit_demand("b", agent).await.unwrap_err();
    assert_eq!(
        r.limit,
        LimitKind::TokensPerDay,
        "the 300 left are reserved"
    );
    rig.limiter.settle(big, spent(450)).await;
    // Spent 1150: over by 150, less than the one request's 450.
    assert!(rig.admit("b", 1).await.is_err());
    // Without room for the likely cost, it is refused, as is a demand of a floor over what is left.
    let rig = Rig::new(two_keys("tokens_per_day = 1000", ""));
    let a = rig.admit("a", 850).await.unwrap();
    rig.limiter.settle(a, spent(850)).await;
    assert!(
        rig.admit_demand("a", agent).await.is_err(),
        "200 > 150 left"
    );
    let whole = Demand {
        tokens: 200,
        ..Demand::default()
    };
    assert!(
        rig.admit_demand("a", whole).await.is_err(),
        "no floor: the whole demand"
    );
}

/// Money works alike: the floor in USD.
#[tokio::test]
async fn a_large_max_tokens_in_dollars() {
    let rig = Rig::new(two_keys("", "usd_per_month = 1.0"));
    let a = rig.admit_usd("a", 10, 0.9).await.unwrap();
    rig.limiter
        .settle(
            a,
            Some(Spent {
                tokens: 10,
                usd: 0.9,
            }),
        )
        .await;
    let agent = Demand {
        tokens: 128_100,
        usd: 1.92,
        floor_tokens: 1_100,
        floor_usd: 0.015,
    };
    let big = rig
        .admit_demand("a", agent)
        .await
        .expect("0.015 ≤ 0.1 left");
    assert!(rig.admit_usd("a", 1, 0.001).await.is_err(), "0.1 reserved");
    rig.limiter
        .settle(
            big,
            Some(Spent {
                tokens: 2_000,
                usd: 0.03,
            }),
        )
        .await;
    rig.admit_usd("a", 1, 0.07)
        .await
        .expect("0.07 left once settled");
}

#[tokio::test]
async fn a_request_across_midnight_is_counted_in_the_day_it_ends() {
    let rig = Rig::new(two_keys("tokens_per_day = 1000", ""));
    rig.clock
        .set_unix(Duration::from_secs(NOON + 12 * 3600 - 10));
    let a = rig.admit("a", 800).await.unwrap();
    rig.clock.advance(Duration::from_secs(20));
    rig.limiter.settle(a, spent(300)).await;
    rig.admit("b", 700).await.expect("300 spent today");
    assert!(rig.admit("b", 1).await.is_err());
}

#[tokio::test]
async fn a_month_budget_in_dollars() {
    let rig = Rig::new(two_keys("", "usd_per_month = 1.0"));
    let a = rig.admit_usd("a", 10, 0.75).await.unwrap();
    let r = rig.admit_usd("a", 10, 0.5).await.unwrap_err();
    assert_eq!(r.limit, LimitKind::UsdPerMonth);
    // 2026-03-10 noon to 2026-04-01 midnight: 21.5 days.
    assert_eq!(r.retry_after, Duration::from_secs(21 * DAY + 12 * 3600));
    assert!(r.to_error().to_string().contains("$1.00"));
    rig.admit_usd("a", 10, 0.0)
        .await
        .expect("a free model costs nothing here");
    rig.limiter
        .settle(
            a,
            Some(Spent {
                tokens: 10,
                usd: 0.25,
            }),
        )
        .await;
    rig.admit_usd("a", 10, 0.75).await.expect("0.25 spent");
    rig.clock.set_unix(Duration::from_secs(NOON + 22 * DAY));
    rig.admit_usd("a", 10, 1.0).await.expect("April");
}

#[tokio::test]
async fn concurrent_streams_end_within_one_reservation_of_the_budget() {
    // 40 streams of up to 300 tokens against 5000 a day, each using all 300 and more.
    let rig = Arc::new(Rig::new(two_keys("tokens_per_day = 5000", "")));
    let mut tasks = Vec::new();
    for i in 0..40u64 {
        let rig = rig.clone();
        tasks.push(tokio::spawn(async move {
            let id = if i % 2 == 0 { "a" } else { "b" };
            match rig.admit(id, 300).await {
                Ok(a) => {
                    tokio::task::yield_now().await;
                    rig.limiter.settle(a, spent(300 + i % 3)).await;
                    1
                }
                Err(_) => 0,
            }
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += t.await.unwrap();
    }
    assert_eq!(admitted, 16, "5000 / 300");
    let day = rig.limiter.inner.memory.budgets();
    let team = day
        .iter()
        .find(|(s, n, ..)| *s == Scope::Team && n == "t")
        .unwrap();
    assert!(team.2.spent <= 5000 + 300, "spent {}", team.2.spent);
    assert_eq!(team.2.reserved, 0);
}

#[tokio::test]
async fn headers_show_the_tighter_of_key_and_team() {
    let rig = Rig::new(two_keys("rpm = 100\ntpm = 500", "rpm = 10\ntpm = 5000"));
    let a = rig.admit("a", 100).await.unwrap();
    let h = a.headers().clone();
    assert_eq!(
        (h.limit_requests, h.remaining_requests),
        (Some(10), Some(9)),
        "the key's requests"
    );
    assert_eq!(
        (h.limit_tokens, h.remaining_tokens),
        (Some(500), Some(400)),
        "the team's tokens"
    );
    assert_eq!(h.reset_requests, Some(Duration::from_secs(6)));
    let none = Rig::new(two_keys("", ""));
    assert_eq!(none.peek("a").await, RateHeaders::default());
    assert!(none.peek("a").await.pairs().is_empty());
}

#[test]
fn reset_durations_are_written_like_openai() {
    let f = |ms: u64| format_reset(Duration::from_millis(ms));
    assert_eq!(f(0), "0s");
    assert_eq!(f(500), "0.5s");
    assert_eq!(f(1000), "1s");
    assert_eq!(f(1250), "1.25s");
    assert_eq!(f(59_999), "59.999s");
    assert_eq!(f(360_000), "6m0s");
    assert_eq!(f(90_500), "1m30.5s");
    assert_eq!(f(3_600_000), "1h0m0s");
    assert_eq!(
        format_reset(Duration::from_nanos(1)),
        "0.001s",
        "rounded up"
    );
}

#[test]
fn headers_are_applied_to_a_response() {
    let h = RateHeaders {
        limit_requests: Some(60),
        remaining_requests: Some(59),
        reset_requests: Some(Duration::from_secs(1)),
        ..RateHeaders::default()
    };
    let mut resp = pingora::http::ResponseHeader::build(200, None).unwrap();
    h.apply(&mut resp);
    let get = |n: &str| resp.headers.get(n).map(|v| v.to_str().unwrap().to_string());
    assert_eq!(get("x-ratelimit-limit-requests").as_deref(), Some("60"));
    assert_eq!(get("x-ratelimit-remaining-requests").as_deref(), Some("59"));
    assert_eq!(get("x-ratelimit-reset-requests").as_deref(), Some("1s"));
    assert_eq!(get("x-ratelimit-limit-tokens"), None, "no tpm: no header");

    // Every header of a full set goes on the answer as `pairs` writes it.
    let full = RateHeaders {
        limit_tokens: Some(4_000_000_000),
        remaining_tokens: Some(0),
        reset_tokens: Some(Duration::from_millis(90_500)),
        ..h
    };
    let mut resp = pingora::http::ResponseHeader::build(200, None).unwrap();
    full.apply(&mut resp);
    assert_eq!(full.pairs().len(), 6);
    for (name, value) in full.pairs() {
        let got = resp
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(got.as_deref(), Some(value.as_str()), "{name}");
    }
    assert_eq!(
        resp.headers.get("x-ratelimit-reset-tokens").unwrap(),
        "1m30.5s"
    );

    // A plain header map (the head of a vendor's answer) gets the same headers.
    let mut plain = http::HeaderMap::new();
    full.apply_to(&mut plain);
    for (name, value) in full.pairs() {
        assert_eq!(plain.get(name).unwrap(), value.as_str(), "{name}");
    }
    assert_eq!(plain.len(), 6);
}

#[tokio::test]
async fn reload_keeps_unchanged_state_rebuilds_changed_rates_and_keeps_budgets() {
    let mut rig = Rig::new(two_keys("rpm = 100\ntokens_per_day = 1000", "rpm = 2"));
    rig.admit("a", 1).await.unwrap();
    rig.admit("a", 1).await.unwrap();
    let b = rig.admit("b", 400).await.unwrap();
    rig.limiter.settle(b, spent(400)).await;
    // The same limits: the key's two requests stay used.
    rig.config = two_keys("rpm = 100\ntokens_per_day = 1000", "rpm = 2");
    rig.limiter.sync(&rig.config);
    assert!(rig.admit("a", 1).await.is_err());
    // The key's rpm changes: a new bucket. The team's rpm changes too: its budget stays spent.
    rig.config = two_keys("rpm = 101\ntokens_per_day = 1000", "rpm = 3");
    rig.limiter.sync(&rig.config);
    for _ in 0..3 {
        rig.admit("a", 1).await.expect("a fresh bucket of 3");
    }
    assert_eq!(
        rig.admit("b", 600).await.unwrap_err().limit,
        LimitKind::TokensPerDay
    );
    // Key `b` removed: its state is gone; a new key of the same id starts afresh.
    let without_b = config(&format!(
        "[[teams]]\nname = \"t\"\n[[keys]]\nid = \"a\"\nteam = \"t\"\nsha256 = \"{}\"\n",
        "a".repeat(64)
    ));
    rig.limiter.sync(&without_b);
    assert!(!rig.limiter.inner.memory.tables().keys.contains_key("b"));
}

#[tokio::test]
async fn a_restart_keeps_the_days_spent_budget() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let cfg = || two_keys("tokens_per_day = 1000", "tokens_per_day = 500");
    let rig = Rig::in_dir(cfg(), dir, Duration::from_secs(NOON));
    let a = rig.admit("a", 300).await.unwrap();
    rig.limiter.settle(a, spent(450)).await;
    let _in_flight = rig.admit("b", 200).await.unwrap();
    rig.limiter.flush();
    let text = std::fs::read_to_string(path.join("budgets.json")).unwrap();
    assert!(text.contains("450"), "{text}");
    let dir = rig._dir;
    drop(rig.limiter);
    let rig = Rig::in_dir(cfg(), dir, Duration::from_secs(NOON + 60));
    assert_eq!(
        rig.admit("a", 51).await.unwrap_err().limit,
        LimitKind::TokensPerDay,
        "450 of the key's 500 were spent before the restart"
    );
    rig.admit("a", 50).await.expect("50 left");
    // The in-flight reservation of `b` died with the process: the team has 1000 − 450 − 50.
    rig.admit("b", 500).await.expect("team: 500 left");
    // The next day the restored numbers are yesterday's.
    let dir = rig._dir;
    drop(rig.limiter);
    let rig = Rig::in_dir(cfg(), dir, Duration::from_secs(NOON + DAY));
    rig.admit("a", 500).await.expect("a new day");
}

/// Per-user budgets: each user of the team has its own; the key's and the team's still bind;
/// a request without a user is not held to them; users survive two restarts in a row (one
/// that did not come back in between included); the headers tell the least left.
#[tokio::test]
async fn a_users_budget_binds_that_user_alone_and_survives_restarts() {
    let cfg = || two_keys("user_tokens_per_day = 300\ntokens_per_day = 1000", "");
    let dir = tempfile::tempdir().unwrap();
    let rig = Rig::in_dir(cfg(), dir, Duration::from_secs(NOON));
    let alice = rig
        .admit_user(Some("alice"), 250)
        .await
        .expect("250 of 300");
    assert_eq!(
        alice.headers().budget_tokens_left,
        Some(50),
        "alice's 300 less 250"
    );
    rig.limiter.settle(alice, spent(250)).await;
    let refused = rig.admit_user(Some("alice"), 51).await.unwrap_err();
    assert_eq!(
        (refused.scope, refused.limit),
        (Scope::User, LimitKind::TokensPerDay)
    );
    let message = refused.to_error().to_string();
    assert!(message.contains("user `alice` of team `t`"), "{message}");
    let bob = rig
        .admit_user(Some("bob"), 300)
        .await
        .expect("bob has his own");
    rig.limiter.settle(bob, spent(300)).await;
    let nobody = rig
        .admit_user(None, 400)
        .await
        .expect("the team's 450 left");
    rig.limiter.settle(nobody, spent(400)).await;
    let carol = rig.admit_user(Some("carol"), 51).await.unwrap_err();
    assert_eq!(
        carol.scope,
        Scope::Team,
        "the team's 1000 bind its users too"
    );

    // Restart (with a larger team budget); only alice comes back; restart again: bob's day
    // is not forgotten.
    let more = || two_keys("user_tokens_per_day = 300\ntokens_per_day = 5000", "");
    let dir = rig._dir;
    drop(rig.limiter);
    let rig = Rig::in_dir(more(), dir, Duration::from_secs(NOON + 60));
    let refused = rig.admit_user(Some("alice"), 51).await.unwrap_err();
    assert_eq!(
        refused.scope,
        Scope::User,
        "alice's 250 survived the restart"
    );
    let fifty = rig
        .admit_user(Some("alice"), 50)
        .await
        .expect("her 50 left");
    rig.limiter.settle(fifty, None).await;
    rig.limiter.flush();
    let dir = rig._dir;
    drop(rig.limiter);
    let rig = Rig::in_dir(more(), dir, Duration::from_secs(NOON + 120));
    let refused = rig.admit_user(Some("bob"), 1).await.unwrap_err();
    assert_eq!(
        refused.scope,
        Scope::User,
        "bob's 300 survived two restarts"
    );
    rig.admit_user(Some("carol"), 300)
        .await
        .expect("carol spent nothing");
}

/// Limits a credential names for its user (a JWT's limits claim) hold that user in a team
/// without per-user budgets, replace the team's per-user budgets in a team with some, and
/// keep the user's counters when they change, and across a reload.
#[tokio::test]
async fn a_users_own_limits_hold_it_and_keep_its_counters_when_they_change() {
    let rig = Rig::new(two_keys("tokens_per_day = 10000", ""));
    let own = config::Limits {
        tokens_per_day: Some(100),
        ..config::Limits::default()
    };
    let dana = rig
        .admit_user_with(Some("dana"), Some(&own), 80)
        .await
        .expect("80 of her 100");
    rig.limiter.settle(dana, spent(80)).await;
    let refused = rig
        .admit_user_with(Some("dana"), Some(&own), 21)
        .await
        .unwrap_err();
    assert_eq!(
        (refused.scope, refused.limit),
        (Scope::User, LimitKind::TokensPerDay)
    );
    rig.admit_user(Some("dana"), 500)
        .await
        .expect("without her limits she is held to the team's alone");
    let raised = config::Limits {
        tokens_per_day: Some(120),
        ..config::Limits::default()
    };
    rig.limiter.sync(&rig.config);
    let refused = rig
        .admit_user_with(Some("dana"), Some(&raised), 41)
        .await
        .unwrap_err();
    assert_eq!(
        refused.scope,
        Scope::User,
        "her 80 are kept under new limits and across a reload"
    );
    rig.admit_user_with(Some("dana"), Some(&raised), 40)
        .await
        .expect("120 - 80");
}

#[tokio::test]
async fn the_snapshot_thread_writes_by_itself() {
    let rig = Rig::new(two_keys("tokens_per_day = 1000", ""));
    let a = rig.admit("a", 10).await.unwrap();
    rig.limiter.settle(a, spent(123)).await;
    let path = rig._dir.path().join("budgets.json");
    let deadline = std::time::Instant::now() + snapshot::INTERVAL * 3;
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.contains("123") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no snapshot within 3 intervals"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn demand_estimates_use_max_tokens_or_the_default() {
    let c = config(
        "[limits]\ndefault_max_tokens = 100\n\
         [[providers]]\nname = \"m\"\nkind = \"mock\"\n\
         [[models]]\nname = \"x\"\ninput_usd_per_mtok = 2.0\noutput_usd_per_mtok = 8.0\n\
         [[models.routes]]\nprovider = \"m\"\nmodel = \"y\"\n",
    );
    let model = &c.models[0];
    let d = Demand::estimate(model, 50, None, &c.limits);
    assert_eq!(d.tokens, 150);
    assert!((d.usd - (50.0 * 2.0 + 100.0 * 8.0) / 1e6).abs() < 1e-12);
    assert_eq!(Demand::estimate(model, 50, Some(7), &c.limits).tokens, 57);
    // The floor counts at most the default output.
    let d = Demand::estimate(model, 50, Some(128_000), &c.limits);
    assert_eq!((d.tokens, d.floor_tokens), (128_050, 150));
    assert!((d.floor_usd - (50.0 * 2.0 + 100.0 * 8.0) / 1e6).abs() < 1e-12);
    let d = Demand::estimate(model, 50, Some(7), &c.limits);
    assert_eq!(d.floor_tokens, 57);
}

#[test]
fn a_memory_limiter_reports_its_backend_up() {
    let rig = Rig::new(two_keys("", ""));
    assert_eq!(rig.metrics.limits_backend_up.get(), 1);
    assert_eq!(rig.limiter.backend(), "memory");
}
