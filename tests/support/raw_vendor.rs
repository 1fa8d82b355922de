//! Raw-socket vendors: a vendor that writes its answers byte by byte as a test scripts them
//! (`tests/upstream_wire.rs`, `tests/upstream_pool.rs`) reads each request with
//! [`read_request`].

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Reads one request (a head and its `Content-Length` body) as text; `None` at the
/// connection's end.
pub async fn read_request(sock: &mut TcpStream) -> Option<String> {
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
