//! The request path. pingora serves the client's connection and hands each request to
//! `process_new_http` (the gateway is a pingora `HttpServerApp`; `crate::server::downstream` reads the
//! head and keeps or closes the connection); the gateway runs the request itself, speaking
//! HTTP/1.1 to the vendors on connections it keeps (`crate::upstream`). Read this file top to
//! bottom to follow a request.
//!
//! ```text
//! serve            admit: route the path (its front door's dialect; a stored response is
//!                  answered from the store) → take the config snapshot → authenticate → read
//!                  the body → the door's view of it (a gateway `previous_response_id`
//!                  expanded) → content policies → resolve the model, its kind and the
//!                  allow-list → admit against the limits
//!                  (reserve) → pick a route → answer in-process (mock, or count_tokens on a
//!                  route that cannot count); then forward
//! forward          attempts until one answers; a failed one is recorded on its route (health,
//!                  upstream_errors{reason}) and the next route or fallback follows, after a
//!                  backoff, while attempts, time and routes are left
//! attempt          prepare_attempt: the body (the client's bytes spliced when the vendor
//!                  speaks the door's dialect, else translated), the peer, the head (path, Host,
//!                  the provider's key; the client's key never goes on) → send → head
//!                  (first-byte timeout) → a vendor error status: vendor_error (retryable, or
//!                  rewrapped as the answer) → begin_answer (translation, meter) → hold
//!                  (a stream until its first content event, a whole answer to its end: any
//!                  failure until then is retried) → release (head + what was held) → relay
//!                  (the rest, chunk by chunk, idle timeout and deadline; a failure now ends
//!                  the stream with one error event); a translated Responses answer that
//!                  completed is kept before its end goes out
//! logging          counted once on every path: limits settled, metrics, usage log, trace
//! ```

pub mod body;
pub mod error;
pub mod failed;
pub mod request;
pub mod response_headers;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::apps::{HttpServerApp, ReusedHttpStream};
use pingora::connectors::ConnectorOptions;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::server::ShutdownWatch;
use pingora::upstreams::peer::HttpPeer;

use crate::policy::auth::{self, Principal};
use body::BodyError;
use crate::config::{Config, Model, Provider, ProviderKind};
use crate::convert::{self, AnswerTranslation};
use crate::dialect::{self, Dialect};
use crate::server::downstream::{self, Closing, Session};
use crate::gateway::error::GatewayError;
use failed::Failed;
use crate::policy::health::{now_ms, Health, InFlight};
use crate::policy::limits::{Admission, Demand, Limiter, RateHeaders, Spent};
use crate::accounting::meter::Meter;
use crate::observability::metrics::{Finished, Metrics};
use crate::policy::models;
use crate::policy::content_filter;
use crate::providers::{self, Operation};
use crate::gateway::request::FrontRequest;
use crate::server::request_head;
use crate::response_store::{self, door, ResponseStore};
use crate::policy::router::{self, Choice, Next};
use crate::config::snapshot::Snapshot;
use crate::observability::telemetry::{self, Telemetry};
use crate::upstream::{self, Exchange, Failure};
use crate::accounting::usage::{self, Usage, UsageSource};
use crate::accounting::usage_log::{self, UsageLog};

/// The largest vendor error body kept to rewrap; the rest is dropped.
const VENDOR_ERROR_LIMIT: usize = 64 * 1024;
/// An early answer drains a client body up to this size so the client reads the answer
/// instead of a reset; a larger one is cut off by closing the connection.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

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

/// What one request carries from phase to phase.
pub struct Ctx {
    request_id: String,
    started: Instant,
    /// The config this request started with; kept to its end whatever a reload does.
    config: Option<Arc<Config>>,
    principal: Option<Principal>,
    /// The model the client asked for (fallbacks may serve it: see `choice`).
    model: Option<Arc<Model>>,
    /// The route of the current attempt, and its provider.
    choice: Option<Choice>,
    provider: Option<Arc<Provider>>,
    upstream_model: String,
    stream: bool,
    /// The client's request as read at its front door; each attempt's upstream body is made
    /// from it.
    request: Option<FrontRequest>,
    /// What the request asks of the vendor (`count_tokens` or a generation).
    operation: Operation,
    /// Routes tried so far: (model name, route index).
    tried: Vec<(String, usize)>,
    attempts: u32,
    /// The end of the request's total time budget (the first route's `total_timeout_ms`).
    deadline: Instant,
    /// Whether every failed attempt so far was a timeout (then the answer is 504, not 502).
    only_timeouts: bool,
    /// When the first response byte went to the client.
    first_byte_at: Option<Instant>,
    /// When the request was handed to the upstream: the end of the gateway's own work.
    forwarded_at: Option<Instant>,
    status: u16,
    /// The spec's `reason` of an error answer, for the usage log.
    reason: Option<&'static str>,
    /// Reads the usage from the answer's bytes as they go to the client.
    meter: Meter,
    /// Usage known without metering (the in-process mock).
    local_usage: Option<Usage>,
    /// Prompt tokens estimated from the request, for answers that report no usage.
    prompt_estimate: u64,
    /// Whether this request counts in `switchyard_active_streams` right now.
    in_active_streams: bool,
    /// The current attempt, counted in flight on its route; and when it started.
    in_flight: Option<InFlight>,
    attempt_started: Instant,
    /// The dialect of the client's front door; its answers and errors are written in it.
    front: Dialect,
    /// The translation of an answer whose vendor speaks another dialect than the client.
    translation: Option<AnswerTranslation>,
    /// What the limiter reserved for this request, settled in `logging`.
    admission: Option<Admission>,
    /// The `x-ratelimit-*` headers for the answer (every authenticated request gets them).
    rate_headers: Option<RateHeaders>,
    /// The request's trace when `[telemetry]` is on.
    trace: Option<telemetry::Trace>,
}

/// Which endpoint a request is for.
enum Endpoint {
    Chat,
    /// Anthropic's Messages API, the second front door.
    Messages,
    /// Anthropic's token counting: answered by Anthropic routes, estimated for others.
    CountTokens,
    Embeddings,
    /// OpenAI's Responses API.
    Responses,
    /// `GET`/`DELETE /v1/responses/{id}`, `GET …/input_items`: from the response store.
    StoredResponse(door::Call),
    Models,
}

/// How `admit` ended.
enum Admitted {
    /// Go on to the upstream.
    Forward,
    /// The answer was written already (mock provider, `/v1/models`).
    Answered,
}

/// Why a request is not forwarded.
enum Refused {
    Error(GatewayError),
    /// The client went away; nobody to answer.
    ClientGone,
}

impl From<GatewayError> for Refused {
    fn from(e: GatewayError) -> Self {
        Refused::Error(e)
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
        let mut ctx = Ctx::new();
        let served = self.serve(&mut session, &mut ctx).await;
        self.logging(&session, served, &mut ctx).await;
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

impl Ctx {
    fn new() -> Ctx {
        let now = Instant::now();
        Ctx {
            request_id: String::new(),
            started: now,
            config: None,
            principal: None,
            model: None,
            choice: None,
            provider: None,
            upstream_model: String::new(),
            stream: false,
            request: None,
            operation: Operation::Generate,
            tried: Vec::new(),
            attempts: 0,
            deadline: now,
            only_timeouts: true,
            first_byte_at: None,
            forwarded_at: None,
            status: 0,
            reason: None,
            meter: Meter::None,
            local_usage: None,
            prompt_estimate: 0,
            in_active_streams: false,
            in_flight: None,
            attempt_started: now,
            admission: None,
            rate_headers: None,
            front: Dialect::Chat,
            translation: None,
            trace: None,
        }
    }
}

impl Gateway {
    /// The whole request: admitted (or refused), then forwarded by the gateway's own loop.
    async fn serve(&self, session: &mut Session, ctx: &mut Ctx) -> Served {
        ctx.request_id = request_id(session.req_header());
        ctx.trace = self
            .telemetry
            .as_ref()
            .map(|t| t.begin(session.req_header()));
        // Boxed: admission's state lives only until the request is forwarded, not in every
        // open stream's future (`crate::upstream::send` likewise).
        match Box::pin(self.admit(session, ctx)).await {
            Ok(Admitted::Forward) => {
                self.forward(session, ctx).await;
                Served::Answered
            }
            Ok(Admitted::Answered) => Served::Answered,
            Err(Refused::Error(e)) => {
                Box::pin(self.refuse(session, ctx, &e)).await;
                Served::Answered
            }
            Err(Refused::ClientGone) => {
                ctx.status = 499;
                Served::ClientGone
            }
        }
    }

    /// A request refused before it was forwarded: the error, with the limits' headers.
    async fn refuse(&self, session: &mut Session, ctx: &mut Ctx, e: &GatewayError) {
        self.peek_rate_headers(ctx).await;
        answer_error(session, ctx, e).await;
    }

    /// Runs once at the end of every request, whatever happened to it: the one place where
    /// a request is counted, in the metrics and the usage log.
    async fn logging(&self, session: &Session, served: Served, ctx: &mut Ctx) {
        let status = final_status(session, served, ctx);
        if ctx.in_active_streams {
            self.metrics.active_streams.dec();
            ctx.in_active_streams = false;
        }
        let spent = self.account(ctx, status);
        if let Some(admission) = ctx.admission.take() {
            self.limiter.settle(admission, spent).await;
        }
    }
}

/// The longest a stream's start is held back while it carries no content yet; a longer
/// preamble goes to the client as it is.
const STREAM_HOLD_LIMIT: usize = 1024 * 1024;
/// The largest whole answer held until its end (its refusal checked, its length known); a
/// larger one goes to the client as it comes.
const BODY_HOLD_LIMIT: usize = 16 * 1024 * 1024;

/// What the hold of an answer ended with.
enum Hold {
    /// The answer has content (or outgrew the hold): the head and what was held go out.
    Release,
    /// The whole answer came.
    Ended,
    /// The vendor refused on content grounds (in a 200).
    Refused,
}

impl Gateway {
    /// Attempts until one answers: each failure before the first byte to the client is
    /// recorded on its route, then the next route (or fallback) is tried while attempts, time
    /// and routes are left; else the last failure is the answer.
    async fn forward(&self, session: &mut Session, ctx: &mut Ctx) {
        loop {
            let failed = match self.attempt(session, ctx).await {
                Ok(()) => return,
                Err(failed) => failed,
            };
            self.attempt_failed(ctx, failed.cause, failed.retry_after);
            if !self.may_retry(ctx) {
                let id = failed.upstream_request_id.clone();
                let err = failed::final_error(failed, ctx.only_timeouts);
                answer_error_from(session, ctx, &err, id).await;
                return;
            }
            if let Err(err) = self.next_attempt(ctx).await {
                answer_error(session, ctx, &err).await;
                return;
            }
        }
    }

    /// One try on the current route. `Ok`: an answer went to the client (the vendor's, its
    /// error rewrapped, or a failure after the first byte), or the client left. `Err`: the
    /// route failed while nothing had gone to the client.
    async fn attempt(&self, session: &mut Session, ctx: &mut Ctx) -> Result<(), Failed> {
        let (peer, head, body) = match self.prepare_attempt(session, ctx) {
            Ok(prepared) => prepared,
            Err(e) => {
                // Boxed, as every path that only a failing request takes: an open stream's
                // future is as large as its largest state.
                Box::pin(answer_error(session, ctx, &e)).await;
                return Ok(());
            }
        };
        let Some(provider) = ctx.provider.clone() else {
            return Ok(());
        };
        let clock = upstream::Clock::new(provider.timeouts, ctx.deadline);
        ctx.forwarded_at.get_or_insert_with(Instant::now);
        let mut exchange = upstream::send(&self.pool, &peer, &head, &body, clock)
            .await
            .map_err(|f| Failed::of(f, Some(&provider)))?;
        // Needed only to send (and resend on a stale connection): not kept while the
        // answer streams.
        drop((peer, head, body));
        let Some(vendor) = exchange.head() else {
            return Err(Failed::of(Failure::Reset, Some(&provider)));
        };
        if !(200..300).contains(&vendor.status.as_u16()) {
            // Boxed: the largest state of an attempt (3.5 KB), needed only on an error status.
            return Box::pin(self.vendor_error(session, ctx, exchange)).await;
        }
        self.begin_answer(ctx, vendor);
        // The client's head, but for its framing, while the vendor's is at hand.
        let head = client_parts(ctx, vendor);
        exchange.forget_head();
        let mut held = Vec::new();
        let hold = match self.hold(ctx, &mut exchange, &mut held).await {
            Ok(hold) => hold,
            Err(failed) => {
                exchange.finish(&self.pool);
                return Err(failed);
            }
        };
        match hold {
            Hold::Refused => {
                exchange.finish(&self.pool);
                self.answered(ctx);
                Box::pin(answer_error(session, ctx, &GatewayError::ContentFilter)).await;
            }
            Hold::Ended => {
                exchange.finish(&self.pool);
                if Box::pin(self.release(session, ctx, head, held, true)).await {
                    self.answered(ctx);
                }
            }
            Hold::Release => {
                if Box::pin(self.release(session, ctx, head, held, false)).await {
                    self.relay(session, ctx, &mut exchange).await;
                }
                exchange.finish(&self.pool);
            }
        }
        Ok(())
    }

    /// The attempt's route in flight, its body (the client's bytes spliced when the vendor
    /// speaks the door's dialect, else translated), its address and its request head: path,
    /// Host, the provider's key (the client's credentials never go on), `traceparent`.
    fn prepare_attempt(
        &self,
        session: &Session,
        ctx: &mut Ctx,
    ) -> Result<(HttpPeer, RequestHeader, Bytes), GatewayError> {
        let (Some(choice), Some(provider), Some(req)) = (
            ctx.choice.as_ref(),
            ctx.provider.clone(),
            ctx.request.as_mut(),
        ) else {
            return Err(GatewayError::Internal("no upstream chosen".into()));
        };
        ctx.attempts += 1;
        ctx.attempt_started = Instant::now();
        ctx.in_flight = Some(InFlight::start(
            self.health
                .route(&provider.name, &choice.route.upstream_model),
        ));
        ctx.tried.push((choice.model.name.clone(), choice.index));
        let body = convert::upstream_body(req, &provider, &choice.route.upstream_model)?;
        if let Some(trace) = &mut ctx.trace {
            trace.attempt(&provider, &ctx.upstream_model);
        }
        let peer = upstream::peer(&provider, ctx.attempts)
            .ok_or_else(|| GatewayError::Internal("no upstream address".into()))?;
        let path =
            providers::upstream_path(&provider, &ctx.upstream_model, ctx.stream, ctx.operation);
        let uri = path
            .parse::<http::Uri>()
            .map_err(|_| GatewayError::Internal("bad upstream path".into()))?;
        let internal = |_| GatewayError::Internal("bad upstream header".into());
        let mut head = providers::upstream_head(&provider, session.req_header(), uri, body.len())
            .map_err(internal)?;
        if let Some(trace) = &ctx.trace {
            head.insert_header("traceparent", trace.traceparent())
                .map_err(internal)?;
        }
        Ok((peer, head, body))
    }

    /// A vendor's error status: its body is read (bounded) for its message and any wait it
    /// asks for; a retryable one fails the attempt, any other is the answer, rewrapped in the
    /// door's error shape.
    async fn vendor_error(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        mut exchange: Exchange,
    ) -> Result<(), Failed> {
        let Some(resp) = exchange.head().cloned() else {
            return Err(Failed::of(Failure::Reset, ctx.provider.as_deref()));
        };
        let status = resp.status.as_u16();
        let body = exchange.rest(VENDOR_ERROR_LIMIT).await.unwrap_or_default();
        exchange.finish(&self.pool);
        let retry_after = failed::retry_after(&resp, &body);
        let provider = ctx.provider.as_deref();
        let kind = provider.map_or(ProviderKind::OpenAi, |p| p.kind);
        let err = if providers::is_content_filter(kind, status, &body) {
            GatewayError::ContentFilter
        } else {
            match (
                providers::vendor_error(provider, status, &body),
                retry_after,
            ) {
                (
                    GatewayError::Vendor {
                        status: 429,
                        message,
                    },
                    Some(wait),
                ) => GatewayError::RateLimited {
                    message,
                    retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                },
                (err, _) => err,
            }
        };
        let upstream_request_id = response_headers::upstream_request_id(&resp);
        if router::retryable_status(status) {
            return Err(Failed {
                cause: failed::status_reason(status),
                retry_after,
                error: err,
                upstream_request_id,
            });
        }
        answer_error_from(session, ctx, &err, upstream_request_id).await;
        Ok(())
    }

    /// A successful head: the answer's translation (when the vendor speaks another dialect
    /// than the door) and its meter, which reads the door's dialect or the chat pivot.
    fn begin_answer(&self, ctx: &mut Ctx, resp: &ResponseHeader) {
        ctx.translation = match (ctx.request.as_ref(), ctx.provider.as_ref()) {
            (Some(req), Some(p)) => AnswerTranslation::for_provider(req, p, &ctx.upstream_model),
            _ => None,
        };
        let metered = if ctx.translation.is_some() {
            Dialect::Chat
        } else {
            ctx.front
        };
        ctx.meter = if ctx.operation == Operation::CountTokens {
            Meter::None
        } else if ctx.stream || is_sse(resp) {
            Meter::stream_of(metered)
        } else {
            Meter::body_of(metered)
        };
    }

    /// Reads the answer until it can go to the client: a stream until its first content
    /// event, a whole answer to its end. A failure meanwhile (an error event, a timeout, a
    /// reset) fails the attempt: nothing has gone to the client, so another route may answer.
    async fn hold(
        &self,
        ctx: &mut Ctx,
        exchange: &mut Exchange,
        held: &mut Vec<Bytes>,
    ) -> Result<Hold, Failed> {
        let streamed = ctx.meter.is_stream();
        let limit = if streamed {
            STREAM_HOLD_LIMIT
        } else {
            BODY_HOLD_LIMIT
        };
        let mut len = 0;
        loop {
            let chunk = exchange
                .chunk()
                .await
                .map_err(|f| Failed::of(f, ctx.provider.as_deref()))?;
            let end = chunk.is_none();
            let out = relay_chunk(ctx, chunk, end);
            if end {
                ctx.meter.seal();
            }
            match out {
                Ok(Some(out)) if !out.is_empty() => {
                    len += out.len();
                    held.push(out);
                }
                Ok(_) => {}
                Err(e) => return Err(Failed::untranslatable(e)),
            }
            if !ctx.meter.started() {
                if let Some(message) = ctx.meter.stream_error() {
                    return Err(Failed::stream_error(message, ctx.provider.as_deref()));
                }
            }
            if (streamed || end) && ctx.meter.refused() {
                return Ok(Hold::Refused);
            }
            if end && cut_short(ctx) {
                // Nothing went out yet: another route may answer.
                return Err(Failed::of(Failure::Reset, ctx.provider.as_deref()));
            }
            if end {
                self.keep_response(ctx).await;
                return Ok(Hold::Ended);
            }
            if (streamed && ctx.meter.started()) || len > limit {
                return Ok(Hold::Release);
            }
        }
    }

    /// Sends the head and what was held. `false`: the client is gone.
    async fn release(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        head: http::response::Parts,
        held: Vec<Bytes>,
        whole: bool,
    ) -> bool {
        let len = whole.then(|| held.iter().map(Bytes::len).sum());
        let head = response_headers::framed(head, len);
        ctx.status = head.status.as_u16();
        if ctx.meter.is_stream() {
            self.metrics.active_streams.inc();
            ctx.in_active_streams = true;
        }
        if session.write_response_header(Box::new(head)).await.is_err() {
            ctx.status = 499;
            return false;
        }
        let n = held.len();
        for (i, chunk) in held.into_iter().enumerate() {
            first_byte(ctx);
            if session
                .write_response_body(chunk, whole && i + 1 == n)
                .await
                .is_err()
            {
                ctx.status = 499;
                return false;
            }
        }
        if whole
            && n == 0
            && session
                .write_response_body(Bytes::new(), true)
                .await
                .is_err()
        {
            ctx.status = 499;
            return false;
        }
        true
    }

    /// The rest of an answer whose head went out, chunk by chunk as the vendor sends it. A
    /// failure now cannot be retried: the answer ends with one error event in the door's
    /// dialect, and the request counts as failed.
    async fn relay(&self, session: &mut Session, ctx: &mut Ctx, exchange: &mut Exchange) {
        let mut vendor_failed = false;
        loop {
            let Some(chunk) = self.next_chunk(session, ctx, exchange).await else {
                return;
            };
            let end = chunk.is_none();
            let out = match relay_chunk(ctx, chunk, end) {
                Ok(out) => out,
                Err(e) => return Box::pin(end_with_error(session, ctx, &e)).await,
            };
            if ctx.stream && ctx.meter.refused() {
                return Box::pin(end_with_error(session, ctx, &GatewayError::ContentFilter)).await;
            }
            if !vendor_failed {
                if let Some(message) = ctx.meter.stream_error() {
                    // The vendor's error event goes to the client as it came (in the door's
                    // dialect); the failure is counted before the client can see the end.
                    let failed = Failed::stream_error(message, ctx.provider.as_deref());
                    self.attempt_failed(ctx, failed.cause, None);
                    ctx.status = failed.error.status();
                    ctx.reason = Some(failed.error.reason());
                    vendor_failed = true;
                }
            }
            if end && !vendor_failed && cut_short(ctx) {
                // The vendor's stream ended before its end event (cut where the connection's
                // end is the body's end, or a chunked body ended early): one error event, and
                // the request counts as failed, as for a reset mid-stream.
                let failed = Failed::of(Failure::Reset, ctx.provider.as_deref());
                self.attempt_failed(ctx, failed.cause, None);
                return Box::pin(end_with_error(session, ctx, &failed.error)).await;
            }
            if end && !vendor_failed {
                self.keep_response(ctx).await;
            }
            let out = out.filter(|o| !o.is_empty() || end);
            if out.is_some() {
                first_byte(ctx);
            }
            if (out.is_some() || end)
                && session
                    .write_response_body(out.unwrap_or_default(), end)
                    .await
                    .is_err()
            {
                ctx.status = 499;
                return;
            }
            if end {
                break;
            }
        }
        if vendor_failed {
            downstream::close_after_failed_stream(session).await;
        } else {
            self.answered(ctx);
        }
    }

    /// The vendor's next chunk (`Some(None)` at its end); `None` when the answer ended
    /// otherwise: the client left (499), or the vendor failed (the failure is recorded and the
    /// answer ended with its error).
    async fn next_chunk(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        exchange: &mut Exchange,
    ) -> Option<Option<Bytes>> {
        let read = tokio::select! {
            read = exchange.chunks() => read,
            () = client_gone(session) => {
                ctx.status = 499;
                return None;
            }
        };
        match read {
            Ok(chunk) => Some(chunk),
            Err(f) => {
                let failed = Failed::of(f, ctx.provider.as_deref());
                self.attempt_failed(ctx, failed.cause, None);
                Box::pin(end_with_error(session, ctx, &failed.error)).await;
                None
            }
        }
    }

    /// A translated Responses answer that completed is kept (`crate::response_store`) before
    /// its end goes to the client, so a follow-up sent at once finds it.
    async fn keep_response(&self, ctx: &Ctx) {
        let Some(t) = &ctx.translation else {
            return;
        };
        let team = ctx.principal.as_ref().map(|p| p.team.name.as_str());
        let (config, req) = (ctx.config.as_deref(), ctx.request.as_ref());
        // Boxed: only translated Responses answers are kept.
        Box::pin(
            self.responses
                .keep(config, team, req, t.completed_response()),
        )
        .await;
    }

    /// A complete answer: the route served well.
    fn answered(&self, ctx: &Ctx) {
        if let Some(p) = &ctx.provider {
            self.health.record_success(&p.name, &ctx.upstream_model);
        }
    }
}

/// One chunk of the vendor's answer (`None` at its end) → what goes to the client: the same
/// bytes (metered as they go) or their translation.
fn relay_chunk(
    ctx: &mut Ctx,
    chunk: Option<Bytes>,
    end: bool,
) -> Result<Option<Bytes>, GatewayError> {
    if let Some(t) = ctx.translation.as_mut() {
        return t.chunk(chunk, end, &mut ctx.meter);
    }
    if let Some(chunk) = chunk.as_ref().filter(|b| !b.is_empty()) {
        ctx.meter.feed_bytes(chunk);
    }
    Ok(chunk)
}

/// Whether a stream the vendor's bytes go through as they are ended without its end event
/// (`[DONE]` or a finished choice, `message_stop`, a terminal `response.*` event). A translated
/// stream is judged by its translator, which ends a cut one with its own error event.
fn cut_short(ctx: &mut Ctx) -> bool {
    ctx.translation.is_none() && ctx.meter.is_stream() && !ctx.meter.ended()
}

/// The client's head but its framing: the vendor's headers cut to an allow-list, the
/// translation's content type, the request id and rate-limit headers.
fn client_parts(ctx: &Ctx, vendor: &ResponseHeader) -> http::response::Parts {
    let content_type = ctx
        .translation
        .as_ref()
        .map(AnswerTranslation::content_type);
    let rate = ctx.rate_headers.as_ref();
    response_headers::client_parts(vendor, content_type, &ctx.request_id, rate)
}

/// Ends an answer whose head went out after a failure: a stream with one error event, a
/// whole answer by closing the connection (its body stays incomplete).
async fn end_with_error(session: &mut Session, ctx: &mut Ctx, err: &GatewayError) {
    ctx.status = err.status();
    ctx.reason = Some(err.reason());
    if ctx.stream {
        let _ = session
            .write_response_body(dialect::error_event(ctx.front, err), true)
            .await;
    }
    downstream::close_after_failed_stream(session).await;
}

/// Resolves when the client closes its connection while its answer is being relayed (a
/// client that sends anything else meanwhile is simply not watched any more).
async fn client_gone(session: &mut Session) {
    if session.read_body_or_idle(true).await.is_ok() {
        std::future::pending::<()>().await;
    }
}

fn is_sse(resp: &ResponseHeader) -> bool {
    resp.headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

impl Gateway {
    /// Everything `admit` decides, as plain steps that each may refuse the request.
    async fn admit(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Admitted, Refused> {
        request_head::check(session.req_header(), &self.snapshot.load().server.head)?;
        let endpoint = endpoint(session.req_header())?;
        let config = self.snapshot.load();
        ctx.config = Some(config.clone());
        ctx.front = match endpoint {
            Endpoint::Messages | Endpoint::CountTokens => Dialect::Messages,
            Endpoint::Embeddings => Dialect::Embeddings,
            Endpoint::Responses | Endpoint::StoredResponse(_) => Dialect::Responses,
            Endpoint::Chat | Endpoint::Models => Dialect::Chat,
        };
        ctx.operation = match endpoint {
            Endpoint::CountTokens => Operation::CountTokens,
            Endpoint::Embeddings => Operation::Embed,
            Endpoint::Responses => Operation::Respond,
            _ => Operation::Generate,
        };
        let principal = authenticate(&config, session.req_header(), ctx.front)?;
        ctx.principal = Some(principal.clone());

        if let Endpoint::Models = endpoint {
            self.peek_rate_headers(ctx).await;
            let body = models::list(&config, &principal);
            write_answer(session, ctx, 200, "application/json", vec![body]).await;
            return Ok(Admitted::Answered);
        }
        if let Endpoint::StoredResponse(call) = &endpoint {
            self.peek_rate_headers(ctx).await;
            let query = session.req_header().uri.query();
            let body = door::answer(&self.responses, &principal.team.name, call, query).await?;
            write_answer(session, ctx, 200, "application/json", vec![body]).await;
            return Ok(Admitted::Answered);
        }

        let bytes = match body::read(session, config.server.max_request_bytes).await {
            Ok(b) => b,
            Err(BodyError::TooLarge { .. }) => {
                return Err(GatewayError::PayloadTooLarge {
                    limit: config.server.max_request_bytes,
                }
                .into())
            }
            Err(BodyError::ClientGone) => return Err(Refused::ClientGone),
            Err(BodyError::Gateway(e)) => return Err(e.into()),
        };
        let req = FrontRequest::read(ctx.front, bytes)?;
        let mut req = response_store::expand(&self.responses, &principal.team.name, req).await?;
        ctx.stream = req.stream;
        ctx.prompt_estimate = req.prompt_estimate;
        if let Some(filter) = content_filter::check(&config, &principal.team, || req.texts()) {
            self.metrics
                .content_filtered
                .with_label_values(&[&principal.team.name, &filter.name])
                .inc();
            return Err(GatewayError::ContentFilter.into());
        }
        let model = router::resolve(&config, &principal.team, &req.model)?;
        ctx.model = Some(model.clone());
        models::check_kind(&model, ctx.operation)?;

        // Counting tokens generates nothing: it is not charged against tpm or budgets.
        if ctx.operation != Operation::CountTokens {
            let demand =
                Demand::estimate(&model, ctx.prompt_estimate, req.max_tokens, &config.limits);
            match self
                .limiter
                .admit(&principal.key, &principal.team, demand)
                .await
            {
                Ok(admission) => {
                    ctx.rate_headers = Some(admission.headers().clone());
                    ctx.admission = Some(admission);
                }
                Err(rejection) => {
                    ctx.rate_headers = Some(rejection.headers().clone());
                    return Err(rejection.to_error().into());
                }
            }
        }

        let next = router::next(
            &config,
            &principal.team,
            &model,
            &[],
            &self.health,
            true,
            now_ms(),
        );
        let choice = match next {
            Next::Try(choice) => choice,
            Next::Exhausted { blocked_ms } => {
                return Err(failed::no_route_left(&model, blocked_ms).into())
            }
        };
        if choice.model.name != model.name {
            self.metrics
                .fallbacks
                .with_label_values(&[&model.name, &choice.model.name])
                .inc();
        }
        self.choose(ctx, &config, choice);
        let provider = ctx
            .provider
            .clone()
            .ok_or_else(|| GatewayError::Internal("no provider chosen".into()))?;
        ctx.deadline = ctx.started + provider.timeouts.total;
        if ctx.operation == Operation::CountTokens && provider.kind != ProviderKind::Anthropic {
            self.peek_rate_headers(ctx).await;
            let body = format!(r#"{{"input_tokens":{}}}"#, req.prompt_estimate);
            write_answer(session, ctx, 200, "application/json", vec![body.into()]).await;
            return Ok(Admitted::Answered);
        }
        if provider.kind == ProviderKind::Mock {
            answer_mock(session, ctx, &mut req, &self.responses).await;
            return Ok(Admitted::Answered);
        }
        ctx.request = Some(req);
        Ok(Admitted::Forward)
    }
}

/// The caller's key: a bearer token, or (on the Anthropic door, as Anthropic's SDKs send it)
/// `x-api-key`.
fn authenticate(
    config: &Config,
    req: &RequestHeader,
    front: Dialect,
) -> Result<Principal, GatewayError> {
    let auth_header = req
        .headers
        .get(http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let api_key = req.headers.get("x-api-key").map(|v| v.as_bytes());
    match (auth_header, api_key, front) {
        (None, Some(key), Dialect::Messages) => {
            auth::authenticate_secret(config, key, SystemTime::now())
        }
        _ => auth::authenticate(config, auth_header, SystemTime::now()),
    }
}

/// The endpoint of a request line; anything else is a 404 or 405.
fn endpoint(req: &RequestHeader) -> Result<Endpoint, GatewayError> {
    let path = req.uri.path();
    let method = &req.method;
    if let Some(call) = door::route(method, path) {
        return call.map(Endpoint::StoredResponse);
    }
    match path {
        "/v1/chat/completions" | "/chat/completions" if method == http::Method::POST => {
            Ok(Endpoint::Chat)
        }
        "/v1/messages" if method == http::Method::POST => Ok(Endpoint::Messages),
        "/v1/messages/count_tokens" if method == http::Method::POST => Ok(Endpoint::CountTokens),
        "/v1/embeddings" | "/embeddings" if method == http::Method::POST => {
            Ok(Endpoint::Embeddings)
        }
        "/v1/responses" | "/responses" if method == http::Method::POST => Ok(Endpoint::Responses),
        "/v1/models" | "/models" if method == http::Method::GET => Ok(Endpoint::Models),
        "/v1/chat/completions"
        | "/chat/completions"
        | "/v1/messages"
        | "/v1/messages/count_tokens"
        | "/v1/embeddings"
        | "/embeddings"
        | "/v1/responses"
        | "/responses"
        | "/v1/models"
        | "/models" => Err(GatewayError::MethodNotAllowed(
            method.as_str().chars().take(16).collect(),
        )),
        _ => Err(GatewayError::NotFound(format!(
            "no such endpoint: {}",
            path.chars().take(128).collect::<String>()
        ))),
    }
}

/// The client's `x-request-id` if it is a sane token, else a new random one.
fn request_id(req: &RequestHeader) -> String {
    if let Some(v) = req
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
    {
        let ok = !v.is_empty()
            && v.len() <= 128
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if ok {
            return v.to_string();
        }
    }
    format!("req_{:032x}", rand::random::<u128>())
}

/// The built-in mock provider answers in-process, at any front door, streamed or not.
async fn answer_mock(
    session: &mut Session,
    ctx: &mut Ctx,
    req: &mut FrontRequest,
    responses: &ResponseStore,
) {
    let id = format!("chatcmpl-{}", ctx.request_id.trim_start_matches("req_"));
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match convert::mock_answer(req, &id, created, &ctx.upstream_model) {
        Ok(answer) => {
            ctx.local_usage = Some(answer.usage);
            let team = ctx.principal.as_ref().map(|p| p.team.name.as_str());
            responses
                .keep(ctx.config.as_deref(), team, Some(req), answer.completed)
                .await;
            write_answer(session, ctx, 200, answer.content_type, answer.chunks).await;
        }
        Err(e) => answer_error(session, ctx, &e).await,
    }
}

/// Writes an error answer in the spec's shape.
async fn answer_error(session: &mut Session, ctx: &mut Ctx, err: &GatewayError) {
    answer_error_from(session, ctx, err, None).await;
}

/// Writes an error answer in the spec's shape, with the vendor's request id when a vendor
/// answered it.
async fn answer_error_from(
    session: &mut Session,
    ctx: &mut Ctx,
    err: &GatewayError,
    upstream_request_id: Option<String>,
) {
    ctx.reason = Some(err.reason());
    if !session.is_body_done() {
        drain_or_close(session).await;
    }
    let mut extra = Vec::new();
    if let Some(secs) = err.retry_after() {
        extra.push(("retry-after", secs.to_string()));
    }
    if let Some(id) = upstream_request_id {
        extra.push((response_headers::UPSTREAM_REQUEST_ID, id));
    }
    write_answer_with(
        session,
        ctx,
        err.status(),
        "application/json",
        vec![dialect::error_body(ctx.front, err)],
        extra,
    )
    .await;
}

/// A client body that was not read is drained if it is of a bounded size, so that the
/// client reads the answer instead of a connection reset; otherwise the connection closes.
async fn drain_or_close(session: &mut Session) {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<usize>().ok());
    session.set_keepalive(None);
    // A client that asked `Expect: 100-continue` and was not told to go on sends no body:
    // waiting for one would only stall both sides.
    let held_back = session
        .req_header()
        .headers
        .contains_key(http::header::EXPECT)
        && session.body_bytes_read() == 0;
    if !held_back && declared.is_some_and(|n| n <= DRAIN_LIMIT) {
        let drain = session.drain_request_body();
        let _ = tokio::time::timeout(Duration::from_secs(10), drain).await;
    }
}

async fn write_answer(
    session: &mut Session,
    ctx: &mut Ctx,
    status: u16,
    content_type: &str,
    chunks: Vec<Bytes>,
) {
    write_answer_with(session, ctx, status, content_type, chunks, Vec::new()).await;
}

/// Writes a whole answer of Switchyard's own: one body, or SSE events sent one by one.
async fn write_answer_with(
    session: &mut Session,
    ctx: &mut Ctx,
    status: u16,
    content_type: &str,
    chunks: Vec<Bytes>,
    extra: Vec<(&'static str, String)>,
) {
    ctx.status = status;
    let Ok(mut resp) = ResponseHeader::build(status, Some(6)) else {
        return;
    };
    let streamed = content_type == "text/event-stream";
    let _ = resp.insert_header("content-type", content_type);
    if streamed {
        let _ = resp.insert_header("cache-control", "no-cache");
        let _ = resp.insert_header("transfer-encoding", "chunked");
    } else {
        let len: usize = chunks.iter().map(Bytes::len).sum();
        let _ = resp.insert_header("content-length", len.to_string());
    }
    let _ = resp.insert_header("x-request-id", ctx.request_id.as_str());
    if let Some(h) = &ctx.rate_headers {
        h.apply(&mut resp);
    }
    for (name, value) in extra {
        let _ = resp.insert_header(name, value);
    }
    if session.write_response_header(Box::new(resp)).await.is_err() {
        return;
    }
    let n = chunks.len();
    for (i, chunk) in chunks.into_iter().enumerate() {
        if ctx.first_byte_at.is_none() {
            ctx.first_byte_at = Some(Instant::now());
        }
        if session
            .write_response_body(chunk, i + 1 == n)
            .await
            .is_err()
        {
            ctx.status = 499;
            return;
        }
    }
    if n == 0 {
        let _ = session.write_response_body(Bytes::new(), true).await;
    }
}

/// The first byte of an answer went to the client: the time to first token, and the route's
/// latency average (for the `latency` strategy).
fn first_byte(ctx: &mut Ctx) {
    if ctx.first_byte_at.is_none() {
        let now = Instant::now();
        ctx.first_byte_at = Some(now);
        if let Some(route) = &ctx.in_flight {
            route.first_byte_after(now - ctx.attempt_started);
        }
    }
}

/// The status a request ended with: 499 when the client went away first.
fn final_status(session: &Session, served: Served, ctx: &Ctx) -> u16 {
    if matches!(served, Served::ClientGone) || ctx.status == 499 {
        return 499;
    }
    if ctx.status != 0 {
        return ctx.status;
    }
    match session.response_written() {
        Some(resp) => resp.status.as_u16(),
        None => 499,
    }
}

impl Gateway {
    /// Makes `choice` the current attempt's route.
    fn choose(&self, ctx: &mut Ctx, config: &Config, choice: Choice) {
        ctx.provider = Some(config.providers[choice.route.provider].clone());
        ctx.upstream_model = choice.route.upstream_model.clone();
        ctx.choice = Some(choice);
    }

    /// Moves a retry to the next route, after a jittered backoff; counts retries and
    /// fallbacks. Fails when nothing is left (a route may have cooled down meanwhile).
    async fn next_attempt(&self, ctx: &mut Ctx) -> Result<(), GatewayError> {
        let (Some(config), Some(principal), Some(model)) =
            (ctx.config.clone(), ctx.principal.clone(), ctx.model.clone())
        else {
            return Err(GatewayError::Internal("retry without a request".into()));
        };
        let next = router::next(
            &config,
            &principal.team,
            &model,
            &ctx.tried,
            &self.health,
            false,
            now_ms(),
        );
        let choice = match next {
            Next::Try(choice) => choice,
            Next::Exhausted { blocked_ms } => {
                return Err(failed::no_route_left(&model, blocked_ms))
            }
        };
        let wait = router::backoff(&config.routing, ctx.attempts, rand::random::<f64>())
            .min(ctx.deadline.saturating_duration_since(Instant::now()));
        tokio::time::sleep(wait).await;
        let from = ctx.choice.as_ref().map(|c| c.model.name.clone());
        self.choose(ctx, &config, choice);
        let provider = ctx.provider.as_ref().map_or("-", |p| p.name.as_str());
        self.metrics.retries.with_label_values(&[provider]).inc();
        if let (Some(from), Some(to)) = (from, ctx.choice.as_ref()) {
            if from != to.model.name {
                self.metrics
                    .fallbacks
                    .with_label_values(&[&from, &to.model.name])
                    .inc();
            }
        }
        Ok(())
    }

    /// Whether another attempt may follow: attempts and time are left, and so is a route.
    fn may_retry(&self, ctx: &Ctx) -> bool {
        let (Some(config), Some(principal), Some(model)) = (
            ctx.config.as_ref(),
            ctx.principal.as_ref(),
            ctx.model.as_ref(),
        ) else {
            return false;
        };
        if ctx.attempts >= config.routing.max_attempts || Instant::now() >= ctx.deadline {
            return false;
        }
        router::has_next(
            config,
            &principal.team,
            model,
            &ctx.tried,
            &self.health,
            now_ms(),
        )
    }

    /// Records a failed attempt: route health, the error metric, the 502/504 verdict.
    fn attempt_failed(&self, ctx: &mut Ctx, cause: &'static str, retry_after: Option<Duration>) {
        if !cause.ends_with("timeout") {
            ctx.only_timeouts = false;
        }
        self.upstream_error(ctx, cause);
        tracing::warn!(
            "upstream attempt failed: provider `{}`, reason {cause}, attempt {}, request_id: {}",
            ctx.provider.as_ref().map_or("-", |p| p.name.as_str()),
            ctx.attempts,
            ctx.request_id
        );
        if let Some(trace) = &mut ctx.trace {
            trace.attempt_failed(cause);
        }
        if let Some(c) = &ctx.choice {
            if let Some(p) = &ctx.provider {
                self.health
                    .record_failure(&p.name, &c.route.upstream_model, retry_after);
            }
        }
    }

    fn upstream_error(&self, ctx: &Ctx, cause: &str) {
        let provider = ctx.provider.as_ref().map_or("-", |p| p.name.as_str());
        self.metrics
            .upstream_errors
            .with_label_values(&[provider, cause])
            .inc();
    }

    /// Counts a finished request once: metrics, then the usage log.
    /// Returns what the request spent, for the limiter (`None`: nothing was metered).
    fn account(&self, ctx: &mut Ctx, status: u16) -> Option<Spent> {
        let now = Instant::now();
        let duration = now - ctx.started;
        let (key, team) = ctx
            .principal
            .as_ref()
            .map_or(("-", "-"), |p| (p.key.id.as_str(), p.team.name.as_str()));
        let model = ctx.model.as_ref().map_or("-", |m| m.name.as_str());
        let provider = ctx.provider.as_ref().map_or("-", |p| p.name.as_str());
        let settled = match ctx.local_usage {
            Some(u) => Some((u, UsageSource::Reported)),
            None => ctx.meter.settle(ctx.prompt_estimate),
        };
        // Priced at the model that served it (a fallback may cost otherwise).
        let served = ctx.choice.as_ref().map(|c| &c.model).or(ctx.model.as_ref());
        let cost = match (&settled, served) {
            (Some((u, _)), Some(m)) => usage::cost(m, u),
            _ => 0.0,
        };
        // Time to first token means something only for answers that carried content.
        let answered = (200..300).contains(&status) || status == 499;
        let ttft = ctx
            .first_byte_at
            .filter(|_| answered)
            .map(|t| t - ctx.started);
        self.metrics.count_request(&Finished {
            team,
            key,
            model,
            provider,
            status,
            stream: ctx.stream,
            duration,
            ttft,
            own: ctx.forwarded_at.map_or(duration, |t| t - ctx.started),
            usage: settled,
            cost,
        });
        self.usage_log.write(usage_log::Entry {
            request_id: ctx.request_id.clone(),
            started: SystemTime::now() - duration,
            key: ctx.principal.as_ref().map(|p| p.key.clone()),
            team: ctx.principal.as_ref().map(|p| p.team.clone()),
            model: ctx.model.clone(),
            provider: ctx.provider.clone(),
            upstream_model: ctx.upstream_model.clone(),
            stream: ctx.stream,
            status,
            reason: ctx.reason,
            attempts: ctx.attempts,
            usage: settled,
            cost_usd: cost,
            duration_ms: duration.as_secs_f64() * 1000.0,
            ttft_ms: ttft.map(|t| t.as_secs_f64() * 1000.0),
        });
        if let (Some(t), Some(trace)) = (&self.telemetry, ctx.trace.take()) {
            let outcome = telemetry::Outcome {
                request_id: &ctx.request_id,
                operation: ctx.operation,
                model: ctx.model.as_ref().map(|m| m.name.as_str()),
                team: ctx.principal.as_ref().map(|p| p.team.name.as_str()),
                key_id: ctx.principal.as_ref().map(|p| p.key.id.as_str()),
                provider: ctx.provider.as_deref(),
                upstream_model: &ctx.upstream_model,
                route: ctx
                    .choice
                    .as_ref()
                    .map(|c| (c.model.name.as_str(), c.index)),
                attempts: ctx.attempts,
                status,
                stream: ctx.stream,
                usage: settled,
                cost_usd: cost,
            };
            t.finish(trace, &outcome);
        }
        // The usage log is the per-request record; this line (a write to stderr per request)
        // is for debugging only.
        tracing::debug!(
            request_id = %ctx.request_id,
            key,
            team,
            model,
            provider,
            stream = ctx.stream,
            status,
            duration_ms = duration.as_millis() as u64,
            "request"
        );
        settled.map(|(u, _)| Spent {
            tokens: u.total_tokens,
            usd: cost,
        })
    }

    /// The `x-ratelimit-*` headers for an authenticated answer given before admission.
    async fn peek_rate_headers(&self, ctx: &mut Ctx) {
        if ctx.rate_headers.is_none() {
            if let Some(p) = &ctx.principal {
                ctx.rate_headers = Some(self.limiter.peek_headers(&p.key, &p.team).await);
            }
        }
    }
}
