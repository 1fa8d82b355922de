//! Shared state on Redis as managed services run it (issue 31 item 3), through the binary:
//! - a real Redis Cluster of three masters (`support::redis_topology::RedisCluster`): two
//!   gateway instances share it; a team's rpm holds once in total across both (N allowed
//!   exactly, the rest 429), budgets are settled into it and read back by both instances'
//!   gauges, a stored response written through one is read through the other; the teams'
//!   counters land on different masters, each team's in one hash slot;
//! - a real Sentinel (`RedisSentinel`: a master, a replica, one sentinel): limits hold, then
//!   the master is killed; during the failover requests follow the outage rule (limited by
//!   each instance alone, never a 5xx), after it the limits hold again on the new master,
//!   with the counters it had replicated.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::redis_topology::{RedisCluster, RedisSentinel};
use support::*;

/// USD per million tokens of the model: one small request costs a visible amount.
const PRICE: f64 = 1000.0;

/// A config with the built-in mock vendor behind model `m` (priced), `teams` (name, limits)
/// each with one key `k-<team>` whose secret is `sk-<team>`, and `state` as the `[state]`
/// table's Redis lines.
fn config(state: &str, teams: &[(&str, &str)]) -> String {
    let mut body = ConfigBody::new()
        .mock_provider("builtin")
        .model_with(
            "m",
            &format!("input_usd_per_mtok = {PRICE}\noutput_usd_per_mtok = {PRICE}"),
            &[("builtin", "mock-1")],
        )
        .text(&format!("[state]\nbackend = \"redis\"\n{state}"));
    for (team, limits) in teams {
        body = body
            .team(team, limits)
            .key(&format!("k-{team}"), team, &format!("sk-{team}"), "");
    }
    body.build()
}

/// One chat request of `team` on `gw`: its status and body.
async fn chat(gw: &Gateway, team: &str) -> (u16, Value) {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hello"}]});
    let r = gw.chat(&format!("sk-{team}"), &body).await;
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, v)
}

/// `switchyard_limits_backend_up` of `gw` (1: Redis answers, the limits are shared).
async fn backend_up(gw: &Gateway) -> bool {
    metric_value(&gw.metrics().await, "switchyard_limits_backend_up", &[]) == Some(1.0)
}

/// The team budget gauge `name` (`…_spent`, `…_reserved`) of `team` for the day's tokens.
fn tokens_gauge(text: &str, name: &str, team: &str) -> Option<f64> {
    metric_value(
        text,
        name,
        &[
            ("team", team),
            ("key", ""),
            ("period", "day"),
            ("unit", "tokens"),
        ],
    )
}

/// Requests a fresh GCRA bucket of `rpm` may admit in `elapsed` beyond its burst.
fn refill(rpm: usize, elapsed: Duration) -> usize {
    (elapsed.as_millis() as usize * rpm) / 60_000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_shares_limits_budgets_and_responses_between_two_instances() {
    let cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .unwrap();
    // Three teams whose hash tags fall in the three masters' slot ranges (checked below),
    // and one without limits for the stored responses.
    let limited = ["alpha", "gamma", "delta"];
    let limits = "rpm = 4\ntokens_per_day = 1000000";
    let mut teams: Vec<(&str, &str)> = limited.iter().map(|t| (*t, limits)).collect();
    teams.push(("zeta", ""));
    let state = format!("redis_cluster = {}\n", cluster.seeds_toml());
    let start = || {
        Gateway::builder(&config(&state, &teams))
            .server_extra("admin_token_env = \"SY_CLUSTER_ADMIN_TOKEN\"")
            .env("SY_CLUSTER_ADMIN_TOKEN", ADMIN_TOKEN)
            .start()
    };
    let one = start().await;
    let two = start().await;

    // Each team's rpm of 4 holds once across both instances: 4 of 8 pass, in one burst
    // (well within the 15 s a GCRA of 4 rpm takes to give one back).
    let started = Instant::now();
    let mut spent = std::collections::HashMap::new();
    for team in limited {
        let mut statuses = Vec::new();
        for i in 0..8 {
            let gw = if i % 2 == 0 { &one } else { &two };
            let (status, v) = chat(gw, team).await;
            match status {
                200 => {
                    *spent.entry(team).or_insert(0.0) +=
                        v["usage"]["total_tokens"].as_f64().unwrap();
                }
                429 => assert_eq!(v["error"]["code"], "rate_limit", "{v}"),
                other => panic!("{team}: {other} {v}"),
            }
            statuses.push(status);
        }
        let passed = statuses.iter().filter(|s| **s == 200).count();
        assert!(
            passed >= 4 && passed <= 4 + refill(4, started.elapsed()),
            "{team}: {statuses:?}\n{}",
            one.logs()
        );
        assert_eq!(&statuses[..4], &[200; 4], "{team}: {statuses:?}");
    }

    // Every key of a team is in one slot, and the three teams are on three masters.
    let mut masters = Vec::new();
    for team in limited {
        let pattern = format!("switchyard:{{t:{team}}}:*");
        let by_node = cluster.keys_by_node(&pattern);
        let holders: Vec<usize> = (0..3).filter(|n| !by_node[*n].is_empty()).collect();
        assert_eq!(holders.len(), 1, "{team}: {by_node:?}");
        let keys = &by_node[holders[0]];
        let rpm_key = format!("switchyard:{{t:{team}}}:t:rpm");
        assert!(keys.contains(&rpm_key), "{team}: {keys:?}");
        let slots: std::collections::BTreeSet<u16> = keys.iter().map(|k| cluster.slot(k)).collect();
        assert_eq!(slots.len(), 1, "{team}: {keys:?} in slots {slots:?}");
        masters.push(holders[0]);
    }
    masters.sort_unstable();
    masters.dedup();
    assert_eq!(masters.len(), 3, "the teams share a master: {masters:?}");

    // Budgets are settled into the cluster: both instances' gauges (read from Redis, one
    // command per budget across the slots) show every team's spending, nothing reserved.
    for gw in [&one, &two] {
        let mut last = String::new();
        let settled = async {
            loop {
                last = gw.metrics().await;
                let done = limited.iter().all(|team| {
                    tokens_gauge(&last, "switchyard_budget_spent", team) == spent.get(team).copied()
                        && tokens_gauge(&last, "switchyard_budget_reserved", team) == Some(0.0)
                });
                if done {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(5), settled)
            .await
            .is_err()
        {
            panic!("budgets not settled (spent {spent:?}):\n{last}");
        }
    }

    // A response stored through one instance is read back through the other.
    let r = one
        .client()
        .post(one.url("/v1/responses"))
        .bearer_auth("sk-zeta")
        .json(&json!({"model": "m", "input": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let stored: Value = r.json().await.unwrap();
    let id = stored["id"].as_str().unwrap();
    let r = two
        .client()
        .get(two.url(&format!("/v1/responses/{id}")))
        .bearer_auth("sk-zeta")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let read: Value = r.json().await.unwrap();
    assert_eq!(read["id"], id, "{read}");
    assert_eq!(read["output"], stored["output"], "{read}");
    // The store is one slot (`{resp}`): its body and indexes are on one master.
    let by_node = cluster.keys_by_node("switchyard:{resp}:*");
    let holders: Vec<&Vec<String>> = by_node.iter().filter(|k| !k.is_empty()).collect();
    assert_eq!(holders.len(), 1, "{by_node:?}");
    assert!(
        holders[0].contains(&format!("switchyard:{{resp}}:b:zeta:{id}")),
        "{by_node:?}"
    );
    for gw in [&one, &two] {
        assert!(backend_up(gw).await, "{}", gw.logs());
    }

    runtime_key_on_both(&one, &two).await;
    let by_node = cluster.keys_by_node("switchyard:{rkeys}:*");
    assert_eq!(
        by_node.iter().filter(|k| !k.is_empty()).count(),
        1,
        "the runtime keys are one slot: {by_node:?}"
    );
}

/// The status of one chat request with `secret` on `gw`.
async fn serves(gw: &Gateway, secret: &str) -> u16 {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hello"}]});
    gw.chat(secret, &body).await.status().as_u16()
}

/// The admin token of the cluster test's instances.
const ADMIN_TOKEN: &str = "cluster-admin-token";

/// A key issued at runtime on `one` (the admin API) serves on `two`, and its revoke on
/// `one` is in force on both within a second (the cluster has no pub/sub here: the poll).
async fn runtime_key_on_both(one: &Gateway, two: &Gateway) {
    let admin = |gw: &Gateway, method: reqwest::Method, path: &str| {
        gw.client()
            .request(method, gw.admin_url(path))
            .bearer_auth(ADMIN_TOKEN)
    };
    let r = admin(one, reqwest::Method::POST, "/v1/keys")
        .json(&json!({"team": "zeta", "id": "portal-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let created: Value = r.json().await.unwrap();
    let secret = created["key"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(1);
    while serves(two, &secret).await != 200 {
        assert!(
            Instant::now() < deadline,
            "the key never served on the other instance"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = admin(one, reqwest::Method::DELETE, "/v1/keys/portal-1")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let revoked = Instant::now();
    loop {
        let (a, b) = (serves(one, &secret).await, serves(two, &secret).await);
        if a == 401 && b == 401 {
            break;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "revoked on one, still served: {a} / {b}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "cluster: a revoke refused by both instances after {:?}",
        revoked.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sentinel_failover_keeps_the_limits_within_the_stated_bound() {
    let mut redis = tokio::task::spawn_blocking(RedisSentinel::start)
        .await
        .unwrap();
    let rpm: usize = 4;
    let limits = format!("rpm = {rpm}");
    let teams = [("t", limits.as_str()), ("u", limits.as_str()), ("r", "")];
    let one = Gateway::start(&config(&redis.state_toml(), &teams)).await;
    let two = Gateway::start(&config(&redis.state_toml(), &teams)).await;

    // 1. Through the sentinel's master: team t's rpm holds once across both instances.
    let started = Instant::now();
    let mut before = Vec::new();
    for i in 0..6 {
        let gw = if i % 2 == 0 { &one } else { &two };
        before.push(chat(gw, "t").await.0);
    }
    assert_eq!(before, [200, 200, 200, 200, 429, 429], "{}", one.logs());
    // A response stored through the master before it fails.
    let kept = store(&one).await;
    assert_eq!(read(&two, &kept).await.0, 200);
    redis.wait_replicated();

    // 2. The master is killed. Until each instance is back on the new master, its requests
    // are limited by that instance alone (a full bucket of its own), never refused for the
    // outage and never a 5xx.
    let killed = Instant::now();
    redis.master.stop();
    let mut during = [0usize; 2];
    let mut statuses = Vec::new();
    let mut up = [false; 2];
    let mut promoted: Option<Duration> = None;
    let new_master = redis.replica.port();
    while up != [true, true] {
        if promoted.is_none() && redis.master_port() == Some(new_master) {
            promoted = Some(killed.elapsed());
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "the gateways never came back on the new master: {statuses:?}\n{}",
            one.logs()
        );
        for (n, gw) in [&one, &two].into_iter().enumerate() {
            if up[n] {
                continue;
            }
            let (status, v) = chat(gw, "t").await;
            assert!(status == 200 || status == 429, "{status} {v}");
            statuses.push((n, status));
            if status == 200 {
                during[n] += 1;
            }
            up[n] = backend_up(gw).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let back = killed.elapsed();
    redis.wait_failed_over();
    let promoted = promoted.unwrap_or(back);
    eprintln!(
        "failover: the sentinel named the new master {} ms after the kill, both instances were \
         shared again {} ms after the kill; admitted alone meanwhile: {during:?} ({statuses:?})",
        promoted.as_millis(),
        back.as_millis()
    );
    // The README's bound: back on the new master within about 2 s of its promotion (a probe
    // a second, each within 1 s), plus this loop's own pace.
    assert!(
        back <= promoted + Duration::from_millis(3000),
        "back {back:?} after the kill, the new master named at {promoted:?}"
    );
    let alone = rpm + refill(rpm, back);
    for (n, admitted) in during.into_iter().enumerate() {
        assert!(
            admitted >= 1 && admitted <= alone,
            "instance {n} admitted {admitted} alone during the failover (bound {alone})"
        );
    }
    // The new master (the replica) holds the counters the old one had replicated.
    assert!(
        !redis.replica.keys("switchyard:{t:t}:*").is_empty(),
        "the counters were not replicated"
    );

    // 3. On the new master the limits hold again: team t's bucket is still spent (what passed
    // alone during the failover was never written to Redis); team u's rpm holds once in total.
    let mut after_t = Vec::new();
    let mut after_u = Vec::new();
    for i in 0..8 {
        let gw = if i % 2 == 0 { &one } else { &two };
        after_t.push(chat(gw, "t").await.0);
        after_u.push(chat(gw, "u").await.0);
    }
    let t_passed = after_t.iter().filter(|s| **s == 200).count();
    assert!(
        t_passed <= refill(rpm, started.elapsed()),
        "team t after the failover: {after_t:?}"
    );
    let u_passed = after_u.iter().filter(|s| **s == 200).count();
    assert!(
        u_passed >= rpm && u_passed <= rpm + refill(rpm, started.elapsed()),
        "team u after the failover: {after_u:?}"
    );
    assert_eq!(&after_u[..rpm], &[200; 4], "{after_u:?}");
    assert!(
        !redis.replica.keys("switchyard:{t:u}:*").is_empty(),
        "team u's counters are not on the new master"
    );

    // The response store follows too: its connection to the old master fails once (a 503
    // for a lookup, then 503s at once for a second), the next call asks the sentinels. The
    // response stored before the failover was replicated; one stored after it is shared.
    for gw in [&one, &two] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, v) = read(gw, &kept).await;
            if status == 200 {
                break;
            }
            assert_eq!(status, 503, "{v}");
            assert!(Instant::now() < deadline, "the store never came back: {v}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let after = store(&one).await;
    let (status, v) = read(&two, &after).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["id"], after.as_str());
}

/// A response stored by team r through `gw`: its id.
async fn store(gw: &Gateway) -> String {
    let r = gw
        .client()
        .post(gw.url("/v1/responses"))
        .bearer_auth("sk-r")
        .json(&json!({"model": "m", "input": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// `GET /v1/responses/{id}` of team r through `gw`: status and body.
async fn read(gw: &Gateway, id: &str) -> (u16, Value) {
    let r = gw
        .client()
        .get(gw.url(&format!("/v1/responses/{id}")))
        .bearer_auth("sk-r")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}
