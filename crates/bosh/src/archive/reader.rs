//! Safe streaming tar reader: gzip is detected from the magic bytes, every entry name is
//! validated before the caller sees it, and an entry whose size runs past the end of the
//! archive is reported by name.

use std::cell::Cell;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use flate2::bufread::GzDecoder;
use tar::EntryType;

use super::ArchiveError;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    /// Target exactly as stored.
    Symlink(String),
    /// Normalised name of the entry linked to.
    Hardlink(String),
}

/// One validated entry. `name` is normalised: no `./` prefix, no trailing `/`; the root
/// directory entry (`./`) has the empty name. Read the content through [`Read`].
pub struct Entry<'a> {
    pub name: String,
    pub kind: EntryKind,
    pub mode: u32,
    pub size: u64,
    data: &'a mut dyn Read,
    read: u64,
    archive: &'a str,
    gz_failed: Rc<Cell<bool>>,
}

impl Entry<'_> {
    /// Turns an I/O error met while reading this entry's data into an error naming the
    /// archive and the entry.
    pub fn error(&self, e: io::Error) -> ArchiveError {
        if self.gz_failed.get() {
            ArchiveError::Gzip {
                archive: self.archive.to_string(),
                at: Some(format!("in entry {}", self.name)),
                detail: one_line(&e.to_string()),
            }
        } else {
            ArchiveError::Tar {
                archive: self.archive.to_string(),
                at: Some(format!("in entry {}", self.name)),
                detail: one_line(&e.to_string()),
            }
        }
    }
}

impl Read for Entry<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.data.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// A reader that undoes gzip if the stream starts with the gzip magic; anything else is
/// passed through. Also reports whether the gzip layer ever failed.
pub struct MaybeGzip<R: BufRead> {
    inner: Inner<R>,
    failed: Rc<Cell<bool>>,
}

enum Inner<R: BufRead> {
    Plain(R),
    Gzip(Box<GzDecoder<R>>),
}

impl<R: BufRead> Read for MaybeGzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(r) => r.read(buf),
            Inner::Gzip(r) => r.read(buf).inspect_err(|_| self.failed.set(true)),
        }
    }
}

/// Wraps `input`, inflating it if it is gzip.
pub fn open_maybe_gzip<R: BufRead>(mut input: R) -> io::Result<MaybeGzip<R>> {
    let gz = input.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let inner = if gz {
        // A single member is what tar -z and bosh-cli write; trailing bytes are not read.
        Inner::Gzip(Box::new(GzDecoder::new(input)))
    } else {
        Inner::Plain(input)
    };
    Ok(MaybeGzip {
        inner,
        failed: Rc::new(Cell::new(false)),
    })
}

/// Walks the archive at `path`; errors name it by `label`.
pub fn walk_path<E, F>(path: &Path, label: &str, f: F) -> Result<(), E>
where
    E: From<ArchiveError>,
    F: FnMut(&mut Entry<'_>) -> Result<(), E>,
{
    let file = File::open(path).map_err(|error| ArchiveError::Io {
        archive: label.to_string(),
        error,
    })?;
    walk(BufReader::with_capacity(1 << 16, file), label, f)
}

/// Streams every entry of a tar (or tar.gz) to `f`, in archive order. Unread entry data is
/// skipped; the whole stream, including the gzip trailer, is read to the end so that
/// truncation and corruption are detected.
pub fn walk<R, E, F>(input: R, label: &str, mut f: F) -> Result<(), E>
where
    R: BufRead,
    E: From<ArchiveError>,
    F: FnMut(&mut Entry<'_>) -> Result<(), E>,
{
    let stream = open_maybe_gzip(input).map_err(|error| ArchiveError::Io {
        archive: label.to_string(),
        error,
    })?;
    let gz_failed = stream.failed.clone();
    let mut archive = tar::Archive::new(stream);
    let mut state = State {
        label,
        last: None,
        gz_failed,
        seen: HashSet::new(),
        symlinks: HashSet::new(),
    };
    let entries = archive.entries().map_err(|e| state.tar_error(e))?;
    for raw in entries {
        let mut raw = raw.map_err(|e| state.tar_error(e))?;
        let Some((name, kind)) = state.validate(&raw)? else {
            continue;
        };
        let size = raw.header().entry_size().map_err(|e| state.tar_error(e))?;
        let mode = raw.header().mode().unwrap_or(0o644);
        let mut entry = Entry {
            name,
            kind,
            mode,
            size,
            data: &mut raw,
            read: 0,
            archive: label,
            gz_failed: state.gz_failed.clone(),
        };
        f(&mut entry)?;
        io::copy(&mut entry, &mut io::sink()).map_err(|e| entry.error(e))?;
        if entry.read != size && entry.kind == EntryKind::File {
            return Err(ArchiveError::Truncated {
                archive: label.to_string(),
                entry: entry.name,
                claimed: size,
                found: entry.read,
            }
            .into());
        }
        state.last = Some(entry.name);
    }
    // Reach the gzip trailer: it carries the CRC and the length.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| state.tar_error(e))?;
    Ok(())
}

/// Every regular file of a tar (or tar.gz) stream, by its stored name with any leading `./`
/// or `/` removed, **without** [`walk`]'s path-safety checks: for read-only inspection of what
/// an archive carries (the ELF audit must see the code inside root-file-system layers that an
/// extractor rightly refuses: absolute symlinks, device nodes). Never use it to write files.
pub fn scan<R: BufRead>(input: R, mut f: impl FnMut(&str, &mut dyn Read)) -> io::Result<()> {
    let mut archive = tar::Archive::new(open_maybe_gzip(input)?);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw);
        f(
            name.trim_start_matches("./").trim_start_matches('/'),
            &mut entry,
        );
    }
    Ok(())
}

/// Error texts from the tar layer can quote raw header bytes; keep them to one short line.
fn one_line(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(160)
        .collect();
    if s.chars().count() > 160 {
        out.push('…');
    }
    out
}

struct State<'l> {
    label: &'l str,
    last: Option<String>,
    gz_failed: Rc<Cell<bool>>,
    seen: HashSet<String>,
    symlinks: HashSet<String>,
}

impl State<'_> {
    fn tar_error(&self, e: io::Error) -> ArchiveError {
        let archive = self.label.to_string();
        let at = self.last.as_ref().map(|l| format!("after entry {l}"));
        let detail = one_line(&e.to_string());
        if self.gz_failed.get() {
            ArchiveError::Gzip {
                archive,
                at,
                detail,
            }
        } else if at.is_none() {
            ArchiveError::NotTar {
                archive,
                detail: "the first 512 bytes are not a valid tar header".into(),
            }
        } else {
            ArchiveError::Tar {
                archive,
                at,
                detail,
            }
        }
    }

    fn unsafe_entry(&self, entry: &str, reason: impl Into<String>) -> ArchiveError {
        ArchiveError::Unsafe {
            archive: self.label.to_string(),
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }

    /// Checks an entry; `None` for metadata entries the caller never needs to see.
    fn validate<R: Read>(
        &mut self,
        raw: &tar::Entry<'_, R>,
    ) -> Result<Option<(String, EntryKind)>, ArchiveError> {
        let bytes = raw.path_bytes();
        let shown = String::from_utf8_lossy(&bytes).into_owned();
        let etype = raw.header().entry_type();
        if matches!(etype, EntryType::XGlobalHeader | EntryType::XHeader) {
            return Ok(None);
        }
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| self.unsafe_entry(&shown, "name is not UTF-8"))?;
        let name = self.normalise(text, &shown)?;
        let kind = match etype {
            EntryType::Regular | EntryType::Continuous => EntryKind::File,
            EntryType::Directory => EntryKind::Dir,
            EntryType::Symlink => {
                let target = self.link_target(raw, &shown)?;
                self.check_symlink(&name, &target, &shown)?;
                EntryKind::Symlink(target)
            }
            EntryType::Link => {
                let target = self.link_target(raw, &shown)?;
                let target = self.normalise(&target, &shown).map_err(|_| {
                    self.unsafe_entry(
                        &shown,
                        format!("hardlink target {target} escapes the archive"),
                    )
                })?;
                if !self.seen.contains(&target) {
                    return Err(self.unsafe_entry(
                        &shown,
                        format!("hardlink target {target} is not an earlier entry"),
                    ));
                }
                EntryKind::Hardlink(target)
            }
            other => {
                return Err(ArchiveError::Unsupported {
                    archive: self.label.to_string(),
                    entry: shown,
                    kind: format!("{other:?}"),
                });
            }
        };
        if name.is_empty() && kind != EntryKind::Dir {
            return Err(self.unsafe_entry(&shown, "empty name"));
        }
        // An entry below a symlink could be written through it.
        let mut prefix = name.as_str();
        while let Some(i) = prefix.rfind('/') {
            prefix = &prefix[..i];
            if self.symlinks.contains(prefix) {
                return Err(
                    self.unsafe_entry(&shown, format!("path goes through symlink {prefix}"))
                );
            }
        }
        if !self.seen.insert(name.clone()) {
            return Err(ArchiveError::Duplicate {
                archive: self.label.to_string(),
                entry: shown,
            });
        }
        if matches!(kind, EntryKind::Symlink(_)) {
            self.symlinks.insert(name.clone());
        }
        Ok(Some((name, kind)))
    }

    fn normalise(&self, name: &str, shown: &str) -> Result<String, ArchiveError> {
        if name.starts_with('/') {
            return Err(self.unsafe_entry(shown, "absolute path"));
        }
        let mut parts = Vec::new();
        for part in name.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(self.unsafe_entry(shown, "path contains `..`")),
                p => parts.push(p),
            }
        }
        Ok(parts.join("/"))
    }

    fn link_target<R: Read>(
        &self,
        raw: &tar::Entry<'_, R>,
        shown: &str,
    ) -> Result<String, ArchiveError> {
        let target = raw
            .link_name_bytes()
            .ok_or_else(|| self.unsafe_entry(shown, "link without a target"))?;
        String::from_utf8(target.into_owned())
            .map_err(|_| self.unsafe_entry(shown, "link target is not UTF-8"))
    }

    fn check_symlink(&self, name: &str, target: &str, shown: &str) -> Result<(), ArchiveError> {
        let escapes = || {
            self.unsafe_entry(
                shown,
                format!("symlink target {target} escapes the archive"),
            )
        };
        if target.starts_with('/') || target.is_empty() {
            return Err(escapes());
        }
        let mut depth = name.split('/').count() as i64 - 1;
        for part in target.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    depth -= 1;
                    if depth < 0 {
                        return Err(escapes());
                    }
                }
                _ => depth += 1,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{Mode, TarGzWriter, TarWriter};

    fn names(bytes: &[u8]) -> Result<Vec<(String, EntryKind, Vec<u8>)>, ArchiveError> {
        let mut out = Vec::new();
        walk(bytes, "t.tgz", |e: &mut Entry<'_>| {
            let mut data = Vec::new();
            e.read_to_end(&mut data).map_err(|err| e.error(err))?;
            out.push((e.name.clone(), e.kind.clone(), data));
            Ok::<(), ArchiveError>(())
        })?;
        Ok(out)
    }

    fn err(bytes: &[u8]) -> String {
        names(bytes).unwrap_err().to_string()
    }

    fn raw_entry(w: &mut Vec<u8>, name: &str, kind: EntryType, link: &str, size: u64) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        w.extend_from_slice(h.as_bytes());
    }

    fn tar_with(build: impl FnOnce(&mut TarWriter<Vec<u8>>)) -> Vec<u8> {
        let mut w = TarWriter::plain(Vec::new());
        build(&mut w);
        w.finish_tar().unwrap()
    }

    #[test]
    fn reads_gzip_and_plain_with_both_name_forms_and_long_names() {
        let long = format!("./{}/f", "x".repeat(120));
        let mut w = TarGzWriter::new(Vec::new());
        w.add_dir("./").unwrap();
        w.add_bytes("./a", Mode::Regular, b"A").unwrap();
        w.add_bytes("b/c", Mode::Executable, b"BC").unwrap();
        w.add_bytes(&long, Mode::Regular, b"L").unwrap();
        w.add_symlink("./b/link", "../a").unwrap();
        let tgz = w.finish().unwrap();
        let got = names(&tgz).unwrap();
        let list: Vec<_> = got.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(list, ["", "a", "b/c", &long[2..], "b/link"]);
        assert_eq!(got[2].2, b"BC");
        assert_eq!(got[4].1, EntryKind::Symlink("../a".into()));

        let plain = tar_with(|w| w.add_bytes("x", Mode::Regular, b"1").unwrap());
        assert_eq!(names(&plain).unwrap()[0].0, "x");
    }

    #[test]
    fn parent_and_absolute_paths_are_refused() {
        let t = tar_with(|w| w.add_bytes("./../evil", Mode::Regular, b"x").unwrap());
        assert_eq!(err(&t), "t.tgz: entry ./../evil: path contains `..`");
        let t = tar_with(|w| w.add_bytes("/etc/passwd", Mode::Regular, b"x").unwrap());
        assert_eq!(err(&t), "t.tgz: entry /etc/passwd: absolute path");
    }

    #[test]
    fn escaping_links_are_refused() {
        let t = tar_with(|w| w.add_symlink("./a/l", "../../etc").unwrap());
        assert!(
            err(&t).contains("entry ./a/l: symlink target ../../etc escapes"),
            "{}",
            err(&t)
        );
        let t = tar_with(|w| w.add_symlink("l", "/etc/passwd").unwrap());
        assert!(err(&t).contains("entry l: symlink target /etc/passwd escapes"));
        let t = tar_with(|w| {
            w.add_symlink("d", ".").unwrap();
            w.add_bytes("d/x", Mode::Regular, b"").unwrap();
        });
        assert!(err(&t).contains("entry d/x: path goes through symlink d"));

        let mut t = Vec::new();
        raw_entry(&mut t, "h", EntryType::Link, "../outside", 0);
        t.extend_from_slice(&[0; 1024]);
        assert!(
            err(&t).contains("entry h: hardlink target ../outside escapes"),
            "{}",
            err(&t)
        );
        let mut t = Vec::new();
        raw_entry(&mut t, "h", EntryType::Link, "/etc/shadow", 0);
        t.extend_from_slice(&[0; 1024]);
        assert!(err(&t).contains("entry h: hardlink target /etc/shadow escapes"));
    }

    #[test]
    fn duplicates_are_refused_whatever_the_prefix() {
        let t = tar_with(|w| {
            w.add_bytes("./a", Mode::Regular, b"1").unwrap();
            w.add_bytes("a", Mode::Regular, b"2").unwrap();
        });
        assert_eq!(err(&t), "t.tgz: entry a appears twice");
    }

    #[test]
    fn a_huge_size_claim_in_a_tiny_file_names_the_entry() {
        let mut t = Vec::new();
        raw_entry(&mut t, "./big", EntryType::Regular, "", 10 << 30);
        t.extend_from_slice(b"only a few bytes");
        assert_eq!(
            err(&t),
            "t.tgz: entry big claims 10737418240 bytes but the archive ends after 16"
        );
        let gz = {
            use std::io::Write;
            let mut e = crate::archive::gzip_encoder(Vec::new(), flate2::Compression::fast());
            e.write_all(&t).unwrap();
            e.finish().unwrap()
        };
        assert!(err(&gz).contains("big"), "{}", err(&gz));
    }

    #[test]
    fn truncated_gzip_and_garbage_are_reported() {
        let mut w = TarGzWriter::new(Vec::new());
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        w.add_bytes("./data", Mode::Regular, &data).unwrap();
        let tgz = w.finish().unwrap();
        let e = err(&tgz[..tgz.len() / 2]);
        assert!(
            e.starts_with("t.tgz: gzip stream is truncated or corrupt"),
            "{e}"
        );
        let e = err(&tgz[..tgz.len() - 4]);
        assert!(
            e.starts_with("t.tgz: gzip stream is truncated or corrupt"),
            "{e}"
        );
        let e = err(&[b'x'; 3000]);
        assert!(e.starts_with("t.tgz: not a tar archive"), "{e}");
    }
}
