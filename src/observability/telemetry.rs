//! OpenTelemetry traces, opt-in (`[telemetry]`): one span per request with the GenAI semantic
//! conventions ([`SEMCONV_VERSION`]) and the gateway's own attributes, one child span per
//! upstream attempt, the client's W3C `traceparent` continued and a `traceparent` sent upstream.
//!
//! The request path only fills a [`Trace`] and hands the finished spans to a bounded queue
//! (`try_send`: it never waits). A thread of its own batches them and posts them to the
//! collector as OTLP/HTTP JSON; spans that find the queue full, or whose export fails, are
//! counted in `switchyard_telemetry_spans_dropped_total`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pingora::http::RequestHeader;
use prometheus::IntCounter;
use serde_json::{json, Value};

use crate::accounting::usage::{Usage, UsageSource};
use crate::config::{Provider, ProviderKind, TelemetryConfig};
use crate::observability::metrics::Metrics;
use crate::providers::Operation;

/// The version of the OpenTelemetry semantic conventions the attribute names follow.
pub const SEMCONV_VERSION: &str = "1.37.0";
/// How long the exporter waits to fill a batch before it sends what it has.
const SCHEDULE_DELAY: Duration = Duration::from_secs(1);
/// The most requests' spans in one export request.
const MAX_BATCH: usize = 512;
/// Bounds on one export: the collector is expected nearby.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The handle the request path holds: the sampler and the sending end of the queue.
pub struct Telemetry {
    sample_ratio: f64,
    queue: SyncSender<Vec<SpanData>>,
    dropped: IntCounter,
}

impl Telemetry {
    /// Registers the drop counter and starts the exporter thread. Fails only when the
    /// system refuses a new thread.
    pub fn start(config: &TelemetryConfig, metrics: &Metrics) -> Result<Telemetry, String> {
        let dropped = IntCounter::new(
            "switchyard_telemetry_spans_dropped_total",
            "Spans not exported: the export queue was full or the collector failed",
        )
        .map_err(|e| format!("telemetry metric: {e}"))?;
        metrics.register(Box::new(dropped.clone()));
        let (queue, rx) = mpsc::sync_channel(config.max_queue_size);
        let exporter = Exporter {
            config: config.clone(),
            dropped: dropped.clone(),
        };
        std::thread::Builder::new()
            .name("otlp-exporter".to_string())
            .spawn(move || exporter.run(rx))
            .map_err(|e| format!("cannot start the OTLP exporter thread: {e}"))?;
        Ok(Telemetry {
            sample_ratio: config.sample_ratio,
            queue,
            dropped,
        })
    }

    /// A request's trace: the client's `traceparent` continued (its sampled flag followed),
    /// else a new trace sampled at the configured ratio.
    pub fn begin(&self, req: &RequestHeader) -> Trace {
        let parent = req
            .headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_traceparent);
        let (trace_id, parent_span_id, sampled) = match parent {
            Some(p) => (p.trace_id, Some(p.span_id), p.sampled),
            None => (
                new_id::<16>(),
                None,
                rand::random::<f64>() < self.sample_ratio,
            ),
        };
        // An unsampled trace is only passed upstream: nothing of the request is kept.
        let (method, path) = if sampled {
            (req.method.to_string(), req.uri.path().to_string())
        } else {
            (String::new(), String::new())
        };
        Trace {
            trace_id,
            span_id: new_id::<8>(),
            parent_span_id,
            sampled,
            start: SystemTime::now(),
            method,
            path,
            attempts: Vec::new(),
        }
    }

    /// Ends the request's span and queues it with its attempts' spans; never waits.
    pub fn finish(&self, mut trace: Trace, outcome: &Outcome) {
        if !trace.sampled {
            return;
        }
        let end = SystemTime::now();
        trace.end_attempt(end);
        let mut spans = Vec::with_capacity(1 + trace.attempts.len());
        spans.push(trace.request_span(outcome, end));
        spans.extend(trace.attempt_spans());
        let n = spans.len() as u64;
        match self.queue.try_send(spans) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.dropped.inc_by(n),
        }
    }
}

/// What the request path knows at the end of a request, for its span.
pub struct Outcome<'a> {
    pub request_id: &'a str,
    pub operation: Operation,
    /// The model the client asked for (`None`: refused before it was read).
    pub model: Option<&'a str>,
    pub team: Option<&'a str>,
    pub key_id: Option<&'a str>,
    /// The provider of the last attempt and the model name it was sent.
    pub provider: Option<&'a Provider>,
    pub upstream_model: &'a str,
    /// The route that answered: its model's name and its index in `routes`.
    pub route: Option<(&'a str, usize)>,
    pub attempts: u32,
    pub status: u16,
    pub stream: bool,
    pub usage: Option<(Usage, UsageSource)>,
    pub cost_usd: f64,
    /// The end user (`crate::policy::attribution`): span attribute `user.id`.
    pub user: Option<&'a str>,
    /// The request's tags: span attribute `switchyard.tags` (an array of strings).
    pub tags: &'a [String],
}

/// One request's trace, carried in the request's context.
pub struct Trace {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent_span_id: Option<[u8; 8]>,
    sampled: bool,
    start: SystemTime,
    method: String,
    path: String,
    attempts: Vec<Attempt>,
}

/// One upstream attempt (a child span).
struct Attempt {
    span_id: [u8; 8],
    start: SystemTime,
    end: Option<SystemTime>,
    provider: String,
    vendor: &'static str,
    model: String,
    address: String,
    port: u16,
    error: Option<&'static str>,
}

impl Trace {
    /// Starts the span of an upstream attempt (ending the one before).
    pub fn attempt(&mut self, provider: &Provider, model: &str) {
        if !self.sampled {
            return;
        }
        let now = SystemTime::now();
        self.end_attempt(now);
        let (address, port) = provider
            .upstream
            .as_ref()
            .map_or((String::new(), 0), |u| (u.host.clone(), u.port));
        self.attempts.push(Attempt {
            span_id: new_id::<8>(),
            start: now,
            end: None,
            provider: provider.name.clone(),
            vendor: vendor_name(provider.kind),
            model: model.to_string(),
            address,
            port,
            error: None,
        });
    }

    /// Marks the current attempt failed, with the cause the metrics use.
    pub fn attempt_failed(&mut self, cause: &'static str) {
        if let Some(a) = self.attempts.last_mut() {
            a.error = Some(cause);
        }
    }

    /// The `traceparent` for the upstream: this trace, the current attempt's span as parent.
    pub fn traceparent(&self) -> String {
        let span = self.attempts.last().map_or(self.span_id, |a| a.span_id);
        let flags = if self.sampled { "01" } else { "00" };
        format!(
            "00-{}-{}-{flags}",
            hex::encode(self.trace_id),
            hex::encode(span)
        )
    }

    fn end_attempt(&mut self, now: SystemTime) {
        if let Some(a) = self.attempts.last_mut() {
            a.end.get_or_insert(now);
        }
    }

    fn request_span(&self, o: &Outcome, end: SystemTime) -> SpanData {
        let mut attrs = vec![
            ("http.request.method", Attr::Str(self.method.clone())),
            ("url.path", Attr::Str(self.path.clone())),
            ("http.response.status_code", Attr::Int(i64::from(o.status))),
            ("switchyard.request_id", Attr::Str(o.request_id.to_string())),
            ("switchyard.attempts", Attr::Int(i64::from(o.attempts))),
            ("switchyard.stream", Attr::Bool(o.stream)),
        ];
        let operation = operation_name(o.operation);
        let mut push = |k: &'static str, v: Option<Attr>| {
            if let Some(v) = v {
                attrs.push((k, v));
            }
        };
        let text = |s: Option<&str>| s.map(|s| Attr::Str(s.to_string()));
        push(
            "gen_ai.operation.name",
            o.model.map(|_| Attr::Str(operation.to_string())),
        );
        push("gen_ai.request.model", text(o.model));
        push(
            "gen_ai.provider.name",
            o.provider
                .map(|p| Attr::Str(vendor_name(p.kind).to_string())),
        );
        push("switchyard.team", text(o.team));
        push("switchyard.key_id", text(o.key_id));
        push("user.id", text(o.user));
        push(
            "switchyard.tags",
            Some(o.tags)
                .filter(|t| !t.is_empty())
                .map(|t| Attr::Strs(t.to_vec())),
        );
        push(
            "switchyard.provider",
            o.provider.map(|p| Attr::Str(p.name.clone())),
        );
        push(
            "switchyard.upstream_model",
            text(Some(o.upstream_model).filter(|m| !m.is_empty())),
        );
        push("switchyard.route.model", text(o.route.map(|r| r.0)));
        push(
            "switchyard.route.index",
            o.route.map(|r| Attr::Int(r.1 as i64)),
        );
        if let Some((u, source)) = o.usage {
            push(
                "gen_ai.usage.input_tokens",
                Some(Attr::Int(tokens(u.prompt_tokens))),
            );
            push(
                "gen_ai.usage.output_tokens",
                Some(Attr::Int(tokens(u.completion_tokens))),
            );
            push(
                "switchyard.usage.source",
                Some(Attr::Str(source.label().to_string())),
            );
            push("switchyard.cost_usd", Some(Attr::Float(o.cost_usd)));
        }
        let error = o.status >= 500 || o.status == 0;
        if o.status >= 400 {
            attrs.push(("error.type", Attr::Str(o.status.to_string())));
        }
        let name = match o.model {
            Some(m) => format!("{operation} {m}"),
            None => format!("{} {}", self.method, self.path),
        };
        SpanData {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            name,
            kind: SpanKind::Server,
            start: self.start,
            end,
            error,
            attrs,
        }
    }

    fn attempt_spans(&self) -> impl Iterator<Item = SpanData> + '_ {
        self.attempts.iter().enumerate().map(|(i, a)| {
            let mut attrs = vec![
                ("gen_ai.provider.name", Attr::Str(a.vendor.to_string())),
                ("gen_ai.request.model", Attr::Str(a.model.clone())),
                ("server.address", Attr::Str(a.address.clone())),
                ("server.port", Attr::Int(i64::from(a.port))),
                ("switchyard.provider", Attr::Str(a.provider.clone())),
                ("switchyard.attempt", Attr::Int(i as i64 + 1)),
            ];
            if let Some(cause) = a.error {
                attrs.push(("error.type", Attr::Str(cause.to_string())));
            }
            SpanData {
                trace_id: self.trace_id,
                span_id: a.span_id,
                parent_span_id: Some(self.span_id),
                name: format!("attempt {}", a.provider),
                kind: SpanKind::Client,
                start: a.start,
                end: a.end.unwrap_or(a.start),
                error: a.error.is_some(),
                attrs,
            }
        })
    }
}

/// `gen_ai.operation.name`: the semconv's well-known values where one fits.
fn operation_name(op: Operation) -> &'static str {
    match op {
        Operation::Generate => "chat",
        Operation::Embed | Operation::EmbedOne => "embeddings",
        Operation::CountTokens => "count_tokens",
        // A well-known value of the semconv for multimodal generation (the Responses API).
        Operation::Respond => "generate_content",
    }
}

/// `gen_ai.provider.name`: the semconv's well-known values
/// ([`crate::providers::Vendor::telemetry_name`]).
fn vendor_name(kind: ProviderKind) -> &'static str {
    crate::providers::vendor(kind).telemetry_name()
}

fn tokens(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A random id that is not all zeros (W3C Trace Context: all-zero ids are invalid).
fn new_id<const N: usize>() -> [u8; N] {
    loop {
        let mut id = [0u8; N];
        for b in id.iter_mut() {
            *b = rand::random();
        }
        if id.iter().any(|&b| b != 0) {
            return id;
        }
    }
}

/// A parsed W3C `traceparent` header.
#[derive(Debug, PartialEq, Eq)]
struct TraceParent {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    sampled: bool,
}

/// `version-traceid-parentid-flags` (W3C Trace Context §3.2): lower-case hex, non-zero ids,
/// version `ff` invalid; a later version may append fields after a `-`.
fn parse_traceparent(value: &str) -> Option<TraceParent> {
    let v = value.trim();
    let head = v.get(..55)?;
    let tail = &v[55..];
    let mut parts = head.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let lower_hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let sizes = [version.len(), flags.len(), parts.count()];
    if sizes != [2, 2, 0] || ![version, trace, span, flags].iter().all(|s| lower_hex(s)) {
        return None;
    }
    if version == "ff" {
        return None;
    }
    if (version == "00" && !tail.is_empty()) || (!tail.is_empty() && !tail.starts_with('-')) {
        return None;
    }
    let mut trace_id = [0u8; 16];
    let mut span_id = [0u8; 8];
    hex::decode_to_slice(trace, &mut trace_id).ok()?;
    hex::decode_to_slice(span, &mut span_id).ok()?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(TraceParent {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
    })
}

// ---------------------------------------------------------------------------------------------
// The spans and their OTLP/JSON encoding.

#[derive(Debug, Clone, Copy)]
enum SpanKind {
    Server,
    Client,
}

#[derive(Debug, Clone)]
enum Attr {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// An array of strings (OTLP `arrayValue`).
    Strs(Vec<String>),
}

/// A finished span, as queued for export.
#[derive(Debug)]
struct SpanData {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent_span_id: Option<[u8; 8]>,
    name: String,
    kind: SpanKind,
    start: SystemTime,
    end: SystemTime,
    error: bool,
    attrs: Vec<(&'static str, Attr)>,
}

fn unix_nanos(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .to_string()
}

/// OTLP/JSON (the protobuf JSON mapping: ids in hex, 64-bit integers as strings, enums as
/// numbers).
fn span_json(s: &SpanData) -> Value {
    let attributes: Vec<Value> = s
        .attrs
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Attr::Str(s) => json!({ "stringValue": s }),
                Attr::Int(n) => json!({ "intValue": n.to_string() }),
                Attr::Float(f) => json!({ "doubleValue": f }),
                Attr::Bool(b) => json!({ "boolValue": b }),
                Attr::Strs(list) => {
                    let values: Vec<Value> =
                        list.iter().map(|s| json!({ "stringValue": s })).collect();
                    json!({ "arrayValue": { "values": values } })
                }
            };
            json!({ "key": k, "value": value })
        })
        .collect();
    let mut span = json!({
        "traceId": hex::encode(s.trace_id),
        "spanId": hex::encode(s.span_id),
        "name": s.name,
        // SPAN_KIND_SERVER = 2, SPAN_KIND_CLIENT = 3.
        "kind": match s.kind { SpanKind::Server => 2, SpanKind::Client => 3 },
        "startTimeUnixNano": unix_nanos(s.start),
        "endTimeUnixNano": unix_nanos(s.end),
        "attributes": attributes,
        // STATUS_CODE_UNSET = 0, STATUS_CODE_ERROR = 2.
        "status": { "code": if s.error { 2 } else { 0 } },
    });
    if let Some(parent) = s.parent_span_id {
        span["parentSpanId"] = json!(hex::encode(parent));
    }
    span
}

fn export_body(service_name: &str, batch: &[Vec<SpanData>]) -> Vec<u8> {
    let spans: Vec<Value> = batch.iter().flatten().map(span_json).collect();
    let body = json!({
        "resourceSpans": [{
            "resource": { "attributes": [
                { "key": "service.name", "value": { "stringValue": service_name } },
                { "key": "service.version", "value": { "stringValue": env!("CARGO_PKG_VERSION") } },
            ]},
            "scopeSpans": [{
                "scope": { "name": "switchyard", "version": env!("CARGO_PKG_VERSION") },
                "schemaUrl": format!("https://opentelemetry.io/schemas/{SEMCONV_VERSION}"),
                "spans": spans,
            }],
        }],
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The exporter thread.

struct Exporter {
    config: TelemetryConfig,
    dropped: IntCounter,
}

impl Exporter {
    /// Batches what the queue holds (up to `MAX_BATCH`, or what came in `SCHEDULE_DELAY`) and
    /// posts it; ends when the gateway drops the queue's sending end.
    fn run(self, rx: Receiver<Vec<SpanData>>) {
        let mut failures = 0u64;
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            let deadline = Instant::now() + SCHEDULE_DELAY;
            while batch.len() < MAX_BATCH {
                match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(spans) => batch.push(spans),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
            let body = export_body(&self.config.service_name, &batch);
            if let Err(e) = self.post(&body) {
                let n: usize = batch.iter().map(Vec::len).sum();
                self.dropped.inc_by(n as u64);
                // The first failure and every 100th after it, not one line per batch.
                if failures.is_multiple_of(100) {
                    tracing::warn!(endpoint = %self.config.endpoint, error = %e, "OTLP export failed; spans dropped");
                }
                failures += 1;
            }
        }
    }

    /// One `POST` over a fresh connection; a 2xx status is success.
    fn post(&self, body: &[u8]) -> std::io::Result<()> {
        let c = &self.config;
        let mut conn = TcpStream::connect_timeout(&c.addr, CONNECT_TIMEOUT)?;
        conn.set_write_timeout(Some(IO_TIMEOUT))?;
        conn.set_read_timeout(Some(IO_TIMEOUT))?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            c.path,
            c.host_header,
            body.len()
        );
        conn.write_all(head.as_bytes())?;
        conn.write_all(body)?;
        let mut status = [0u8; 12];
        conn.read_exact(&mut status)?;
        let code = std::str::from_utf8(&status[9..12]).unwrap_or("");
        if status.starts_with(b"HTTP/1.") && code.starts_with('2') {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "the collector answered {}",
                String::from_utf8_lossy(&status)
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parsing() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let p = parse_traceparent(tp).unwrap();
        assert_eq!(hex::encode(p.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex::encode(p.span_id), "00f067aa0ba902b7");
        assert!(p.sampled);
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert!(!parse_traceparent(unsampled).unwrap().sampled);
        // A later version may carry more fields.
        let v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
        assert!(parse_traceparent(v1).is_some());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ids_are_never_zero() {
        for _ in 0..100 {
            assert_ne!(new_id::<8>(), [0; 8]);
        }
    }
}
