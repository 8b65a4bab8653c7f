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
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// File name of the lock at the repository root.
pub const LOCK_FILE: &str = "blobs.lock";

const HEADER: &str = "\
# blobs.lock — ARM blobs that recipes swap into BOSH releases (format: docs/blobs.md).
# Edit with `baker lock add KEY URL --arch A --replaces TEXT`; keys are kept sorted.
# size: null means the size is not recorded yet; fetch then verifies the sha256 alone.
";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: {source}")]
    Syntax {
        origin: String,
        source: serde_yaml::Error,
    },
    #[error("{origin}: blob {key:?}: {msg}")]
    Invalid {
        origin: String,
        key: String,
        msg: String,
    },
    #[error("unknown blob key {key:?} (not in {origin}; add it with `baker lock add`)")]
    UnknownKey { origin: String, key: String },
}

/// What a blob runs on. `any` is for architecture-neutral blobs such as source tarballs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Armv6l,
    Arm64,
    Amd64,
    Any,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Armv6l => "armv6l",
            Arch::Arm64 => "arm64",
            Arch::Amd64 => "amd64",
            Arch::Any => "any",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "armv6l" => Ok(Arch::Armv6l),
            "arm64" => Ok(Arch::Arm64),
            "amd64" => Ok(Arch::Amd64),
            "any" => Ok(Arch::Any),
            _ => Err(format!(
                "unknown arch {s:?} (expected armv6l, arm64, amd64 or any)"
            )),
        }
    }
}

/// One pinned blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEntry {
    pub key: String,
    pub url: String,
    /// Lower-case hex.
    pub sha256: String,
    pub size: Option<u64>,
    pub arch: Arch,
    pub replaces: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryBody {
    url: String,
    sha256: String,
    size: Option<u64>,
    arch: Arch,
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
pub struct Lock {
    origin: String,
    entries: BTreeMap<String, LockEntry>,
}

impl Lock {
    /// An empty lock that will be saved as `origin`.
    pub fn empty(origin: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            entries: BTreeMap::new(),
        }
    }

    pub fn load(path: &Path) -> Result<Self, LockError> {
        let text = std::fs::read_to_string(path).map_err(|source| LockError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Loads `path`, or starts an empty lock when it does not exist yet.
    pub fn load_or_empty(path: &Path) -> Result<Self, LockError> {
        if path.exists() {
            Self::load(path)
        } else {
            Ok(Self::empty(path.display().to_string()))
        }
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, LockError> {
        let file: LockFile = if text.trim().is_empty() || is_only_comments(text) {
            LockFile {
                blobs: BTreeMap::new(),
            }
        } else {
            serde_yaml::from_str(text).map_err(|source| LockError::Syntax {
                origin: origin.to_string(),
                source,
            })?
        };
        let mut lock = Self::empty(origin);
        for (key, b) in file.blobs {
            let entry = LockEntry {
                key,
                url: b.url,
                sha256: b.sha256,
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

    pub fn get(&self, key: &str) -> Result<&LockEntry, LockError> {
        self.entries.get(key).ok_or_else(|| LockError::UnknownKey {
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
    pub fn insert(&mut self, mut entry: LockEntry) -> Result<(), LockError> {
        entry.sha256 = entry.sha256.to_ascii_lowercase();
        validate(&entry).map_err(|msg| LockError::Invalid {
            origin: self.origin.clone(),
            key: entry.key.clone(),
            msg,
        })?;
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
                            sha256: e.sha256.clone(),
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
    pub fn save(&self, path: &Path) -> Result<(), LockError> {
        crate::atomic::write(path, self.to_yaml().as_bytes()).map_err(|source| LockError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}

fn is_only_comments(text: &str) -> bool {
    text.lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
}

fn validate(e: &LockEntry) -> Result<(), String> {
    valid_key(&e.key)?;
    if e.sha256.len() != 64 || !e.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "sha256 {:?} is not 64 hexadecimal digits",
            e.sha256
        ));
    }
    let scheme_ok = ["file://", "http://", "https://"]
        .iter()
        .any(|s| e.url.starts_with(s));
    if !scheme_ok {
        return Err(format!(
            "url {:?} must start with file://, http:// or https://",
            e.url
        ));
    }
    Ok(())
}

/// Keys are short, path-safe names: they appear in recipes, logs and error messages.
pub fn valid_key(key: &str) -> Result<(), String> {
    let ok = !key.is_empty()
        && key.len() <= 128
        && key.as_bytes()[0].is_ascii_alphanumeric()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "key {key:?} must start with a letter or digit and use only letters, digits, '.', '_', '+', '-'"
        ))
    }
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
            size: Some(42),
            arch: Arch::Armv6l,
            replaces: Some("amd64 toolchain".into()),
        }
    }

    #[test]
    fn round_trips_sorted_and_deterministic() {
        let mut lock = Lock::empty("blobs.lock");
        lock.insert(entry("zeta")).unwrap();
        lock.insert(entry("alpha")).unwrap();
        let text = lock.to_yaml();
        assert!(text.find("alpha:").unwrap() < text.find("zeta:").unwrap());
        let again = Lock::parse(&text, "blobs.lock").unwrap();
        assert_eq!(again.to_yaml(), text);
        assert_eq!(again.get("alpha").unwrap(), &entry("alpha"));
    }

    #[test]
    fn null_size_is_accepted() {
        let text = format!(
            "blobs:\n  go:\n    url: https://go.dev/x.tar.gz\n    sha256: {SHA}\n    size: null\n    arch: arm64\n"
        );
        let lock = Lock::parse(&text, "l").unwrap();
        assert_eq!(lock.get("go").unwrap().size, None);
        assert!(lock.to_yaml().contains("size: null"));
    }

    #[test]
    fn unknown_field_is_an_error_naming_the_file() {
        let text = format!(
            "blobs:\n  go:\n    url: https://go.dev/x\n    sha256: {SHA}\n    size: 1\n    arch: arm64\n    colour: red\n"
        );
        let err = Lock::parse(&text, "my.lock").unwrap_err().to_string();
        assert!(err.contains("my.lock") && err.contains("colour"), "{err}");
    }

    #[test]
    fn bad_sha_names_the_key() {
        let text = "blobs:\n  go:\n    url: https://go.dev/x\n    sha256: abc\n    size: 1\n    arch: arm64\n";
        let err = Lock::parse(text, "l").unwrap_err().to_string();
        assert!(err.contains("\"go\"") && err.contains("sha256"), "{err}");
    }

    #[test]
    fn bad_key_and_url_are_rejected() {
        let mut lock = Lock::empty("l");
        let mut e = entry("../evil");
        assert!(lock.insert(e.clone()).is_err());
        e.key = "ok".into();
        e.url = "ftp://x".into();
        let err = lock.insert(e).unwrap_err().to_string();
        assert!(err.contains("url"), "{err}");
    }

    #[test]
    fn unknown_key_error() {
        let lock = Lock::empty("blobs.lock");
        let err = lock.get("nope").unwrap_err().to_string();
        assert!(
            err.contains("\"nope\"") && err.contains("blobs.lock"),
            "{err}"
        );
    }

    #[test]
    fn shipped_lock_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../blobs.lock");
        let lock = Lock::load(&path).unwrap();
        let armv6l = lock.get("go-1.25.4-linux-armv6l").unwrap();
        assert_eq!(armv6l.arch, Arch::Armv6l);
        assert_eq!(armv6l.sha256, SHA);
        assert_eq!(
            Lock::parse(&lock.to_yaml(), "x").unwrap().to_yaml(),
            lock.to_yaml()
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), lock.to_yaml());
    }
}
