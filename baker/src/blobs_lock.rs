//! `blobs.lock`: the pinned ARM blobs a recipe may swap into a release.
//!
//! The file is YAML with a fixed header comment and one map, `blobs`, keyed by a short name:
//!
//! ```yaml
//! blobs:
//!   go-1.25.4-linux-armv6l:
//!     url: https://go.dev/dl/go1.25.4.linux-armv6l.tar.gz
//!     sha256: ff86a6…
//!     size: null            # unknown until `baker lock add` downloads it
//!     arch: armv6l
//!     replaces: golang-1.x-linux toolchain blob (go*.linux-amd64.tar.gz)
//! ```
//!
//! Keys are written sorted, so a rewrite of an unchanged lock is byte-identical. `size` may be
//! `null` for entries whose checksum came from a published list: fetching then verifies the
//! sha256 alone (and says so); `baker lock add` always records the size.

use std::collections::BTreeMap;
use std::path::Path;

use pifoundry_util::error::{PathError, at};
use pifoundry_util::name::NameRule;
use pifoundry_util::{Arch, arch};
use serde::{Deserialize, Serialize};

/// File name of the lock at the repository root.
pub const LOCK_FILE: &str = "blobs.lock";

const HEADER: &str = "\
# blobs.lock — ARM blobs that recipes swap into BOSH releases (format: docs/blobs.md).
# Edit with `baker lock add KEY URL --arch A --replaces TEXT`; keys are kept sorted.
# size: null means the size is not recorded yet; fetch then verifies the sha256 alone.
";

/// Keys are short, path-safe names: they appear in recipes, logs and error messages.
pub const KEY: NameRule = NameRule {
    what: "blob key",
    max: 128,
    punct: "._+-",
    alnum_first: true,
};

#[derive(Debug, thiserror::Error)]
pub enum BlobsLockError {
    #[error(transparent)]
    Read(PathError),
    #[error("cannot write {0}")]
    Write(PathError),
    #[error("{origin}: {error}")]
    Syntax {
        origin: String,
        error: serde_yaml::Error,
    },
    #[error("{origin}: blob {key:?}: {msg}")]
    Invalid {
        origin: String,
        key: String,
        msg: String,
    },
    #[error("unknown blob key {key:?} (not in {origin}; add it with {})", how_to_add(.key))]
    UnknownKey { origin: String, key: String },
}

/// The command that pins `key`: `baker lock go` for a Go toolchain, else `baker lock add`.
fn how_to_add(key: &str) -> String {
    let go = key
        .strip_prefix("go-")
        .and_then(|k| k.split_once("-linux-"))
        .filter(|(v, a)| !v.is_empty() && !a.is_empty());
    match go {
        Some((version, arch)) => format!(
            "`baker lock go {version} --arch {arch}` from the Go project's published checksums, or `baker lock add`)"
        ),
        None => format!("`baker lock add {key} URL --arch ARCH --replaces TEXT`)"),
    }
}

impl LockEntry {
    /// How the entry is pinned and by what: `("sha256", hex)` or `("tree", hex)`; the cache
    /// and mirrors keep blobs under `<kind>/<hex>`.
    pub fn pin(&self) -> (&'static str, &str) {
        match &self.tree {
            Some(t) => ("tree", t),
            None => ("sha256", &self.sha256),
        }
    }

    /// The pin as one string (`tree:<hex>` for content pins), for stage keys and dedup.
    pub fn pin_id(&self) -> String {
        match &self.tree {
            Some(t) => format!("tree:{t}"),
            None => self.sha256.clone(),
        }
    }
}

/// One pinned blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEntry {
    pub key: String,
    pub url: String,
    /// Lower-case hex; empty for a content-pinned entry.
    pub sha256: String,
    /// A content pin instead of `sha256`: the tree hash of the unpacked source tarball
    /// (`fetch::tree`), which survives re-compression.
    pub tree: Option<String>,
    /// With `tree`: symlinks and hard links are allowed in the tree.
    pub links: bool,
    pub size: Option<u64>,
    /// What the blob runs on; `None` (`any` in the file) for architecture-neutral blobs such as
    /// source tarballs.
    pub arch: Option<Arch>,
    pub replaces: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryBody {
    url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tree: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    links: bool,
    size: Option<u64>,
    #[serde(with = "arch::or_any")]
    arch: Option<Arch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replaces: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockFile {
    #[serde(default)]
    blobs: BTreeMap<String, EntryBody>,
}

/// The whole lock, keyed and ordered by blob key.
#[derive(Debug, Clone, Default)]
pub struct BlobsLock {
    origin: String,
    entries: BTreeMap<String, LockEntry>,
}

impl BlobsLock {
    /// An empty lock that will be saved as `origin`.
    pub fn empty(origin: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            entries: BTreeMap::new(),
        }
    }

    pub fn load(path: &Path) -> Result<Self, BlobsLockError> {
        let text = std::fs::read_to_string(path).map_err(|e| BlobsLockError::Read(at(path)(e)))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Loads `path`, or starts an empty lock when it does not exist yet.
    pub fn load_or_empty(path: &Path) -> Result<Self, BlobsLockError> {
        if path.exists() {
            Self::load(path)
        } else {
            Ok(Self::empty(path.display().to_string()))
        }
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, BlobsLockError> {
        let file: LockFile = if text.trim().is_empty() || is_only_comments(text) {
            LockFile {
                blobs: BTreeMap::new(),
            }
        } else {
            serde_yaml::from_str(text).map_err(|error| BlobsLockError::Syntax {
                origin: origin.to_string(),
                error,
            })?
        };
        let mut lock = Self::empty(origin);
        for (key, b) in file.blobs {
            let entry = LockEntry {
                key,
                url: b.url,
                sha256: b.sha256.unwrap_or_default(),
                tree: b.tree,
                links: b.links,
                size: b.size,
                arch: b.arch,
                replaces: b.replaces,
            };
            lock.insert(entry)?;
        }
        Ok(lock)
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn get(&self, key: &str) -> Result<&LockEntry, BlobsLockError> {
        self.entries
            .get(key)
            .ok_or_else(|| BlobsLockError::UnknownKey {
                origin: self.origin.clone(),
                key: key.to_string(),
            })
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// All entries, sorted by key.
    pub fn entries(&self) -> impl Iterator<Item = &LockEntry> {
        self.entries.values()
    }

    /// Adds or replaces an entry after validating it.
    pub fn insert(&mut self, mut entry: LockEntry) -> Result<(), BlobsLockError> {
        entry.sha256 = entry.sha256.to_ascii_lowercase();
        entry.tree = entry.tree.map(|t| t.to_ascii_lowercase());
        if let Some(msg) = problem(&entry) {
            return Err(BlobsLockError::Invalid {
                origin: self.origin.clone(),
                key: entry.key,
                msg,
            });
        }
        self.entries.insert(entry.key.clone(), entry);
        Ok(())
    }

    /// The canonical text of the lock: header comment, keys sorted.
    pub fn to_yaml(&self) -> String {
        let file = LockFile {
            blobs: self
                .entries
                .values()
                .map(|e| {
                    (
                        e.key.clone(),
                        EntryBody {
                            url: e.url.clone(),
                            sha256: (e.tree.is_none()).then(|| e.sha256.clone()),
                            tree: e.tree.clone(),
                            links: e.links,
                            size: e.size,
                            arch: e.arch,
                            replaces: e.replaces.clone(),
                        },
                    )
                })
                .collect(),
        };
        let body = serde_yaml::to_string(&file).expect("lock entries always serialize");
        format!("{HEADER}{body}")
    }

    /// Writes the lock atomically (temp file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), BlobsLockError> {
        pifoundry_util::atomic::write(path, self.to_yaml().as_bytes())
            .map_err(BlobsLockError::Write)
    }
}

fn is_only_comments(text: &str) -> bool {
    text.lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
}

/// What is wrong with an entry, if anything.
fn problem(e: &LockEntry) -> Option<String> {
    if let Err(bad) = KEY.check(&e.key) {
        return Some(format!("key {bad}"));
    }
    let hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    match &e.tree {
        Some(_) if !e.sha256.is_empty() => {
            return Some("needs one pin: `sha256` (the file) or `tree` (its content)".into());
        }
        Some(t) if !hex64(t) => {
            return Some(format!("tree {t:?} is not 64 hexadecimal digits"));
        }
        None if !hex64(&e.sha256) => {
            return Some(format!(
                "sha256 {:?} is not 64 hexadecimal digits",
                e.sha256
            ));
        }
        _ => {}
    }
    if e.links && e.tree.is_none() {
        return Some("`links` only applies to a `tree` pin".into());
    }
    let scheme_ok = ["file://", "http://", "https://"]
        .iter()
        .any(|s| e.url.starts_with(s));
    if !scheme_ok {
        return Some(format!(
            "url {:?} must start with file://, http:// or https://",
            e.url
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "ff86a6406310d840edb170f539a51a7efac0ac2b2f84527b1b2bf5935fc4ab6d";

    fn entry(key: &str) -> LockEntry {
        LockEntry {
            key: key.into(),
            url: format!("https://example.invalid/{key}.tar.gz"),
            sha256: SHA.into(),
            tree: None,
            links: false,
            size: Some(42),
            arch: Some(Arch::Armv6l),
            replaces: Some("amd64 toolchain".into()),
        }
    }

    #[test]
    fn round_trips_sorted_and_deterministic() {
        let mut lock = BlobsLock::empty("blobs.lock");
        lock.insert(entry("zeta")).unwrap();
        lock.insert(entry("alpha")).unwrap();
        let text = lock.to_yaml();
        assert!(text.find("alpha:").unwrap() < text.find("zeta:").unwrap());
        let again = BlobsLock::parse(&text, "blobs.lock").unwrap();
        assert_eq!(again.to_yaml(), text);
        assert_eq!(again.get("alpha").unwrap(), &entry("alpha"));
    }

    #[test]
    fn null_size_is_accepted() {
        let text = format!(
            "blobs:\n  go:\n    url: https://go.dev/x.tar.gz\n    sha256: {SHA}\n    size: null\n    arch: arm64\n"
        );
        let lock = BlobsLock::parse(&text, "l").unwrap();
        assert_eq!(lock.get("go").unwrap().size, None);
        assert!(lock.to_yaml().contains("size: null"));
    }

    #[test]
    fn unknown_field_is_an_error_naming_the_file() {
        let text = format!(
            "blobs:\n  go:\n    url: https://go.dev/x\n    sha256: {SHA}\n    size: 1\n    arch: arm64\n    colour: red\n"
        );
        let err = BlobsLock::parse(&text, "my.lock").unwrap_err().to_string();
        assert!(err.contains("my.lock") && err.contains("colour"), "{err}");
    }

    #[test]
    fn bad_sha_names_the_key() {
        let text = "blobs:\n  go:\n    url: https://go.dev/x\n    sha256: abc\n    size: 1\n    arch: arm64\n";
        let err = BlobsLock::parse(text, "l").unwrap_err().to_string();
        assert!(err.contains("\"go\"") && err.contains("sha256"), "{err}");
    }

    #[test]
    fn bad_key_and_url_are_rejected() {
        let mut lock = BlobsLock::empty("l");
        let mut e = entry("../evil");
        assert!(lock.insert(e.clone()).is_err());
        e.key = "ok".into();
        e.url = "ftp://x".into();
        let err = lock.insert(e).unwrap_err().to_string();
        assert!(err.contains("url"), "{err}");
    }

    #[test]
    fn unknown_key_error() {
        let lock = BlobsLock::empty("blobs.lock");
        let err = lock.get("nope").unwrap_err().to_string();
        assert!(
            err.contains("\"nope\"") && err.contains("blobs.lock"),
            "{err}"
        );
    }

    #[test]
    fn shipped_lock_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../blobs.lock");
        let lock = BlobsLock::load(&path).unwrap();
        let armv6l = lock.get("go-1.25.4-linux-armv6l").unwrap();
        assert_eq!(armv6l.arch, Some(Arch::Armv6l));
        assert_eq!(armv6l.sha256, SHA);
        assert_eq!(
            BlobsLock::parse(&lock.to_yaml(), "x").unwrap().to_yaml(),
            lock.to_yaml()
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), lock.to_yaml());
    }
}
