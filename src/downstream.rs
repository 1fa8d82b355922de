//! The client's HTTP/1.1 connection between two requests.
//!
//! pingora 0.9 keeps reading the client's socket while it proxies an answer, to notice a client
//! that leaves. After the last byte of an answer went out, the client may send its next request
//! on the same keep-alive connection before pingora's proxy loop has ended; pingora then reads
//! the first byte of that request in its idle probe and, with pipelining off (its default),
//! fails with "Sent data after end of body" and closes the connection: the client's next
//! request is lost, reset, and never reaches the gateway's logs. With pipelining on, pingora
//! keeps those bytes as the start of the next request and serves it after this one, in order
//! (RFC 9112 §9.3.2); found by `tests/faults.rs` under load.
//!
//! A stream that fails after its head is ended with its error event and a complete chunked
//! body, but pingora never reuses the connection of a failed proxying: it closes it after the
//! request's logging (the usage log, the limiter's settlement, a Redis round trip). A client
//! that reads the complete answer may send its next request on that connection meanwhile, and
//! have it reset. [`close_after_failed_stream`] closes the connection at once, right after the
//! last chunk, so the client sees the close with the answer's end; the window is then that of
//! any server closing an idle connection (RFC 9112 §9.3.1), which clients (the OpenAI and
//! Anthropic SDKs among them) meet by retrying on a new connection.

use pingora::protocols::http::ServerSession;
use pingora::proxy::Session;

/// Closes (FIN) the client's connection right after a failed stream's last chunk.
pub async fn close_after_failed_stream(session: &mut Session) {
    session.as_downstream_mut().shutdown().await;
}

/// Lets the next request of this connection arrive while this one's answer finishes.
pub fn accept_early_next_request(session: &mut Session) {
    if let ServerSession::H1(h1) = session.as_downstream_mut() {
        h1.set_pipelining_enabled(true);
    }
}
