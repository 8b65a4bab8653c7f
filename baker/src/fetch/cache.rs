//! The content-addressed blob cache: `<cache-dir>/blobs/sha256/ab/abcd…`.
//!
//! A blob enters the cache only by a rename of a fully downloaded, verified temporary file
//! that lives under `<cache-dir>/blobs/tmp/` (same file system), so the cache never holds a
//! partial or unverified blob.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use pifoundry_util::atomic;
use pifoundry_util::hash::{Algo, HashingWriter};
use tempfile::NamedTempFile;

use super::FetchError;

/// Environment variable overriding the cache directory (below `--cache-dir`).
pub const CACHE_ENV: &str = "PIFOUNDRY_CACHE_DIR";

/// Resolves the PiFoundry cache root: `explicit` (from `--cache-dir`), then
/// `$PIFOUNDRY_CACHE_DIR`, then `$XDG_CACHE_HOME/pifoundry`, then `$HOME/.cache/pifoundry`.
pub fn resolve_cache_dir(explicit: Option<&Path>) -> Result<PathBuf, FetchError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = env(CACHE_ENV) {
        return Ok(p);
    }
    if let Some(p) = env("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Ok(p.join("pifoundry"));
    }
    if let Some(home) = env("HOME") {
        return Ok(home.join(".cache").join("pifoundry"));
    }
    Err(FetchError::NoCacheDir)
}

#[derive(Debug, Clone)]
pub struct Cache {
    blobs: PathBuf,
}

impl Cache {
    /// The blob cache under the PiFoundry cache root `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            blobs: root.join("blobs"),
        }
    }

    /// Where the blob with this sha256 lives (whether or not it is there yet).
    pub fn blob_path(&self, sha256: &str) -> PathBuf {
        self.pinned_path("sha256", sha256)
    }

    /// Where a blob pinned by `kind` (`sha256`, or `tree` for content pins) lives.
    pub fn pinned_path(&self, kind: &str, hex: &str) -> PathBuf {
        self.blobs.join(kind).join(&hex[..2]).join(hex)
    }

    /// Removes downloads left in `tmp/` by killed processes (older than `max_age`, so that a
    /// concurrent baker's live download is never touched). Best effort.
    pub fn sweep_stale(&self, max_age: std::time::Duration) -> usize {
        let Ok(dir) = std::fs::read_dir(self.blobs.join("tmp")) else {
            return 0;
        };
        let mut removed = 0;
        for e in dir.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > max_age);
            if old && std::fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// A fresh temporary file for a download; dropped unpersisted, it disappears.
    pub fn temp(&self) -> Result<Staged, FetchError> {
        let dir = self.blobs.join("tmp");
        std::fs::create_dir_all(&dir).map_err(|e| cache_err(&dir, e))?;
        let file = tempfile::Builder::new()
            .prefix("download.")
            .tempfile_in(&dir)
            .map_err(|e| cache_err(&dir, e))?;
        Ok(Staged(HashingWriter::new(
            BufWriter::with_capacity(1 << 20, file),
            &[Algo::Sha256],
        )))
    }

    /// Moves a verified download into place.
    pub fn commit(&self, staged: Staged, sha256: &str) -> Result<PathBuf, FetchError> {
        self.commit_to(staged, self.blob_path(sha256))
    }

    /// Moves a verified download to `dest` (a [`Cache::pinned_path`]).
    pub fn commit_to(&self, staged: Staged, dest: PathBuf) -> Result<PathBuf, FetchError> {
        let parent = dest.parent().expect("blob path has a parent");
        std::fs::create_dir_all(parent).map_err(|e| cache_err(parent, e))?;
        let file = staged
            .0
            .inner
            .into_inner()
            .map_err(|e| cache_err(&dest, e.into_error()))?;
        atomic::persist(file, &dest).map_err(|e| cache_err(&e.path, e.error))?;
        Ok(dest)
    }
}

/// A download in progress: bytes are hashed and counted as they are written.
pub struct Staged(HashingWriter<BufWriter<NamedTempFile>>);

impl Staged {
    pub fn len(&self) -> u64 {
        self.0.count
    }

    pub fn is_empty(&self) -> bool {
        self.0.count == 0
    }

    /// Flushes what was written and returns the temporary file's path (to check it).
    pub fn flushed_path(&mut self) -> std::io::Result<&Path> {
        use std::io::Write;
        self.0.inner.flush()?;
        Ok(self.0.inner.get_ref().path())
    }

    /// Lower-case hex sha256 of everything written so far.
    pub fn digest(&self) -> String {
        self.0.hasher.clone().hex(Algo::Sha256)
    }
}

impl Write for Staged {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

fn cache_err(path: &Path, error: io::Error) -> FetchError {
    FetchError::Cache {
        path: path.to_path_buf(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn stale_downloads_are_swept_live_ones_kept() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::new(root.path());
        let tmp = root.path().join("blobs/tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let old = std::fs::File::create(tmp.join("download.old")).unwrap();
        old.set_modified(SystemTime::now() - Duration::from_secs(3 * 86400))
            .unwrap();
        std::fs::File::create(tmp.join("download.live")).unwrap();
        assert_eq!(cache.sweep_stale(Duration::from_secs(86400)), 1);
        assert!(tmp.join("download.live").exists());
        assert!(!tmp.join("download.old").exists());
    }
}
