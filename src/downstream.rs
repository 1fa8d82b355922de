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

use pingora::protocols::http::ServerSession;
use pingora::proxy::Session;

/// Lets the next request of this connection arrive while this one's answer finishes.
pub fn accept_early_next_request(session: &mut Session) {
    if let ServerSession::H1(h1) = session.as_downstream_mut() {
        h1.set_pipelining_enabled(true);
    }
}
