//! Writes a release tarball in bosh-cli's layout, deterministically: `release.MF`, then
//! `jobs/`, `packages/`, `compiled_packages/` (each sorted), `license.tgz` and the top-level
//! license files. Inner archives are copied byte for byte.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;

use crate::archive::{Mode, TarGzWriter};

use super::Manifest;
use super::digest::{Algo, Digests, Hasher, HashingReader, HashingWriter};
use super::fingerprint::{FileDigest, FileMode};

/// The parts of a release to write.
pub struct Parts<'a> {
    pub manifest: &'a Manifest,
    /// Archive path in the tarball (`packages/x.tgz`) → file holding its bytes.
    pub archives: &'a BTreeMap<String, PathBuf>,
    /// Top-level `LICENSE*` / `NOTICE*` files.
    pub top_files: &'a [(String, Vec<u8>)],
}

/// Writes the tarball to `out`. The payload is mostly compressed archives already, so a
/// fast level costs little size.
pub fn write<W: Write>(out: W, parts: &Parts<'_>, level: Compression) -> io::Result<W> {
    let mut tgz = TarGzWriter::with_level(out, level);
    tgz.add_bytes(
        "release.MF",
        Mode::Regular,
        parts.manifest.to_yaml().as_bytes(),
    )?;
    for dir in ["jobs", "packages", "compiled_packages"] {
        let prefix = format!("{dir}/");
        let mut members = parts
            .archives
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .peekable();
        if members.peek().is_none() {
            continue;
        }
        tgz.add_dir(dir)?;
        for (name, path) in members {
            tgz.add_path_as(name, path, Mode::Regular)?;
        }
    }
    if let Some(path) = parts.archives.get("license.tgz") {
        tgz.add_path_as("license.tgz", path, Mode::Regular)?;
    }
    let mut top: Vec<_> = parts.top_files.iter().collect();
    top.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, bytes) in top {
        tgz.add_bytes(name, Mode::Regular, bytes)?;
    }
    tgz.finish()
}

/// Where an inner file's bytes come from.
pub enum Content {
    Bytes(Vec<u8>),
    File(PathBuf),
    /// A stream of exactly this many bytes.
    Reader(Box<dyn io::Read + Send>, u64),
    /// A symbolic link to this target.
    Symlink(String),
}

/// One file of a job, package or license archive; `name` has no `./` prefix.
pub struct InnerFile {
    pub name: String,
    pub mode: Mode,
    pub content: Content,
}

/// A freshly built inner archive: digests of its compressed bytes and of each file.
pub struct Built {
    pub digests: Digests,
    pub files: Vec<FileDigest>,
}

/// Builds an inner archive at `dest` as `tar -czf OUT -C STAGING .` would lay it out (a
/// `./` root, `./`-prefixed names, an entry for every intermediate directory), but
/// deterministically: sorted by name, fixed owner and mtime. `algos` are the digests wanted
/// for the archive and for each file.
pub fn build_inner(dest: &Path, mut files: Vec<InnerFile>, algos: &[Algo]) -> io::Result<Built> {
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let out = HashingWriter::new(
        io::BufWriter::with_capacity(1 << 20, File::create(dest)?),
        algos,
    );
    // Package payloads are mostly compressed tarballs already: a fast level loses little.
    let mut tgz = TarGzWriter::with_level(out, Compression::fast());
    tgz.add_dir("./")?;
    let mut dirs: BTreeSet<String> = BTreeSet::new();
    let mut digests = Vec::with_capacity(files.len());
    for f in files {
        let mut parent = String::new();
        for part in f
            .name
            .split('/')
            .rev()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            parent = if parent.is_empty() {
                part.to_string()
            } else {
                format!("{parent}/{part}")
            };
            if dirs.insert(parent.clone()) {
                tgz.add_dir(&format!("./{parent}/"))?;
            }
        }
        if let Content::Symlink(target) = &f.content {
            tgz.add_symlink(&format!("./{}", f.name), target)?;
            digests.push(FileDigest {
                name: f.name,
                mode: FileMode::Symlink,
                digests: Hasher::new(algos).read_all(target.as_bytes())?,
            });
            continue;
        }
        let (reader, size): (Box<dyn io::Read>, u64) = match f.content {
            Content::Symlink(_) => unreachable!("handled above"),
            Content::Bytes(b) => {
                let n = b.len() as u64;
                (Box::new(io::Cursor::new(b)), n)
            }
            Content::File(p) => {
                let file = File::open(&p)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
                let n = file.metadata()?.len();
                (Box::new(file), n)
            }
            Content::Reader(r, n) => (r, n),
        };
        let mut hashing = HashingReader::new(reader, algos);
        tgz.add_reader(&format!("./{}", f.name), f.mode, size, &mut hashing)?;
        digests.push(FileDigest {
            name: f.name,
            mode: FileMode::from_bits(f.mode.bits()),
            digests: hashing.hasher.finish(),
        });
    }
    let out = tgz.finish()?;
    let mut inner = out.inner;
    inner.flush()?;
    Ok(Built {
        digests: out.hasher.finish(),
        files: digests,
    })
}
