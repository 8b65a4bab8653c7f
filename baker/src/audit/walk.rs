//! Streams every file of a directory tree or archive (recursing into nested archives) past
//! a sink, without extracting anything to disk. Only files that start with the ELF magic are
//! buffered, and only up to a cap; everything else is skipped as it streams by.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use super::elf::ELF_MAGIC;
use crate::archive;

/// Nested archives deeper than this are reported instead of opened.
const MAX_DEPTH: usize = 8;

/// Receives what the walk finds.
pub trait Sink {
    /// A regular file's first bytes (≤ `cap` + 1 when it is an ELF, ≤ 4 otherwise).
    fn file(&mut self, path: &str, head: &[u8], is_elf: bool, truncated: bool);
    /// A nested archive was opened.
    fn archive(&mut self, path: &str);
    /// Something could not be read (corrupt, truncated, unsafe); the walk goes on.
    fn unreadable(&mut self, path: &str, why: String);
    /// Something was deliberately not opened (unsupported compression, nesting depth).
    fn skipped(&mut self, path: &str, why: String);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    TarGz,
    TarXz,
    TarBz2,
    Tar,
    Zip,
    /// `ar`: static libraries (`.a`) and Debian packages (`.deb`).
    Ar,
    /// One compressed file (`busybox.gz`): its content is visited as `x.gz!/x`.
    Gz,
    Xz,
    Unsupported(&'static str),
    Plain,
}

fn kind_of(name: &str) -> Kind {
    let n = name.to_ascii_lowercase();
    if n.ends_with(".tgz") || n.ends_with(".tar.gz") {
        Kind::TarGz
    } else if n.ends_with(".tar.xz") || n.ends_with(".txz") {
        Kind::TarXz
    } else if n.ends_with(".tar") {
        Kind::Tar
    } else if n.ends_with(".zip") {
        Kind::Zip
    } else if n.ends_with(".a") || n.ends_with(".deb") {
        Kind::Ar
    } else if n.ends_with(".gz") {
        Kind::Gz
    } else if n.ends_with(".xz") {
        Kind::Xz
    } else if n.ends_with(".tar.bz2") || n.ends_with(".tbz2") || n.ends_with(".tbz") {
        Kind::TarBz2
    } else if n.ends_with(".tar.zst") || n.ends_with(".tzst") {
        Kind::Unsupported("zstd")
    } else {
        Kind::Plain
    }
}

enum Unread {
    Broken(String),
    Unsupported(String),
}

pub struct Walker<'a, S: Sink> {
    pub sink: &'a mut S,
    /// Largest ELF file buffered whole.
    pub cap: u64,
}

impl<S: Sink> Walker<'_, S> {
    /// Walks one file on disk. A top-level archive's entries are shown without a prefix;
    /// a file found in a directory tree is shown as `name` (and its members as `name!/…`).
    pub fn walk_file(&mut self, name: &str, path: &Path, top_level: bool) {
        let mut f = match File::open(path) {
            Ok(f) => BufReader::new(f),
            Err(e) => return self.sink.unreadable(name, e.to_string()),
        };
        match kind_of(name) {
            Kind::Plain | Kind::Unsupported(_) => self.visit(name, &mut f, 0),
            k if top_level => self.open_archive(k, "", name, &mut f, 0),
            _ => self.visit(name, &mut f, 0),
        }
    }

    fn visit(&mut self, path: &str, r: &mut dyn Read, depth: usize) {
        match kind_of(path) {
            Kind::Plain => self.plain(path, r),
            Kind::Unsupported(what) => self
                .sink
                .skipped(path, format!("{what}-compressed archive not inspected")),
            _ if depth >= MAX_DEPTH => self.sink.skipped(
                path,
                format!("archive nested deeper than {MAX_DEPTH}: not inspected"),
            ),
            k => {
                self.sink.archive(path);
                self.open_archive(k, &format!("{path}!/"), path, r, depth + 1);
            }
        }
    }

    fn open_archive(
        &mut self,
        kind: Kind,
        prefix: &str,
        label: &str,
        r: &mut dyn Read,
        depth: usize,
    ) {
        let res: Result<(), Unread> = match kind {
            // open_maybe_gzip undoes gzip when the stream starts with its magic.
            Kind::TarGz | Kind::Tar => self.tar(prefix, BufReader::new(&mut *r), depth),
            Kind::TarXz => {
                let xz = liblzma::read::XzDecoder::new(&mut *r);
                self.tar(prefix, BufReader::new(xz), depth)
            }
            // BOSH releases carry autotools sources as .tar.bz2 (libmnl in garden-runc).
            Kind::TarBz2 => {
                let bz = bzip2::read::MultiBzDecoder::new(&mut *r);
                self.tar(prefix, BufReader::new(bz), depth)
            }
            Kind::Zip => self.zip(prefix, &mut *r, depth),
            Kind::Ar => self.ar(prefix, &mut *r, depth),
            Kind::Gz | Kind::Xz => {
                let base = label.rsplit(['/', '!']).next().unwrap_or(label);
                let stem = base.rsplit_once('.').map_or(base, |(s, _)| s);
                let path = format!("{prefix}{stem}");
                let mut r = BufReader::new(&mut *r);
                let magic: &[u8] = if kind == Kind::Gz {
                    &[0x1f, 0x8b]
                } else {
                    &[0xfd, b'7', b'z', b'X', b'Z', 0]
                };
                match r.fill_buf() {
                    // Only the name says "compressed": dpkg names alternatives after their
                    // link (`var/lib/dpkg/alternatives/builtins.7.gz` is text). Its bytes
                    // are still inspected, as a plain file.
                    Ok(head) if !head.starts_with(magic) => self.plain(label, &mut r),
                    Ok(_) if kind == Kind::Gz => {
                        self.visit(&path, &mut flate2::read::MultiGzDecoder::new(&mut r), depth);
                    }
                    Ok(_) => {
                        self.visit(&path, &mut liblzma::read::XzDecoder::new(&mut r), depth);
                    }
                    Err(e) => self.sink.unreadable(label, e.to_string()),
                }
                Ok(())
            }
            Kind::Plain | Kind::Unsupported(_) => Ok(()),
        };
        match res {
            Ok(()) => {}
            Err(Unread::Broken(e)) => self.sink.unreadable(label, e),
            Err(Unread::Unsupported(e)) => self.sink.skipped(label, e),
        }
        // Drain what a reader stopped early left behind, so that an outer tar stays aligned.
        let _ = io::copy(r, &mut io::sink());
    }

    /// Reads with `archive::scan`, not `archive::walk`: the audit never writes anything, so
    /// it must see through archives an extractor rightly refuses (root-file-system layers with
    /// absolute symlinks or device nodes) instead of giving up on all the code inside them.
    fn tar(&mut self, prefix: &str, r: impl BufRead, depth: usize) -> Result<(), Unread> {
        archive::scan(r, |name, data| {
            self.visit(&format!("{prefix}{name}"), data, depth);
        })
        .map_err(|e| Unread::Broken(format!("tar: {e}")))
    }

    fn zip(&mut self, prefix: &str, r: &mut dyn Read, depth: usize) -> Result<(), Unread> {
        let mut r = r;
        loop {
            match zip::read::read_zipfile_from_stream(&mut r) {
                Ok(Some(mut f)) => {
                    if !f.is_file() {
                        continue;
                    }
                    let name = match f.name() {
                        Ok(n) => n.into_owned(),
                        Err(_) => String::from_utf8_lossy(f.name_raw()).into_owned(),
                    };
                    let path = format!("{prefix}{name}");
                    self.visit(&path, &mut f, depth);
                }
                Ok(None) => return Ok(()),
                // Zips written by streaming tools (Go's archive/zip among them) record sizes
                // after the data; a forward-only reader cannot find the end of such entries.
                Err(e @ zip::result::ZipError::UnsupportedArchive(_)) => {
                    return Err(Unread::Unsupported(format!("zip: {e}: not inspected")));
                }
                Err(e) => return Err(Unread::Broken(format!("zip: {e}"))),
            }
        }
    }

    /// The common `ar` format: `!<arch>\n`, then per member a 60-byte header (name, …, decimal
    /// size) and the data padded to an even length. GNU keeps long names in the `//` member
    /// and refers to them as `/<offset>`; BSD writes `#1/<len>` and puts the name before the data.
    fn ar(&mut self, prefix: &str, r: &mut dyn Read, depth: usize) -> Result<(), Unread> {
        let broken = |m: String| Unread::Broken(format!("ar: {m}"));
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)
            .map_err(|e| broken(e.to_string()))?;
        if &magic != b"!<arch>\n" {
            return Err(broken("bad magic".into()));
        }
        let mut long_names = Vec::new();
        loop {
            let mut hdr = [0u8; 60];
            let n = read_full(r, &mut hdr).map_err(|e| broken(e.to_string()))?;
            if n == 0 {
                return Ok(());
            }
            if n < 60 || &hdr[58..60] != b"`\n" {
                return Err(broken("truncated or malformed member header".into()));
            }
            let field = |a: usize, b: usize| String::from_utf8_lossy(&hdr[a..b]).trim().to_string();
            let raw_name = field(0, 16);
            let size: u64 = field(48, 58)
                .parse()
                .map_err(|_| broken(format!("member {raw_name:?}: bad size")))?;
            let mut data = (&mut *r).take(size);
            let name = if raw_name == "/" || raw_name == "/SYM64/" || raw_name == "__.SYMDEF" {
                None
            } else if raw_name == "//" {
                long_names.clear();
                data.read_to_end(&mut long_names)
                    .map_err(|e| broken(e.to_string()))?;
                None
            } else if let Some(off) = raw_name.strip_prefix('/') {
                let off: usize = off
                    .parse()
                    .map_err(|_| broken(format!("bad long-name reference {raw_name:?}")))?;
                let rest = long_names.get(off..).unwrap_or_default();
                let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
                let name = String::from_utf8_lossy(&rest[..end]);
                Some(name.trim_end_matches('/').to_string())
            } else if let Some(len) = raw_name.strip_prefix("#1/") {
                let len: u64 = len
                    .parse()
                    .map_err(|_| broken(format!("bad BSD name {raw_name:?}")))?;
                let mut name = Vec::new();
                (&mut data)
                    .take(len)
                    .read_to_end(&mut name)
                    .map_err(|e| broken(e.to_string()))?;
                Some(
                    String::from_utf8_lossy(&name)
                        .trim_end_matches('\0')
                        .to_string(),
                )
            } else {
                Some(raw_name.trim_end_matches('/').to_string())
            };
            if let Some(name) = name {
                self.visit(&format!("{prefix}{name}"), &mut data, depth);
            }
            io::copy(&mut data, &mut io::sink()).map_err(|e| broken(e.to_string()))?;
            if data.limit() > 0 {
                return Err(broken("archive ends inside a member".into()));
            }
            if size % 2 == 1 {
                let mut pad = [0u8; 1];
                read_full(r, &mut pad).map_err(|e| broken(e.to_string()))?;
            }
        }
    }

    fn plain(&mut self, path: &str, r: &mut dyn Read) {
        let mut head = Vec::with_capacity(4);
        if let Err(e) = r.take(4).read_to_end(&mut head) {
            self.sink.unreadable(path, e.to_string());
            return;
        }
        if head.as_slice() != ELF_MAGIC {
            self.sink.file(path, &head, false, false);
            return;
        }
        if let Err(e) = r.take(self.cap - 4 + 1).read_to_end(&mut head) {
            self.sink.unreadable(path, e.to_string());
            return;
        }
        let truncated = head.len() as u64 > self.cap;
        self.sink.file(path, &head, true, truncated);
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
