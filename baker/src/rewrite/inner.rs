//! A rebuilt package archive, written from re-readable sources into any writer: laid out as
//! `tar -czf OUT -C STAGING .` would (a `./` root, `./`-prefixed names, every intermediate
//! directory), deterministically (sorted, fixed owner and mtime, fast gzip level). A file
//! that is compressed already (a `.tar.gz` blob) goes in stored, not deflated again.
//!
//! The outer tar needs an entry's size before its bytes, so a rebuilt package is written
//! twice from the same sources: once into a counting sink (size and digests), once into the
//! output. Writing twice costs less than spooling the package to disk and reading it back,
//! the more so as its big files are mostly stored.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::Path;

use flate2::Compression;

use crate::archive::{GzWriter, Mode, SAMPLE, TarWriter, incompressible};
use crate::release::digest::{Algo, Digests, Hasher, HashingReader, HashingWriter};
use crate::release::fingerprint::{FileDigest, FileMode};

/// Where one file's bytes come from; every source can be read again.
pub(super) enum Src<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
    Symlink(&'a str),
}

/// One file of the package; `name` has no `./` prefix. Sorted by name by the caller.
pub(super) struct InnerRef<'a> {
    pub name: &'a str,
    pub mode: Mode,
    pub src: Src<'a>,
}

/// What writing produced: the archive's digests and length, and each file's digests.
pub(super) struct Written {
    pub digests: Digests,
    pub size: u64,
    pub files: Vec<FileDigest>,
}

/// Writes the archive into `out`, digesting the archive with `archive_algos` and each file
/// with `algos`.
pub(super) fn write_inner<W: Write>(
    out: W,
    files: &[InnerRef<'_>],
    (archive_algos, algos): (&[Algo], &[Algo]),
) -> io::Result<Written> {
    let out = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, out), archive_algos);
    let mut tgz = TarWriter::plain(GzWriter::new(out, Compression::fast())?);
    tgz.add_dir("./")?;
    let mut dirs: BTreeSet<&str> = BTreeSet::new();
    let mut digests = Vec::with_capacity(files.len());
    for f in files {
        for (i, _) in f.name.match_indices('/') {
            let parent = &f.name[..i];
            if dirs.insert(parent) {
                tgz.add_dir(&format!("./{parent}/"))?;
            }
        }
        let name = format!("./{}", f.name);
        let (mode, sums) = match f.src {
            Src::Symlink(target) => {
                tgz.add_symlink(&name, target)?;
                let d = Hasher::new(algos).read_all(target.as_bytes())?;
                (FileMode::Symlink, d)
            }
            Src::Bytes(b) => {
                let stored = is_compressed(b.len() as u64, b)?;
                let mut r = HashingReader::new(b, algos);
                add_file(&mut tgz, &name, f.mode, b.len() as u64, stored, &mut r)?;
                (FileMode::from_bits(f.mode.bits()), r.hasher.finish())
            }
            Src::File(p) => {
                let named =
                    |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", p.display()));
                let mut file = File::open(p).map_err(named)?;
                let len = file.metadata().map_err(named)?.len();
                let stored = is_compressed(len, &mut file).map_err(named)?;
                file.rewind().map_err(named)?;
                let mut r = HashingReader::new(io::BufReader::with_capacity(1 << 20, file), algos);
                add_file(&mut tgz, &name, f.mode, len, stored, &mut r)?;
                (FileMode::from_bits(f.mode.bits()), r.hasher.finish())
            }
        };
        digests.push(FileDigest {
            name: f.name.to_string(),
            mode,
            digests: sums,
        });
    }
    let mut out = tgz.finish_tar()?.finish()?;
    out.flush()?;
    Ok(Written {
        digests: out.hasher.finish(),
        size: out.count,
        files: digests,
    })
}

/// Whether a file of `len` bytes starting with `head` is compressed already; small files
/// are always deflated.
fn is_compressed(len: u64, head: impl Read) -> io::Result<bool> {
    if len < SAMPLE as u64 {
        return Ok(false);
    }
    let mut sample = Vec::with_capacity(SAMPLE);
    head.take(SAMPLE as u64).read_to_end(&mut sample)?;
    Ok(incompressible(&sample))
}

/// A regular file of `len` bytes from `r`, stored or deflated.
fn add_file<W: Write>(
    tgz: &mut TarWriter<GzWriter<W>>,
    name: &str,
    mode: Mode,
    len: u64,
    stored: bool,
    r: &mut impl Read,
) -> io::Result<()> {
    if !stored {
        return tgz.add_reader(name, mode, len, r);
    }
    let mut data = tgz.start_file(name, mode, len)?;
    data.get_mut().store(true)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut r = r.take(len);
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => data.write_all(&buf[..n])?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    data.get_mut().store(false)?;
    data.finish()
}
