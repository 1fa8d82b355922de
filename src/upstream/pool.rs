//! Connections to the vendors: made by pingora's transport connector (TCP, TLS with the
//! peer's SNI and CA), kept idle for the next request to the same peer.
//!
//! An idle connection is not watched (no task per connection): it is checked when it is taken
//! — closed by the vendor, sent bytes nobody asked for, or idle longer than [`IDLE`], it is
//! dropped and the next one (or a new connection) is used — and connections idle longer than
//! [`IDLE`] are closed whenever one is given back to the same peer. At most [`PER_PEER`] are
//! kept per peer. A vendor that closes a connection
//! while the request is on its way is met by `upstream::send`, which sends once more on a new
//! connection.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pingora::connectors::{ConnectorOptions, TransportConnector};
use pingora::protocols::Stream;
use pingora::upstreams::peer::{HttpPeer, Peer};
use tokio::io::AsyncReadExt;

/// How long an idle connection to a vendor is kept.
pub const IDLE: Duration = Duration::from_secs(90);
/// The most idle connections kept per peer; the oldest goes first.
const PER_PEER: usize = 256;

/// The vendors' connections.
pub struct Pool {
    connector: TransportConnector,
    idle: Mutex<HashMap<u64, Vec<Idle>>>,
}

struct Idle {
    stream: Stream,
    since: Instant,
}

impl Pool {
    pub fn new(options: ConnectorOptions) -> Pool {
        Pool {
            connector: TransportConnector::new(Some(options)),
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// The most recently used idle connection to `key` that is still open, if any.
    pub fn take(&self, key: u64) -> Option<Stream> {
        loop {
            let idle = {
                let mut pool = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                let list = pool.get_mut(&key)?;
                let idle = list.pop();
                if list.is_empty() {
                    pool.remove(&key);
                }
                idle?
            };
            if idle.since.elapsed() >= IDLE {
                // The rest of the list is older still.
                self.idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
                return None;
            }
            let mut stream = idle.stream;
            if still_open(&mut stream) {
                return Some(stream);
            }
        }
    }

    /// A new connection (the caller bounds its time).
    pub async fn connect(&self, peer: &HttpPeer) -> pingora::Result<Stream> {
        self.connector.new_stream(peer).await
    }

    /// Keeps a connection whose last answer was read to its end, for the next request.
    pub fn give_back(&self, key: u64, stream: Stream) {
        let mut pool = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = pool.entry(key).or_default();
        // The oldest come first: those idle too long are closed now.
        let expired = list
            .iter()
            .take_while(|i| i.since.elapsed() >= IDLE)
            .count();
        list.drain(..expired.max(list.len().saturating_sub(PER_PEER - 1)));
        list.push(Idle {
            stream,
            since: Instant::now(),
        });
    }
}

/// The key of a peer's connections (address, SNI, TLS settings: pingora's reuse hash).
pub fn key(peer: &HttpPeer) -> u64 {
    peer.reuse_hash()
}

/// Whether an idle connection can carry a request: nothing to read on it (the vendor neither
/// closed it nor sent anything unasked).
fn still_open(stream: &mut Stream) -> bool {
    let mut probe = [0u8; 1];
    let read = tokio::task::unconstrained(stream.read(&mut probe));
    super::now_or_never(read).is_none()
}
