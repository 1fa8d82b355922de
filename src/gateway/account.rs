//! The last phase (the map is in `super`): a request is counted once, on every path, from its
//! `Record`: the limits settled with what it spent, the metrics, the usage log, the trace.
//! Also what an attempt leaves on its route: its health (a success or a failure, and how long
//! the vendor asked to be left alone) and `switchyard_upstream_errors_total{reason}`.

use std::time::{Duration, Instant, SystemTime};

use super::{Chosen, Gateway, Record, Served};
use crate::accounting::usage::{self, UsageSource};
use crate::accounting::usage_log;
use crate::observability::metrics::Finished;
use crate::observability::telemetry;
use crate::policy::limits::Spent;
use crate::server::downstream::Session;

impl Gateway {
    /// Runs once at the end of every request, whatever happened to it: the one place where
    /// a request is counted, in the metrics and the usage log.
    pub(super) async fn logging(&self, session: &Session, served: Served, record: &mut Record) {
        let status = final_status(session, served, record);
        if record.in_active_streams {
            self.metrics.active_streams.dec();
            record.in_active_streams = false;
        }
        let spent = self.account(record, status);
        if let Some(admission) = record.admission.take() {
            self.limiter.settle(admission, spent).await;
        }
    }

    /// Counts a finished request once: metrics, then the usage log.
    /// Returns what the request spent, for the limiter (`None`: nothing was metered).
    fn account(&self, record: &mut Record, status: u16) -> Option<Spent> {
        let now = Instant::now();
        let duration = now - record.started;
        let (key, team) = record
            .principal
            .as_ref()
            .map_or(("-", "-"), |p| (p.key.id.as_str(), p.team.name.as_str()));
        let model = record.model.as_ref().map_or("-", |m| m.name.as_str());
        let route = record.route.as_ref();
        let provider = route.map_or("-", |r| r.provider.name.as_str());
        let upstream_model = route.map_or("", Chosen::upstream_model);
        let settled = match record.local_usage {
            Some(u) => Some((u, UsageSource::Reported)),
            None => record.meter.settle(record.prompt_estimate),
        };
        // Priced at the model that served it (a fallback may cost otherwise).
        let served = route.map(|r| &r.choice.model).or(record.model.as_ref());
        let (cost, price) = match (&settled, served) {
            (Some((u, _)), Some(m)) => usage::priced(m, u),
            _ => (0.0, None),
        };
        // Time to first token means something only for answers that carried content.
        let answered = (200..300).contains(&status) || status == 499;
        let ttft = record
            .first_byte_at
            .filter(|_| answered)
            .map(|t| t - record.started);
        self.metrics.count_request(&Finished {
            team,
            key,
            model,
            provider,
            status,
            stream: record.stream,
            duration,
            ttft,
            own: record.forwarded_at.map_or(duration, |t| t - record.started),
            usage: settled,
            cost,
            adjusted: record.adjusted.as_slice(),
            door: door_label(record.front),
        });
        self.usage_log.write(usage_log::Entry {
            request_id: record.request_id.clone(),
            started: SystemTime::now() - duration,
            key: record.principal.as_ref().map(|p| p.key.clone()),
            team: record.principal.as_ref().map(|p| p.team.clone()),
            model: record.model.clone(),
            provider: route.map(|r| r.provider.clone()),
            upstream_model: upstream_model.to_string(),
            stream: record.stream,
            status,
            reason: record.reason,
            attempts: record.attempts,
            usage: settled,
            cost_usd: cost,
            price,
            duration_ms: duration.as_secs_f64() * 1000.0,
            ttft_ms: ttft.map(|t| t.as_secs_f64() * 1000.0),
            user: record.attribution.user.clone(),
            tags: record.attribution.tags.clone(),
        });
        if let (Some(t), Some(trace)) = (&self.telemetry, record.trace.take()) {
            let outcome = telemetry::Outcome {
                request_id: &record.request_id,
                operation: record.operation,
                model: record.model.as_ref().map(|m| m.name.as_str()),
                team: record.principal.as_ref().map(|p| p.team.name.as_str()),
                key_id: record.principal.as_ref().map(|p| p.key.id.as_str()),
                provider: route.map(|r| &*r.provider),
                upstream_model,
                route: route.map(|r| (r.choice.model.name.as_str(), r.choice.index)),
                attempts: record.attempts,
                status,
                stream: record.stream,
                usage: settled,
                cost_usd: cost,
                user: record.attribution.user.as_deref(),
                tags: &record.attribution.tags,
            };
            t.finish(trace, &outcome);
        }
        // The usage log is the per-request record; this line (a write to stderr per request)
        // is for debugging only.
        tracing::debug!(
            request_id = %record.request_id,
            key,
            team,
            model,
            provider,
            stream = record.stream,
            status,
            duration_ms = duration.as_millis() as u64,
            "request"
        );
        settled.map(|(u, _)| Spent {
            tokens: u.total_tokens,
            usd: cost,
        })
    }

    /// Records a failed attempt on `route`: its health (left alone for `retry_after` when the
    /// vendor asked), `switchyard_upstream_errors_total{reason}`, a warning, the trace.
    pub(super) fn attempt_failed(
        &self,
        record: &mut Record,
        route: &Chosen,
        cause: &'static str,
        retry_after: Option<Duration>,
    ) {
        let provider = route.provider.name.as_str();
        self.metrics
            .upstream_errors
            .with_label_values(&[provider, cause])
            .inc();
        tracing::warn!(
            "upstream attempt failed: provider `{provider}`, reason {cause}, attempt {}, request_id: {}",
            record.attempts,
            record.request_id
        );
        if let Some(trace) = &mut record.trace {
            trace.attempt_failed(cause);
        }
        self.health
            .record_failure(provider, route.upstream_model(), retry_after);
    }

    /// A complete answer: the route served well.
    pub(super) fn answered(&self, route: &Chosen) {
        self.health
            .record_success(&route.provider.name, route.upstream_model());
    }
}

/// The status a request ended with: 499 when the client went away first.
fn final_status(session: &Session, served: Served, record: &Record) -> u16 {
    if matches!(served, Served::ClientGone) || record.status == 499 {
        return 499;
    }
    if record.status != 0 {
        return record.status;
    }
    match session.response_written() {
        Some(resp) => resp.status.as_u16(),
        None => 499,
    }
}

/// The `door` label of `switchyard_door_requests_total`: the front door's dialect.
fn door_label(front: crate::dialect::Dialect) -> &'static str {
    use crate::dialect::Dialect;
    match front {
        Dialect::Chat => "chat",
        Dialect::Messages => "messages",
        Dialect::Responses => "responses",
        Dialect::Embeddings => "embeddings",
        Dialect::Gemini => "gemini",
        Dialect::Converse => "converse",
    }
}
