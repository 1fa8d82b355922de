//! A streamed response body for the axum mocks ([`super::mock_anthropic`],
//! [`super::mock_gemini`]) that fails the way vendors do in time: silent before its first
//! event, silent for good after some events, or trickling events forever.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};

/// What the body does once its frames are sent.
#[derive(Clone, Debug, Default)]
pub enum Then {
    /// End the body (the chunked terminator): a complete answer.
    #[default]
    Close,
    /// Send nothing more and keep the connection open until the peer goes away.
    Stall,
    /// Send `frame` every `every_ms` milliseconds until the peer goes away.
    Trickle { every_ms: u64, frame: String },
    /// Wait `ms` milliseconds, then end the body: the last event went out, the body's end
    /// (the chunked terminator) comes late.
    CloseAfter { ms: u64 },
}

/// A body that waits `first_delay_ms` (after the head went out), sends `frames` one by one,
/// then does what `then` says.
pub fn paced_body(frames: Vec<String>, first_delay_ms: Option<u64>, then: Then) -> Body {
    struct State {
        frames: VecDeque<String>,
        first_delay_ms: Option<u64>,
        then: Then,
    }
    let state = State {
        frames: frames.into(),
        first_delay_ms,
        then,
    };
    let stream = futures::stream::unfold(state, |mut s| async move {
        if let Some(ms) = s.first_delay_ms.take() {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if let Some(f) = s.frames.pop_front() {
            return Some((Ok::<_, Infallible>(Bytes::from(f)), s));
        }
        match &s.then {
            Then::Close => None,
            Then::CloseAfter { ms } => {
                tokio::time::sleep(Duration::from_millis(*ms)).await;
                None
            }
            Then::Stall => futures::future::pending().await,
            Then::Trickle { every_ms, frame } => {
                tokio::time::sleep(Duration::from_millis(*every_ms)).await;
                let f = Bytes::from(frame.clone());
                Some((Ok(f), s))
            }
        }
    });
    Body::from_stream(stream)
}

/// Sleeps `ms` milliseconds, if given (a stall before the answer's head).
pub async fn stall(ms: Option<u64>) {
    if let Some(ms) = ms.filter(|ms| *ms > 0) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}
