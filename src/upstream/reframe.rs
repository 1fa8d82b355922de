//! Re-framing a vendor's answer body whose wire framing is not its dialect's: AWS event
//! streams (`application/vnd.amazon.eventstream`, binary frames with CRCs) become the
//! dialect's server-sent events as they arrive, so that metering, translation and
//! pass-through read one framing. A vendor gives its re-framer
//! (`crate::providers::Vendor::reframe`); [`super::Exchange::reframe`] applies it to a
//! successful answer.
//!
//! The server-sent events made are `event: <name>\ndata: <one-line JSON>\n\n`. A frame the
//! vendor marks as an exception (`:message-type: exception`, e.g. `throttlingException`,
//! `modelStreamErrorException`) becomes the dialect's error event, so that the gateway's
//! stream-error rules (fail over before content, one error event after) apply as to any
//! vendor's error event.

use bytes::Bytes;

/// Why a body could not be re-framed: the stream ends as a reset (before content, another
/// route may answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupt(pub String);

/// An incremental re-framer of one answer's body.
pub trait Reframe: Send + Sync {
    /// Takes the next bytes of the vendor's body (cut anywhere, a frame may span calls);
    /// returns the server-sent events of the frames completed (empty when none).
    fn feed(&mut self, bytes: &[u8]) -> Result<Bytes, Corrupt>;

    /// At the body's end: `Err` when a frame was left incomplete.
    fn finish(&mut self) -> Result<Bytes, Corrupt>;

    /// The content type of what [`Reframe::feed`] makes (`text/event-stream`).
    fn content_type(&self) -> &'static str {
        "text/event-stream"
    }
}
