//! Content pins for source tarballs: a hash of the unpacked tree, not of the compressed
//! bytes, so the same tree pins the same whether it comes from GitHub's tag archive (whose
//! gzip stream is not guaranteed stable), `git archive` of the tag, or a mirror.
//!
//! The algorithm (docs/blobs.md, like Go's module `h1:` hashes but in hex): take every
//! regular file of the archive, by its path relative to the single top folder; sort by
//! path (byte order); for each write the line `<sha256 hex of content>  <path>\n`; the pin
//! is the lowercase hex sha256 of the concatenated lines. Directories and pax headers do not
//! count; symlinks, hard links and special files are refused unless the entry allows them.

use std::collections::BTreeMap;
use std::io::{self, BufRead};
use std::path::Path;

use crate::archive::{self, ArchiveError, Entry, EntryKind};
use crate::release::digest::{Algo, Hasher};

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(
        "{archive}: {entry}: {what} (only regular files are pinned; allow links in the lock entry if the tree needs them)"
    )]
    Refused {
        archive: String,
        entry: String,
        what: String,
    },
    #[error("{archive}: not a single top folder: {first} and {second}")]
    NotOneFolder {
        archive: String,
        first: String,
        second: String,
    },
    #[error("{archive}: no files")]
    Empty { archive: String },
    #[error("{}: {error}", path.display())]
    Io {
        path: std::path::PathBuf,
        error: io::Error,
    },
}

/// What the tree holds and its pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    pub hash: String,
    pub files: usize,
    /// The single top folder's name.
    pub top: String,
}

/// The content pin of a tar or tar.gz stream. With `allow_links`, symlinks are accepted
/// (hashed as their target text) and hard links count as the file they link to.
pub fn tree_hash(input: impl BufRead, label: &str, allow_links: bool) -> Result<Tree, TreeError> {
    let mut top: Option<String> = None;
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    archive::walk(input, label, |e: &mut Entry<'_>| {
        let (head, rest) = match e.name.split_once('/') {
            Some((h, r)) => (h.to_string(), r.to_string()),
            None if e.kind == EntryKind::Dir => (e.name.clone(), String::new()),
            None if e.name.is_empty() => return Ok(()),
            None => {
                return Err(TreeError::Refused {
                    archive: label.to_string(),
                    entry: e.name.clone(),
                    what: "a file outside the top folder".into(),
                });
            }
        };
        match &top {
            None => top = Some(head.clone()),
            Some(t) if *t != head => {
                return Err(TreeError::NotOneFolder {
                    archive: label.to_string(),
                    first: t.clone(),
                    second: e.name.clone(),
                });
            }
            Some(_) => {}
        }
        let refused = |what: String| TreeError::Refused {
            archive: label.to_string(),
            entry: e.name.clone(),
            what,
        };
        if rest.contains('\n') {
            return Err(refused("a path with a newline".into()));
        }
        let sum = match &e.kind {
            EntryKind::Dir => return Ok(()),
            EntryKind::File => Hasher::new(&[Algo::Sha256])
                .read_all(&mut *e)
                .map_err(|err| e.error(err))?
                .get(Algo::Sha256)
                .expect("asked for")
                .to_string(),
            EntryKind::Symlink(t) if allow_links => {
                Hasher::new(&[Algo::Sha256]).hex_of(t.as_bytes())
            }
            EntryKind::Hardlink(t) if allow_links => {
                let target = t.split_once('/').map_or(t.as_str(), |(_, r)| r);
                match files.get(target) {
                    Some(s) => s.clone(),
                    None => return Err(refused(format!("hard link to {t}, not an earlier file"))),
                }
            }
            EntryKind::Symlink(t) => return Err(refused(format!("a symlink to {t}"))),
            EntryKind::Hardlink(t) => return Err(refused(format!("a hard link to {t}"))),
        };
        files.insert(rest, sum);
        Ok(())
    })?;
    if files.is_empty() {
        return Err(TreeError::Empty {
            archive: label.to_string(),
        });
    }
    let mut h = Hasher::new(&[Algo::Sha256]);
    for (path, sum) in &files {
        h.update(format!("{sum}  {path}\n").as_bytes());
    }
    Ok(Tree {
        hash: h.hex(Algo::Sha256),
        files: files.len(),
        top: top.unwrap_or_default(),
    })
}

/// [`tree_hash`] of a file.
pub fn tree_hash_file(path: &Path, allow_links: bool) -> Result<Tree, TreeError> {
    let f = std::fs::File::open(path).map_err(|error| TreeError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    tree_hash(
        io::BufReader::with_capacity(1 << 16, f),
        &path.display().to_string(),
        allow_links,
    )
}

/// The same pin over an unpacked directory (`dir` is the top folder): for checking a tree
/// after unpacking and before use. Symlinks and special files are refused unless allowed.
pub fn tree_hash_dir(dir: &Path, allow_links: bool) -> Result<String, TreeError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |error| TreeError::Io {
            path: path.clone(),
            error,
        }
    };
    let mut files = BTreeMap::new();
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let entry = entry.map_err(|e| TreeError::Io {
            path: e.path().unwrap_or(dir).to_path_buf(),
            error: e.into(),
        })?;
        let rel = entry
            .path()
            .strip_prefix(dir)
            .expect("below dir")
            .to_string_lossy()
            .into_owned();
        let ft = entry.file_type();
        let refused = |what: &str| TreeError::Refused {
            archive: dir.display().to_string(),
            entry: rel.clone(),
            what: what.to_string(),
        };
        let sum = if ft.is_dir() {
            continue;
        } else if ft.is_file() {
            let mut f = std::fs::File::open(entry.path()).map_err(io_err(entry.path()))?;
            let mut h = Hasher::new(&[Algo::Sha256]);
            io::copy(&mut f, &mut h).map_err(io_err(entry.path()))?;
            h.hex(Algo::Sha256)
        } else if ft.is_symlink() && allow_links {
            let t = std::fs::read_link(entry.path()).map_err(io_err(entry.path()))?;
            Hasher::new(&[Algo::Sha256]).hex_of(t.to_string_lossy().as_bytes())
        } else if ft.is_symlink() {
            return Err(refused("a symlink"));
        } else {
            return Err(refused("a special file"));
        };
        files.insert(rel, sum);
    }
    let mut h = Hasher::new(&[Algo::Sha256]);
    for (path, sum) in &files {
        h.update(format!("{sum}  {path}\n").as_bytes());
    }
    Ok(h.hex(Algo::Sha256))
}

trait HexOf {
    fn hex_of(self, bytes: &[u8]) -> String;
}

impl HexOf for Hasher {
    fn hex_of(mut self, bytes: &[u8]) -> String {
        self.update(bytes);
        self.hex(Algo::Sha256)
    }
}
