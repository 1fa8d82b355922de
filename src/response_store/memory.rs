//! The `memory` backend of the response store: one process, bounded in bytes (all teams, and
//! per team) and in entries, each entry living `[state] responses_ttl_s`. When a new response
//! does not fit, the team's oldest ones are evicted first for the team's bound, then the
//! oldest of all for the store's (insertion order, which with one TTL for all is also expiry
//! order); expired ones are dropped as they are met. Vendor state (`super::vendor_state`)
//! lives a shorter TTL beside the responses: an expired entry behind a live older one stays
//! counted until it is read, evicted or reached, so the bounds hold whatever the TTLs.
//!
//! What is counted is what is held ([`held_bytes`]): the body (kept at its exact length), the
//! key twice (the map's and the eviction queue's), the team's name, and a fixed estimate of
//! each entry's bookkeeping ([`ENTRY_OVERHEAD`]). A deleted or expired entry leaves the
//! eviction queues at once (they are ordered maps keyed by a sequence number, not queues with
//! stale slots), so the store never holds more than its bounds, whatever the mix of saves,
//! reads and deletes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;

use crate::config::StoredResponses;

/// Why an entry left the store before its time: the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// For the store's bound in bytes (`responses_max_bytes`).
    Bytes,
    /// For its team's bound in bytes (`responses_team_max_bytes`).
    TeamBytes,
    /// For the memory store's bound in entries (`responses_max_entries`).
    Entries,
}

impl Eviction {
    pub const ALL: [Eviction; 3] = [Eviction::Bytes, Eviction::TeamBytes, Eviction::Entries];

    pub fn label(self) -> &'static str {
        match self {
            Eviction::Bytes => "max_bytes",
            Eviction::TeamBytes => "team_max_bytes",
            Eviction::Entries => "max_entries",
        }
    }
}

/// One response larger than its team's whole bound.
#[derive(Debug, PartialEq, Eq)]
pub struct TooLarge {
    pub bytes: usize,
    pub max_bytes: usize,
}

/// The bookkeeping of one entry beyond its body, key and team name: the map slot (key and
/// `Entry`), the queue slot (a sequence number and the key's `String`), the team's queue slot,
/// and the maps' own slack (an estimate: B-tree nodes and hash-table control bytes).
pub const ENTRY_OVERHEAD: usize = std::mem::size_of::<(String, Entry)>()
    + std::mem::size_of::<(u64, String)>()
    + std::mem::size_of::<u64>()
    + 64;

/// The bytes an entry holds: its body, its key twice, its team's name and
/// [`ENTRY_OVERHEAD`].
pub fn held_bytes(key: &str, team: &str, body: &Bytes) -> usize {
    body.len() + 2 * key.len() + team.len() + ENTRY_OVERHEAD
}

#[derive(Default)]
pub struct Memory {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Live entries' keys by sequence number: the oldest first.
    order: BTreeMap<u64, String>,
    teams: HashMap<String, TeamUse>,
    /// The bytes held, all entries ([`held_bytes`]).
    bytes: usize,
    next_seq: u64,
}

/// One team's share: the bytes its entries hold and their sequence numbers, oldest first.
#[derive(Default)]
struct TeamUse {
    bytes: usize,
    order: BTreeSet<u64>,
}

pub struct Entry {
    body: Bytes,
    expires: Instant,
    seq: u64,
    team: String,
    held: usize,
}

/// What the store holds now: for the gauges and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub entries: usize,
    pub bytes: usize,
    /// Slots in the eviction queue: always `entries`.
    pub queued: usize,
}

impl Memory {
    /// Keeps `body` under `key` for `team`; returns the evictions it caused.
    pub fn save(
        &self,
        team: &str,
        key: String,
        body: Bytes,
        limits: &StoredResponses,
        now: Instant,
    ) -> Result<Vec<Eviction>, TooLarge> {
        let held = held_bytes(&key, team, &body);
        let max_bytes = limits.team_max_bytes.min(limits.max_bytes);
        if held > max_bytes {
            return Err(TooLarge {
                bytes: held,
                max_bytes,
            });
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.remove(&key);
        inner.drop_expired(now);
        let mut evicted = Vec::new();
        while inner.team_bytes(team) + held > limits.team_max_bytes {
            if !inner.pop_oldest_of(team) {
                break;
            }
            evicted.push(Eviction::TeamBytes);
        }
        loop {
            let why = if inner.bytes + held > limits.max_bytes {
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
        inner.insert(team, key, body, held, now + limits.ttl);
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

    /// What the store holds now.
    pub fn usage(&self) -> Usage {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Usage {
            entries: inner.entries.len(),
            bytes: inner.bytes,
            queued: inner.order.len(),
        }
    }
}

impl Inner {
    fn insert(&mut self, team: &str, key: String, body: Bytes, held: usize, expires: Instant) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += held;
        let share = self.teams.entry(team.to_string()).or_default();
        share.bytes += held;
        share.order.insert(seq);
        self.order.insert(seq, key.clone());
        self.entries.insert(
            key,
            Entry {
                body,
                expires,
                seq,
                team: team.to_string(),
                held,
            },
        );
    }

    /// Removes `key`'s entry, from the map and from both queues.
    fn remove(&mut self, key: &str) {
        let Some(e) = self.entries.remove(key) else {
            return;
        };
        self.bytes -= e.held;
        self.order.remove(&e.seq);
        if let Some(share) = self.teams.get_mut(&e.team) {
            share.bytes -= e.held;
            share.order.remove(&e.seq);
            if share.order.is_empty() {
                self.teams.remove(&e.team);
            }
        }
    }

    fn team_bytes(&self, team: &str) -> usize {
        self.teams.get(team).map_or(0, |t| t.bytes)
    }

    /// Drops the oldest entry; `false` when there is none.
    fn pop_oldest(&mut self) -> bool {
        let Some(key) = self.order.first_key_value().map(|(_, k)| k.clone()) else {
            return false;
        };
        self.remove(&key);
        true
    }

    /// Drops `team`'s oldest entry; `false` when it has none.
    fn pop_oldest_of(&mut self, team: &str) -> bool {
        let seq = self.teams.get(team).and_then(|t| t.order.first().copied());
        let Some(key) = seq.and_then(|s| self.order.get(&s).cloned()) else {
            return false;
        };
        self.remove(&key);
        true
    }

    /// Drops the expired entries at the front of the order.
    fn drop_expired(&mut self, now: Instant) {
        while let Some((_, key)) = self.order.first_key_value() {
            if self.entries.get(key).is_some_and(|e| e.expires > now) {
                return;
            }
            let key = key.clone();
            self.remove(&key);
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
            team_max_bytes: max_bytes,
            max_entries,
            vendor_state_ttl: Duration::from_secs(ttl_s),
        }
    }

    /// A body that, under a one-letter key of team `t`, holds `n` bytes of room beyond the
    /// fixed overhead.
    fn b(n: usize) -> Bytes {
        Bytes::from(vec![b'x'; n])
    }

    /// The room an entry of `n` body bytes takes (one-letter key, team `t`).
    fn room(n: usize) -> usize {
        held_bytes("a", "t", &b(n))
    }

    #[test]
    fn bounded_by_bytes_then_entries_oldest_first() {
        let m = Memory::default();
        let now = Instant::now();
        let l = limits(room(4) * 2 + 1, 3, 60);
        assert_eq!(m.save("t", "a".into(), b(4), &l, now), Ok(vec![]));
        assert_eq!(m.save("t", "b".into(), b(4), &l, now), Ok(vec![]));
        assert_eq!(
            m.save("t", "c".into(), b(4), &l, now),
            Ok(vec![Eviction::TeamBytes])
        );
        assert!(m.load("a", now).is_none());
        assert!(m.load("b", now).is_some() && m.load("c", now).is_some());
        let l = limits(room(4) * 4, 3, 60);
        assert_eq!(m.save("u", "d".into(), b(1), &l, now), Ok(vec![]));
        assert_eq!(
            m.save("u", "e".into(), b(1), &l, now),
            Ok(vec![Eviction::Entries])
        );
        assert!(m.load("b", now).is_none());
        let big = room(4) * 4 + 1 - room(0);
        assert_eq!(
            m.save("t", "f".into(), b(big), &l, now),
            Err(TooLarge {
                bytes: room(4) * 4 + 1,
                max_bytes: room(4) * 4
            })
        );
        assert!(m.delete("c", now));
        assert!(!m.delete("c", now));
        assert!(m.load("c", now).is_none());
    }

    #[test]
    fn a_teams_bound_evicts_its_own_oldest_only() {
        let m = Memory::default();
        let now = Instant::now();
        let mut l = limits(room(10) * 10, 100, 60);
        l.team_max_bytes = held_bytes("t1", "t", &b(10)) * 2;
        m.save("t", "t1".into(), b(10), &l, now).unwrap();
        m.save("u", "u1".into(), b(10), &l, now).unwrap();
        m.save("t", "t2".into(), b(10), &l, now).unwrap();
        assert_eq!(
            m.save("t", "t3".into(), b(10), &l, now),
            Ok(vec![Eviction::TeamBytes])
        );
        assert!(m.load("t1", now).is_none());
        for key in ["u1", "t2", "t3"] {
            assert!(m.load(key, now).is_some(), "{key}");
        }
    }

    #[test]
    fn expired_entries_are_gone_and_free_their_room() {
        let m = Memory::default();
        let now = Instant::now();
        let l = limits(room(8) + 1, 10, 1);
        m.save("t", "a".into(), b(8), &l, now).unwrap();
        let later = now + Duration::from_secs(2);
        assert!(m.load("a", later).is_none());
        // Room came back without an eviction.
        assert_eq!(m.save("t", "b".into(), b(8), &l, later), Ok(vec![]));
        assert!(!m.delete("a", later));
    }

    /// #27: a million deletes kept 115 MB, each leaving its slot in the eviction queue. Now a
    /// deleted or expired entry leaves every queue at once: counted, not measured by RSS.
    #[test]
    fn deletes_and_expiry_free_their_queue_slots() {
        let m = Memory::default();
        let now = Instant::now();
        let l = limits(1 << 30, 1 << 20, 60);
        for i in 0..10_000 {
            let key = format!("k{i}");
            m.save("t", key.clone(), b(16), &l, now).unwrap();
            assert!(m.delete(&key, now));
        }
        assert_eq!(
            m.usage(),
            Usage {
                entries: 0,
                bytes: 0,
                queued: 0
            }
        );
        // Re-saving one key many times holds one slot.
        for _ in 0..1000 {
            m.save("t", "same".into(), b(16), &l, now).unwrap();
        }
        assert_eq!(m.usage().queued, 1);
        // Expired entries, read or met by a later save, leave too.
        let short = limits(1 << 30, 1 << 20, 1);
        for i in 0..100 {
            m.save("t", format!("e{i}"), b(16), &short, now).unwrap();
        }
        let later = now + Duration::from_secs(120);
        assert!(m.load("e0", later).is_none());
        m.save("t", "fresh".into(), b(16), &l, later).unwrap();
        let u = m.usage();
        assert_eq!((u.entries, u.queued), (1, 1), "{u:?}");
        assert_eq!(u.bytes, held_bytes("fresh", "t", &b(16)));
    }

    #[test]
    fn what_is_counted_is_what_is_held() {
        let body = Bytes::from(vec![b'x'; 1000]);
        let held = held_bytes("switchyard:resp:t:resp_sy0", "t", &body);
        assert_eq!(
            held,
            1000 + 2 * "switchyard:resp:t:resp_sy0".len() + 1 + ENTRY_OVERHEAD
        );
    }
}
