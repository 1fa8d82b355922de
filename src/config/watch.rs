//! The file watcher behind hot reloads: a `notify` watch of a file's directory that signals
//! a change of the file (the config, a vendor key file, or a TLS certificate or key), with
//! the Kubernetes ConfigMap (or Secret) `..data` symlink swap and a symlinked file's target
//! both seen. Used by
//! [`crate::config::reload`] and `crate::server::tls::Rotation`; it knows neither.
//!
//! Why the directory is watched and not the file: a rename over the file, or a swap of the
//! `..data` symlink it points through, replaces the inode a file watch would be attached to.
//! The directory (non-recursive) sees every one of those as an event naming the file or
//! `..data`; events naming other files (logs written next to the config) are ignored.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Quiet period after the last file event before reloading: an in-place write, an editor's
/// save or a ConfigMap swap is a burst of events, and reading in the middle of one would see
/// a half-written file.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// Longest a continuous stream of events may postpone a reload.
pub const MAX_DELAY: Duration = Duration::from_secs(1);

/// The name Kubernetes swaps atomically in a ConfigMap volume
/// (`config.toml -> ..data/config.toml`, `..data -> ..2024_01_01_00_00_00.123`).
const K8S_DATA: &str = "..data";

/// The `notify` watch: the directories to watch and the file names that matter in them,
/// recomputed after each reload because a ConfigMap swap changes where the symlink leads.
/// The TLS certificate and key are watched the same way (`tls::Rotation`).
pub struct FileWatch {
    watcher: RecommendedWatcher,
    /// What the file is, for log lines ("config file", "TLS file").
    what: &'static str,
    dirs: Vec<PathBuf>,
    /// Read by the watcher's callback on notify's thread.
    names: Arc<ArcSwap<HashSet<OsString>>>,
}

impl FileWatch {
    /// Watches the file's directory (and its symlink target's, when elsewhere); logs and
    /// returns `None` when the platform refuses (SIGHUP still reloads).
    pub fn start(path: &Path, tx: mpsc::Sender<()>, what: &'static str) -> Option<FileWatch> {
        let (dirs, names) = targets(path);
        let names = Arc::new(ArcSwap::from_pointee(names));
        let seen = Arc::clone(&names);
        let handler = move |res: notify::Result<Event>| {
            let relevant = match res {
                Ok(event) => is_relevant(&event, &seen.load()),
                // An error may hide a change (e.g. a queue overflow): look at the file.
                Err(_) => true,
            };
            if relevant {
                // Full means a reload is already pending, which reads the newest bytes.
                let _ = tx.try_send(());
            }
        };
        let watcher = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(file = %path.display(), "cannot watch the {what} ({e}); reload with SIGHUP");
                return None;
            }
        };
        let mut watch = FileWatch {
            watcher,
            what,
            dirs: Vec::new(),
            names,
        };
        watch.set_dirs(dirs);
        Some(watch)
    }

    /// Re-reads where the path leads and adjusts the watched directories and names.
    pub fn refresh(&mut self, path: &Path) {
        let (dirs, names) = targets(path);
        self.names.store(Arc::new(names));
        if dirs != self.dirs {
            self.set_dirs(dirs);
        }
    }

    fn set_dirs(&mut self, dirs: Vec<PathBuf>) {
        for old in self.dirs.iter().filter(|d| !dirs.contains(d)) {
            // The directory may be gone already (an old ConfigMap generation): nothing to undo.
            let _ = self.watcher.unwatch(old);
        }
        for dir in dirs.iter().filter(|d| !self.dirs.contains(d)) {
            if let Err(e) = self.watcher.watch(dir, RecursiveMode::NonRecursive) {
                let what = self.what;
                tracing::warn!(dir = %dir.display(), "cannot watch the directory of the {what} ({e}); reload with SIGHUP");
            }
        }
        self.dirs = dirs;
    }
}

/// The directories to watch for `path` and the names that matter in them: the file's own
/// directory and name, `..data` (the ConfigMap swap), and, when the path is a symlink, its
/// final target's directory and name (a file edited in place elsewhere).
fn targets(path: &Path) -> (Vec<PathBuf>, HashSet<OsString>) {
    let dir = parent_dir(path);
    let mut dirs = vec![dir.canonicalize().unwrap_or(dir)];
    let mut names = HashSet::from([OsString::from(K8S_DATA)]);
    if let Some(name) = path.file_name() {
        names.insert(name.to_os_string());
    }
    if let Ok(target) = path.canonicalize() {
        if let Some(name) = target.file_name() {
            names.insert(name.to_os_string());
        }
        let target_dir = parent_dir(&target);
        if !dirs.contains(&target_dir) {
            dirs.push(target_dir);
        }
    }
    (dirs, names)
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether a directory event may have changed the config: it must name one of `names` and
/// be a change, not the reloader's own read (an open or a read-only close) nor a metadata
/// update. An event without paths (a rescan) counts.
fn is_relevant(event: &Event, names: &HashSet<OsString>) -> bool {
    let change = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        _ => true,
    };
    let named = event.paths.is_empty()
        || event
            .paths
            .iter()
            .any(|p| p.file_name().is_some_and(|n| names.contains(n)));
    change && (named || event.need_rescan())
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, RenameMode};

    #[test]
    fn only_changes_to_the_file_or_data_link_are_relevant() {
        let names = HashSet::from([OsString::from("c.toml"), OsString::from(K8S_DATA)]);
        let ev = |kind, p: &str| Event::new(kind).add_path(PathBuf::from(p));
        let write = EventKind::Access(AccessKind::Close(AccessMode::Write));
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        let rename = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        let create = EventKind::Create(CreateKind::File);
        assert!(is_relevant(&ev(write, "/d/c.toml"), &names));
        assert!(is_relevant(&ev(rename, "/d/..data"), &names));
        assert!(is_relevant(&ev(create, "/d/c.toml"), &names));
        assert!(!is_relevant(&ev(open, "/d/c.toml"), &names));
        assert!(!is_relevant(&ev(write, "/d/stderr.log"), &names));
        assert!(!is_relevant(&ev(rename, "/d/..data_tmp"), &names));
        assert!(is_relevant(&Event::new(EventKind::Any), &names));
    }

    #[test]
    fn a_symlinked_config_watches_its_target_too() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("v1.toml"), "").unwrap();
        let link = dir.path().join("c.toml");
        std::os::unix::fs::symlink(real.join("v1.toml"), &link).unwrap();
        let (dirs, names) = targets(&link);
        assert_eq!(dirs.len(), 2);
        assert!(names.contains(&OsString::from("c.toml")));
        assert!(names.contains(&OsString::from("v1.toml")));
        assert_eq!(parent_dir(Path::new("c.toml")), PathBuf::from("."));
    }
}
