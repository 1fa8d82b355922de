//! Listener addresses with port 0, and the report of the addresses bound.
//!
//! pingora binds its listeners itself, from an address string, once the server runs. A
//! listener configured on port 0 is therefore reserved first: a socket with `SO_REUSEPORT` is
//! bound on `ip:0` (bound, not listening, so it takes no connection), its port is read, and
//! pingora is given `ip:port` with `SO_REUSEPORT` set too. The reserving socket is dropped once
//! pingora's listener is up. No other program can take the port in between.
//!
//! [`announce`] then reports the addresses: a line on stderr and, with `serve --ready-file
//! PATH`, a JSON file `{"listen":"127.0.0.1:41234","admin":"127.0.0.1:41235"}` written
//! atomically (a temp file renamed over `PATH`) once every listener accepts connections.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use pingora::listeners::TcpSocketOptions;
use tokio::net::TcpSocket;

const POLL: Duration = Duration::from_millis(10);
/// How long [`announce`] waits for pingora's listeners before it gives up (and reports nothing).
const BIND_TIMEOUT: Duration = Duration::from_secs(30);

/// One listener's address as pingora is to bind it.
#[derive(Debug)]
pub struct Reserved {
    /// `ip:port`: the configured address, or with port 0 the port reserved for it.
    pub addr: String,
    /// The reserving socket, held until pingora listens (None: the port was not 0).
    held: Option<TcpSocket>,
}

impl Reserved {
    /// pingora's socket options for this listener: `SO_REUSEPORT` when the port was reserved
    /// (the reserving socket still holds it), none otherwise.
    pub fn socket_options(&self) -> Option<TcpSocketOptions> {
        self.held.as_ref().map(|_| {
            let mut options = TcpSocketOptions::default();
            options.so_reuseport = Some(true);
            options
        })
    }
}

/// Reserves a port for `configured` when its port is 0; returns it unchanged otherwise (or
/// when it is not an `ip:port`: pingora reports that address itself).
///
/// Errors: the socket cannot be made or bound (e.g. the address is not local).
pub fn reserve(configured: &str) -> io::Result<Reserved> {
    let Ok(addr) = configured.parse::<SocketAddr>() else {
        return Ok(unchanged(configured));
    };
    if addr.port() != 0 {
        return Ok(unchanged(configured));
    }
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    Ok(Reserved {
        addr: socket.local_addr()?.to_string(),
        held: Some(socket),
    })
}

fn unchanged(configured: &str) -> Reserved {
    Reserved {
        addr: configured.to_string(),
        held: None,
    }
}

/// Starts a thread that waits until the API and admin listeners accept connections, drops the
/// reserving sockets, logs `listening listen=… admin=…` on stderr, and writes `ready_file`
/// when given. Returns at once; the thread ends after the report (or after 30 s without it).
pub fn announce(api: Reserved, admin: Reserved, ready_file: Option<PathBuf>) {
    let spawned = std::thread::Builder::new()
        .name("switchyard-bound".into())
        .spawn(move || {
            let deadline = Instant::now() + BIND_TIMEOUT;
            while !(listening(&api.addr) && listening(&admin.addr)) {
                if Instant::now() > deadline {
                    tracing::error!(
                        listen = %api.addr,
                        admin = %admin.addr,
                        "the listeners are not up after {} s; no ready file",
                        BIND_TIMEOUT.as_secs()
                    );
                    return;
                }
                std::thread::sleep(POLL);
            }
            drop((api.held, admin.held));
            tracing::info!(listen = %api.addr, admin = %admin.addr, "listening");
            if let Some(path) = ready_file {
                if let Err(e) = write_ready_file(&path, &api.addr, &admin.addr) {
                    tracing::error!("cannot write the ready file {}: {e}", path.display());
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the listener report ({e}); no ready file");
    }
}

/// Writes `{"listen":…,"admin":…}` to a sibling temp file and renames it over `path`, so a
/// reader sees either no file or the whole of it.
fn write_ready_file(path: &std::path::Path, listen: &str, admin: &str) -> io::Result<()> {
    let text = serde_json::json!({ "listen": listen, "admin": admin }).to_string();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text + "\n")?;
    std::fs::rename(&tmp, path)
}

/// Whether a socket listens on `addr`'s port (the port is this process's: reserved, or pingora
/// could not have bound it): a `LISTEN` (`0A`) row of
/// `/proc/self/net/tcp{,6}`. Where `/proc` cannot tell, whether a TCP connect succeeds.
fn listening(addr: &str) -> bool {
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        return true; // not an ip:port; pingora has reported it (or failed) by itself
    };
    match listening_in_proc(addr.port()) {
        Some(up) => up,
        None => {
            let probe = crate::server::admin::probe_address(&addr.to_string()).unwrap_or(addr);
            std::net::TcpStream::connect_timeout(&probe, Duration::from_millis(200)).is_ok()
        }
    }
}

fn listening_in_proc(port: u16) -> Option<bool> {
    let mut tables = 0;
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        tables += 1;
        // "sl local_address rem_address st …"
        let found = text.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields
                .get(1)
                .and_then(|l| l.rsplit_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            local_port == Some(port) && fields.get(3) == Some(&"0A")
        });
        if found {
            return Some(true);
        }
    }
    (tables > 0).then_some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_is_reserved_and_other_ports_are_kept() {
        let kept = reserve("127.0.0.1:8080").unwrap();
        assert_eq!(kept.addr, "127.0.0.1:8080");
        assert!(kept.socket_options().is_none());

        let reserved = reserve("127.0.0.1:0").unwrap();
        let addr: SocketAddr = reserved.addr.parse().unwrap();
        assert_ne!(addr.port(), 0);
        assert_eq!(reserved.socket_options().unwrap().so_reuseport, Some(true));
        // Bound, not listening: it takes no connection and is not reported as up.
        assert!(!listening(&reserved.addr));
        // Another SO_REUSEPORT socket (pingora's) can listen on the reserved port.
        let other = TcpSocket::new_v4().unwrap();
        other.set_reuseport(true).unwrap();
        other.bind(addr).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let _listener = rt.block_on(async { other.listen(8) }).unwrap();
        assert!(listening(&reserved.addr));
    }

    #[test]
    fn the_ready_file_is_the_two_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready.json");
        write_ready_file(&path, "127.0.0.1:1", "127.0.0.1:2").unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"listen": "127.0.0.1:1", "admin": "127.0.0.1:2"})
        );
    }
}
