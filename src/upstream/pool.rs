//! Connections to the vendors: made by pingora's transport connector (TCP, TLS with the
//! peer's SNI and CA), kept idle for the next request to the same peer.
//!
//! An idle connection is not watched (no task per connection): it is checked when it is taken
//! — closed by the vendor, sent bytes nobody asked for, or idle longer than [`IDLE`], it is
//! dropped and the next one (or a new connection) is used — and connections idle longer than
//! [`IDLE`] are closed when one is given back to their peer, and every [`SWEEP`] for all peers
//! (those of a peer no longer asked too). At most [`PER_PEER`] are kept per peer. A vendor that closes a connection
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

/// How often every peer's idle connections are looked over (on a give-back), so that those of
/// a peer no longer asked (a changed address or config) are closed too.
const SWEEP: Duration = Duration::from_secs(10);

/// The vendors' connections.
pub struct Pool {
    connector: TransportConnector,
    idle: Mutex<Idles>,
}

/// Idle connections by peer key, oldest first, and when all were last looked over.
struct Idles {
    by_peer: HashMap<u64, Vec<Idle>>,
    swept: Instant,
}

struct Idle {
    stream: Stream,
    since: Instant,
}

impl Pool {
    pub fn new(options: ConnectorOptions) -> Pool {
        Pool {
            connector: TransportConnector::new(Some(options)),
            idle: Mutex::new(Idles {
                by_peer: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }

    /// The most recently used idle connection to `key` that is still open, if any.
    pub fn take(&self, key: u64) -> Option<Stream> {
        loop {
            let idle = {
                let mut idles = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                let list = idles.by_peer.get_mut(&key)?;
                let idle = list.pop();
                if list.is_empty() || idle.as_ref().is_some_and(|i| i.since.elapsed() >= IDLE) {
                    // Idle too long: so are the older ones.
                    idles.by_peer.remove(&key);
                }
                idle?
            };
            if idle.since.elapsed() >= IDLE {
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
        let mut idles = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idles.swept.elapsed() >= SWEEP {
            idles.swept = Instant::now();
            idles.by_peer.retain(|_, list| {
                close_expired(list, 0);
                !list.is_empty()
            });
        }
        let list = idles.by_peer.entry(key).or_default();
        close_expired(list, list.len().saturating_sub(PER_PEER - 1));
        list.push(Idle {
            stream,
            since: Instant::now(),
        });
    }
}

/// Closes the connections of `list` idle longer than [`IDLE`] (the oldest come first), and
/// at least its `at_least` oldest.
fn close_expired(list: &mut Vec<Idle>, at_least: usize) {
    let expired = list
        .iter()
        .take_while(|i| i.since.elapsed() >= IDLE)
        .count();
    list.drain(..expired.max(at_least));
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

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::protocols::l4::stream::Stream as L4Stream;
    use tokio::net::{TcpListener, TcpStream};

    /// A connected pair: the gateway's side as a pingora stream, and the vendor's side.
    async fn pair() -> (Stream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap());
        let (ours, theirs) = tokio::join!(ours, listener.accept());
        (Box::new(L4Stream::from(ours.unwrap())), theirs.unwrap().0)
    }

    fn pool() -> Pool {
        Pool::new(ConnectorOptions::new(1))
    }

    #[tokio::test]
    async fn a_connection_given_back_is_taken_again_by_its_peer_only() {
        let pool = pool();
        let (ours, _theirs) = pair().await;
        pool.give_back(1, ours);
        assert!(pool.take(2).is_none());
        assert!(pool.take(1).is_some());
        assert!(pool.take(1).is_none(), "each connection is handed out once");
    }

    #[tokio::test]
    async fn a_connection_the_vendor_closed_or_wrote_on_is_not_handed_out() {
        let pool = pool();
        let (closed, theirs) = pair().await;
        let (chatty, mut theirs_chatty) = pair().await;
        pool.give_back(1, closed);
        pool.give_back(1, chatty);
        drop(theirs);
        tokio::io::AsyncWriteExt::write_all(&mut theirs_chatty, b"HTTP/1.1 200 OK\r\n")
            .await
            .unwrap();
        // Let the reactor see the close and the bytes.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.take(1).is_none());
    }

    #[tokio::test]
    async fn connections_idle_too_long_or_over_the_cap_are_closed_oldest_first() {
        let mut list = Vec::new();
        let old = Instant::now()
            .checked_sub(IDLE + Duration::from_secs(1))
            .unwrap();
        for since in [old, old, Instant::now(), Instant::now()] {
            list.push(Idle {
                stream: pair().await.0,
                since,
            });
        }
        close_expired(&mut list, 0);
        assert_eq!(list.len(), 2, "the two idle too long");
        close_expired(&mut list, 1);
        assert_eq!(list.len(), 1, "the oldest one over the cap");
    }
}
