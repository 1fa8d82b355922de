//! The request path. pingora serves the client's connection and hands each request to
//! `process_new_http` (the gateway is a pingora `HttpServerApp`; `crate::server::downstream` reads the
//! head and keeps or closes the connection); the gateway runs the request itself, speaking
//! HTTP/1.1 to the vendors on connections it keeps (`crate::upstream`). This file is the map;
//! each phase of a request is a file, read in the order a request meets them: `admit.rs`,
//! `attempt.rs`, `answer.rs`, `account.rs`.
//!
//! ```text
//! serve            (this file) the request id and trace → admit → forward → logging
//! admit.rs         route the path (its front door's dialect; a stored response is answered
//!                  from the store) → take the config snapshot → authenticate → read the body
//!                  → the door's view of it (a gateway `previous_response_id` expanded) →
//!                  content policies → resolve the model, its kind and the allow-list → admit
//!                  against the limits (reserve) → pick a route → answer in-process (mock, or
//!                  count_tokens on a route that cannot count); else an `Admitted` request,
//!                  which every later step takes
//! attempt.rs       forward: attempts until one answers; a failed one is recorded on its route
//!                  (health, upstream_errors{reason}) and the next route or fallback follows,
//!                  after a backoff, while attempts, time and routes are left.
//!                  attempt: its state (`Attempt`) → the body (the client's bytes spliced when
//!                  the vendor speaks the door's dialect, else translated), the peer, the head
//!                  (path, Host, the provider's key; the client's key never goes on) → send
//! answer.rs        the vendor's head (first-byte timeout) → an error status: vendor_error
//!                  (retryable, or rewrapped as the answer) → begin_answer (translation,
//!                  meter) → hold (a stream until its first content event, a whole answer to
//!                  its end: any failure until then is retried) → release (head + what was
//!                  held) → relay (the rest, chunk by chunk, idle timeout and deadline; a
//!                  failure now ends the stream with one error event); a translated Responses
//!                  answer that completed is kept before its end goes out. Also the writing
//!                  of the gateway's own answers and errors
//! account.rs       logging: counted once on every path from the `Record`: limits settled,
//!                  metrics, usage log, trace; and a failed attempt's record on its route
//! ```

pub(crate) mod failed;
pub(crate) mod response_headers;

mod account;
mod admit;
mod answer;
mod attempt;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, ReusedHttpStream};
use pingora::connectors::ConnectorOptions;
use pingora::server::ShutdownWatch;

use crate::accounting::meter::Meter;
use crate::accounting::usage::Usage;
use crate::accounting::usage_log::UsageLog;
use crate::config::snapshot::Snapshot;
use crate::config::{Config, Model, Provider};
use crate::convert::AnswerTranslation;
use crate::dialect::adjusted::Adjustments;
use crate::dialect::request::FrontRequest;
use crate::dialect::Dialect;
use crate::observability::metrics::Metrics;
use crate::observability::telemetry::{self, Telemetry};
use crate::policy::attribution::Attribution;
use crate::policy::auth::Principal;
use crate::policy::health::{Health, InFlight};
use crate::policy::limits::{Admission, Limiter, RateHeaders};
use crate::policy::router::Choice;
use crate::providers::Operation;
use crate::response_store::ResponseStore;
use crate::server::downstream::{self, Closing, Session};
use crate::server::probe;
use crate::upstream;
use admit::{Admit, Refused};

pub struct Gateway {
    snapshot: Arc<Snapshot>,
    metrics: Arc<Metrics>,
    usage_log: UsageLog,
    health: Arc<Health>,
    limiter: Arc<Limiter>,
    /// The Responses API's state on translated routes.
    responses: Arc<ResponseStore>,
    /// `[telemetry]`; `None`: no traces, and no telemetry work on the request path.
    telemetry: Option<Telemetry>,
    /// Connections to the vendors.
    pool: upstream::Pool,
    /// Set when the server stops: idle client connections close.
    closing: Closing,
}

impl Gateway {
    pub fn new(
        snapshot: Arc<Snapshot>,
        metrics: Arc<Metrics>,
        usage_log: UsageLog,
        health: Arc<Health>,
        limiter: Arc<Limiter>,
        responses: Arc<ResponseStore>,
        connector: ConnectorOptions,
    ) -> Gateway {
        Gateway {
            snapshot,
            metrics,
            usage_log,
            health,
            limiter,
            responses,
            telemetry: None,
            pool: upstream::Pool::new(connector),
            closing: Closing::default(),
        }
    }

    /// Exports a span per request (`crate::observability::telemetry`).
    pub fn with_telemetry(mut self, telemetry: Option<Telemetry>) -> Gateway {
        self.telemetry = telemetry;
        self
    }
}

#[async_trait]
impl HttpServerApp for Gateway {
    /// One request of a client connection, from its head to its count; then the connection
    /// goes back to pingora for the next one, or is closed.
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: Session,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        if !downstream::read_head(&mut session, &self.closing, shutdown).await {
            return None;
        }
        if probe::is_probe(session.req_header()) {
            return probe::answer(session).await;
        }
        let mut record = Record::new();
        let served = self.serve(&mut session, &mut record).await;
        self.logging(&session, served, &mut record).await;
        match served {
            Served::Answered => downstream::finish(session).await,
            Served::ClientGone => None,
        }
    }

    async fn http_cleanup(&self) {
        self.closing.start();
    }
}

/// How a request ended for its connection.
#[derive(Clone, Copy)]
enum Served {
    /// An answer went out (or was cut short): the connection may be kept.
    Answered,
    /// The client went away while sending its body: nobody to answer, the connection closes.
    ClientGone,
}

impl Gateway {
    /// The whole request: admitted (or refused), then forwarded by the gateway's own loop.
    async fn serve(&self, session: &mut Session, record: &mut Record) -> Served {
        record.request_id = admit::request_id(session.req_header());
        record.trace = self
            .telemetry
            .as_ref()
            .map(|t| t.begin(session.req_header()));
        // Boxed: admission's state lives only until the request is forwarded, not in every
        // open stream's future (`crate::upstream::send` likewise).
        let admitted = match Box::pin(self.admit(session, record)).await {
            Ok(Admit::Forward(admitted)) => admitted,
            Ok(Admit::Answered) => return Served::Answered,
            Err(Refused::Error(e)) => {
                Box::pin(self.refuse(session, record, &e)).await;
                return Served::Answered;
            }
            Err(Refused::ClientGone) => {
                record.status = 499;
                return Served::ClientGone;
            }
        };
        self.forward(session, record, admitted).await;
        Served::Answered
    }
}

/// What a request leaves for its count, whatever path it took: each phase writes what it
/// learns, `logging` (`account.rs`) reads it once at the end. Its `Option`s are empty by
/// meaning: on the paths that never got that far, or for answers that have no such thing.
struct Record {
    request_id: String,
    started: Instant,
    /// The request's trace; `None`: `[telemetry]` is off.
    trace: Option<telemetry::Trace>,
    /// The dialect of the client's front door; its answers and errors are written in it
    /// (chat until the path is routed).
    front: Dialect,
    /// What the request asks of the vendor (`count_tokens` or a generation).
    operation: Operation,
    stream: bool,
    /// The Gemini door's stream is Google's JSON array, not server-sent events: an error
    /// after its start is the array's last element.
    array_stream: bool,
    /// `None`: refused before it authenticated.
    principal: Option<Principal>,
    /// The model the client asked for; `None`: refused before it was resolved.
    model: Option<Arc<Model>>,
    /// The route that served, or the last one tried; `None`: no route was ever chosen.
    route: Option<Chosen>,
    /// What the limiter reserved, settled in `logging`; `None`: refused before admission, or
    /// `count_tokens`, which is not charged.
    admission: Option<Admission>,
    /// The `x-ratelimit-*` headers for the answer; `None`: not authenticated (every
    /// authenticated request gets them).
    rate_headers: Option<RateHeaders>,
    /// Attempts made on routes so far.
    attempts: u32,
    status: u16,
    /// The spec's `reason` of an error answer, for the usage log; `None`: not an error.
    reason: Option<&'static str>,
    /// When the first response byte went to the client; `None`: nothing went.
    first_byte_at: Option<Instant>,
    /// When the request was handed to the upstream: the end of the gateway's own work;
    /// `None`: it never was.
    forwarded_at: Option<Instant>,
    /// Reads the usage from the answer's bytes as they go to the client (set anew by each
    /// attempt that gets an answer, so the usage of the last one is counted).
    meter: Meter,
    /// Usage known without metering; `None` but for the in-process mock.
    local_usage: Option<Usage>,
    /// Prompt tokens estimated from the request, for answers that report no usage.
    prompt_estimate: u64,
    /// Whether this request counts in `switchyard_active_streams` right now.
    in_active_streams: bool,
    /// What the last attempt's translation changed for its vendor (said in the answer's
    /// `x-switchyard-adjusted`, counted in `switchyard_request_adjustments_total`).
    adjusted: Adjustments,
    /// The end user and tags (`crate::policy::attribution`), for the usage log, the trace
    /// and the per-user budgets; empty until the body was read.
    attribution: Attribution,
}

impl Record {
    fn new() -> Record {
        Record {
            request_id: String::new(),
            started: Instant::now(),
            trace: None,
            front: Dialect::Chat,
            operation: Operation::Generate,
            stream: false,
            array_stream: false,
            principal: None,
            model: None,
            route: None,
            admission: None,
            rate_headers: None,
            attempts: 0,
            status: 0,
            reason: None,
            first_byte_at: None,
            forwarded_at: None,
            meter: Meter::None,
            local_usage: None,
            prompt_estimate: 0,
            in_active_streams: false,
            adjusted: Adjustments::default(),
            attribution: Attribution::default(),
        }
    }
}

/// A request admitted to go to the vendors: what every later step takes.
struct Admitted {
    /// The config this request started with; kept to its end whatever a reload does.
    config: Arc<Config>,
    principal: Principal,
    /// The model the client asked for (fallbacks may serve it: see `route`).
    model: Arc<Model>,
    /// The client's request as read at its front door; each attempt's upstream body is made
    /// from it.
    request: FrontRequest,
    /// The route of the current attempt: the first one picked here, the next one after a
    /// failure (`attempt.rs`).
    route: Chosen,
    /// The end of the request's total time budget (the first route's `total_timeout_ms`).
    deadline: Instant,
}

/// A route picked for an attempt (the model that serves, which may be a fallback, and its
/// route), with its provider.
struct Chosen {
    choice: Choice,
    provider: Arc<Provider>,
}

impl Chosen {
    fn new(config: &Config, choice: Choice) -> Chosen {
        let provider = config.providers[choice.route.provider].clone();
        Chosen { choice, provider }
    }

    /// The model's name at the vendor.
    fn upstream_model(&self) -> &str {
        &self.choice.route.upstream_model
    }
}

/// One try on one route, from its send to the end of its answer (`attempt.rs`, `answer.rs`).
struct Attempt<'a> {
    /// The request, and the route this attempt is on (`admitted.route`).
    admitted: &'a Admitted,
    /// Counts the attempt in flight on its route for as long as it lives.
    in_flight: InFlight,
    started: Instant,
    /// The answer's translation; `None` by meaning: the vendor speaks the door's dialect (its
    /// bytes go through as they are), or no answer began yet.
    translation: Option<AnswerTranslation>,
}
