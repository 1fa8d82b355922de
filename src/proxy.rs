//! The request path: one `ProxyHttp` whose phases, in the order pingora calls them, are short
//! and call the plain functions of the other modules. Read this file top to bottom to follow a
//! request.
//!
//! ```text
//! request_filter           route the path (its front door's dialect) → take the config
//!                          snapshot → authenticate → read the body → the door's view of it
//!                          → content policies → resolve the model and the allow-list → admit
//!                          against the limits (reserve) → pick a route → answer in-process
//!                          (mock, or count_tokens on a route that cannot count)
//! upstream_peer            per attempt: the next route (retries, fallbacks) after a backoff;
//!                          its body (the client's bytes spliced when the vendor speaks the
//!                          door's dialect, else translated); address, SNI, timeouts
//! fail_to_connect,
//! error_while_proxy        retry while nothing went to the client and a route is left
//! upstream_request_filter  path, Host, the provider's key; the client's key never goes on
//! request_body_filter      the rewritten body, on every attempt
//! upstream_response_filter the vendor's headers cut to an allow-list; retryable status →
//!                          next route; else a vendor error is rewrapped; a success in another
//!                          dialect than the door's sets up its translation; the meter reads
//!                          the door's (or the pivot's) dialect
//! response_filter          x-request-id, x-ratelimit-*
//! response_body_filter     pass-through of the upstream's own Bytes (metered as they go), or
//!                          translation chunk by chunk
//! logging                  counted once on every path: limits settled, metrics, usage log
//! fail_to_proxy            the one place where a proxying failure becomes an HTTP answer
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::FailToProxy;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::auth::{self, Principal};
use crate::body::{self, BodyError};
use crate::config::{Config, Model, Provider, ProviderKind};
use crate::convert::{self, AnswerTranslation};
use crate::dialect::{self, Dialect};
use crate::downstream;
use crate::error::GatewayError;
use crate::health::{now_ms, Health, InFlight};
use crate::limits::{Admission, Demand, Limiter, RateHeaders, Spent};
use crate::meter::Meter;
use crate::metrics::{Finished, Metrics};
use crate::models;
use crate::policy;
use crate::providers::{self, Operation};
use crate::request::FrontRequest;
use crate::request_head;
use crate::response_headers;
use crate::response_store::{self, door, ResponseStore};
use crate::retry_hint;
use crate::router::{self, Choice, Next};
use crate::snapshot::Snapshot;
use crate::telemetry::{self, Telemetry};
use crate::usage::{self, Usage, UsageSource};
use crate::usage_log::{self, UsageLog};

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
}

impl Gateway {
    pub fn new(
        snapshot: Arc<Snapshot>,
        metrics: Arc<Metrics>,
        usage_log: UsageLog,
        health: Arc<Health>,
        limiter: Arc<Limiter>,
        responses: Arc<ResponseStore>,
    ) -> Gateway {
        Gateway {
            snapshot,
            metrics,
            usage_log,
            health,
            limiter,
            responses,
            telemetry: None,
        }
    }

    /// Exports a span per request (`crate::telemetry`).
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
    /// The full rewritten body, swapped in for pingora's replay of the tail on every attempt.
    upstream_body: Bytes,
    /// Routes tried so far: (model name, route index).
    tried: Vec<(String, usize)>,
    attempts: u32,
    /// The end of the request's total time budget (the first route's `total_timeout_ms`).
    deadline: Instant,
    /// Whether every failed attempt so far was a timeout (then the answer is 504, not 502).
    only_timeouts: bool,
    /// An answer decided before any upstream byte (e.g. every route is waiting out a
    /// Retry-After), for `fail_to_proxy`.
    final_error: Option<GatewayError>,
    /// Set when the upstream answered an error status: its body is collected and rewrapped.
    vendor_error: Option<VendorError>,
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

struct VendorError {
    status: u16,
    body: BytesMut,
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

/// How `request_filter` ended.
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
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            request_id: String::new(),
            started: Instant::now(),
            config: None,
            principal: None,
            model: None,
            choice: None,
            provider: None,
            upstream_model: String::new(),
            stream: false,
            request: None,
            operation: Operation::Generate,
            upstream_body: Bytes::new(),
            tried: Vec::new(),
            attempts: 0,
            deadline: Instant::now(),
            only_timeouts: true,
            final_error: None,
            vendor_error: None,
            first_byte_at: None,
            forwarded_at: None,
            status: 0,
            reason: None,
            meter: Meter::None,
            local_usage: None,
            prompt_estimate: 0,
            in_active_streams: false,
            in_flight: None,
            attempt_started: Instant::now(),
            admission: None,
            rate_headers: None,
            front: Dialect::Chat,
            translation: None,
            trace: None,
        }
    }

    /// Runs first, once per request: everything up to the choice of the upstream.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        ctx.started = Instant::now();
        ctx.request_id = request_id(session.req_header());
        ctx.trace = self
            .telemetry
            .as_ref()
            .map(|t| t.begin(session.req_header()));
        match self.admit(session, ctx).await {
            Ok(Admitted::Forward) => Ok(false),
            Ok(Admitted::Answered) => Ok(true),
            Err(Refused::Error(e)) => {
                self.peek_rate_headers(ctx).await;
                answer_error(session, ctx, &e).await;
                Ok(true)
            }
            Err(Refused::ClientGone) => Error::e_explain(
                ErrorType::ReadError,
                "client went away while sending the body",
            ),
        }
    }

    /// Called for every attempt: the first uses the route chosen in `request_filter`, each
    /// retry the next one (`router::next`) after a jittered backoff. The provider's address
    /// was resolved at config load; the body for this route's model name is set here.
    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        if ctx.attempts > 0 {
            self.next_attempt(ctx).await?;
        }
        let (Some(choice), Some(provider), Some(req)) = (
            ctx.choice.as_ref(),
            ctx.provider.as_ref(),
            ctx.request.as_mut(),
        ) else {
            return Error::e_explain(ErrorType::InternalError, "no upstream chosen");
        };
        ctx.attempts += 1;
        ctx.attempt_started = Instant::now();
        ctx.in_flight = Some(InFlight::start(
            self.health
                .route(&provider.name, &choice.route.upstream_model),
        ));
        ctx.tried.push((choice.model.name.clone(), choice.index));
        match convert::upstream_body(req, provider, &choice.route.upstream_model) {
            Ok(body) => ctx.upstream_body = body,
            Err(e) => {
                ctx.final_error = Some(e);
                return Error::e_explain(ErrorType::InternalError, "untranslatable request");
            }
        }
        let Some((provider, upstream)) = ctx
            .provider
            .as_ref()
            .and_then(|p| p.upstream.as_ref().map(|u| (p, u)))
        else {
            return Error::e_explain(ErrorType::InternalError, "no upstream address");
        };
        if let Some(trace) = &mut ctx.trace {
            trace.attempt(provider, &ctx.upstream_model);
        }
        let addr = upstream.addrs[(ctx.attempts as usize - 1) % upstream.addrs.len()];
        let mut peer = HttpPeer::new(addr, upstream.tls, upstream.host.clone());
        let t = provider.timeouts;
        peer.options.connection_timeout = Some(t.connect);
        peer.options.total_connection_timeout = Some(t.connect * 2);
        // pingora applies one read timeout to every read: the wait for the answer's head and
        // each gap between body chunks. A non-streaming answer is one wait (first byte); a
        // stream's head comes at once and its gaps are bounded by the idle timeout.
        peer.options.read_timeout = Some(if ctx.stream {
            t.first_byte.max(t.idle)
        } else {
            t.first_byte
        });
        peer.options.write_timeout = Some(t.idle);
        peer.options.idle_timeout = Some(Duration::from_secs(90));
        Ok(Box::new(peer))
    }

    /// A connection that failed is retried on the next route while any is left.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some((_, cause)) = classify(&e, ctx.provider.as_deref()) {
            self.attempt_failed(ctx, cause, None);
        }
        e.set_retry(self.may_retry(ctx));
        e
    }

    /// pingora's default refuses to retry a POST; here a failed attempt is retried as long
    /// as nothing of the answer has gone to the client and a route is left. The body is
    /// replayed exactly (`request_body_filter`).
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        _client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if matches!(e.etype(), ErrorType::HTTPStatus(_)) {
            // Our own verdict on a vendor status (`upstream_response_filter`): already counted.
            return e;
        }
        let upstream_fault = !matches!(e.esource(), ErrorSource::Downstream);
        if upstream_fault {
            if let Some((_, cause)) = classify(&e, ctx.provider.as_deref()) {
                self.attempt_failed(ctx, cause, None);
            }
        }
        let nothing_sent = session.response_written().is_none();
        e.set_retry(upstream_fault && nothing_sent && self.may_retry(ctx));
        e
    }

    /// The upstream's path and Host, the provider's key; the client's credentials are removed.
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Some(provider) = ctx.provider.as_ref() else {
            return Error::e_explain(ErrorType::InternalError, "no provider chosen");
        };
        let path =
            providers::upstream_path(provider, &ctx.upstream_model, ctx.stream, ctx.operation);
        let uri = path
            .parse::<http::Uri>()
            .map_err(|_| Error::explain(ErrorType::InternalError, "bad upstream path"))?;
        req.set_uri(uri);
        providers::prepare_upstream_head(provider, req, ctx.upstream_body.len())?;
        if let Some(trace) = &ctx.trace {
            req.insert_header("traceparent", trace.traceparent())?;
        }
        ctx.forwarded_at.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Pingora hands over the replayed tail of the client's body once per attempt; the full
    /// rewritten body goes in its place (`body::read` explains why).
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        *body = Some(if end_of_stream {
            ctx.upstream_body.clone()
        } else {
            Bytes::new()
        });
        Ok(())
    }

    /// A vendor's error status is rewrapped into the spec's shape: the body is collected in
    /// `response_body_filter`, so its length changes and Content-Length must go.
    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let status = resp.status.as_u16();
        // Read before the vendor's headers go: its rate-limit headers may say how long to wait.
        let retry_after = retry_after(resp);
        response_headers::keep_allowed(resp);
        if router::retryable_status(status) {
            self.attempt_failed(ctx, status_reason(status), retry_after);
            if self.may_retry(ctx) {
                let mut e =
                    Error::explain(ErrorType::HTTPStatus(status), "retryable vendor status");
                e.set_retry(true);
                return Err(e.into_up());
            }
        } else if (200..300).contains(&status) {
            if let Some(p) = &ctx.provider {
                self.health.record_success(&p.name, &ctx.upstream_model);
            }
        }
        if !(200..300).contains(&status) {
            let client_status = providers::client_status_for_vendor(status);
            resp.set_status(client_status)?;
            resp.remove_header("content-length");
            resp.remove_header("content-encoding");
            resp.insert_header("content-type", "application/json")?;
            ctx.vendor_error = Some(VendorError {
                status,
                body: BytesMut::new(),
            });
            return Ok(());
        }
        ctx.translation = match (ctx.request.as_ref(), ctx.provider.as_ref()) {
            (Some(req), Some(p)) => AnswerTranslation::for_provider(req, p, &ctx.upstream_model),
            _ => None,
        };
        // What the meter reads: the vendor's own bytes, or the chat pivot of a translation.
        let metered = match &ctx.translation {
            Some(t) => {
                resp.remove_header("content-length");
                resp.remove_header("content-encoding");
                resp.insert_header("content-type", t.content_type())?;
                Dialect::Chat
            }
            None => ctx.front,
        };
        let is_sse = resp
            .headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        ctx.meter = if ctx.operation == Operation::CountTokens {
            Meter::None
        } else if ctx.stream || is_sse {
            self.metrics.active_streams.inc();
            ctx.in_active_streams = true;
            Meter::stream_of(metered)
        } else {
            Meter::body_of(metered)
        };
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.status = resp.status.as_u16();
        resp.insert_header("x-request-id", ctx.request_id.as_str())?;
        if let Some(h) = &ctx.rate_headers {
            h.apply(resp);
        }
        Ok(())
    }

    /// Streams pass through: the upstream's `Bytes` go to the client as they came.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<Duration>> {
        if let Some(err) = ctx.vendor_error.as_mut() {
            if let Some(chunk) = body.take() {
                let room = VENDOR_ERROR_LIMIT.saturating_sub(err.body.len());
                err.body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            if end_of_stream {
                let provider = ctx.provider.as_deref();
                let kind = provider.map_or(ProviderKind::OpenAi, |p| p.kind);
                let e = if providers::is_content_filter(kind, err.status, &err.body) {
                    GatewayError::ContentFilter
                } else {
                    providers::vendor_error(provider, err.status, &err.body)
                };
                ctx.reason = Some(e.reason());
                *body = Some(dialect::error_body(ctx.front, &e));
            }
            return Ok(None);
        }
        if let Some(t) = ctx.translation.as_mut() {
            *body = match t.chunk(body.take(), end_of_stream, &mut ctx.meter) {
                Ok(out) => out,
                Err(e) => {
                    ctx.reason = Some(e.reason());
                    Some(dialect::error_body(ctx.front, &e))
                }
            };
            if end_of_stream {
                // A translated Responses answer is kept before its end goes out.
                let team = ctx.principal.as_ref().map(|p| p.team.name.as_str());
                let (config, req) = (ctx.config.as_deref(), ctx.request.as_ref());
                self.responses
                    .keep_now(config, team, req, t.completed_response());
            }
            if body.as_ref().is_some_and(|b| !b.is_empty()) {
                first_byte(ctx);
            }
        } else if let Some(chunk) = body.as_ref().filter(|b| !b.is_empty()) {
            first_byte(ctx);
            ctx.meter.feed_bytes(chunk);
        }
        if !end_of_stream && Instant::now() > ctx.deadline {
            return Error::e_explain(ErrorType::ReadTimedout, "total_timeout_ms reached");
        }
        Ok(None)
    }

    /// Any failure of the proxying itself: connect errors, timeouts, resets.
    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let err = match ctx.final_error.take() {
            Some(err) => err,
            None => match final_error(e, ctx) {
                Some(err) => err,
                None => {
                    // The client is gone: nothing to write.
                    ctx.status = 499;
                    return FailToProxy {
                        error_code: 0,
                        can_reuse_downstream: false,
                    };
                }
            },
        };
        if session.response_written().is_none() {
            answer_error(session, ctx, &err).await;
        } else if ctx.stream {
            // Headers went out already: end the stream with one error event, no [DONE].
            let _ = session
                .write_response_body(Some(dialect::error_event(ctx.front, &err)), true)
                .await;
            downstream::close_after_failed_stream(session).await;
        }
        ctx.status = err.status();
        FailToProxy {
            error_code: err.status(),
            can_reuse_downstream: false,
        }
    }

    /// pingora's own log lines about a request (retries, failures) end with this summary:
    /// it carries the request id, so every line of a request can be found by it.
    fn request_summary(&self, session: &Session, ctx: &Ctx) -> String {
        let req = session.req_header();
        format!(
            "{} {}, request_id: {}",
            req.method,
            req.uri.path(),
            ctx.request_id
        )
    }

    /// Runs once at the end of every request, whatever happened to it: the one place where
    /// a request is counted, in the metrics and the usage log.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let status = final_status(session, e, ctx);
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

impl Gateway {
    /// Everything `request_filter` decides, as plain steps that each may refuse the request.
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
        if let Some(filter) = policy::check(&config, &principal.team, || req.texts()) {
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
            Next::Exhausted { blocked_ms } => return Err(no_route_left(&model, blocked_ms).into()),
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
    ctx.reason = Some(err.reason());
    if !session.is_body_done() {
        drain_or_close(session).await;
    }
    let mut extra = Vec::new();
    if let Some(secs) = err.retry_after() {
        extra.push(("retry-after", secs.to_string()));
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
    if session
        .write_response_header(Box::new(resp), false)
        .await
        .is_err()
    {
        return;
    }
    let n = chunks.len();
    for (i, chunk) in chunks.into_iter().enumerate() {
        if ctx.first_byte_at.is_none() {
            ctx.first_byte_at = Some(Instant::now());
        }
        if session
            .write_response_body(Some(chunk), i + 1 == n)
            .await
            .is_err()
        {
            ctx.status = 499;
            return;
        }
    }
    if n == 0 {
        let _ = session.write_response_body(None, true).await;
    }
}

/// What a proxying failure means for the client, and its cause as a metric label;
/// `None` when the client itself failed.
fn classify(e: &Error, provider: Option<&Provider>) -> Option<(GatewayError, &'static str)> {
    let name = provider.map_or("?", |p| p.name.as_str());
    if matches!(e.esource(), ErrorSource::Downstream) {
        return None;
    }
    let found = match e.etype() {
        ErrorType::ConnectTimedout => (
            GatewayError::UpstreamTimeout(format!("connecting to provider `{name}` timed out")),
            "connect_timeout",
        ),
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => (
            GatewayError::UpstreamTimeout(format!("provider `{name}` did not answer in time")),
            "timeout",
        ),
        ErrorType::ConnectRefused | ErrorType::ConnectNoRoute | ErrorType::ConnectError => (
            GatewayError::Upstream(format!("cannot connect to provider `{name}`")),
            "connect",
        ),
        ErrorType::TLSHandshakeFailure | ErrorType::InvalidCert | ErrorType::HandshakeError => (
            GatewayError::Upstream(format!("TLS with provider `{name}` failed")),
            "tls",
        ),
        _ if matches!(e.esource(), ErrorSource::Upstream) => (
            GatewayError::Upstream(format!("provider `{name}` failed mid-answer")),
            "reset",
        ),
        _ => (
            GatewayError::Upstream(format!("proxying to provider `{name}` failed")),
            "other",
        ),
    };
    Some(found)
}

/// The answer for a proxying failure, once no retry follows; `None` when the client left.
fn final_error(e: &Error, ctx: &Ctx) -> Option<GatewayError> {
    if let ErrorType::HTTPStatus(status) = e.etype() {
        let provider = ctx.provider.as_deref();
        return Some(providers::vendor_error(provider, *status, b""));
    }
    let (err, _) = classify(e, ctx.provider.as_deref())?;
    Some(match err {
        GatewayError::UpstreamTimeout(m) if !ctx.only_timeouts => GatewayError::Upstream(m),
        other => other,
    })
}

/// Nothing left to try: a 429 with `retry-after` when routes only wait out a vendor's
/// Retry-After, else a 502.
fn no_route_left(model: &Model, blocked_ms: Option<u64>) -> GatewayError {
    match blocked_ms {
        Some(ms) => GatewayError::RateLimited {
            message: format!(
                "every route of `{}` is rate limited by its vendor; retry later",
                model.name
            ),
            retry_after_secs: ms.div_ceil(1000).max(1),
        },
        None => GatewayError::Upstream(format!("no route of `{}` is available", model.name)),
    }
}

/// The wait a vendor's answer asks for, in any of the forms vendors use.
fn retry_after(resp: &ResponseHeader) -> Option<Duration> {
    let headers = resp.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes()));
    retry_hint::retry_hint(resp.status.as_u16(), headers, SystemTime::now())
}

/// The metric cause of a vendor's error status.
fn status_reason(status: u16) -> &'static str {
    match status {
        429 => "status_429",
        401 | 403 => "status_auth",
        400..=499 => "status_4xx",
        _ => "status_5xx",
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
fn final_status(session: &Session, e: Option<&Error>, ctx: &Ctx) -> u16 {
    if e.is_some_and(|e| matches!(e.esource(), ErrorSource::Downstream)) || ctx.status == 499 {
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
    async fn next_attempt(&self, ctx: &mut Ctx) -> Result<()> {
        let (Some(config), Some(principal), Some(model)) =
            (ctx.config.clone(), ctx.principal.clone(), ctx.model.clone())
        else {
            return Error::e_explain(ErrorType::InternalError, "retry without a request");
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
                ctx.final_error = Some(no_route_left(&model, blocked_ms));
                return Error::e_explain(ErrorType::ConnectProxyFailure, "no route left");
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
        if !matches!(cause, "timeout" | "connect_timeout") {
            ctx.only_timeouts = false;
        }
        self.upstream_error(ctx, cause);
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
