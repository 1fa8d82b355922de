//! The usage log: one JSON line per request, written by a thread of its own off the request
//! path. A line never holds a prompt, a completion or a secret.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::accounting::prices::PriceLine;
use crate::accounting::usage::{Usage, UsageSource};
use crate::config::{Key, Model, Provider, Team, UsageSink};
use crate::observability::metrics::Metrics;

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
    /// Parts of `prompt_tokens`: read from and written to the vendor's prompt cache.
    cached_tokens: u64,
    cache_write_tokens: u64,
    /// The part of `cache_write_tokens` written with a 1-hour lifetime.
    cache_write_1h_tokens: u64,
    /// Part of `completion_tokens`.
    reasoning_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage_source: Option<UsageSource>,
    cost_usd: f64,
    /// The price line `cost_usd` was billed at: `base`, `tier>N` (a prompt of more than N
    /// tokens), `flex` or `priority`; absent when the model has no prices.
    #[serde(skip_serializing_if = "Option::is_none")]
    price: Option<String>,
    /// The OpenAI processing tier that served the answer, when not the default (`flex`,
    /// `priority`).
    #[serde(skip_serializing_if = "Option::is_none")]
    service_tier: Option<&'static str>,
    duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttft_ms: Option<f64>,
    /// The end user (`crate::policy::attribution`); absent when none was named.
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    /// The request's tags; absent when none.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
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
    /// The price line `cost_usd` was billed at (`None`: no prices).
    pub price: Option<PriceLine>,
    pub duration_ms: f64,
    pub ttft_ms: Option<f64>,
    /// The end user, when one was named (`crate::policy::attribution`).
    pub user: Option<String>,
    /// The request's tags (empty: none).
    pub tags: Vec<String>,
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
            cached_tokens: self.usage.map_or(0, |(u, _)| u.cached_tokens),
            cache_write_tokens: self.usage.map_or(0, |(u, _)| u.cache_write_tokens),
            cache_write_1h_tokens: self.usage.map_or(0, |(u, _)| u.cache_write_1h_tokens),
            reasoning_tokens: self.usage.map_or(0, |(u, _)| u.reasoning_tokens),
            usage_source: self.usage.map(|(_, s)| s),
            cost_usd: self.cost_usd,
            price: self.price.map(|p| p.to_string()),
            service_tier: self
                .usage
                .and_then(|(u, _)| u.service_tier)
                .map(|t| t.as_str()),
            duration_ms: self.duration_ms,
            ttft_ms: self.ttft_ms,
            user: self.user.as_deref(),
            tags: &self.tags,
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

/// The buffer of a batch's lines is freed after a batch that made it larger than this.
const LINES_RETAIN: usize = 1 << 20;

/// The writer thread: appends the queued lines every [`WRITE_PERIOD`] and flushes them, reopens the file
/// after an error (at most once a second), and reports failures once per burst.
fn write_loop(sink: UsageSink, rx: Receiver<Box<Entry>>, metrics: Arc<Metrics>) {
    let mut out: Option<Box<dyn Write>> = None;
    let mut last_open_try: Option<Instant> = None;
    let mut failing = false;
    let mut batch = Vec::with_capacity(1024);
    let mut lines: Vec<u8> = Vec::new();
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
        // The batch's lines are made in one buffer and written at once: serde_json writes a
        // record in dozens of small pieces, each a call through the sink's `dyn Write`.
        lines.clear();
        for entry in &batch {
            // A record of strings and numbers always serializes.
            let _ = serde_json::to_writer(&mut lines, &entry.record());
            lines.push(b'\n');
        }
        let written = match out.as_mut() {
            Some(w) => w.write_all(&lines).and_then(|()| w.flush()).is_ok(),
            None => false,
        };
        if lines.capacity() > LINES_RETAIN {
            lines = Vec::new();
        }
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
