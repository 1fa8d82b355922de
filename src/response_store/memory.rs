//! The `memory` backend of the response store: one process, bounded in bytes and in
//! entries, each entry living `[state] responses_ttl_s`. When a new response does not fit,
//! the oldest ones are evicted first (insertion order, which with one TTL for all is also
//! expiry order); expired ones are dropped as they are met.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;

use crate::config::StoredResponses;

/// Why an entry left the store before its time: the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    Bytes,
    Entries,
}

impl Eviction {
    pub fn label(self) -> &'static str {
        match self {
            Eviction::Bytes => "max_bytes",
            Eviction::Entries => "max_entries",
        }
    }
}

/// One response larger than the whole store.
#[derive(Debug, PartialEq, Eq)]
pub struct TooLarge {
    pub bytes: usize,
    pub max_bytes: usize,
}

#[derive(Default)]
pub struct Memory {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Keys in insertion order, with the sequence number of the entry they were for (a key
    /// deleted and stored again is a new entry).
    order: VecDeque<(String, u64)>,
    bytes: usize,
    next_seq: u64,
}

struct Entry {
    body: Bytes,
    expires: Instant,
    seq: u64,
}

impl Memory {
    /// Keeps `body` under `key`; returns the evictions it caused.
    pub fn save(
        &self,
        key: String,
        body: Bytes,
        limits: &StoredResponses,
        now: Instant,
    ) -> Result<Vec<Eviction>, TooLarge> {
        if body.len() > limits.max_bytes {
            return Err(TooLarge {
                bytes: body.len(),
                max_bytes: limits.max_bytes,
            });
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.remove(&key);
        inner.drop_expired(now);
        let mut evicted = Vec::new();
        loop {
            let why = if inner.bytes + body.len() > limits.max_bytes {
                Eviction::Bytes
            } else if inner.entries.len() >= limits.max_entries {
                Eviction::Entries
            } else {
                break;
            };
            if !inner.pop_oldest() {
                break;
            }
            evicted.push(why);
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.bytes += body.len();
        inner.order.push_back((key.clone(), seq));
        inner.entries.insert(
            key,
            Entry {
                body,
                expires: now + limits.ttl,
                seq,
            },
        );
        Ok(evicted)
    }

    pub fn load(&self, key: &str, now: Instant) -> Option<Bytes> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match inner.entries.get(key) {
            Some(e) if e.expires > now => Some(e.body.clone()),
            Some(_) => {
                inner.remove(key);
                None
            }
            None => None,
        }
    }

    /// Whether a live entry was deleted.
    pub fn delete(&self, key: &str, now: Instant) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let live = inner.entries.get(key).is_some_and(|e| e.expires > now);
        inner.remove(key);
        live
    }
}

impl Inner {
    fn remove(&mut self, key: &str) {
        if let Some(e) = self.entries.remove(key) {
            self.bytes -= e.body.len();
        }
    }

    /// Drops the oldest entry; `false` when there is none.
    fn pop_oldest(&mut self) -> bool {
        while let Some((key, seq)) = self.order.pop_front() {
            if self.entries.get(&key).is_some_and(|e| e.seq == seq) {
                self.remove(&key);
                return true;
            }
        }
        false
    }

    /// Drops the expired entries at the front of the order (and stale order slots).
    fn drop_expired(&mut self, now: Instant) {
        while let Some((key, seq)) = self.order.front() {
            match self.entries.get(key) {
                Some(e) if e.seq == *seq && e.expires > now => return,
                Some(e) if e.seq == *seq => {
                    let key = key.clone();
                    self.remove(&key);
                }
                _ => {}
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(max_bytes: usize, max_entries: usize, ttl_s: u64) -> StoredResponses {
        StoredResponses {
            ttl: Duration::from_secs(ttl_s),
            max_bytes,
            max_entries,
        }
    }

    #[test]
    fn bounded_by_bytes_then_entries_oldest_first() {
        let m = Memory::default();
        let now = Instant::now();
        let l = limits(10, 3, 60);
        let b = |n: usize| Bytes::from(vec![b'x'; n]);
        assert_eq!(m.save("a".into(), b(4), &l, now), Ok(vec![]));
        assert_eq!(m.save("b".into(), b(4), &l, now), Ok(vec![]));
        assert_eq!(m.save("c".into(), b(4), &l, now), Ok(vec![Eviction::Bytes]));
        assert!(m.load("a", now).is_none());
        assert!(m.load("b", now).is_some() && m.load("c", now).is_some());
        assert_eq!(m.save("d".into(), b(1), &l, now), Ok(vec![]));
        assert_eq!(
            m.save("e".into(), b(1), &l, now),
            Ok(vec![Eviction::Entries])
        );
        assert!(m.load("b", now).is_none());
        assert_eq!(
            m.save("big".into(), b(11), &l, now),
            Err(TooLarge {
                bytes: 11,
                max_bytes: 10
            })
        );
        assert!(m.delete("c", now));
        assert!(!m.delete("c", now));
        assert!(m.load("c", now).is_none());
    }

    #[test]
    fn expired_entries_are_gone_and_free_their_room() {
        let m = Memory::default();
        let now = Instant::now();
        let l = limits(10, 10, 1);
        m.save("a".into(), Bytes::from_static(b"12345678"), &l, now)
            .unwrap();
        let later = now + Duration::from_secs(2);
        assert!(m.load("a", later).is_none());
        // Room came back without an eviction.
        assert_eq!(
            m.save("b".into(), Bytes::from_static(b"12345678"), &l, later),
            Ok(vec![])
        );
        assert!(!m.delete("a", later));
    }
}
