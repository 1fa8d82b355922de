//! Usage of one answer, its cost, and the usage log.
//!
//! Streams are metered by [`crate::sse::Scanner`] over the bytes that are forwarded; a
//! non-streaming answer's body is kept (bounded) and its `usage` read at the end. When an
//! upstream reports no usage, it is estimated from the text and marked `estimated`: a
//! request is never silently counted as zero tokens.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::config::{Key, Model, Provider, Team, UsageSink};
use crate::metrics::Metrics;
pub use crate::sse::Usage;
use crate::sse::{estimate_tokens, Scanner};

/// Whether token counts came from the vendor or were estimated by Switchyard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageSource {
    Reported,
    Estimated,
}

impl UsageSource {
    pub fn label(self) -> &'static str {
        match self {
            UsageSource::Reported => "reported",
            UsageSource::Estimated => "estimated",
        }
    }
}

/// The largest non-streaming answer kept to read its usage; a larger one is estimated.
const BODY_METER_LIMIT: usize = 16 * 1024 * 1024;

/// Reads the usage of an answer from the bytes that go to the client.
pub enum Meter {
    /// Nothing to meter (an error answer, or not started).
    None,
    Stream(Box<Scanner>),
    /// A non-streaming answer, kept as the chunks that went to the client (shared, not
    /// copied) and read once whole at the end.
    Body {
        chunks: Vec<Bytes>,
        len: usize,
        overflowed: bool,
    },
}

impl Meter {
    pub fn stream() -> Meter {
        Meter::Stream(Box::default())
    }

    pub fn body() -> Meter {
        Meter::Body {
            chunks: Vec::new(),
            len: 0,
            overflowed: false,
        }
    }

    /// Meters a chunk the gateway built itself (a translation).
    pub fn feed(&mut self, chunk: &[u8]) {
        match self {
            Meter::Stream(s) => s.feed(chunk),
            Meter::Body { .. } => self.feed_bytes(&Bytes::copy_from_slice(chunk)),
            Meter::None => {}
        }
    }

    /// Meters a chunk that goes to the client as it is: a body keeps a reference to it.
    pub fn feed_bytes(&mut self, chunk: &Bytes) {
        match self {
            Meter::None => {}
            Meter::Stream(s) => s.feed(chunk),
            Meter::Body {
                chunks,
                len,
                overflowed,
            } => {
                if *len + chunk.len() > BODY_METER_LIMIT {
                    *overflowed = true;
                    chunks.clear();
                } else if !*overflowed {
                    *len += chunk.len();
                    chunks.push(chunk.clone());
                }
            }
        }
    }

    /// Whether any content reached the client (a stream's first content chunk).
    pub fn delivered_content(&self) -> bool {
        match self {
            Meter::Stream(s) => s.content_events > 0,
            Meter::Body { len, .. } => *len > 0,
            Meter::None => false,
        }
    }

    /// The answer's usage: as reported, or estimated from the text (completion) and from the
    /// request (`prompt_estimate`). `None` when nothing was metered.
    pub fn settle(&mut self, prompt_estimate: u64) -> Option<(Usage, UsageSource)> {
        match self {
            Meter::None => None,
            Meter::Stream(s) => {
                s.finish();
                Some(match s.usage {
                    Some(u) => (u, UsageSource::Reported),
                    None => (
                        estimated(prompt_estimate, estimate_tokens(s.content_chars)),
                        UsageSource::Estimated,
                    ),
                })
            }
            Meter::Body {
                chunks,
                len,
                overflowed,
            } => Some(body_usage(chunks, *len, *overflowed, prompt_estimate)),
        }
    }
}

/// The usage of a whole non-streaming answer. Most answers are one chunk, read in place;
/// the `usage` object alone is read first, and the choices only when it is missing.
fn body_usage(chunks: &[Bytes], len: usize, overflowed: bool, prompt: u64) -> (Usage, UsageSource) {
    if overflowed {
        return (
            estimated(prompt, estimate_tokens(len as u64)),
            UsageSource::Estimated,
        );
    }
    let joined;
    let body: &[u8] = match chunks {
        [one] => one,
        _ => {
            joined = chunks.concat();
            &joined
        }
    };
    if let Ok(UsageOnly { usage: Some(u) }) = serde_json::from_slice::<UsageOnly>(body) {
        return (u, UsageSource::Reported);
    }
    let completion = match serde_json::from_slice::<Completion>(body) {
        Ok(c) => estimate_tokens(c.content_chars()),
        Err(_) => estimate_tokens(len as u64),
    };
    (estimated(prompt, completion), UsageSource::Estimated)
}

/// Prompt tokens estimated from the request's messages (their JSON size, at about four
/// bytes a token), for answers that report no usage.
pub fn estimate_prompt(req: &crate::body::ChatRequest<'_>) -> u64 {
    let bytes: usize = req.messages.iter().map(|m| m.get().len()).sum();
    estimate_tokens(bytes as u64).max(1)
}

fn estimated(prompt: u64, completion: u64) -> Usage {
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
    }
}

/// The `usage` of a `chat.completion` body; everything else is skipped without allocating.
#[derive(Deserialize)]
struct UsageOnly {
    #[serde(default)]
    usage: Option<Usage>,
}

/// The parts of a `chat.completion` body that estimating needs.
#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
}

impl Completion {
    fn content_chars(&self) -> u64 {
        self.choices
            .iter()
            .filter_map(|c| c.message.as_ref()?.content.as_ref())
            .map(|s| s.chars().count() as u64)
            .sum()
    }
}

/// Cost in USD of `usage` at the model's prices (0 for a model without prices).
pub fn cost(model: &Model, usage: &Usage) -> f64 {
    let input = model.input_usd_per_mtok.unwrap_or(0.0) * usage.prompt_tokens as f64;
    let output = model.output_usd_per_mtok.unwrap_or(0.0) * usage.completion_tokens as f64;
    (input + output) / 1_000_000.0
}

/// One line of the usage log. It never holds a prompt, a completion or a secret.
#[derive(Debug, Serialize)]
struct Record<'a> {
    request_id: &'a str,
    time: String,
    key: &'a str,
    team: &'a str,
    model: &'a str,
    provider: &'a str,
    upstream_model: &'a str,
    stream: bool,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    /// Upstream attempts made (retries and fallbacks included; 0 when none was made).
    attempts: u32,
    prompt_tokens: u64,
    completion_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage_source: Option<UsageSource>,
    cost_usd: f64,
    duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttft_ms: Option<f64>,
}

/// One request's usage as the request path hands it over: the JSON line is built by the
/// writer thread, off the request path. Names are shared with the config (`Arc`), not copied.
pub struct Entry {
    pub request_id: String,
    pub started: SystemTime,
    pub key: Option<Arc<Key>>,
    pub team: Option<Arc<Team>>,
    pub model: Option<Arc<Model>>,
    pub provider: Option<Arc<Provider>>,
    /// Empty when no upstream was chosen.
    pub upstream_model: String,
    pub stream: bool,
    pub status: u16,
    pub reason: Option<&'static str>,
    pub attempts: u32,
    pub usage: Option<(Usage, UsageSource)>,
    pub cost_usd: f64,
    pub duration_ms: f64,
    pub ttft_ms: Option<f64>,
}

/// `-` for a name the request never had.
fn or_dash(s: Option<&str>) -> &str {
    s.filter(|s| !s.is_empty()).unwrap_or("-")
}

impl Entry {
    /// The log line's fields; `-` stands for what the request never had.
    fn record(&self) -> Record<'_> {
        Record {
            request_id: &self.request_id,
            time: timestamp(self.started),
            key: or_dash(self.key.as_deref().map(|k| k.id.as_str())),
            team: or_dash(self.team.as_deref().map(|t| t.name.as_str())),
            model: or_dash(self.model.as_deref().map(|m| m.name.as_str())),
            provider: or_dash(self.provider.as_deref().map(|p| p.name.as_str())),
            upstream_model: or_dash(Some(&self.upstream_model)),
            stream: self.stream,
            status: self.status,
            reason: self.reason,
            attempts: self.attempts,
            prompt_tokens: self.usage.map_or(0, |(u, _)| u.prompt_tokens),
            completion_tokens: self.usage.map_or(0, |(u, _)| u.completion_tokens),
            usage_source: self.usage.map(|(_, s)| s),
            cost_usd: self.cost_usd,
            duration_ms: self.duration_ms,
            ttft_ms: self.ttft_ms,
        }
    }
}

/// RFC 3339 UTC time with milliseconds, for the log.
fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// How many lines may wait for the writer; beyond that lines are dropped (and counted),
/// because a request never waits for the log.
const QUEUE: usize = 65_536;

/// The usage log: lines go through a bounded queue to a writer thread, so a slow or full
/// disk never slows a request; a line that cannot be written is counted in
/// `switchyard_usage_log_errors_total` and reported in the log, not by failing requests.
#[derive(Clone)]
pub struct UsageLog {
    tx: Option<SyncSender<Box<Entry>>>,
    metrics: Arc<Metrics>,
}

impl UsageLog {
    /// Starts the writer for `sink`; `None` turns the log off.
    pub fn start(sink: Option<&UsageSink>, metrics: Arc<Metrics>) -> UsageLog {
        let Some(sink) = sink.cloned() else {
            return UsageLog { tx: None, metrics };
        };
        let (tx, rx) = sync_channel::<Box<Entry>>(QUEUE);
        let m = metrics.clone();
        let spawned = std::thread::Builder::new()
            .name("usage-log".into())
            .spawn(move || write_loop(sink, rx, m));
        if spawned.is_err() {
            tracing::error!("cannot start the usage log writer thread: usage log off");
            return UsageLog { tx: None, metrics };
        }
        UsageLog {
            tx: Some(tx),
            metrics,
        }
    }

    /// Queues one entry; never blocks. (Boxed: the queue's slots stay one pointer each.)
    pub fn write(&self, entry: Entry) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Box::new(entry)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.dropped("queue_full"),
            Err(TrySendError::Disconnected(_)) => self.dropped("writer_gone"),
        }
    }

    fn dropped(&self, cause: &str) {
        self.metrics
            .usage_log_errors
            .with_label_values(&[cause])
            .inc();
    }
}

/// How often the writer thread takes the queued lines.
const WRITE_PERIOD: Duration = Duration::from_millis(50);

/// The writer thread: appends the queued lines every [`WRITE_PERIOD`] and flushes them, reopens the file
/// after an error (at most once a second), and reports failures once per burst.
fn write_loop(sink: UsageSink, rx: Receiver<Box<Entry>>, metrics: Arc<Metrics>) {
    let mut out: Option<Box<dyn Write>> = None;
    let mut last_open_try: Option<Instant> = None;
    let mut failing = false;
    let mut batch = Vec::with_capacity(1024);
    loop {
        // The writer polls instead of blocking in `recv`: a blocked receiver makes every
        // request's send wake this thread (a context switch per request, the largest cost of
        // the request path in a profile). Lines wait at most one period.
        std::thread::sleep(WRITE_PERIOD);
        batch.clear();
        loop {
            match rx.try_recv() {
                Ok(line) => batch.push(line),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    if batch.is_empty() {
                        return;
                    }
                    break;
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        if out.is_none() && last_open_try.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            last_open_try = Some(Instant::now());
            out = open(&sink);
        }
        let written = match out.as_mut() {
            Some(w) => batch
                .iter()
                .try_for_each(|entry| {
                    serde_json::to_writer(&mut *w, &entry.record())?;
                    w.write_all(b"\n")
                })
                .and_then(|()| w.flush())
                .is_ok(),
            None => false,
        };
        if written {
            if failing {
                tracing::info!("usage log writable again");
            }
            failing = false;
        } else {
            metrics
                .usage_log_errors
                .with_label_values(&["write"])
                .inc_by(batch.len() as u64);
            if !failing {
                tracing::warn!(sink = %describe(&sink), "cannot write the usage log; lines are dropped until it works again");
            }
            failing = true;
            out = None;
        }
    }
}

fn open(sink: &UsageSink) -> Option<Box<dyn Write>> {
    match sink {
        UsageSink::Stdout => Some(Box::new(std::io::stdout())),
        UsageSink::File(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                let _ = std::fs::create_dir_all(dir);
            }
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok()
                .map(|f: File| Box::new(BufWriter::with_capacity(64 * 1024, f)) as Box<dyn Write>)
        }
    }
}

fn describe(sink: &UsageSink) -> String {
    match sink {
        UsageSink::Stdout => "stdout".into(),
        UsageSink::File(p) => PathBuf::from(p).display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(input: Option<f64>, output: Option<f64>) -> Model {
        Model {
            name: "m".into(),
            aliases: vec![],
            fallbacks: vec![],
            input_usd_per_mtok: input,
            output_usd_per_mtok: output,
            routes: vec![],
        }
    }

    #[test]
    fn cost_uses_both_prices() {
        let u = Usage {
            prompt_tokens: 1_000_000,
            completion_tokens: 500_000,
            total_tokens: 1_500_000,
        };
        assert!((cost(&model(Some(2.5), Some(10.0)), &u) - 7.5).abs() < 1e-9);
        assert_eq!(cost(&model(None, None), &u), 0.0);
    }

    #[test]
    fn body_meter_reads_usage_or_estimates() {
        let mut m = Meter::body();
        m.feed(br#"{"choices":[{"message":{"content":"abcdefgh"}}],"#);
        m.feed(br#""usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#);
        assert_eq!(
            m.settle(99),
            Some((
                Usage {
                    prompt_tokens: 5,
                    completion_tokens: 2,
                    total_tokens: 7
                },
                UsageSource::Reported
            ))
        );
        let mut m = Meter::body();
        m.feed(br#"{"choices":[{"message":{"content":"abcdefgh"}}]}"#);
        let (u, src) = m.settle(10).unwrap();
        assert_eq!(src, UsageSource::Estimated);
        assert_eq!((u.prompt_tokens, u.completion_tokens), (10, 2));
        assert!(Meter::None.settle(1).is_none());
    }
}
