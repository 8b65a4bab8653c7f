//! A package some rule may change, read from the chunks the release stream hands over:
//! every file is digested (the input is verified like any other archive), small files are
//! kept in memory, large kept files go to the scratch directory, and a large file that a
//! `replace` or `remove` rule drops is only hashed. The compressed bytes are spooled only
//! while it is not yet certain that the package changes (an unchanged package is copied as
//! it was).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::archive::{self, Entry, EntryKind};
use crate::recipe::release::{Action, CompiledRule};
use crate::release::ArchiveInfo;
use crate::release::digest::{Algo, Hasher, HashingReader};
use crate::release::fingerprint::{FileDigest, FileMode};

use super::{RewriteError, io_err};

/// Files up to this size are kept in memory (within [`MEMORY_BUDGET`]).
const SMALL: u64 = 1 << 20;
const MEMORY_BUDGET: u64 = 32 << 20;
/// A file larger than this cannot be patched, so one a rule drops need not be kept.
pub(super) const MAX_PATCHED_FILE: u64 = 16 << 20;

/// Where a kept file's bytes are.
#[derive(Debug, Clone)]
pub(super) enum Held {
    Memory(Vec<u8>),
    Spooled(PathBuf),
    Symlink(String),
    /// Hashed only: a rule drops it.
    Dropped,
}

pub(super) struct Collected {
    pub info: ArchiveInfo,
    /// By name (no `./`), with the mode as fingerprints see it.
    pub files: BTreeMap<String, (FileMode, Held)>,
    /// The original compressed bytes, when the package might come out unchanged.
    pub original: Option<PathBuf>,
}

/// Reads package archive `archive_path` (`packages/<pkg>.tgz`, `size` bytes) from `input`
/// to the end, telling `seen` each regular file's name as it comes.
pub(super) fn collect(
    input: impl Read,
    (archive_path, size): (String, u64),
    pkg: &str,
    rules: &[CompiledRule],
    algos: (&[Algo], &[Algo]),
    scratch: &Path,
    mut seen: impl FnMut(&str),
) -> Result<Collected, RewriteError> {
    let rules: Vec<&CompiledRule> = rules.iter().filter(|r| r.packages.is_match(pkg)).collect();
    let drops = |name: &str| {
        rules.iter().any(|r| {
            matches!(r.action, Action::Replace(_) | Action::Remove)
                && r.files.as_ref().is_some_and(|g| g.is_match(name))
        })
    };
    let certain = Rc::new(Cell::new(
        rules.iter().any(|r| matches!(r.action, Action::Add(_))),
    ));
    let dir = scratch.join(pkg);
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let original = dir.join(".original.tgz");
    let spool = if certain.get() {
        None
    } else {
        Some(File::create(&original).map_err(io_err(&original))?)
    };
    let tee = Spool {
        inner: input,
        out: spool,
        path: &original,
        certain: certain.clone(),
        failed: None,
    };
    let mut outer = BufReader::with_capacity(1 << 16, HashingReader::new(tee, algos.0));
    let mut files: BTreeMap<String, (FileMode, Held)> = BTreeMap::new();
    let mut digests: Vec<FileDigest> = Vec::new();
    let mut in_memory = 0u64;
    let walked = archive::walk(&mut outer, &archive_path, |f: &mut Entry<'_>| {
        let (mode, held, sums) = match &f.kind {
            EntryKind::Dir => return Ok(()),
            EntryKind::Symlink(t) => {
                let sums = Hasher::new(algos.1).read_all(t.as_bytes()).expect("memory");
                (FileMode::Symlink, Held::Symlink(t.clone()), sums)
            }
            EntryKind::Hardlink(t) => match files.get(t) {
                Some((mode, held)) => {
                    let sums = digests
                        .iter()
                        .find(|d| &d.name == t)
                        .map(|d| d.digests.clone());
                    (*mode, held.clone(), sums.expect("recorded with the file"))
                }
                None => return Ok(()),
            },
            EntryKind::File => {
                seen(&f.name);
                let mode = FileMode::from_bits(f.mode);
                let mut hasher = Hasher::new(algos.1);
                let held = if f.size > MAX_PATCHED_FILE && drops(&f.name) {
                    certain.set(true);
                    io::copy(f, &mut hasher).map_err(|err| f.error(err))?;
                    Held::Dropped
                } else if f.size <= SMALL && in_memory + f.size <= MEMORY_BUDGET {
                    in_memory += f.size;
                    let mut buf = Vec::with_capacity(f.size as usize);
                    f.read_to_end(&mut buf).map_err(|err| f.error(err))?;
                    hasher.update(&buf);
                    Held::Memory(buf)
                } else {
                    let path = dir.join(format!("{}", files.len()));
                    let mut out = io::BufWriter::new(File::create(&path).map_err(io_err(&path))?);
                    let mut r = HashingReader::new(&mut *f, algos.1);
                    io::copy(&mut r, &mut out).map_err(io_err(&path))?;
                    out.flush().map_err(io_err(&path))?;
                    hasher = r.hasher;
                    Held::Spooled(path)
                };
                (mode, held, hasher.finish())
            }
        };
        digests.push(FileDigest {
            name: f.name.clone(),
            mode,
            digests: sums,
        });
        files.insert(f.name.clone(), (mode, held));
        Ok::<(), RewriteError>(())
    });
    let hashing = outer.into_inner();
    if let Some(err) = hashing.inner.failed {
        return Err(err);
    }
    walked?;
    let kept_original = !certain.get();
    if !kept_original {
        let _ = fs::remove_file(&original);
    }
    Ok(Collected {
        info: ArchiveInfo {
            path: archive_path,
            size,
            digests: hashing.hasher.finish(),
            files: Ok(digests),
            spooled: None,
        },
        files,
        original: kept_original.then_some(original),
    })
}

/// Passes the package's compressed bytes through, copying them to a spool file until the
/// package is certain to change.
struct Spool<'a, R> {
    inner: R,
    out: Option<File>,
    path: &'a Path,
    certain: Rc<Cell<bool>>,
    failed: Option<RewriteError>,
}

impl<R: Read> Read for Spool<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.certain.get() {
            self.out = None;
        }
        if let Some(out) = &mut self.out
            && let Err(e) = out.write_all(&buf[..n])
        {
            self.failed = Some(io_err(self.path)(e));
            return Err(io::Error::other("spooling"));
        }
        Ok(n)
    }
}
