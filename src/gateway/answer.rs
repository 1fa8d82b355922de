//! The third phase (the map is in `super`): the vendor's answer to an attempt, on its way to
//! the client, and the writing of the gateway's own answers and errors.
//!
//! An error status is read (bounded) and either fails the attempt (retryable) or is the
//! answer, rewrapped in the door's error shape. A success is translated when the vendor speaks
//! another dialect than the door, and metered; it is held until it can go out (a stream until
//! its first content event, a whole answer to its end: a failure meanwhile fails the attempt,
//! as nothing went to the client), released (head and what was held), then relayed chunk by
//! chunk (a failure now ends the answer with one error event, and the request counts as
//! failed).
//!
//! Every wait on the vendor (its head, in `attempt.rs`; the hold; the relay) is raced against
//! the client closing its connection ([`client_gone`]): a client that leaves before its
//! answer is complete drops the exchange at once (the vendor's connection closes, and its
//! generation with it), and the request is counted 499 with what was read so far.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use pingora::http::ResponseHeader;

use super::Admitted;
use super::{Attempt, Chosen, Gateway, Record};
use crate::accounting::meter::Meter;
use crate::convert::{self, AnswerTranslation};
use crate::dialect::{self, adjusted, Dialect};
use crate::error::GatewayError;
use crate::gateway::failed::{self, Failed};
use crate::gateway::response_headers;
use crate::policy::router;
use crate::providers::{self, Operation};
use crate::response_store::ResponseStore;
use crate::server::downstream::{self, Session};
use crate::upstream::{Exchange, Failure};

/// The largest vendor error body kept to rewrap; the rest is dropped.
const VENDOR_ERROR_LIMIT: usize = 64 * 1024;
/// An early answer drains a client body up to this size so the client reads the answer
/// instead of a reset; a larger one is cut off by closing the connection.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;
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
    /// The client left before any of the answer went out.
    ClientGone,
}

impl Gateway {
    /// The vendor's answer to `attempt`, from its head to its end. `Ok`: an answer went to
    /// the client (the vendor's, its error rewrapped, or a failure after the first byte), or
    /// the client left. `Err`: the attempt failed while nothing had gone to the client.
    pub(super) async fn answer(
        &self,
        session: &mut Session,
        record: &mut Record,
        mut attempt: Attempt<'_>,
        mut exchange: Exchange,
    ) -> Result<(), Failed> {
        let admitted = attempt.admitted;
        let route = &admitted.route;
        let Some(vendor) = exchange.head() else {
            return Err(Failed::of(Failure::Reset, Some(&route.provider)));
        };
        if !(200..300).contains(&vendor.status.as_u16()) {
            // Boxed: the largest state of an attempt (3.5 KB), needed only on an error status.
            return Box::pin(self.vendor_error(session, record, route, exchange)).await;
        }
        let call = providers::Call {
            provider: &route.provider,
            upstream_model: route.upstream_model(),
            op: record.operation,
            stream: record.stream,
            client: session.req_header(),
        };
        if let Some(reframe) = providers::reframe(&call) {
            exchange.reframe(reframe);
        }
        let Some(vendor) = exchange.head() else {
            return Err(Failed::of(Failure::Reset, Some(&route.provider)));
        };
        begin_answer(record, &mut attempt, vendor);
        // The client's head, but for its framing, while the vendor's is at hand.
        let head = client_parts(record, &attempt, vendor);
        exchange.forget_head();
        let mut held = Vec::new();
        let hold = match self
            .hold(session, record, &mut attempt, &mut exchange, &mut held)
            .await
        {
            Ok(hold) => hold,
            Err(failed) => {
                exchange.finish(&self.pool);
                return Err(failed);
            }
        };
        match hold {
            Hold::ClientGone => {
                // Dropped unfinished: the vendor's connection closes now, and generation
                // with it. What was read so far is settled (`Meter::settle`).
                drop(exchange);
                record.status = 499;
            }
            Hold::Refused => {
                exchange.finish(&self.pool);
                self.answered(route);
                Box::pin(answer_error(session, record, &GatewayError::ContentFilter)).await;
            }
            Hold::Ended => {
                exchange.finish(&self.pool);
                if Box::pin(self.release(session, record, &attempt, head, held, true)).await {
                    self.answered(route);
                }
            }
            Hold::Release => {
                if Box::pin(self.release(session, record, &attempt, head, held, false)).await {
                    self.relay(session, record, &mut attempt, &mut exchange)
                        .await;
                }
                exchange.finish(&self.pool);
            }
        }
        Ok(())
    }

    /// A vendor's error status: its body is read (bounded) for its message, its `type`/`code`/
    /// `param` (kept on a pass-through route, mapped to the door's own on a translated one:
    /// [`convert::errors::at_door`]) and any wait it asks for; a retryable one fails the
    /// attempt, any other is the answer, rewrapped in the door's error shape.
    async fn vendor_error(
        &self,
        session: &mut Session,
        record: &mut Record,
        route: &Chosen,
        mut exchange: Exchange,
    ) -> Result<(), Failed> {
        let provider = &route.provider;
        let Some(resp) = exchange.head().cloned() else {
            return Err(Failed::of(Failure::Reset, Some(provider)));
        };
        let status = resp.status.as_u16();
        let body = exchange.rest(VENDOR_ERROR_LIMIT).await.unwrap_or_default();
        exchange.finish(&self.pool);
        let retry_after = failed::retry_after(&resp, &body);
        let err = if providers::is_content_filter(provider.kind, status, &body) {
            GatewayError::ContentFilter
        } else {
            let err = convert::errors::at_door(
                providers::vendor_error(Some(provider), status, &body),
                providers::dialect_for(provider, route.upstream_model()),
                record.front,
                providers::serves(provider, route.upstream_model(), record.front),
            );
            match (err, retry_after) {
                (
                    GatewayError::Vendor {
                        status: 429,
                        message,
                        ..
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
        answer_error_from(session, record, &err, upstream_request_id).await;
        Ok(())
    }

    /// Reads the answer until it can go to the client: a stream until its first content
    /// event, a whole answer to its end. A failure meanwhile (an error event, a timeout, a
    /// reset) fails the attempt: nothing has gone to the client, so another route may answer.
    /// The client's connection is watched meanwhile: one that closes ends the hold at once
    /// ([`Hold::ClientGone`]), not when the vendor's whole answer came.
    async fn hold(
        &self,
        session: &mut Session,
        record: &mut Record,
        attempt: &mut Attempt<'_>,
        exchange: &mut Exchange,
        held: &mut Vec<Bytes>,
    ) -> Result<Hold, Failed> {
        let admitted = attempt.admitted;
        let provider = &admitted.route.provider;
        let streamed = record.meter.is_stream();
        let limit = if streamed {
            STREAM_HOLD_LIMIT
        } else {
            BODY_HOLD_LIMIT
        };
        let mut len = 0;
        loop {
            // Biased: the vendor's bytes first, so that a chunk already read costs no look at
            // the client's connection (a read of its socket); that is looked at only while the
            // vendor is silent.
            let chunk = tokio::select! {
                biased;
                chunk = exchange.chunk() => chunk.map_err(|f| Failed::of(f, Some(provider)))?,
                () = client_gone(session) => return Ok(Hold::ClientGone),
            };
            let end = chunk.is_none();
            let out = relay_chunk(record, attempt, chunk, end);
            if end {
                record.meter.seal();
            }
            match out {
                Ok(Some(out)) if !out.is_empty() => {
                    len += out.len();
                    held.push(out);
                }
                Ok(_) => {}
                Err(e) => return Err(Failed::untranslatable(e)),
            }
            if !record.meter.started() {
                if let Some(message) = record.meter.stream_error() {
                    return Err(Failed::stream_error(message, Some(provider)));
                }
            }
            if (streamed || end) && refused(record, attempt) {
                return Ok(Hold::Refused);
            }
            if end && cut_short(record, attempt) {
                // Nothing went out yet: another route may answer.
                return Err(Failed::of(Failure::Reset, Some(provider)));
            }
            // A Responses answer that just completed is kept before any of it goes out.
            self.keep_response(attempt).await;
            if end {
                return Ok(Hold::Ended);
            }
            if (streamed && record.meter.started()) || len > limit {
                return Ok(Hold::Release);
            }
        }
    }

    /// Sends the head and what was held. `false`: the client is gone.
    async fn release(
        &self,
        session: &mut Session,
        record: &mut Record,
        attempt: &Attempt<'_>,
        head: http::response::Parts,
        held: Vec<Bytes>,
        whole: bool,
    ) -> bool {
        let len = whole.then(|| held.iter().map(Bytes::len).sum());
        let head = response_headers::framed(head, len);
        record.status = head.status.as_u16();
        if record.meter.is_stream() {
            self.metrics.active_streams.inc();
            record.in_active_streams = true;
        }
        if session.write_response_header(Box::new(head)).await.is_err() {
            record.status = 499;
            return false;
        }
        let n = held.len();
        for (i, chunk) in held.into_iter().enumerate() {
            first_byte(record, attempt);
            if session
                .write_response_body(chunk, whole && i + 1 == n)
                .await
                .is_err()
            {
                record.status = 499;
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
            record.status = 499;
            return false;
        }
        true
    }

    /// The rest of an answer whose head went out, chunk by chunk as the vendor sends it. A
    /// failure now cannot be retried: the answer ends with one error event in the door's
    /// dialect, and the request counts as failed.
    async fn relay(
        &self,
        session: &mut Session,
        record: &mut Record,
        attempt: &mut Attempt<'_>,
        exchange: &mut Exchange,
    ) {
        let admitted = attempt.admitted;
        let route = &admitted.route;
        let mut vendor_failed = false;
        loop {
            // A client that leaves once its stream's end event went out had the whole answer:
            // it is not a 499 (agents close at once, before the vendor's last bytes come).
            let delivered = delivered(record, attempt);
            let Some(chunk) = self
                .next_chunk(session, record, route, exchange, delivered)
                .await
            else {
                return;
            };
            let end = chunk.is_none();
            let out = match relay_chunk(record, attempt, chunk, end) {
                Ok(out) => out,
                Err(e) => return Box::pin(end_with_error(session, record, &e)).await,
            };
            if record.stream && refused(record, attempt) {
                return Box::pin(end_with_error(
                    session,
                    record,
                    &GatewayError::ContentFilter,
                ))
                .await;
            }
            if !vendor_failed {
                if let Some(message) = record.meter.stream_error() {
                    // The vendor's error event goes to the client as it came (in the door's
                    // dialect); the failure is counted before the client can see the end.
                    let failed = Failed::stream_error(message, Some(&route.provider));
                    self.attempt_failed(record, route, failed.cause, None);
                    record.status = failed.error.status();
                    record.reason = Some(failed.error.reason());
                    vendor_failed = true;
                }
            }
            if end && !vendor_failed && cut_short(record, attempt) {
                // The vendor's stream ended before its end event (cut where the connection's
                // end is the body's end, or a chunked body ended early): one error event, and
                // the request counts as failed, as for a reset mid-stream.
                let failed = Failed::of(Failure::Reset, Some(&route.provider));
                self.attempt_failed(record, route, failed.cause, None);
                return Box::pin(end_with_error(session, record, &failed.error)).await;
            }
            if !vendor_failed {
                // The chunk that holds `response.completed` is kept before it is written:
                // the vendor's last bytes may come later (or never).
                self.keep_response(attempt).await;
            }
            let out = out.filter(|o| !o.is_empty() || end);
            if out.is_some() {
                first_byte(record, attempt);
            }
            if (out.is_some() || end)
                && session
                    .write_response_body(out.unwrap_or_default(), end)
                    .await
                    .is_err()
            {
                if !delivered {
                    record.status = 499;
                }
                return;
            }
            if end {
                break;
            }
        }
        if vendor_failed {
            downstream::close_after_failed_stream(session).await;
        } else {
            self.answered(route);
        }
    }

    /// The vendor's next chunk (`Some(None)` at its end); `None` when the answer ended
    /// otherwise: the client left (499, unless it had the whole answer: `delivered`), or the
    /// vendor failed (the failure is recorded and the answer ended with its error).
    async fn next_chunk(
        &self,
        session: &mut Session,
        record: &mut Record,
        route: &Chosen,
        exchange: &mut Exchange,
        delivered: bool,
    ) -> Option<Option<Bytes>> {
        // Biased, as in `hold`: the client's connection is looked at only while the vendor is
        // silent.
        let read = tokio::select! {
            biased;
            read = exchange.chunks() => read,
            () = client_gone(session) => {
                if !delivered {
                    record.status = 499;
                }
                return None;
            }
        };
        match read {
            Ok(chunk) => Some(chunk),
            Err(f) => {
                let failed = Failed::of(f, Some(&route.provider));
                self.attempt_failed(record, route, failed.cause, None);
                Box::pin(end_with_error(session, record, &failed.error)).await;
                None
            }
        }
    }

    /// A translated Responses answer is kept (`crate::response_store`) as soon as its
    /// translation completed it (a stream's `response.completed`/`response.incomplete` was
    /// just made, or the whole answer), before those bytes go to the client: a follow-up sent
    /// the moment the client reads that event finds it, though the vendor's own last bytes
    /// come later. Once per answer; nothing for other answers.
    ///
    /// Likewise a translated chat-door answer's vendor state for its tool calls
    /// (`crate::response_store::vendor_state`), for clients that drop `thinking_blocks`.
    async fn keep_response(&self, attempt: &mut Attempt<'_>) {
        let Admitted {
            config,
            principal,
            request,
            ..
        } = attempt.admitted;
        let state = attempt
            .translation
            .as_mut()
            .map(AnswerTranslation::take_vendor_state)
            .unwrap_or_default();
        if !state.is_empty() {
            Box::pin(
                self.responses
                    .keep_vendor_state(config, &principal.team.name, state),
            )
            .await;
        }
        let Some(completed) = attempt
            .translation
            .as_mut()
            .and_then(AnswerTranslation::take_completed_response)
        else {
            return;
        };
        // Boxed: only translated Responses answers are kept.
        Box::pin(self.responses.keep(
            Some(config),
            Some(&principal.team.name),
            Some(request),
            Some(completed),
        ))
        .await;
    }

    /// A request refused before it was forwarded: the error, with the limits' headers.
    pub(super) async fn refuse(
        &self,
        session: &mut Session,
        record: &mut Record,
        e: &GatewayError,
    ) {
        self.peek_rate_headers(record).await;
        answer_error(session, record, e).await;
    }

    /// The `x-ratelimit-*` headers for an authenticated answer given before admission.
    pub(super) async fn peek_rate_headers(&self, record: &mut Record) {
        if record.rate_headers.is_none() {
            if let Some(p) = &record.principal {
                record.rate_headers = Some(self.limiter.peek_headers(&p.key, &p.team).await);
            }
        }
    }
}

/// A successful head: the answer's translation (when the vendor speaks another dialect than
/// the door) and its meter, which reads the door's dialect or the chat pivot.
fn begin_answer(record: &mut Record, attempt: &mut Attempt<'_>, resp: &ResponseHeader) {
    let admitted = attempt.admitted;
    attempt.translation = AnswerTranslation::for_provider(
        &admitted.request,
        &admitted.route.provider,
        admitted.route.upstream_model(),
    );
    let metered = if attempt.translation.is_some() {
        Dialect::Chat
    } else {
        record.front
    };
    record.meter = if record.operation == Operation::CountTokens {
        Meter::None
    } else if record.stream || is_sse(resp) {
        Meter::stream_of(metered)
    } else {
        Meter::body_of(metered)
    };
}

/// One chunk of the vendor's answer (`None` at its end) → what goes to the client: the same
/// bytes (metered as they go) or their translation.
fn relay_chunk(
    record: &mut Record,
    attempt: &mut Attempt<'_>,
    chunk: Option<Bytes>,
    end: bool,
) -> Result<Option<Bytes>, GatewayError> {
    if let Some(t) = attempt.translation.as_mut() {
        return t.chunk(chunk, end, &mut record.meter);
    }
    if let Some(chunk) = chunk.as_ref().filter(|b| !b.is_empty()) {
        record.meter.feed_bytes(chunk);
    }
    Ok(chunk)
}

/// Whether the answer is a refusal on content grounds that the gateway answers with its
/// "Contents Filtered" error: not at the Gemini door from a vendor that speaks Gemini, whose
/// refusal (`promptFeedback.blockReason`, a candidate stopped for SAFETY, with its
/// `safetyRatings`) is already in the door's own words and goes to the client untouched.
fn refused(record: &Record, attempt: &Attempt<'_>) -> bool {
    record.meter.refused() && !(record.front == Dialect::Gemini && attempt.translation.is_none())
}

/// Whether a stream the vendor's bytes go through as they are ended without its end event
/// (`[DONE]` or a finished choice, `message_stop`, a terminal `response.*` event). A translated
/// stream is judged by its translator, which ends a cut one with its own error event.
fn cut_short(record: &mut Record, attempt: &Attempt<'_>) -> bool {
    attempt.translation.is_none() && record.meter.is_stream() && !record.meter.ended()
}

/// Whether the client has had its stream's end event: the vendor's own (`[DONE]`,
/// `message_stop`, `response.completed`) when its bytes pass through, else the translation's.
fn delivered(record: &Record, attempt: &Attempt<'_>) -> bool {
    match &attempt.translation {
        None => record.meter.end_seen(),
        Some(t) => t.is_done(),
    }
}

/// The client's head but its framing: the vendor's headers cut to an allow-list, the
/// translation's content type, the request id and rate-limit headers.
fn client_parts(
    record: &Record,
    attempt: &Attempt<'_>,
    vendor: &ResponseHeader,
) -> http::response::Parts {
    let content_type = attempt
        .translation
        .as_ref()
        .map(AnswerTranslation::content_type);
    let rate = record.rate_headers.as_ref();
    let mut parts = response_headers::client_parts(vendor, content_type, &record.request_id, rate);
    if let Some(value) = record.adjusted.header_value() {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            parts
                .headers
                .insert(http::HeaderName::from_static(adjusted::HEADER), value);
        }
    }
    parts
}

/// Ends an answer whose head went out after a failure: a stream with one error event, a
/// whole answer by closing the connection (its body stays incomplete).
async fn end_with_error(session: &mut Session, record: &mut Record, err: &GatewayError) {
    record.status = err.status();
    record.reason = Some(err.reason());
    if record.stream {
        let last = match record.array_stream {
            true => dialect::gemini::array::error_tail(err),
            false => dialect::error_event(record.front, err),
        };
        let _ = session.write_response_body(last, true).await;
    }
    downstream::close_after_failed_stream(session).await;
}

/// Resolves when the client closes its connection (or resets its HTTP/2 stream) once its
/// request body was read: it left before its answer was complete. Raced against every wait on
/// the vendor (the send and its head, the hold, the backoff before a retry, the relay), so the
/// vendor's connection is closed within a millisecond or two of the client's (measured in
/// `tests/it/client_leaves.rs`). A client that sends anything else meanwhile is simply not
/// watched any more; one whose body is still unread is not watched (its reads are its body's).
pub(super) async fn client_gone(session: &mut Session) {
    if !session.is_body_done() || session.read_body_or_idle(true).await.is_ok() {
        std::future::pending::<()>().await;
    }
}

/// The client left before its answer began (waiting for the vendor's head, or between two
/// attempts): 499, and its usage is the estimate of the prompt the vendor was sent, with no
/// completion (nothing came), marked `estimated`. `count_tokens` stays uncounted.
pub(super) fn left_before_answer(record: &mut Record) {
    record.status = 499;
    if matches!(record.meter, Meter::None) && record.operation != Operation::CountTokens {
        record.meter = if record.stream {
            Meter::stream_of(record.front)
        } else {
            Meter::body_of(record.front)
        };
    }
}

fn is_sse(resp: &ResponseHeader) -> bool {
    resp.headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

/// The first byte of an answer went to the client: the time to first token, and the route's
/// latency average (for the `latency` strategy).
fn first_byte(record: &mut Record, attempt: &Attempt<'_>) {
    if record.first_byte_at.is_none() {
        let now = Instant::now();
        record.first_byte_at = Some(now);
        attempt.in_flight.first_byte_after(now - attempt.started);
    }
}

/// The built-in mock provider answers in-process, at any front door, streamed or not.
pub(super) async fn answer_mock(
    session: &mut Session,
    record: &mut Record,
    admitted: &mut Admitted,
    responses: &ResponseStore,
) {
    let id = format!("chatcmpl-{}", record.request_id.trim_start_matches("req_"));
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let upstream_model = admitted.route.upstream_model();
    let answer = convert::mock_answer(&mut admitted.request, &id, created, upstream_model);
    // What the translation to the mock's chat left out (`x-switchyard-adjusted`).
    record.adjusted = admitted.request.adjusted.clone();
    match answer {
        Ok(answer) => {
            record.local_usage = Some(answer.usage);
            responses
                .keep(
                    Some(&admitted.config),
                    Some(&admitted.principal.team.name),
                    Some(&admitted.request),
                    answer.completed,
                )
                .await;
            let extra = record
                .adjusted
                .header_value()
                .map(|value| (adjusted::HEADER, value))
                .into_iter()
                .collect();
            write_answer_with(
                session,
                record,
                200,
                answer.content_type,
                answer.chunks,
                extra,
            )
            .await;
        }
        Err(e) => answer_error(session, record, &e).await,
    }
}

/// Writes an error answer in the spec's shape.
pub(super) async fn answer_error(session: &mut Session, record: &mut Record, err: &GatewayError) {
    answer_error_from(session, record, err, None).await;
}

/// Writes an error answer in the spec's shape, with the vendor's request id when a vendor
/// answered it.
pub(super) async fn answer_error_from(
    session: &mut Session,
    record: &mut Record,
    err: &GatewayError,
    upstream_request_id: Option<String>,
) {
    record.reason = Some(err.reason());
    if !session.is_body_done() {
        drain_or_close(session).await;
    }
    if record.front == Dialect::Gemini && *err == GatewayError::ContentFilter {
        // Google's way: a prompt blocked for SAFETY, in a 200 (`dialect::gemini::error`).
        let (content_type, body) =
            dialect::gemini::error::blocked(record.stream, record.array_stream);
        write_answer(session, record, 200, content_type, vec![body]).await;
        return;
    }
    let mut extra = err.headers();
    if let Some(id) = upstream_request_id {
        extra.push((response_headers::UPSTREAM_REQUEST_ID, id));
    }
    write_answer_with(
        session,
        record,
        err.status(),
        "application/json",
        vec![dialect::error_body(record.front, err)],
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

/// Writes a whole answer of Switchyard's own (see `write_answer_with`).
pub(super) async fn write_answer(
    session: &mut Session,
    record: &mut Record,
    status: u16,
    content_type: &str,
    chunks: Vec<Bytes>,
) {
    write_answer_with(session, record, status, content_type, chunks, Vec::new()).await;
}

/// Writes a whole answer of Switchyard's own: one body, or SSE events sent one by one.
async fn write_answer_with(
    session: &mut Session,
    record: &mut Record,
    status: u16,
    content_type: &str,
    chunks: Vec<Bytes>,
    extra: Vec<(&'static str, String)>,
) {
    record.status = status;
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
    let _ = resp.insert_header("x-request-id", record.request_id.as_str());
    if let Some(h) = &record.rate_headers {
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
        if record.first_byte_at.is_none() {
            record.first_byte_at = Some(Instant::now());
        }
        if session
            .write_response_body(chunk, i + 1 == n)
            .await
            .is_err()
        {
            record.status = 499;
            return;
        }
    }
    if n == 0 {
        let _ = session.write_response_body(Bytes::new(), true).await;
    }
}
