//! Graceful stop. On SIGTERM pingora stops accepting, then sleeps its grace period while the
//! requests in flight run on, then stops its runtimes. The grace period is the drain's bound;
//! this watcher ends the drain early, once the process holds no socket of the API port (its
//! listener closed and every client connection finished), so a stop takes as long as the
//! longest request in flight rather than the whole bound.

use std::time::{Duration, Instant};

use pingora::server::{ExecutionPhase, Server};
use tokio::sync::broadcast::error::RecvError;

/// The drain's default bound, in seconds (`SWITCHYARD_DRAIN_SECONDS` overrides it).
pub const DEFAULT_SECONDS: u64 = 60;
/// After the drain, how long pingora waits for its runtimes to stop.
pub const RUNTIME_STOP_SECONDS: u64 = 5;
const POLL: Duration = Duration::from_millis(50);
/// Lets the usage log's writer thread take the last requests' lines before the exit.
const SETTLE: Duration = Duration::from_millis(200);

/// The drain's bound: `SWITCHYARD_DRAIN_SECONDS`, else [`DEFAULT_SECONDS`].
pub fn bound_seconds() -> u64 {
    let Ok(text) = std::env::var("SWITCHYARD_DRAIN_SECONDS") else {
        return DEFAULT_SECONDS;
    };
    text.trim().parse().unwrap_or_else(|_| {
        tracing::warn!(
            value = %text,
            "SWITCHYARD_DRAIN_SECONDS is not a whole number of seconds; using {DEFAULT_SECONDS}"
        );
        DEFAULT_SECONDS
    })
}

/// Starts the watcher thread: when the grace period begins, it waits until the process
/// holds no socket on `api_port`, runs `before_exit`, and exits 0. Where that cannot be
/// told (no `/proc`), the grace period runs its full length.
pub fn watch(server: &Server, api_port: u16, before_exit: impl FnOnce() + Send + 'static) {
    let mut phases = server.watch_execution_phase();
    let spawned = std::thread::Builder::new()
        .name("switchyard-drain".into())
        .spawn(move || {
            loop {
                match phases.blocking_recv() {
                    Ok(ExecutionPhase::ShutdownGracePeriod) => break,
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                }
            }
            let started = Instant::now();
            loop {
                match sockets_on_port(api_port) {
                    Some(0) => break,
                    Some(_) => std::thread::sleep(POLL),
                    None => return,
                }
            }
            let drained_ms = started.elapsed().as_millis() as u64;
            std::thread::sleep(SETTLE);
            before_exit();
            tracing::info!(drained_ms, "drained: no connection left; exiting");
            std::process::exit(0);
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the drain watcher ({e}); a stop waits the whole grace period");
    }
}

/// How many sockets of this process have `port` as their local TCP port (the listener and
/// accepted connections), from `/proc/self/fd` and `/proc/self/net/tcp{,6}`. `None` where
/// `/proc` cannot tell.
fn sockets_on_port(port: u16) -> Option<usize> {
    let mut inodes = std::collections::HashSet::new();
    for entry in std::fs::read_dir("/proc/self/fd").ok()? {
        let Ok(link) = std::fs::read_link(entry.ok()?.path()) else {
            continue; // closed since the listing
        };
        let inode = link
            .to_str()
            .and_then(|l| l.strip_prefix("socket:["))
            .and_then(|l| l.strip_suffix(']'))
            .and_then(|l| l.parse::<u64>().ok());
        inodes.extend(inode);
    }
    let mut tables = 0;
    let mut count = 0;
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        tables += 1;
        // "sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …"
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(inode)) = (fields.get(1), fields.get(9)) else {
                continue;
            };
            let local_port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            let ours = inode.parse::<u64>().is_ok_and(|i| inodes.contains(&i));
            if local_port == Some(port) && ours {
                count += 1;
            }
        }
    }
    (tables > 0).then_some(count)
}
