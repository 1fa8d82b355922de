//! The limiter's cost per request: one `admit` and one `settle`, against the limiter switched
//! off (a no-op with the same async plumbing), on the memory backend (a key without limits,
//! and a key and team with every limit) and on a real `redis-server` (started here; skipped
//! with a message when it is not installed).
//!
//! `cargo bench --bench limits`

// Test and bench code: a failed expectation panics with its message, which is the report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../tests/it/support/redis.rs"]
mod redis_server;

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use switchyard::config::{self, Config};
use switchyard::observability::metrics::Metrics;
use switchyard::policy::limits::{Demand, EndUser, Limiter, Spent};

/// Key `free` has no limits; key `busy` and its team have every one, high enough never to
/// refuse during a bench run, and the team gives each end user budgets (used when the bench
/// names a user).
fn config() -> Config {
    let text = format!(
        "[[teams]]\nname = \"open\"\n\
         [[teams]]\nname = \"t\"\nrpm = 4000000000\ntpm = 4000000000\nmax_concurrent = 1000000\n\
         tokens_per_day = 9000000000000000000\nusd_per_month = 1e12\n\
         user_tokens_per_day = 9000000000000000000\nuser_usd_per_month = 1e12\n\
         [[keys]]\nid = \"free\"\nteam = \"open\"\nsha256 = \"{}\"\n\
         [[keys]]\nid = \"busy\"\nteam = \"t\"\nsha256 = \"{}\"\n\
         rpm = 4000000000\ntpm = 4000000000\nmax_concurrent = 1000000\n\
         tokens_per_day = 9000000000000000000\nusd_per_month = 1e12\n",
        "a".repeat(64),
        "b".repeat(64)
    );
    config::load_str(&text, Path::new("bench.toml")).expect("valid bench config")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

const DEMAND: Demand = Demand {
    tokens: 1200,
    usd: 0.002,
    floor_tokens: 0,
    floor_usd: 0.0,
};
const SPENT: Spent = Spent {
    tokens: 300,
    usd: 0.0005,
};

/// The limiter switched off: what the request path costs without it.
async fn off(demand: Demand) -> Option<Spent> {
    black_box(demand);
    Some(SPENT)
}

fn bench_admit_settle(c: &mut Criterion, name: &str, limiter: &Limiter, cfg: &Config, key: usize) {
    bench_admit_settle_as(c, name, limiter, cfg, key, None);
}

/// [`bench_admit_settle`] for end user `user` (per-user budgets: a third entity).
fn bench_admit_settle_as(
    c: &mut Criterion,
    name: &str,
    limiter: &Limiter,
    cfg: &Config,
    key: usize,
    user: Option<&str>,
) {
    let rt = runtime();
    let key = &cfg.keys[key];
    let team = &cfg.teams[key.team];
    c.bench_function(name, |b| {
        b.iter(|| {
            rt.block_on(async {
                let user = user.map(|name| EndUser { name, limits: None });
                match limiter.admit_for(key, team, user, black_box(DEMAND)).await {
                    Ok(admission) => limiter.settle(admission, Some(SPENT)).await,
                    Err(rejection) => panic!("bench refused: {rejection:?}"),
                }
            })
        })
    });
}

fn limits(c: &mut Criterion) {
    let cfg = config();
    let rt = runtime();
    c.bench_function("limits/off (no-op baseline)", |b| {
        b.iter(|| rt.block_on(off(black_box(DEMAND))))
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let memory = config::State::Memory {
        dir: dir.path().to_path_buf(),
    };
    let limiter = Limiter::new(&memory, Arc::new(Metrics::new())).expect("memory limiter");
    limiter.sync(&cfg);
    bench_admit_settle(c, "limits/memory, key without limits", &limiter, &cfg, 0);
    bench_admit_settle(
        c,
        "limits/memory, key and team with every limit",
        &limiter,
        &cfg,
        1,
    );
    bench_admit_settle_as(
        c,
        "limits/memory, every limit and a user's budgets",
        &limiter,
        &cfg,
        1,
        Some("user-1"),
    );

    let Some(server) = redis_server::RedisServer::try_start() else {
        eprintln!("limits/redis: skipped, redis-server is not installed");
        return;
    };
    let state = config::State::Redis(config::RedisState {
        nodes: switchyard::config::RedisNodes::Single(server.url()),
        timeout: std::time::Duration::from_millis(100),
        password: None,
        ca_file: None,
    });
    let limiter = Limiter::new(&state, Arc::new(Metrics::new())).expect("redis limiter");
    limiter.sync(&cfg);
    bench_admit_settle(
        c,
        "limits/redis, key and team with every limit",
        &limiter,
        &cfg,
        1,
    );
    // A limiter of its own: one that met a slow answer under the previous run (a busy
    // machine) may be limiting on its memory fallback.
    let limiter = Limiter::new(&state, Arc::new(Metrics::new())).expect("redis limiter");
    limiter.sync(&cfg);
    bench_admit_settle_as(
        c,
        "limits/redis, every limit and a user's budgets",
        &limiter,
        &cfg,
        1,
        Some("user-1"),
    );
}

criterion_group!(benches, limits);
criterion_main!(benches);
