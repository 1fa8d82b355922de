//! The client's connection: its request heads in turn, and whether it is kept for the next.
//!
//! pingora serves the connection (HTTP/1.1, or HTTP/2 by ALPN) and hands each request to
//! `gateway::Gateway` as a [`Session`]. The gateway is a plain pingora HTTP application
//! (`HttpServerApp`), not a `ProxyHttp`: it forwards requests itself (`crate::upstream`), so
//! pingora's proxy phases would only cost time and memory. What they did for a request that
//! the gateway keeps is here: read the head (a malformed one is answered 400 and the
//! connection closed; a stopping server closes idle connections), and after the answer
//! either give the connection back for its next request or close it.
//!
//! A stream that fails after its head is ended with its error event and a complete chunked
//! body, and then its connection is closed at once ([`close_after_failed_stream`]): the client
//! sees the close with the answer's end, instead of sending its next request on a connection
//! that is about to go (what is left is the window of any server closing an idle connection,
//! RFC 9112 §9.3.1, which clients — the OpenAI and Anthropic SDKs among them — meet by sending
//! again on a new connection).

use std::sync::atomic::{AtomicBool, Ordering};

use pingora::apps::{HttpPersistentSettings, ReusedHttpStream};
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use pingora::ErrorType;
use tokio::sync::Notify;

/// The session of one client request (pingora's server side, HTTP/1.1 or HTTP/2).
pub type Session = ServerSession;

/// The server is stopping: connections waiting for their next request close.
#[derive(Default)]
pub struct Closing {
    flag: AtomicBool,
    notify: Notify,
}

impl Closing {
    /// From now on no connection waits for another request.
    pub fn start(&self) {
        self.flag.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    async fn started(&self) {
        let notified = self.notify.notified();
        if self.flag.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }
}

/// Reads the next request's head. `false`: there is none to answer (the client closed, its
/// head was malformed and was answered 400, or the server is stopping).
pub async fn read_head(session: &mut Session, closing: &Closing, shutdown: &ShutdownWatch) -> bool {
    let read = tokio::select! {
        // Biased: a request already buffered is read before a stop is noticed.
        biased;
        read = session.read_request() => read,
        () = closing.started() => return false,
    };
    match read {
        Ok(true) => {}
        Ok(false) => return false,
        Err(e) => {
            // Before a head there is no front door to answer in: pingora's bare 400.
            if matches!(e.etype, ErrorType::InvalidHTTPHeader) {
                let _ = session.respond_error(400).await;
            }
            session.shutdown().await;
            return false;
        }
    }
    if *shutdown.borrow() {
        // The answer goes out, then the connection closes.
        session.set_keepalive(None);
    }
    true
}

/// After the answer: the connection for its next request, when it can be kept (HTTP/1.1
/// keep-alive, the request body read to its end), else `None` (it is closed).
pub async fn finish(session: Session) -> Option<ReusedHttpStream> {
    let settings = HttpPersistentSettings::for_session(&session);
    // Boxed: pingora's finish is a large future, and it would otherwise be part of the future
    // of every open stream (which it follows).
    let reusable = Box::pin(session.finish()).await.ok().flatten()?;
    Some(ReusedHttpStream::from_reusable_stream(reusable, settings))
}

/// Closes (FIN) the client's connection right after a failed stream's last chunk.
pub async fn close_after_failed_stream(session: &mut Session) {
    session.set_keepalive(None);
    session.shutdown().await;
}
