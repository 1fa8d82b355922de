//! Cost of the request rewrite (parse the borrowed view, lift `model_params`, splice the
//! upstream body) for a typical chat request and for a 1 MiB prompt. The prompt is copied
//! once and never re-serialised, so the cost per byte should stay near `memcpy` plus
//! serde_json's validation of the raw `messages`.

// Test and bench code: a failed expectation panics with its message, which is the report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use switchyard::dialect::body::{Prepared, RewriteOptions};
use switchyard::dialect::chat::parse;

fn request(prompt_bytes: usize) -> Vec<u8> {
    let filler: String = "The quick brown fox jumps over the lazy dog. "
        .chars()
        .cycle()
        .take(prompt_bytes)
        .collect();
    serde_json::json!({
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": filler},
        ],
        "stream": true,
        "temperature": 0.7,
        "model_params": {"top_p": 0.9, "seed": 42},
    })
    .to_string()
    .into_bytes()
}

fn rewrite(c: &mut Criterion) {
    let mut group = c.benchmark_group("rewrite");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (name, size) in [("small_200B", 200), ("prompt_1MiB", 1 << 20)] {
        let body = bytes::Bytes::from(request(size));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let req = parse(black_box(&body)).expect("valid request");
                let prepared = Prepared::new(
                    req.fields(),
                    &body,
                    RewriteOptions {
                        stream: req.stream,
                        include_usage: true,
                    },
                );
                black_box(prepared.body_for("gpt-4o-2024-08-06"))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, rewrite);
criterion_main!(benches);
