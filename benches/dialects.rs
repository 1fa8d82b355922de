//! The cost of the `/v1/messages` door's request path for a Claude Code-like request (system
//! blocks with cache marks, tools, ~20 turns of tool_use/tool_result, ~30 KB), per request:
//!
//! - `passthrough_anthropic`: `FrontRequest::read` + `upstream_body` to an `anthropic` provider
//!   (the client's bytes with `model` spliced);
//! - `pivot_anthropic`: the translation the pass-through replaced: the same request forced
//!   through the chat pivot and back to Anthropic (`chat_pivot`, `chat::parse`,
//!   `convert::request_body`);
//! - `translated_openai`: `FrontRequest::read` + `upstream_body` to an `openai` provider.
//!
//! Criterion times each; then a counting global allocator gives allocations (count and bytes)
//! per request, printed as a table with a median time per request from plain timed batches.
//! Run with `cargo bench --bench dialects`.

// Test and bench code: a failed expectation panics with its message, which is the report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The bench measures the process itself (rlimits, CPU pinning, a counting allocator).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{black_box, Criterion, Throughput};
use serde_json::json;
use switchyard::config::{self, Config, Provider};
use switchyard::convert;
use switchyard::dialect::request::FrontRequest;
use switchyard::dialect::{chat, Dialect};

/// Counts every allocation (and reallocation, as one allocation of its new size).
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size as u64, Relaxed);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const PROVIDERS: &str = r#"
[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "http://127.0.0.1:9"

[[providers]]
name = "openai"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
"#;

/// Deterministic filler text of about `n` bytes.
fn prose(seed: usize, n: usize) -> String {
    const WORDS: [&str; 12] = [
        "the", "function", "returns", "a", "borrowed", "view", "of", "request", "body", "when",
        "config", "changes",
    ];
    let mut s = String::with_capacity(n + 16);
    let mut i = seed;
    while s.len() < n {
        s.push_str(WORDS[i % WORDS.len()]);
        s.push(if i % 17 == 16 { '\n' } else { ' ' });
        i = i.wrapping_mul(31).wrapping_add(7);
    }
    s
}

/// A Claude Code-like Messages request, compact JSON as SDKs send it.
fn claude_code_request() -> Bytes {
    let tools: Vec<_> = (0..8)
        .map(|i| {
            json!({
                "name": format!("tool_{i}"),
                "description": prose(i, 400),
                "input_schema": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "description": "Absolute path"},
                        "limit": {"type": "integer"},
                        "pattern": {"type": "string"}
                    },
                    "required": ["path"]
                }
            })
        })
        .collect();
    let mut messages = vec![json!({"role": "user", "content": [
        {"type": "text", "text": prose(1, 600)},
        {"type": "text", "text": "Fix the failing test in src/config.", "cache_control": {"type": "ephemeral"}}
    ]})];
    for turn in 0..10 {
        let id = format!("toolu_01{turn:020}");
        messages.push(json!({"role": "assistant", "content": [
            {"type": "text", "text": prose(turn, 120)},
            {"type": "tool_use", "id": id, "name": format!("tool_{}", turn % 8),
             "input": {"path": format!("/repo/src/file_{turn}.rs"), "limit": 200}}
        ]}));
        let mut result =
            json!({"type": "tool_result", "tool_use_id": id, "content": prose(turn + 3, 1500)});
        if turn == 9 {
            result["cache_control"] = json!({"type": "ephemeral"});
        }
        messages.push(json!({"role": "user", "content": [result]}));
    }
    let body = json!({
        "model": "claude-sonnet",
        "max_tokens": 32000,
        "stream": true,
        "temperature": 1,
        "system": [
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
             "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": prose(2, 6000), "cache_control": {"type": "ephemeral"}}
        ],
        "tools": tools,
        "messages": messages,
        "metadata": {"user_id": "user_0123456789abcdef"}
    });
    Bytes::from(serde_json::to_vec(&body).unwrap())
}

fn provider<'c>(config: &'c Config, name: &str) -> &'c Provider {
    config.providers.iter().find(|p| p.name == name).unwrap()
}

fn passthrough(body: &Bytes, anthropic: &Provider) -> Bytes {
    let mut req = FrontRequest::read(Dialect::Messages, body.clone()).unwrap();
    convert::upstream_body(&mut req, anthropic, "claude-sonnet-4-5").unwrap()
}

fn pivot(body: &Bytes, anthropic: &Provider) -> Bytes {
    let mut req = FrontRequest::read(Dialect::Messages, body.clone()).unwrap();
    let pivot = convert::chat_pivot(&mut req).unwrap();
    let view = chat::parse(&pivot.body).unwrap();
    convert::request_body(
        anthropic,
        &view,
        "claude-sonnet-4-5",
        &mut switchyard::dialect::adjusted::Adjustments::default(),
    )
    .expect("anthropic is translated")
    .unwrap()
}

fn translated(body: &Bytes, openai: &Provider) -> Bytes {
    let mut req = FrontRequest::read(Dialect::Messages, body.clone()).unwrap();
    convert::upstream_body(&mut req, openai, "gpt-5").unwrap()
}

type Path3 = (&'static str, fn(&Bytes, &Provider) -> Bytes, &'static str);

const PATHS: [Path3; 3] = [
    ("passthrough_anthropic", passthrough, "anthropic"),
    ("pivot_anthropic", pivot, "anthropic"),
    ("translated_openai", translated, "openai"),
];

fn main() {
    let config = config::load_str(PROVIDERS, Path::new("bench.toml")).unwrap();
    let body = claude_code_request();

    let mut c = Criterion::default()
        .sample_size(30)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    let mut group = c.benchmark_group("messages_door");
    group.throughput(Throughput::Bytes(body.len() as u64));
    for (name, run, vendor) in PATHS {
        let p = provider(&config, vendor);
        group.bench_function(name, |b| b.iter(|| run(black_box(&body), p)));
    }
    group.finish();
    c.final_summary();

    table(&config, &body);
}

/// Allocations and a median time per request for each path, as a table.
fn table(config: &Config, body: &Bytes) {
    const BATCH: u64 = 200;
    println!(
        "\nClaude Code-like /v1/messages request: {} bytes\n",
        body.len()
    );
    println!("| path | µs/request (median of 9 × {BATCH}) | allocations/request | bytes allocated/request | upstream body bytes |");
    println!("|---|---:|---:|---:|---:|");
    for (name, run, vendor) in PATHS {
        let p = provider(config, vendor);
        let out_len = run(body, p).len();
        let (a0, b0) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
        for _ in 0..BATCH {
            black_box(run(black_box(body), p));
        }
        let allocs = (ALLOCS.load(Relaxed) - a0) as f64 / BATCH as f64;
        let bytes = (BYTES.load(Relaxed) - b0) as f64 / BATCH as f64;
        let mut times: Vec<f64> = (0..9)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..BATCH {
                    black_box(run(black_box(body), p));
                }
                t.elapsed().as_secs_f64() * 1e6 / BATCH as f64
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.1} | {allocs:.0} | {bytes:.0} | {out_len} |",
            times[4]
        );
    }
}
