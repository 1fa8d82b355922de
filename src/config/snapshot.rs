//! The running configuration: one immutable [`Config`] behind an `ArcSwap`.
//!
//! A request takes the snapshot once (`load_full`) into its context and keeps it to the end,
//! so a reload never changes a request half-way; the swap itself is a single atomic store.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::Config;

/// The current config, shared by the proxy, the admin listener and the reloader.
#[derive(Debug)]
pub struct Snapshot {
    config: ArcSwap<Config>,
    /// Unix time (seconds) of the last config that was taken.
    loaded_at: AtomicU64,
}

impl Snapshot {
    pub fn new(config: Config) -> Arc<Snapshot> {
        Arc::new(Snapshot {
            config: ArcSwap::from_pointee(config),
            loaded_at: AtomicU64::new(unix_now()),
        })
    }

    /// The config a request keeps from its start to its end.
    pub fn load(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Replaces the running config; requests in flight keep the one they took. Returns the
    /// stored config, for the reload listeners.
    pub fn store(&self, config: Config) -> Arc<Config> {
        let config = Arc::new(config);
        self.config.store(Arc::clone(&config));
        self.loaded_at.store(unix_now(), Ordering::Relaxed);
        config
    }

    /// Unix time (seconds) of the start or of the last successful reload.
    pub fn loaded_at(&self) -> u64 {
        self.loaded_at.load(Ordering::Relaxed)
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
