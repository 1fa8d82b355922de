//! The second phase (the map is in `super`): an admitted request goes to its routes, one
//! attempt after another, until one answers. An attempt makes the vendor's body and head and
//! sends them; what the vendor answers is `answer.rs`'s. A failure before anything went to the
//! client is recorded on its route, and the next route (or a fallback) follows after a
//! jittered backoff while attempts (`max_attempts`), time (`total_timeout_ms`) and routes are
//! left; else the last failure is the answer. A client that leaves while the send waits for
//! the vendor's head, or during the backoff, ends the request at once (499).

use std::time::Instant;

use bytes::Bytes;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;

use super::answer::{answer_error, answer_error_from, client_gone, left_before_answer};
use super::Admitted;
use super::{Attempt, Chosen, Gateway, Record};
use crate::convert;
use crate::dialect::gemini::door as gemini_door;
use crate::dialect::Dialect;
use crate::error::GatewayError;
use crate::gateway::failed::{self, Failed};
use crate::policy::health::{now_ms, InFlight};
use crate::policy::router::{self, Next};
use crate::providers;
use crate::server::downstream::Session;
use crate::upstream::{self, Exchange, Failure};

impl Gateway {
    /// Attempts until one answers: each failure before the first byte to the client is
    /// recorded on its route, then the next route (or fallback) is tried while attempts, time
    /// and routes are left; else the last failure is the answer.
    pub(super) async fn forward(
        &self,
        session: &mut Session,
        record: &mut Record,
        mut admitted: Box<Admitted>,
    ) {
        // Routes tried so far: (model name, route index).
        let mut tried: Vec<(String, usize)> = Vec::new();
        // Whether every failed attempt so far was a timeout (then the answer is 504, not 502).
        let mut only_timeouts = true;
        loop {
            record.attempts += 1;
            let choice = &admitted.route.choice;
            tried.push((choice.model.name.clone(), choice.index));
            let failed = match self.attempt(session, record, &mut admitted).await {
                Ok(()) => break,
                Err(failed) => failed,
            };
            only_timeouts &= failed.cause.ends_with("timeout");
            self.attempt_failed(record, &admitted.route, failed.cause, failed.retry_after);
            // A transient failure may be tried again on a route already tried.
            let again = failed.transient();
            if !self.may_retry(record, &admitted, &tried, again) {
                let id = failed.upstream_request_id.clone();
                let err = failed::final_error(failed, only_timeouts);
                answer_error_from(session, record, &err, id).await;
                break;
            }
            // The backoff before the next attempt is a wait on the vendors too.
            let next = tokio::select! {
                next = self.next_route(record, &admitted, &tried, again) => Some(next),
                () = client_gone(session) => None,
            };
            match next {
                None => {
                    left_before_answer(record);
                    break;
                }
                Some(Ok(next)) => admitted.route = next,
                Some(Err(err)) => {
                    answer_error(session, record, &err).await;
                    break;
                }
            }
        }
        record.route = Some(admitted.route);
    }

    /// One try on the current route. `Ok`: an answer went to the client (the vendor's, its
    /// error rewrapped, or a failure after the first byte), or the client left. `Err`: the
    /// route failed while nothing had gone to the client.
    async fn attempt(
        &self,
        session: &mut Session,
        record: &mut Record,
        admitted: &mut Admitted,
    ) -> Result<(), Failed> {
        let started = Instant::now();
        let route = &admitted.route;
        let in_flight = InFlight::start(
            self.health
                .route(&route.provider.name, route.upstream_model()),
        );
        // Its own future, so that what only the send needs (the peer, the head, the body)
        // shares its place in this one with the answer's state instead of adding to it.
        let Some(exchange) = self.send(session, record, admitted).await? else {
            return Ok(());
        };
        let attempt = Attempt {
            admitted,
            in_flight,
            started,
            translation: None,
        };
        self.answer(session, record, attempt, exchange).await
    }

    /// Makes the attempt's request (`prepare_attempt`) and sends it; the peer, the head and
    /// the body are needed only to send (and resend on a stale connection), not while the
    /// answer streams. `Ok(None)`: the request could not be made, and its error was answered,
    /// or the client left before the vendor's head came (499).
    async fn send(
        &self,
        session: &mut Session,
        record: &mut Record,
        admitted: &mut Admitted,
    ) -> Result<Option<Exchange>, Failed> {
        let (peer, head, body) = match self.prepare_attempt(session, record, admitted) {
            Ok(prepared) => prepared,
            Err(e) => {
                // Boxed, as every path that only a failing request takes: an open stream's
                // future is as large as its largest state.
                Box::pin(answer_error(session, record, &e)).await;
                return Ok(None);
            }
        };
        let provider = &admitted.route.provider;
        let clock = upstream::Clock::new(provider.timeouts, admitted.deadline);
        record.forwarded_at.get_or_insert_with(Instant::now);
        let addresses = provider.upstream.as_ref().map_or(1, |u| u.addrs.len());
        let mut peer = peer;
        let mut next = record.attempts;
        loop {
            // Until the vendor's head came, the client's connection is watched: one that
            // closes drops the send, which closes the vendor's connection.
            let sent = tokio::select! {
                biased;
                sent = upstream::send(&self.pool, &peer, &head, &body, clock) => Some(sent),
                () = client_gone(session) => None,
            };
            let Some(sent) = sent else {
                left_before_answer(record);
                return Ok(None);
            };
            match sent {
                // A host's address that refuses the connection (`localhost` as `::1` while the
                // vendor listens on 127.0.0.1 only, as Ollama does): its next address, in the
                // same attempt, once each.
                Err(Failure::Connect) if next + 1 < record.attempts + addresses as u32 => {
                    next += 1;
                    match upstream::peer(provider, next) {
                        Some(other) => peer = other,
                        None => return Err(Failed::of(Failure::Connect, Some(provider))),
                    }
                }
                other => return other.map(Some).map_err(|f| Failed::of(f, Some(provider))),
            }
        }
    }

    /// The attempt's body (the client's bytes spliced when the vendor speaks the door's
    /// dialect, else translated), its address and its request head: path, Host, the
    /// provider's key (the client's credentials never go on), the gateway's `x-request-id`,
    /// `traceparent`.
    fn prepare_attempt(
        &self,
        session: &Session,
        record: &mut Record,
        admitted: &mut Admitted,
    ) -> Result<(HttpPeer, RequestHeader, Bytes), GatewayError> {
        let route = &admitted.route;
        let (provider, upstream_model) = (&route.provider, route.upstream_model());
        let body = convert::upstream_body(&mut admitted.request, provider, upstream_model)?;
        let call = providers::Call {
            provider,
            upstream_model,
            op: record.operation,
            stream: record.stream,
            client: session.req_header(),
        };
        let body = providers::envelope(&call, body, &mut admitted.request.adjusted)?;
        record.adjusted = admitted.request.adjusted.clone();
        if let Some(trace) = &mut record.trace {
            trace.attempt(provider, upstream_model);
        }
        let peer = upstream::peer(provider, record.attempts)
            .ok_or_else(|| GatewayError::Internal("no upstream address".into()))?;
        let mut path =
            providers::upstream_path(provider, upstream_model, record.stream, record.operation);
        let request = &admitted.request;
        if request.dialect == Dialect::Gemini
            && !request.gemini_sse
            && convert::Route::for_provider(request.dialect, provider, upstream_model)
                == convert::Route::PassThrough
        {
            // The Gemini door's client asked Google's JSON array: so is its vendor asked,
            // and the answer's bytes pass through.
            path = gemini_door::without_sse(&path);
        }
        let uri = path
            .parse::<http::Uri>()
            .map_err(|_| GatewayError::Internal("bad upstream path".into()))?;
        let internal = |_| GatewayError::Internal("bad upstream header".into());
        let mut head = providers::upstream_head(provider, session.req_header(), uri, &body)?;
        // The gateway's request id (the client's own when it sent a sane one), so that the
        // vendor's logs and the gateway's name the same call.
        head.insert_header("x-request-id", record.request_id.as_str())
            .map_err(internal)?;
        if let Some(trace) = &record.trace {
            head.insert_header("traceparent", trace.traceparent())
                .map_err(internal)?;
        }
        Ok((peer, head, body))
    }

    /// Whether another attempt may follow: attempts and time are left, and so is a route
    /// (`again`: a route already tried counts, [`router::next`]).
    fn may_retry(
        &self,
        record: &Record,
        admitted: &Admitted,
        tried: &[(String, usize)],
        again: bool,
    ) -> bool {
        if record.attempts >= admitted.config.routing.max_attempts
            || Instant::now() >= admitted.deadline
        {
            return false;
        }
        router::has_next(
            &admitted.config,
            &admitted.principal.team,
            &admitted.model,
            tried,
            &self.health,
            again,
            now_ms(),
        )
    }

    /// The route of the next attempt, after a jittered backoff; counts retries and
    /// fallbacks. Fails when nothing is left (a route may have cooled down meanwhile).
    /// `again`: the last failure was transient, so a route already tried may take it.
    async fn next_route(
        &self,
        record: &Record,
        admitted: &Admitted,
        tried: &[(String, usize)],
        again: bool,
    ) -> Result<Chosen, GatewayError> {
        let Admitted {
            config,
            principal,
            model,
            ..
        } = admitted;
        let next = router::next(
            config,
            &principal.team,
            model,
            tried,
            &self.health,
            false,
            again,
            now_ms(),
        );
        let choice = match next {
            Next::Try(choice) => choice,
            Next::Exhausted { blocked_ms } => return Err(failed::no_route_left(model, blocked_ms)),
        };
        let wait = router::backoff(&config.routing, record.attempts, rand::random::<f64>())
            .min(admitted.deadline.saturating_duration_since(Instant::now()));
        tokio::time::sleep(wait).await;
        let next = Chosen::new(config, choice);
        self.metrics
            .retries
            .with_label_values(&[&next.provider.name])
            .inc();
        let from = &admitted.route.choice.model.name;
        if *from != next.choice.model.name {
            self.metrics
                .fallbacks
                .with_label_values(&[from, &next.choice.model.name])
                .inc();
        }
        Ok(next)
    }
}
