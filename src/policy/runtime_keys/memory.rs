//! The memory backend's store of runtime keys: one JSON file (`[state] keys_file`,
//! `{"keys": [RuntimeKey, …]}`), read at start, rewritten whole after each change to a
//! temporary file beside it (mode 0600: it holds hashes and limits, not secrets, but nobody
//! else needs it) and renamed over it, so a crash leaves the old file or the new one.
//! One process owns it (the memory backend is one instance).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::{ApiError, RuntimeKey};

#[derive(Default, Serialize, Deserialize)]
struct File {
    keys: Vec<RuntimeKey>,
}

/// The file and the keys it holds.
pub struct FileStore {
    path: PathBuf,
    keys: Mutex<Vec<RuntimeKey>>,
}

impl FileStore {
    /// Reads `path` (absent: no keys yet). A file that cannot be read or parsed is an error:
    /// starting without the keys it holds would revoke them silently.
    pub fn open(path: &Path) -> Result<FileStore, String> {
        let keys = match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice::<File>(&bytes)
                    .map_err(|e| format!("{}: not a runtime keys file: {e}", path.display()))?
                    .keys
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
        };
        Ok(FileStore {
            path: path.to_path_buf(),
            keys: Mutex::new(keys),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<RuntimeKey>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn all(&self) -> Vec<RuntimeKey> {
        self.lock().clone()
    }

    pub fn get(&self, id: &str) -> Option<RuntimeKey> {
        self.lock().iter().find(|k| k.id == id).cloned()
    }

    /// Adds `record`; 409 when its id is taken.
    pub fn insert(&self, record: &RuntimeKey) -> Result<(), ApiError> {
        let mut keys = self.lock();
        if keys.iter().any(|k| k.id == record.id) {
            return Err(ApiError::conflict(format!(
                "a runtime key with id {:?} exists",
                record.id
            )));
        }
        let mut next = keys.clone();
        next.push(record.clone());
        self.save(&next)?;
        *keys = next;
        Ok(())
    }

    /// Replaces the record of `record.id`; 404 when there is none.
    pub fn replace(&self, record: &RuntimeKey) -> Result<(), ApiError> {
        let mut keys = self.lock();
        let mut next = keys.clone();
        let slot = next
            .iter_mut()
            .find(|k| k.id == record.id)
            .ok_or_else(|| ApiError::not_found(&record.id))?;
        *slot = record.clone();
        self.save(&next)?;
        *keys = next;
        Ok(())
    }

    /// Removes the record `id`; whether there was one.
    pub fn remove(&self, id: &str) -> Result<bool, ApiError> {
        let mut keys = self.lock();
        let next: Vec<RuntimeKey> = keys.iter().filter(|k| k.id != id).cloned().collect();
        if next.len() == keys.len() {
            return Ok(false);
        }
        self.save(&next)?;
        *keys = next;
        Ok(true)
    }

    /// Writes `keys` to a temporary file (0600) beside the file, then renames it over.
    fn save(&self, keys: &[RuntimeKey]) -> Result<(), ApiError> {
        let fail = |e: std::io::Error| {
            tracing::error!(file = %self.path.display(), error = %e, "cannot write the runtime keys file");
            ApiError::unavailable(format!("cannot write {}: {e}", self.path.display()))
        };
        let body = serde_json::to_vec_pretty(&File {
            keys: keys.to_vec(),
        })
        .map_err(|e| fail(std::io::Error::other(e)))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(fail)?;
        // A temporary file left by a crash keeps its mode: set it again.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(fail)?;
        file.write_all(&body).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        std::fs::rename(&tmp, &self.path).map_err(fail)
    }
}
