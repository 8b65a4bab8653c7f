//! Resolving `blobs.lock` keys, the one way both pipelines do it: the bake (a blob's recorded
//! sha256 feeds its stage key without a download; go-build needs a verified local copy) and
//! `rewrite-release` (which swaps blobs into packages and checks each blob's architecture).
//!
//! [`LockedBlobs`] is the lock file plus the verified blob cache; [`LocalBlobs`] are files given
//! on the command line (`--blob KEY=FILE`), [`Overridden`] puts those in front of the lock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use pifoundry_util::error::PathError;
use pifoundry_util::{Arch, arch};

use crate::blobs_lock::{BlobsLock, BlobsLockError};
use crate::fetch::{FetchError, FetchOptions, Fetcher};

/// A verified local copy of a blob.
#[derive(Debug, Clone)]
pub struct LockedBlob {
    pub path: PathBuf,
    /// Expected lowercase hex SHA-256 of the file.
    pub sha256: String,
    pub size: u64,
    /// The name its publisher gives it: the lock URL's last segment, or the given file's name.
    pub name: String,
}

/// The last path segment of a URL or path, without a query.
pub fn file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
        .to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error(transparent)]
    Lock(#[from] BlobsLockError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("no blob given for key {0} (use --blob {0}=FILE)")]
    NotGiven(String),
    #[error("no blobs.lock entry `{0}`")]
    NoLock(String),
    #[error("{0} bytes: too large to wrap into a .tgz (at most 64 MiB)")]
    TooLargeToWrap(u64),
    #[error("{origin} says it is for {arch}, the recipe targets {target}")]
    WrongArch {
        origin: String,
        arch: &'static str,
        target: Arch,
    },
}

/// Where blobs come from.
pub trait Blobs {
    /// The pin recorded for `key`, without fetching it (stage keys): the sha256, or
    /// `tree:<hex>` for a content-pinned source tarball.
    fn sha256(&self, key: &str) -> Result<String, BlobError>;
    /// A verified local copy of the blob, fetched if needed.
    fn get(&self, key: &str) -> Result<LockedBlob, BlobError>;
}

/// No lock file: every blob is unavailable.
pub struct NoBlobs;

impl Blobs for NoBlobs {
    fn sha256(&self, key: &str) -> Result<String, BlobError> {
        Err(BlobError::NoLock(key.into()))
    }
    fn get(&self, key: &str) -> Result<LockedBlob, BlobError> {
        Err(BlobError::NoLock(key.into()))
    }
}

/// Blobs given as files, `KEY=FILE`; their digest is taken from the file.
#[derive(Debug, Default)]
pub struct LocalBlobs(pub BTreeMap<String, PathBuf>);

impl Blobs for LocalBlobs {
    fn sha256(&self, key: &str) -> Result<String, BlobError> {
        self.get(key).map(|b| b.sha256)
    }
    fn get(&self, key: &str) -> Result<LockedBlob, BlobError> {
        let path = self
            .0
            .get(key)
            .ok_or_else(|| BlobError::NotGiven(key.into()))?;
        let (sha256, size) = pifoundry_util::hash::hash_file(path)?;
        Ok(LockedBlob {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: path.clone(),
            sha256,
            size,
        })
    }
}

/// A `blobs.lock` and the verified blob cache ([`Fetcher`], `PIFOUNDRY_MIRROR`). The fetcher
/// is started at the first download; the lock is read at [`LockedBlobs::load`], or at the
/// first key for [`LockedBlobs::lazy`].
pub struct LockedBlobs {
    path: PathBuf,
    lock: OnceLock<BlobsLock>,
    options: FetchOptions,
    fetcher: OnceLock<Fetcher>,
    target: Option<Arch>,
}

impl LockedBlobs {
    /// Reads `path` now; a missing lock file means no blobs.
    pub fn load(path: &Path, options: FetchOptions) -> Result<Self, BlobsLockError> {
        let blobs = Self::lazy(path, options);
        let _ = blobs.lock.set(BlobsLock::load_or_empty(path)?);
        Ok(blobs)
    }

    /// Reads `path` when the first key is asked for; then it must exist.
    pub fn lazy(path: &Path, options: FetchOptions) -> Self {
        Self {
            path: path.to_path_buf(),
            lock: OnceLock::new(),
            options,
            fetcher: OnceLock::new(),
            target: None,
        }
    }

    /// Refuses blobs recorded for another architecture than `target` (`any` always fits).
    pub fn for_target(mut self, target: Arch) -> Self {
        self.target = Some(target);
        self
    }

    fn lock(&self) -> Result<&BlobsLock, BlobError> {
        if let Some(l) = self.lock.get() {
            return Ok(l);
        }
        let lock = BlobsLock::load(&self.path)?;
        Ok(self.lock.get_or_init(|| lock))
    }

    fn fetcher(&self) -> Result<&Fetcher, BlobError> {
        if let Some(f) = self.fetcher.get() {
            return Ok(f);
        }
        let f = Fetcher::new(self.options.clone())?;
        Ok(self.fetcher.get_or_init(|| f))
    }
}

impl Blobs for LockedBlobs {
    fn sha256(&self, key: &str) -> Result<String, BlobError> {
        Ok(self.lock()?.get(key)?.pin_id())
    }

    fn get(&self, key: &str) -> Result<LockedBlob, BlobError> {
        let lock = self.lock()?;
        let entry = lock.get(key)?;
        if let (Some(target), Some(arch)) = (self.target, entry.arch)
            && arch != target
        {
            return Err(BlobError::WrongArch {
                origin: lock.origin().to_string(),
                arch: arch::name_or_any(Some(arch)),
                target,
            });
        }
        let path = self.fetcher()?.ensure(entry)?;
        let (sha256, size) = match entry.tree {
            // content-pinned: the cached copy's own bytes (its tree was checked)
            Some(_) => pifoundry_util::hash::hash_file(&path)?,
            None => {
                let meta = std::fs::metadata(&path).map_err(pifoundry_util::error::at(&path))?;
                (entry.sha256.clone(), meta.len())
            }
        };
        Ok(LockedBlob {
            path,
            sha256,
            size,
            name: file_name(&entry.url),
        })
    }
}

/// Files given on the command line first, then `fallback` (opened only for the other keys).
pub struct Overridden<B> {
    pub local: LocalBlobs,
    pub fallback: B,
}

impl<B: Blobs> Blobs for Overridden<B> {
    fn sha256(&self, key: &str) -> Result<String, BlobError> {
        if self.local.0.contains_key(key) {
            self.local.sha256(key)
        } else {
            self.fallback.sha256(key)
        }
    }
    fn get(&self, key: &str) -> Result<LockedBlob, BlobError> {
        if self.local.0.contains_key(key) {
            self.local.get(key)
        } else {
            self.fallback.get(key)
        }
    }
}
