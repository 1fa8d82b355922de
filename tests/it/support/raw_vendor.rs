//! Raw-socket vendors: a vendor that writes its answers byte by byte as a test scripts them
//! (`tests/it/upstream_wire.rs`, `tests/it/upstream_pool.rs`) reads each request with
//! [`read_request`].

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Reads one request (a head and its `Content-Length` body) as text; `None` at the
/// connection's end.
pub async fn read_request<S: tokio::io::AsyncRead + Unpin>(sock: &mut S) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Some(String::from_utf8_lossy(&buf).to_string());
            }
        }
    }
}

/// A vendor on a loopback port that hands each accepted connection, with its number (from
/// 0), to `handler`; the base URL (`http://addr/v1`) and the count of connections.
pub async fn serve<F, Fut>(handler: F) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>)
where
    F: Fn(TcpStream, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(handler(sock, n));
        }
    });
    (format!("http://{addr}/v1"), count)
}

/// Writes `bytes` one at a time with `pause` after each; false when the connection failed.
pub async fn write_slowly(sock: &mut TcpStream, bytes: &[u8], pause: std::time::Duration) -> bool {
    use tokio::io::AsyncWriteExt;
    for b in bytes {
        if sock.write_all(std::slice::from_ref(b)).await.is_err() {
            return false;
        }
        sock.flush().await.ok();
        tokio::time::sleep(pause).await;
    }
    true
}
