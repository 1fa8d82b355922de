//! Every metric of `spec/gateway.md` §6, in one registry served by the admin listener.
//!
//! Label values come from the config (key ids, team, model and provider names), from a fixed
//! set (`status`, `reason`, `limit`, `type`), or are `-` when a request never got that far:
//! nothing a client sends becomes a label, so the number of series stays bounded.
//!
//! Every counter whose label values the config determines is exported at 0 from the first
//! scrape ([`Metrics::preset`], run at startup and after every successful reload), so that
//! dashboards read 0 rather than "no data" and `increase()` sees a series' first event:
//!
//! | family | series exported at 0 |
//! |---|---|
//! | `switchyard_config_reloads_total` | `result` = `success`, `failure` |
//! | `switchyard_rate_limited_total` | every configured key (with its team) × `limit` = `rpm`, `tpm`, `concurrency`, `budget` |
//! | `switchyard_upstream_errors_total` | every provider (but `mock`) × every `reason` of [`UPSTREAM_ERROR_REASONS`] |
//! | `switchyard_retries_total` | every provider (but `mock`) |
//! | `switchyard_fallbacks_total` | every model → each of its fallbacks, and each fallback → a later one |
//! | `switchyard_cost_usd_total` | every team × every model it may use that has (or falls back to one with) a price |
//! | `switchyard_content_filtered_total` | every team × every content filter that applies to it |
//! | `switchyard_usage_log_errors_total` | `cause` = `write`, `queue_full`, `writer_gone` |
//!
//! The `switchyard_budget_{limit,spent,reserved}` gauges ([`BudgetGauges`]) hold every budget
//! of the config, as the limiter publishes them before each scrape; they replace their whole
//! set each time, so a budget removed by a reload leaves with its series.
//!
//! Families whose labels cannot be known ahead appear with their first observation:
//! `switchyard_requests_total` (its `status` is the answer's),
//! `switchyard_request_adjustments_total` (its `adjustment` is a contract rule's field name),
//! `switchyard_door_requests_total` (its `status` is the answer's),
//! `switchyard_tokens_total`
//! (`usage_source` and the served route), and the histograms (a `stream` or route first
//! used). The alerts and the dashboard are written for that (see `deploy/`). A series whose
//! key, team, provider or model leaves the config on a reload keeps its last value until the
//! process restarts.

use std::time::Duration;

use crate::accounting::usage::{Usage, UsageSource};
use crate::config::Config;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Latency buckets (seconds) from 1 ms to 10 minutes: LLM answers span that whole range.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0,
];
/// Buckets for the gateway's own overhead, which should stay in microseconds.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
];

/// The `limit` label values of `switchyard_rate_limited_total` (`limits::LimitKind::label`).
pub const LIMIT_LABELS: &[&str] = &["rpm", "tpm", "concurrency", "budget"];

/// The `reason` label values of `switchyard_upstream_errors_total`: a connection that timed
/// out or failed, TLS, each of the other three timeouts, a reset mid-answer, an error event in
/// a stream, an answer that cannot be translated; and the vendor's error statuses
/// (`upstream::Failure::cause`, `proxy::status_reason`).
pub const UPSTREAM_ERROR_REASONS: &[&str] = &[
    "connect_timeout",
    "connect",
    "tls",
    "first_byte_timeout",
    "idle_timeout",
    "total_timeout",
    "reset",
    "stream_error",
    "other",
    "status_429",
    "status_auth",
    "status_4xx",
    "status_5xx",
];

/// The `cause` label values of `switchyard_usage_log_errors_total` (`usage::UsageLog`).
pub const USAGE_LOG_ERROR_CAUSES: &[&str] = &["write", "queue_full", "writer_gone"];

/// What one finished request adds to the metrics (see [`Metrics::count_request`]).
pub struct Finished<'a> {
    pub team: &'a str,
    pub key: &'a str,
    pub model: &'a str,
    pub provider: &'a str,
    pub status: u16,
    pub stream: bool,
    pub duration: Duration,
    /// Only for answers that carried content.
    pub ttft: Option<Duration>,
    /// The gateway's own part of the time, up to the hand-over to the upstream.
    pub own: Duration,
    pub usage: Option<(Usage, UsageSource)>,
    pub cost: f64,
    /// What the translation changed for the vendor (`crate::dialect::adjusted`): fixed names.
    pub adjusted: &'a [&'static str],
    /// The front door the request came through (a fixed name: `chat`, `messages`,
    /// `responses`, `embeddings`, `gemini`).
    pub door: &'static str,
}

/// One budget as the `switchyard_budget_*` gauges show it.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetRow {
    pub team: String,
    /// Empty for a team's own budget.
    pub key: String,
    /// `day` or `month`.
    pub period: &'static str,
    /// `tokens` or `usd`.
    pub unit: &'static str,
    pub limit: f64,
    pub spent: f64,
    pub reserved: f64,
}

/// The `switchyard_budget_limit`, `switchyard_budget_spent` and `switchyard_budget_reserved`
/// gauges (labels `team`, `key`, `period`, `unit`): every configured budget, as the limiter
/// last published them ([`Metrics::set_budgets`], called by the admin listener before each
/// scrape). Each publication replaces the whole set, so a budget removed from the config
/// leaves with its series.
pub struct BudgetGauges {
    rows: std::sync::Mutex<Vec<BudgetRow>>,
    descs: Vec<prometheus::core::Desc>,
}

/// The three families: name and help.
const BUDGET_FAMILIES: [(&str, &str); 3] = [
    (
        "switchyard_budget_limit",
        "A budget's cap per period: tokens per UTC day, or US dollars per UTC month.",
    ),
    (
        "switchyard_budget_spent",
        "What a budget's current period has spent (settled requests), in its unit.",
    ),
    (
        "switchyard_budget_reserved",
        "What requests in flight hold of a budget's current period, in its unit.",
    ),
];

/// The labels of the budget gauges.
const BUDGET_LABELS: [&str; 4] = ["team", "key", "period", "unit"];

impl BudgetGauges {
    fn new() -> BudgetGauges {
        let descs = BUDGET_FAMILIES
            .iter()
            .filter_map(|(name, help)| {
                prometheus::core::Desc::new(
                    name.to_string(),
                    help.to_string(),
                    BUDGET_LABELS.iter().map(|l| l.to_string()).collect(),
                    Default::default(),
                )
                .ok()
            })
            .collect();
        BudgetGauges {
            rows: std::sync::Mutex::new(Vec::new()),
            descs,
        }
    }
}

impl prometheus::core::Collector for BudgetGauges {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let rows = self.rows.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut out = Vec::with_capacity(3);
        for (i, (name, help)) in BUDGET_FAMILIES.iter().enumerate() {
            let Ok(vec) = prometheus::GaugeVec::new(Opts::new(*name, *help), &BUDGET_LABELS) else {
                continue;
            };
            for r in &rows {
                let value = [r.limit, r.spent, r.reserved][i];
                vec.with_label_values(&[&r.team, &r.key, r.period, r.unit])
                    .set(value);
            }
            out.extend(prometheus::core::Collector::collect(&vec));
        }
        out
    }
}

pub struct Metrics {
    registry: Registry,
    pub budgets: std::sync::Arc<BudgetGauges>,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub ttft: HistogramVec,
    pub overhead: Histogram,
    pub tokens: prometheus::CounterVec,
    pub cost: prometheus::CounterVec,
    pub rate_limited: IntCounterVec,
    pub limits_backend_up: IntGauge,
    pub upstream_errors: IntCounterVec,
    pub fallbacks: IntCounterVec,
    pub retries: IntCounterVec,
    pub active_streams: IntGauge,
    pub route_healthy: prometheus::IntGaugeVec,
    pub config_reloads: IntCounterVec,
    pub config_last_reload_success: Gauge,
    pub config_info: prometheus::IntGaugeVec,
    pub usage_log_errors: IntCounterVec,
    pub content_filtered: IntCounterVec,
    pub adjustments: IntCounterVec,
    /// Requests by front door (`chat`, `messages`, `responses`, `embeddings`, `gemini`).
    pub door_requests: IntCounterVec,
    pub tls_certificate_expiry: Gauge,
    pub tls_certificate_reloads: IntCounterVec,
}

impl Metrics {
    /// Counts one finished request in every series it belongs to; called once per request.
    pub fn count_request(&self, f: &Finished<'_>) {
        let (team, key, model, provider) = (f.team, f.key, f.model, f.provider);
        let mut digits = [0u8; 5];
        self.requests
            .with_label_values(&[
                team,
                key,
                model,
                provider,
                status_label(f.status, &mut digits),
            ])
            .inc();
        self.door_requests
            .with_label_values(&[f.door, status_label(f.status, &mut digits)])
            .inc();
        for adjustment in f.adjusted {
            self.adjustments
                .with_label_values(&[provider, adjustment])
                .inc();
        }
        let stream = if f.stream { "true" } else { "false" };
        self.request_duration
            .with_label_values(&[model, provider, stream])
            .observe(f.duration.as_secs_f64());
        if let Some(t) = f.ttft {
            self.ttft
                .with_label_values(&[model, provider])
                .observe(t.as_secs_f64());
        }
        self.overhead.observe(f.own.as_secs_f64());
        if let Some((u, source)) = &f.usage {
            let src = source.label();
            // The parts (cached, cache_write, reasoning) only when a vendor reported them.
            for (kind, n, always) in [
                ("prompt", u.prompt_tokens, true),
                ("completion", u.completion_tokens, true),
                ("cached", u.cached_tokens, false),
                ("cache_write", u.cache_write_tokens, false),
                ("reasoning", u.reasoning_tokens, false),
            ] {
                if always || n > 0 {
                    self.tokens
                        .with_label_values(&[team, key, model, provider, kind, src])
                        .inc_by(n as f64);
                }
            }
            if f.cost > 0.0 {
                self.cost.with_label_values(&[team, model]).inc_by(f.cost);
            }
        }
    }

    /// Exports at 0 every counter series whose labels `config` determines (module docs);
    /// series that exist already keep their values. Called at startup and after each reload.
    pub fn preset(&self, config: &Config) {
        for result in ["success", "failure"] {
            self.config_reloads.with_label_values(&[result]);
        }
        for cause in USAGE_LOG_ERROR_CAUSES {
            self.usage_log_errors.with_label_values(&[cause]);
        }
        for key in &config.keys {
            let team = &config.teams[key.team].name;
            for limit in LIMIT_LABELS {
                self.rate_limited
                    .with_label_values(&[team.as_str(), key.id.as_str(), limit]);
            }
        }
        for p in config
            .providers
            .iter()
            .filter(|p| !crate::providers::vendor(p.kind).is_local())
        {
            self.retries.with_label_values(&[&p.name]);
            for reason in UPSTREAM_ERROR_REASONS {
                self.upstream_errors
                    .with_label_values(&[p.name.as_str(), reason]);
            }
        }
        for model in &config.models {
            let chain: Vec<&str> = std::iter::once(model.name.as_str())
                .chain(
                    model
                        .fallbacks
                        .iter()
                        .map(|&f| config.models[f].name.as_str()),
                )
                .collect();
            for (i, from) in chain.iter().enumerate() {
                for to in &chain[i + 1..] {
                    self.fallbacks.with_label_values(&[from, to]);
                }
            }
        }
        self.preset_per_team(config);
    }

    /// The per-team series of [`Metrics::preset`]: cost and content filters.
    fn preset_per_team(&self, config: &Config) {
        let priced = |i: usize| config.models[i].prices.is_some();
        for team in &config.teams {
            for (i, model) in config.models.iter().enumerate() {
                let costs = priced(i) || model.fallbacks.iter().any(|&f| priced(f));
                if costs && team.allows(&model.name) {
                    self.cost.with_label_values(&[&team.name, &model.name]);
                }
            }
            for filter in &config.content_filters {
                if filter.teams.matches(&team.name) {
                    self.content_filtered
                        .with_label_values(&[&team.name, &filter.name]);
                }
            }
        }
    }

    pub fn new() -> Metrics {
        let registry = Registry::new();
        let m = Metrics {
            budgets: std::sync::Arc::new(BudgetGauges::new()),
            requests: counter(
                "switchyard_requests_total",
                "Requests that reached the gateway, by outcome.",
                &["team", "key", "model", "provider", "status"],
            ),
            request_duration: histogram(
                "switchyard_request_duration_seconds",
                "Time from the request's arrival to the end of its answer.",
                &["model", "provider", "stream"],
                LATENCY_BUCKETS,
            ),
            ttft: histogram(
                "switchyard_time_to_first_token_seconds",
                "Time from the request's arrival to the first byte of the answer's body.",
                &["model", "provider"],
                LATENCY_BUCKETS,
            ),
            overhead: Histogram::with_opts(
                HistogramOpts::new(
                    "switchyard_gateway_overhead_seconds",
                    "Time spent in Switchyard itself before the request went upstream.",
                )
                .buckets(OVERHEAD_BUCKETS.to_vec()),
            )
            .unwrap_or_else(|_| unreachable_metric()),
            tokens: float_counter(
                "switchyard_tokens_total",
                "Tokens by type (prompt, completion; cached, cache_write and reasoning are parts of them); usage_source says whether the vendor reported them or Switchyard estimated them.",
                &["team", "key", "model", "provider", "type", "usage_source"],
            ),
            cost: float_counter(
                "switchyard_cost_usd_total",
                "Cost in US dollars, from the model prices of the config.",
                &["team", "model"],
            ),
            rate_limited: counter(
                "switchyard_rate_limited_total",
                "Requests refused by a limit or budget.",
                &["team", "key", "limit"],
            ),
            limits_backend_up: IntGauge::new(
                "switchyard_limits_backend_up",
                "1 while the limits backend answers (memory, or Redis reachable); 0 while Redis is down and limits are per instance.",
            )
            .unwrap_or_else(|_| unreachable_metric()),
            upstream_errors: counter(
                "switchyard_upstream_errors_total",
                "Failed upstream attempts, by provider and cause.",
                &["provider", "reason"],
            ),
            fallbacks: counter(
                "switchyard_fallbacks_total",
                "Requests that fell back from one model to another.",
                &["from", "to"],
            ),
            retries: counter(
                "switchyard_retries_total",
                "Upstream attempts after the first one.",
                &["provider"],
            ),
            active_streams: IntGauge::new(
                "switchyard_active_streams",
                "Streaming answers in progress.",
            )
            .unwrap_or_else(|_| unreachable_metric()),
            route_healthy: prometheus::IntGaugeVec::new(
                Opts::new(
                    "switchyard_route_healthy",
                    "1 while a route takes traffic, 0 while it is cooled down.",
                ),
                &["provider", "model"],
            )
            .unwrap_or_else(|_| unreachable_metric()),
            config_reloads: counter(
                "switchyard_config_reloads_total",
                "Config reloads, by result.",
                &["result"],
            ),
            config_last_reload_success: Gauge::new(
                "switchyard_config_last_reload_success_timestamp_seconds",
                "Unix time of the last config that was loaded.",
            )
            .unwrap_or_else(|_| unreachable_metric()),
            config_info: prometheus::IntGaugeVec::new(
                Opts::new(
                    "switchyard_config_info",
                    "1 for the SHA-256 of the running config file (only that series).",
                ),
                &["hash"],
            )
            .unwrap_or_else(|_| unreachable_metric()),
            usage_log_errors: counter(
                "switchyard_usage_log_errors_total",
                "Usage log lines that could not be written (dropped), by cause.",
                &["cause"],
            ),
            content_filtered: counter(
                "switchyard_content_filtered_total",
                "Requests refused by a content policy of the config.",
                &["team", "filter"],
            ),
            door_requests: counter(
                "switchyard_door_requests_total",
                "Requests by the front door they came through, by outcome.",
                &["door", "status"],
            ),
            adjustments: counter(
                "switchyard_request_adjustments_total",
                "Requests a translation changed so that the route's vendor takes them (a field its docs say cannot go with another, a hosted tool it cannot run), by provider and the client's field changed.",
                &["provider", "adjustment"],
            ),
            tls_certificate_expiry: Gauge::new(
                "switchyard_tls_certificate_expiry_timestamp_seconds",
                "Unix time at which the served TLS certificate expires (its notAfter); absent without TLS.",
            )
            .unwrap_or_else(|_| unreachable_metric()),
            tls_certificate_reloads: counter(
                "switchyard_tls_certificate_reloads_total",
                "Reloads of the TLS certificate pair after its files changed, by result.",
                &["result"],
            ),
            registry,
        };
        m.register_all();
        m
    }

    fn register_all(&self) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.requests.clone()),
            Box::new(self.request_duration.clone()),
            Box::new(self.ttft.clone()),
            Box::new(self.overhead.clone()),
            Box::new(self.tokens.clone()),
            Box::new(self.cost.clone()),
            Box::new(self.rate_limited.clone()),
            Box::new(self.limits_backend_up.clone()),
            Box::new(self.upstream_errors.clone()),
            Box::new(self.fallbacks.clone()),
            Box::new(self.retries.clone()),
            Box::new(self.active_streams.clone()),
            Box::new(self.route_healthy.clone()),
            Box::new(self.config_reloads.clone()),
            Box::new(self.config_last_reload_success.clone()),
            Box::new(self.config_info.clone()),
            Box::new(self.usage_log_errors.clone()),
            Box::new(self.content_filtered.clone()),
            Box::new(self.adjustments.clone()),
            Box::new(self.door_requests.clone()),
            Box::new(self.tls_certificate_reloads.clone()),
        ];
        for c in collectors {
            // Names are distinct constants: registration cannot collide.
            let _ = self.registry.register(c);
        }
        let _ = self
            .registry
            .register(Box::new(SharedBudgets(self.budgets.clone())));
    }

    /// Replaces every `switchyard_budget_*` series with `rows` (the limiter's
    /// `publish_budgets`).
    pub fn set_budgets(&self, rows: Vec<BudgetRow>) {
        *self.budgets.rows.lock().unwrap_or_else(|p| p.into_inner()) = rows;
    }

    /// Publishes the TLS certificate's expiry gauge (only a TLS listener registers it).
    pub fn register_tls(&self) {
        let _ = self
            .registry
            .register(Box::new(self.tls_certificate_expiry.clone()));
    }

    /// Publishes a metric owned by another module (the telemetry exporter's drop counter).
    pub fn register(&self, c: Box<dyn prometheus::core::Collector>) {
        let _ = self.registry.register(c);
    }

    /// The registry in Prometheus' text format.
    pub fn render(&self) -> (Vec<u8>, String) {
        let encoder = TextEncoder::new();
        let mut buf = Vec::with_capacity(16 * 1024);
        let _ = encoder.encode(&self.registry.gather(), &mut buf);
        (buf, encoder.format_type().to_string())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The budget gauges as the registry holds them (a collector must be owned).
struct SharedBudgets(std::sync::Arc<BudgetGauges>);

impl prometheus::core::Collector for SharedBudgets {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.0.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.0.collect()
    }
}

/// An `IntCounterVec` (its fixed name and labels cannot fail).
pub(crate) fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|_| unreachable_metric())
}

pub(crate) fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).unwrap_or_else(|_| unreachable_metric())
}

fn float_counter(name: &str, help: &str, labels: &[&str]) -> prometheus::CounterVec {
    prometheus::CounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|_| unreachable_metric())
}

fn histogram(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .unwrap_or_else(|_| unreachable_metric())
}

/// Metric definitions are constants checked by the tests below: an invalid one is a bug
/// caught before release, never a runtime condition.
#[allow(clippy::panic)]
fn unreachable_metric() -> ! {
    panic!("invalid metric definition")
}

/// A status code as its decimal digits, written into `buf` (no allocation per request).
fn status_label(status: u16, buf: &mut [u8; 5]) -> &str {
    let mut n = status;
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_metric_is_exposed() {
        let m = Metrics::new();
        m.requests
            .with_label_values(&["t", "k", "m", "p", "200"])
            .inc();
        m.request_duration
            .with_label_values(&["m", "p", "false"])
            .observe(0.1);
        m.ttft.with_label_values(&["m", "p"]).observe(0.1);
        m.tokens
            .with_label_values(&["t", "k", "m", "p", "prompt", "reported"])
            .inc_by(3.0);
        m.cost.with_label_values(&["t", "m"]).inc_by(0.5);
        m.rate_limited.with_label_values(&["t", "k", "rpm"]).inc();
        m.upstream_errors
            .with_label_values(&["p", "idle_timeout"])
            .inc();
        m.fallbacks.with_label_values(&["a", "b"]).inc();
        m.route_healthy.with_label_values(&["p", "m"]).set(1);
        m.config_reloads.with_label_values(&["success"]).inc();
        m.config_info.with_label_values(&["abc"]).set(1);
        let (text, _) = m.render();
        let text = String::from_utf8(text).unwrap();
        for name in [
            "switchyard_requests_total",
            "switchyard_request_duration_seconds",
            "switchyard_time_to_first_token_seconds",
            "switchyard_gateway_overhead_seconds",
            "switchyard_tokens_total",
            "switchyard_cost_usd_total",
            "switchyard_rate_limited_total",
            "switchyard_limits_backend_up",
            "switchyard_upstream_errors_total",
            "switchyard_fallbacks_total",
            "switchyard_active_streams",
            "switchyard_route_healthy",
            "switchyard_config_reloads_total",
            "switchyard_config_last_reload_success_timestamp_seconds",
            "switchyard_config_info",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
        }
    }

    #[test]
    fn the_config_s_counters_are_exported_at_zero() {
        let toml = format!(
            r#"
[[providers]]
name = "oai"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
[[providers]]
name = "builtin"
kind = "mock"
[[models]]
name = "a"
fallbacks = ["b"]
  [[models.routes]]
  provider = "oai"
  model = "a1"
[[models]]
name = "b"
output_usd_per_mtok = 1.0
  [[models.routes]]
  provider = "builtin"
  model = "b1"
[[teams]]
name = "t"
[[teams]]
name = "narrow"
models = ["z*"]
[[keys]]
id = "k"
team = "t"
sha256 = "{}"
[[content_filters]]
name = "f"
deny = ["x"]
teams = ["t"]
"#,
            "ab".repeat(32)
        );
        let config = crate::config::load_str(&toml, std::path::Path::new("t.toml")).unwrap();
        let m = Metrics::new();
        m.preset(&config);
        let (text, _) = m.render();
        let text = String::from_utf8(text).unwrap();
        let zero = |series: &str| {
            assert!(
                text.lines().any(|l| l == format!("{series} 0")),
                "{series} 0 missing:\n{text}"
            )
        };
        zero(r#"switchyard_config_reloads_total{result="failure"}"#);
        zero(r#"switchyard_config_reloads_total{result="success"}"#);
        for limit in LIMIT_LABELS {
            zero(&format!(
                r#"switchyard_rate_limited_total{{key="k",limit="{limit}",team="t"}}"#
            ));
        }
        for reason in UPSTREAM_ERROR_REASONS {
            zero(&format!(
                r#"switchyard_upstream_errors_total{{provider="oai",reason="{reason}"}}"#
            ));
        }
        zero(r#"switchyard_retries_total{provider="oai"}"#);
        zero(r#"switchyard_fallbacks_total{from="a",to="b"}"#);
        zero(r#"switchyard_cost_usd_total{model="a",team="t"}"#);
        zero(r#"switchyard_cost_usd_total{model="b",team="t"}"#);
        zero(r#"switchyard_content_filtered_total{filter="f",team="t"}"#);
        zero(r#"switchyard_usage_log_errors_total{cause="write"}"#);
        // Nothing for the mock provider, nor for a team that may use no priced model.
        assert!(!text.contains(r#"provider="builtin""#), "{text}");
        assert!(!text.contains(r#"team="narrow""#), "{text}");

        // A reload keeps the values and adds the new series.
        m.config_reloads.with_label_values(&["failure"]).inc();
        m.preset(&config);
        assert_eq!(m.config_reloads.with_label_values(&["failure"]).get(), 1);
    }

    #[test]
    fn status_labels_are_the_decimal_code() {
        let mut buf = [0u8; 5];
        for (code, text) in [
            (200, "200"),
            (499, "499"),
            (0, "0"),
            (7, "7"),
            (65535, "65535"),
        ] {
            assert_eq!(status_label(code, &mut buf), text);
        }
    }
}
