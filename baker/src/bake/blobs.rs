//! What the bake needs from `blobs.lock` and the blob fetcher: a blob's recorded sha256
//! (for stage keys, without downloading) and a verified local copy (to build from).

use std::path::PathBuf;

pub trait Blobs {
    /// The sha256 that `blobs.lock` records for `key`.
    fn sha256(&self, key: &str) -> Result<String, String>;
    /// A local, verified copy of the blob, fetched if needed.
    fn ensure(&self, key: &str) -> Result<PathBuf, String>;
}

/// No lock file: every blob is unavailable.
pub struct NoBlobs;

impl Blobs for NoBlobs {
    fn sha256(&self, key: &str) -> Result<String, String> {
        Err(format!("no blobs.lock entry `{key}`"))
    }
    fn ensure(&self, key: &str) -> Result<PathBuf, String> {
        Err(format!("no blobs.lock entry `{key}`"))
    }
}

/// The project's `blobs.lock` and the blob fetcher (cache, `PIFOUNDRY_MIRROR`).
pub struct LockedBlobs {
    lock: crate::lock::Lock,
    fetcher: std::sync::OnceLock<Result<crate::fetch::Fetcher, String>>,
}

impl LockedBlobs {
    /// `<project_root>/blobs.lock`; a missing lock file means no blobs.
    pub fn load(project_root: &std::path::Path) -> Result<Self, crate::lock::LockError> {
        Ok(Self {
            lock: crate::lock::Lock::load_or_empty(&project_root.join("blobs.lock"))?,
            fetcher: std::sync::OnceLock::new(),
        })
    }
}

impl Blobs for LockedBlobs {
    fn sha256(&self, key: &str) -> Result<String, String> {
        self.lock
            .get(key)
            .map(|e| e.sha256.clone())
            .map_err(|e| e.to_string())
    }
    fn ensure(&self, key: &str) -> Result<PathBuf, String> {
        let fetcher = self.fetcher.get_or_init(|| {
            crate::fetch::Fetcher::new(crate::fetch::FetchOptions::from_env())
                .map_err(|e| e.to_string())
        });
        match fetcher {
            Ok(f) => f.ensure_key(&self.lock, key).map_err(|e| e.to_string()),
            Err(e) => Err(e.clone()),
        }
    }
}
