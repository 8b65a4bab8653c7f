//! Fetching pinned blobs into the content-addressed cache.
//!
//! Every blob is streamed into a temporary file while it is hashed and counted; only when
//! sha256 (and the size, when the lock records one) match does it get renamed into
//! `<cache-dir>/blobs/sha256/ab/abcd…`. A blob already in the cache is re-hashed before
//! it is handed out, so a corrupted cache is detected and refetched.
//!
//! ```no_run
//! # use baker::{fetch::{Fetcher, FetchOptions}, blobs_lock::BlobsLock};
//! # fn main() -> anyhow::Result<()> {
//! let lock = BlobsLock::load("blobs.lock".as_ref())?;
//! let fetcher = Fetcher::new(FetchOptions::from_env())?;
//! let go = fetcher.ensure_key(&lock, "go-1.25.4-linux-armv6l")?;
//! # Ok(()) }
//! ```

mod cache;
mod source;
pub mod tree;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

pub use cache::{CACHE_ENV, Cache, resolve_cache_dir};
pub use source::{BadMirror, MIRROR_ENV, Mirror};

use crate::blobs_lock::{BlobsLock, LockEntry};
use source::{Opener, SourceError};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("blob {key}: sha256 mismatch from {from}: expected {expected}, got {actual}")]
    Checksum {
        key: String,
        from: String,
        expected: String,
        actual: String,
    },
    #[error("blob {key}: size mismatch from {from}: expected {expected} bytes, got {actual}")]
    Size {
        key: String,
        from: String,
        expected: u64,
        actual: String,
    },
    #[error(
        "blob {key}: content pin mismatch from {from}: expected tree {expected}, got {actual} ({files} files)"
    )]
    TreeMismatch {
        key: String,
        from: String,
        expected: String,
        actual: String,
        files: usize,
    },
    #[error("blob {key}: {from}: {error}")]
    Tree {
        key: String,
        from: String,
        error: String,
    },
    #[error("blob {key}: {from}: not found")]
    NotFound { key: String, from: String },
    #[error("blob {key} (pin {sha256}) is not in mirror {mirror} (tried {tried})")]
    NotInMirror {
        key: String,
        sha256: String,
        mirror: String,
        tried: String,
    },
    #[error("blob {key}: {from}: {msg} (after {attempts} attempt(s))")]
    Source {
        key: String,
        from: String,
        msg: String,
        attempts: u32,
    },
    #[error("blob cache {}: {error}", path.display())]
    Cache {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "cannot find a cache directory: set XDG_CACHE_HOME, HOME or PIFOUNDRY_CACHE_DIR, or pass --cache-dir"
    )]
    NoCacheDir,
    #[error(transparent)]
    BadMirror(#[from] BadMirror),
    #[error(transparent)]
    Lock(#[from] crate::blobs_lock::BlobsLockError),
    #[error("{} blob(s) failed:\n  {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n  "))]
    Many(Vec<FetchError>),
}

/// How a [`Fetcher`] finds and stores blobs.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// PiFoundry cache root; `None` resolves `$PIFOUNDRY_CACHE_DIR`, then the XDG cache dir.
    pub cache_dir: Option<PathBuf>,
    /// `DIR`, `file://` or `http(s)://` mirror that replaces the lock URLs (lookup by sha256).
    pub mirror: Option<String>,
    /// Extra attempts after a transient failure (connection error, 5xx, 429, cut-off body).
    pub retries: u32,
    /// First back-off delay; doubles with every retry.
    pub backoff: Duration,
    /// Parallel downloads in [`Fetcher::ensure_all`].
    pub jobs: usize,
    /// Connect and read timeout.
    pub timeout: Duration,
    /// Progress bars on stderr; they are never drawn when stderr is not a terminal.
    pub progress: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            cache_dir: None,
            mirror: None,
            retries: 4,
            backoff: Duration::from_millis(500),
            jobs: 4,
            timeout: Duration::from_secs(60),
            progress: true,
        }
    }
}

impl FetchOptions {
    /// Defaults plus the mirror from `$PIFOUNDRY_MIRROR` (the cache dir env is read in
    /// [`Fetcher::new`]).
    pub fn from_env() -> Self {
        Self {
            mirror: std::env::var(MIRROR_ENV).ok().filter(|m| !m.is_empty()),
            ..Self::default()
        }
    }
}

/// A blob as it came from a download, already in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
}

pub struct Fetcher {
    cache: Cache,
    root: PathBuf,
    mirror: Option<Mirror>,
    opener: Opener,
    opts: FetchOptions,
    bars: MultiProgress,
}

impl Fetcher {
    pub fn new(opts: FetchOptions) -> Result<Self, FetchError> {
        let root = resolve_cache_dir(opts.cache_dir.as_deref())?;
        let mirror = opts.mirror.as_deref().map(Mirror::parse).transpose()?;
        let target = if opts.progress && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let cache = Cache::new(&root);
        cache.sweep_stale(Duration::from_secs(24 * 3600));
        Ok(Self {
            cache,
            root,
            mirror,
            opener: Opener::new(opts.timeout),
            bars: MultiProgress::with_draw_target(target),
            opts,
        })
    }

    /// The PiFoundry cache root in use.
    pub fn cache_dir(&self) -> &Path {
        &self.root
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The verified cached path of `entry`, downloading it first if needed.
    pub fn ensure(&self, entry: &LockEntry) -> Result<PathBuf, FetchError> {
        let (kind, hex) = entry.pin();
        let dest = self.cache.pinned_path(kind, hex);
        if dest.is_file() && self.verify_cached(entry, &dest)? {
            return Ok(dest);
        }
        let sources = match &self.mirror {
            Some(m) => m.candidates_for(kind, hex),
            None => vec![entry.url.clone()],
        };
        let mut tried = Vec::new();
        for from in &sources {
            match self.download(&entry.key, from, Some(entry)) {
                Ok(f) => return Ok(f.path),
                Err(FetchError::NotFound { .. }) => tried.push(from.clone()),
                Err(e) => return Err(e),
            }
        }
        Err(match &self.mirror {
            Some(m) => FetchError::NotInMirror {
                key: entry.key.clone(),
                sha256: entry.pin_id(),
                mirror: m.describe(),
                tried: tried.join(", "),
            },
            None => FetchError::NotFound {
                key: entry.key.clone(),
                from: entry.url.clone(),
            },
        })
    }

    /// [`Fetcher::ensure`] by lock key: an unknown key is an error naming the lock file.
    pub fn ensure_key(&self, lock: &BlobsLock, key: &str) -> Result<PathBuf, FetchError> {
        self.ensure(lock.get(key)?)
    }

    /// Ensures every entry, `jobs` at a time; blobs shared by several keys download once.
    /// Paths come back in the order of `entries`. Every failure is reported, not just the first.
    pub fn ensure_all(&self, entries: &[&LockEntry]) -> Result<Vec<PathBuf>, FetchError> {
        let mut unique: BTreeMap<String, &LockEntry> = BTreeMap::new();
        for e in entries {
            unique.entry(e.pin_id()).or_insert(e);
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.opts.jobs.max(1))
            .build()
            .expect("thread pool");
        let results: Vec<(&str, Result<PathBuf, FetchError>)> = pool.install(|| {
            unique
                .par_iter()
                .map(|(pin, e)| (pin.as_str(), self.ensure(e)))
                .collect()
        });
        let mut paths = BTreeMap::new();
        let mut errors = Vec::new();
        for (sha, r) in results {
            match r {
                Ok(p) => {
                    paths.insert(sha, p);
                }
                Err(e) => errors.push(e),
            }
        }
        match errors.len() {
            0 => Ok(entries
                .iter()
                .map(|e| paths[e.pin_id().as_str()].clone())
                .collect()),
            1 => Err(errors.pop().unwrap()),
            _ => Err(FetchError::Many(errors)),
        }
    }

    /// Reads a small document (an index) from `url` into memory, at most `max` bytes; not
    /// cached. Transient failures are retried like downloads.
    pub fn read_document(&self, what: &str, url: &str, max: u64) -> Result<Vec<u8>, FetchError> {
        let attempts = self.opts.retries + 1;
        let mut delay = self.opts.backoff;
        for attempt in 1..=attempts {
            let err = match self.opener.open(url) {
                Ok(opened) => {
                    let mut body = Vec::new();
                    match opened.reader.take(max + 1).read_to_end(&mut body) {
                        Ok(_) if body.len() as u64 > max => {
                            SourceError::Fatal(format!("larger than {max} bytes"))
                        }
                        Ok(_) => return Ok(body),
                        Err(e) => SourceError::Transient(format!("reading: {e}")),
                    }
                }
                Err(e) => e,
            };
            match err {
                SourceError::NotFound => {
                    return Err(FetchError::NotFound {
                        key: what.into(),
                        from: url.into(),
                    });
                }
                SourceError::Transient(msg) if attempt < attempts => {
                    eprintln!("warning: {what}: {url}: {msg}; retrying in {delay:?}");
                    std::thread::sleep(delay);
                    delay *= 2;
                }
                SourceError::Transient(msg) | SourceError::Fatal(msg) => {
                    return Err(FetchError::Source {
                        key: what.into(),
                        from: url.into(),
                        msg,
                        attempts: attempt,
                    });
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Downloads `url` (no pin yet) into the cache and reports what it got: `baker lock add`.
    pub fn fetch_new(&self, key: &str, url: &str) -> Result<Fetched, FetchError> {
        self.download(key, url, None)
    }

    /// Re-hashes a cached blob; a corrupt one is removed so that it gets fetched again.
    fn verify_cached(&self, entry: &LockEntry, path: &Path) -> Result<bool, FetchError> {
        let good = match &entry.tree {
            Some(t) => tree::tree_hash_file(path, entry.links).is_ok_and(|got| got.hash == *t),
            None => {
                let (sha, len) =
                    pifoundry_util::hash::hash_file(path).map_err(|e| FetchError::Cache {
                        path: e.path,
                        error: e.error,
                    })?;
                sha == entry.sha256 && entry.size.is_none_or(|s| s == len)
            }
        };
        if good {
            return Ok(true);
        }
        eprintln!(
            "warning: cached blob {} is corrupt ({}); fetching it again",
            entry.key,
            path.display()
        );
        std::fs::remove_file(path).map_err(|error| FetchError::Cache {
            path: path.to_path_buf(),
            error,
        })?;
        Ok(false)
    }

    /// One source, with retries on transient failures.
    fn download(
        &self,
        key: &str,
        from: &str,
        pin: Option<&LockEntry>,
    ) -> Result<Fetched, FetchError> {
        let attempts = self.opts.retries + 1;
        let mut delay = self.opts.backoff;
        for attempt in 1..=attempts {
            match self.attempt(key, from, pin) {
                Ok(f) => return Ok(f),
                Err(Attempt::Failed(e)) => return Err(e),
                Err(Attempt::Source(SourceError::NotFound)) => {
                    return Err(FetchError::NotFound {
                        key: key.into(),
                        from: from.into(),
                    });
                }
                Err(Attempt::Source(SourceError::Transient(msg))) if attempt < attempts => {
                    eprintln!("warning: blob {key}: {from}: {msg}; retrying in {delay:?}");
                    std::thread::sleep(delay);
                    delay *= 2;
                }
                Err(Attempt::Source(e)) => {
                    return Err(FetchError::Source {
                        key: key.into(),
                        from: from.into(),
                        msg: e.to_string(),
                        attempts: attempt,
                    });
                }
            }
        }
        unreachable!("the last attempt always returns")
    }

    fn attempt(&self, key: &str, from: &str, pin: Option<&LockEntry>) -> Result<Fetched, Attempt> {
        let opened = self.opener.open(from).map_err(Attempt::Source)?;
        let expected_size = pin.and_then(|p| p.size);
        let bar = self.bar(key, expected_size.or(opened.len));
        let mut reader = bar.wrap_read(opened.reader);
        let mut staged = self.cache.temp().map_err(Attempt::Failed)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    bar.abandon();
                    return Err(Attempt::Source(SourceError::Transient(format!(
                        "reading: {e}"
                    ))));
                }
            };
            staged
                .write_all(&buf[..n])
                .map_err(|error| Attempt::Failed(cache_io(self, error)))?;
            if let Some(size) = expected_size
                && staged.len() > size
            {
                bar.abandon();
                return Err(Attempt::Failed(FetchError::Size {
                    key: key.into(),
                    from: from.into(),
                    expected: size,
                    actual: format!("more than {size}"),
                }));
            }
        }
        bar.finish_and_clear();
        let (sha, size) = (staged.digest(), staged.len());
        if let Some(pin) = pin
            && let Some(want) = &pin.tree
        {
            // a content pin: the tree as unpacked must match, whatever the compression
            let path = staged
                .flushed_path()
                .map_err(|error| Attempt::Failed(cache_io(self, error)))?;
            let got = tree::tree_hash_file(path, pin.links).map_err(|e| {
                Attempt::Failed(FetchError::Tree {
                    key: key.into(),
                    from: from.into(),
                    error: e.to_string(),
                })
            })?;
            if got.hash != *want {
                return Err(Attempt::Failed(FetchError::TreeMismatch {
                    key: key.into(),
                    from: from.into(),
                    expected: want.clone(),
                    actual: got.hash,
                    files: got.files,
                }));
            }
            let dest = self.cache.pinned_path("tree", want);
            let path = self
                .cache
                .commit_to(staged, dest)
                .map_err(Attempt::Failed)?;
            return Ok(Fetched {
                path,
                sha256: sha,
                size,
            });
        }
        if let Some(pin) = pin {
            if let Some(expected) = pin.size
                && expected != size
            {
                return Err(Attempt::Failed(FetchError::Size {
                    key: key.into(),
                    from: from.into(),
                    expected,
                    actual: size.to_string(),
                }));
            }
            if sha != pin.sha256 {
                return Err(Attempt::Failed(FetchError::Checksum {
                    key: key.into(),
                    from: from.into(),
                    expected: pin.sha256.clone(),
                    actual: sha,
                }));
            }
            if pin.size.is_none() {
                eprintln!(
                    "note: blob {key}: blobs.lock records no size; verified by sha256 alone ({size} bytes)"
                );
            }
        }
        let path = self.cache.commit(staged, &sha).map_err(Attempt::Failed)?;
        Ok(Fetched {
            path,
            sha256: sha,
            size,
        })
    }

    fn bar(&self, key: &str, len: Option<u64>) -> ProgressBar {
        let bar = match len {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template(
                    "{msg:30!} {bar:30} {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12} {eta}",
                )
                .expect("valid template"),
            ),
            None => ProgressBar::no_length().with_style(
                ProgressStyle::with_template("{msg:30!} {spinner} {bytes:>10} {bytes_per_sec:>12}")
                    .expect("valid template"),
            ),
        };
        let bar = self.bars.add(bar);
        bar.set_message(key.to_string());
        bar
    }
}

enum Attempt {
    Source(SourceError),
    Failed(FetchError),
}

fn cache_io(f: &Fetcher, error: std::io::Error) -> FetchError {
    FetchError::Cache {
        path: f.root.join("blobs").join("tmp"),
        error,
    }
}
