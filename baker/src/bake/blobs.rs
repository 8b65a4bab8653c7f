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
