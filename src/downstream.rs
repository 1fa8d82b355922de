//! The client's HTTP/1.1 connection after a stream that failed mid-way.
//!
//! A stream that fails after its head is ended with its error event and a complete chunked
//! body, but pingora 0.9 never reuses the connection of a failed proxying (`proxy_1to1` reports
//! it not reusable): it closes it after the request's logging (the usage log, the limiter's
//! settlement, a Redis round trip). A client that has read the complete answer may send its next
//! request on that connection meanwhile and have it reset, unread and unlogged (found by
//! `tests/faults.rs` under load). [`close_after_failed_stream`] closes the connection at once,
//! right after the last chunk, so the client sees the close with the answer's end; what is left
//! is the window of any server closing an idle connection (RFC 9112 §9.3.1), which clients (the
//! OpenAI and Anthropic SDKs among them) meet by sending again on a new connection.

use pingora::proxy::Session;

/// Closes (FIN) the client's connection right after a failed stream's last chunk.
pub async fn close_after_failed_stream(session: &mut Session) {
    session.as_downstream_mut().shutdown().await;
}
