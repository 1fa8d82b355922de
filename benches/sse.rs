//! Throughput of the SSE usage scanner over a realistic stream, cut as the network cuts it
//! (1460-byte TCP segments) and as an upstream writes it (one event per chunk): the scanner
//! sits on the streaming hot path, so it must cost far less than forwarding the bytes.

// Test and bench code: a failed expectation panics with its message, which is the report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use switchyard::dialect::chat::stream::Scanner;

/// 1,000 events of OpenAI's `chat.completion.chunk` shape (with `include_usage`'s
/// `"usage":null`), the usage chunk and `[DONE]`: about 270 KB, 270 bytes an event.
fn stream() -> Vec<Vec<u8>> {
    let head = r#"{"id":"chatcmpl-AbC123dEf456gHi789","object":"chat.completion.chunk","created":1727000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_f85bea6784","#;
    let words = [
        "Hello",
        " world",
        ",",
        " caf\\u00e9",
        " \\\"quoted\\\"",
        " 日本語",
        " 🚀",
        "\\n",
    ];
    let mut events: Vec<Vec<u8>> = (0..998)
        .map(|i| {
            format!(
                "data: {head}\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{}\"}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n",
                words[i % words.len()]
            )
            .into_bytes()
        })
        .collect();
    events.push(format!("data: {head}\"choices\":[],\"usage\":{{\"prompt_tokens\":27,\"completion_tokens\":998,\"total_tokens\":1025}}}}\n\n").into_bytes());
    events.push(b"data: [DONE]\n\n".to_vec());
    events
}

fn bench(c: &mut Criterion) {
    let events = stream();
    let whole: Vec<u8> = events.concat();
    let segments: Vec<&[u8]> = whole.chunks(1460).collect();
    let per_event: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();

    let mut group = c.benchmark_group("sse_scanner");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Bytes(whole.len() as u64));
    for (name, pieces) in [("tcp_1460", &segments), ("per_event", &per_event)] {
        group.bench_with_input(BenchmarkId::new(name, whole.len()), pieces, |b, pieces| {
            b.iter(|| {
                let mut s = Scanner::new();
                for p in pieces.iter() {
                    s.feed(black_box(p));
                }
                s.finish();
                assert_eq!(s.events, 999);
                black_box(s.usage)
            })
        });
    }
    group.finish();

    // The scanner over a stream of content, and over the same stream as reasoning: for each
    // event it also asks the estimate for generated text besides `content`, which parses
    // nothing on a content-only stream and every event of a reasoning stream.
    let reasoning: Vec<u8> = String::from_utf8(whole.clone())
        .unwrap()
        .replace("\"content\"", "\"reasoning_content\"")
        .into_bytes();
    let mut group = c.benchmark_group("scanner_with_generated_text");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Bytes(whole.len() as u64));
    for (name, stream, parsed) in [("content", &whole, false), ("reasoning", &reasoning, true)] {
        let segments: Vec<&[u8]> = stream.chunks(1460).collect();
        group.bench_with_input(
            BenchmarkId::new(name, stream.len()),
            &segments,
            |b, pieces| {
                b.iter(|| {
                    let mut s = Scanner::new();
                    for p in pieces.iter() {
                        s.feed(black_box(p));
                    }
                    s.finish();
                    assert_eq!(s.other_chars > 0, parsed);
                    black_box(s.other_chars)
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
