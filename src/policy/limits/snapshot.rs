//! The memory backend's budgets on disk: `state.dir/budgets.json`, so that a restart keeps
//! what each key and team spent today and this month.
//!
//! Written every [`INTERVAL`] when something changed, and by [`super::Limiter::flush`] (call it
//! at shutdown); the write is atomic (a temporary file, `fsync`, `rename`, `fsync` of the
//! directory), so a crash leaves the previous snapshot or the new one, never half of one. A
//! crash loses at most the spending of the last [`INTERVAL`]. Only what was *spent* is saved:
//! the reservations of requests in flight die with the process.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::budget::Budget;
use super::memory::Restored;
use super::Scope;

/// How often the budgets are written (when they changed): the most a crash can lose.
pub const INTERVAL: Duration = Duration::from_secs(2);
/// The file under `state.dir`.
pub const FILE_NAME: &str = "budgets.json";

/// The file's format.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct Snapshot {
    version: u32,
    keys: BTreeMap<String, Saved>,
    teams: BTreeMap<String, Saved>,
    /// End users of teams with per-user budgets, by `memory::user_id` (`team:user`, each
    /// escaped). Absent from files written before per-user budgets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    users: BTreeMap<String, Saved>,
}

/// One key's or team's spending: the day and month it is for, and what was spent in each.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
struct Saved {
    day: u32,
    tokens: u64,
    month: u32,
    usd_nanos: u64,
}

/// The budgets file of one directory, and the bytes last written to it (so that an idle
/// gateway does not rewrite the same file every interval).
pub(crate) struct Store {
    path: PathBuf,
    last: Mutex<Vec<u8>>,
}

impl Store {
    /// Creates `dir` if needed.
    pub(crate) fn open(dir: &Path) -> io::Result<Store> {
        fs::create_dir_all(dir)?;
        Ok(Store {
            path: dir.join(FILE_NAME),
            last: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The budgets saved last time; none if there is no file. A file that cannot be read as a
    /// snapshot is moved aside (`budgets.json.corrupt`) with an error in the log, and the
    /// gateway starts with empty budgets rather than not at all.
    pub(crate) fn load(&self) -> io::Result<Restored> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Restored::new()),
            Err(e) => return Err(e),
        };
        match serde_json::from_slice::<Snapshot>(&bytes) {
            Ok(s) => {
                *self.last.lock().unwrap_or_else(|p| p.into_inner()) = bytes;
                Ok(restored(s))
            }
            Err(e) => {
                let aside = self.path.with_extension("json.corrupt");
                tracing::error!(
                    file = %self.path.display(),
                    moved_to = %aside.display(),
                    error = %e,
                    "the budgets snapshot is unreadable; starting with empty budgets"
                );
                fs::rename(&self.path, &aside)?;
                Ok(Restored::new())
            }
        }
    }

    /// Writes `budgets` if they differ from what was written last.
    pub(crate) fn save(&self, budgets: Vec<(Scope, String, Budget, Budget)>) -> io::Result<()> {
        let bytes = encode(budgets)?;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if *last == bytes {
            return Ok(());
        }
        write_atomic(&self.path, &bytes)?;
        *last = bytes;
        Ok(())
    }
}

fn encode(budgets: Vec<(Scope, String, Budget, Budget)>) -> io::Result<Vec<u8>> {
    let mut snapshot = Snapshot {
        version: 1,
        ..Snapshot::default()
    };
    for (scope, name, day, month) in budgets {
        let saved = Saved {
            day: day.period,
            tokens: day.spent,
            month: month.period,
            usd_nanos: month.spent,
        };
        match scope {
            Scope::Key => snapshot.keys.insert(name, saved),
            Scope::Team => snapshot.teams.insert(name, saved),
            Scope::User => snapshot.users.insert(name, saved),
        };
    }
    serde_json::to_vec_pretty(&snapshot).map_err(io::Error::other)
}

fn restored(snapshot: Snapshot) -> Restored {
    let budgets = |s: Saved| {
        let day = Budget {
            period: s.day,
            spent: s.tokens,
            reserved: 0,
        };
        let month = Budget {
            period: s.month,
            spent: s.usd_nanos,
            reserved: 0,
        };
        (day, month)
    };
    let keys = snapshot
        .keys
        .into_iter()
        .map(|(name, s)| ((Scope::Key, name), budgets(s)));
    let teams = snapshot
        .teams
        .into_iter()
        .map(|(name, s)| ((Scope::Team, name), budgets(s)));
    let users = snapshot
        .users
        .into_iter()
        .map(|(name, s)| ((Scope::User, name), budgets(s)));
    keys.chain(teams).chain(users).collect()
}

/// Replaces `path` with `bytes` so that a crash at any point leaves either the old file or the
/// new one: write a temporary file beside it, `fsync` it, rename it over, `fsync` the directory
/// (which makes the rename itself durable).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // Directories cannot be fsynced on every platform; the rename is done either way.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(period: u32, spent: u64, reserved: u64) -> Budget {
        Budget {
            period,
            spent,
            reserved,
        }
    }

    #[test]
    fn round_trip_keeps_what_was_spent_not_what_was_reserved() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("nested")).unwrap();
        assert!(
            store.load().unwrap().is_empty(),
            "no file: nothing restored"
        );
        store
            .save(vec![
                (
                    Scope::Key,
                    "alice".into(),
                    budget(20_000, 1234, 99),
                    budget(657, 5, 7),
                ),
                (
                    Scope::Team,
                    "search".into(),
                    budget(20_000, 77, 0),
                    budget(657, 0, 0),
                ),
            ])
            .unwrap();
        let again = Store::open(&dir.path().join("nested")).unwrap();
        let restored = again.load().unwrap();
        assert_eq!(
            restored[&(Scope::Key, "alice".to_string())],
            (budget(20_000, 1234, 0), budget(657, 5, 0))
        );
        assert_eq!(restored[&(Scope::Team, "search".to_string())].0.spent, 77);
        assert_eq!(restored.len(), 2);
    }

    #[test]
    fn the_write_is_atomic_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        fs::write(&path, b"old").unwrap();
        // A crash before the rename leaves the old file whole (simulated: a stale tmp file).
        fs::write(path.with_extension("json.tmp"), b"half").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"old");
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn an_unchanged_snapshot_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let budgets = || {
            vec![(
                Scope::Key,
                "k".to_string(),
                budget(1, 2, 0),
                budget(3, 4, 0),
            )]
        };
        store.save(budgets()).unwrap();
        fs::write(store.path(), b"tampered").unwrap();
        store.save(budgets()).unwrap();
        assert_eq!(
            fs::read(store.path()).unwrap(),
            b"tampered",
            "same bytes: no write"
        );
    }

    #[test]
    fn a_corrupt_snapshot_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        fs::write(store.path(), b"{not json").unwrap();
        assert!(store.load().unwrap().is_empty());
        assert!(dir.path().join("budgets.json.corrupt").exists());
    }
}
