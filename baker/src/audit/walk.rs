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
    /// Something could not be read; the walk goes on with the next file.
    fn unreadable(&mut self, path: &str, why: String);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    TarGz,
    TarXz,
    Tar,
    Zip,
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
    } else if n.ends_with(".tar.bz2") || n.ends_with(".tbz2") || n.ends_with(".tbz") {
        Kind::Unsupported("bzip2")
    } else if n.ends_with(".tar.zst") || n.ends_with(".tzst") {
        Kind::Unsupported("zstd")
    } else {
        Kind::Plain
    }
}

pub struct Walker<'a, S: Sink> {
    pub sink: &'a mut S,
    /// Largest ELF file buffered whole.
    pub cap: u64,
}

impl<S: Sink> Walker<'_, S> {
    /// Walks a directory tree, an archive file, or a single file.
    pub fn walk_path(&mut self, root: &Path) -> io::Result<()> {
        let meta = std::fs::metadata(root)?;
        if meta.is_dir() {
            for entry in walkdir::WalkDir::new(root)
                .follow_links(false)
                .sort_by_file_name()
            {
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        let p = e
                            .path()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default();
                        self.sink.unreadable(&p, e.to_string());
                        continue;
                    }
                };
                if !entry.file_type().is_file() {
                    continue;
                }
                let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
                let rel = rel.to_string_lossy().into_owned();
                match File::open(entry.path()) {
                    Ok(f) => self.visit(&rel, &mut BufReader::new(f), 0),
                    Err(e) => self.sink.unreadable(&rel, e.to_string()),
                }
            }
            return Ok(());
        }
        let name = root.to_string_lossy().into_owned();
        let mut f = BufReader::new(File::open(root)?);
        match kind_of(&name) {
            // The top-level archive's entries are shown without a prefix.
            Kind::Plain | Kind::Unsupported(_) => self.visit(&name, &mut f, 0),
            k => self.open_archive(k, "", &name, &mut f, 0),
        }
        Ok(())
    }

    fn visit(&mut self, path: &str, r: &mut dyn Read, depth: usize) {
        match kind_of(path) {
            Kind::Plain => self.plain(path, r),
            Kind::Unsupported(what) => self
                .sink
                .unreadable(path, format!("{what}-compressed archive not inspected")),
            _ if depth >= MAX_DEPTH => self
                .sink
                .unreadable(path, format!("archives nested deeper than {MAX_DEPTH}")),
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
        let res = match kind {
            // archive::walk undoes gzip itself when the stream starts with its magic.
            Kind::TarGz | Kind::Tar => self.tar(prefix, label, BufReader::new(&mut *r), depth),
            Kind::TarXz => {
                let xz = liblzma::read::XzDecoder::new(&mut *r);
                self.tar(prefix, label, BufReader::new(xz), depth)
            }
            Kind::Zip => self.zip(prefix, &mut *r, depth),
            Kind::Plain | Kind::Unsupported(_) => Ok(()),
        };
        if let Err(e) = res {
            self.sink.unreadable(label, e);
        }
        // Drain what a reader stopped early left behind, so that an outer tar stays aligned.
        let _ = io::copy(r, &mut io::sink());
    }

    fn tar(
        &mut self,
        prefix: &str,
        label: &str,
        r: impl BufRead,
        depth: usize,
    ) -> Result<(), String> {
        archive::walk(r, label, |e: &mut archive::Entry<'_>| {
            if e.kind == archive::EntryKind::File {
                let path = format!("{prefix}{}", e.name);
                self.visit(&path, e, depth);
            }
            Ok::<(), archive::ArchiveError>(())
        })
        .map_err(|e| e.to_string())
    }

    fn zip(&mut self, prefix: &str, r: &mut dyn Read, depth: usize) -> Result<(), String> {
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
                Err(e) => return Err(format!("zip: {e}")),
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
