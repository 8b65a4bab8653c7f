//! Deterministic tar writing: GNU headers, fixed mtime, uid/gid 0, owner `root`, modes
//! 0644/0755 for files and 0755 for directories, GNU long names, records padded to 10240
//! bytes like GNU tar. Gzip output has a fixed header (mtime 0, OS byte 3).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use tar::{EntryType, Header};

use super::gzip::gzip_encoder;

const BLOCK: u64 = 512;
const RECORD: u64 = 10240;

/// File mode of a regular entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 0644
    Regular,
    /// 0755
    Executable,
}

impl Mode {
    pub fn bits(self) -> u32 {
        match self {
            Mode::Regular => 0o644,
            Mode::Executable => 0o755,
        }
    }

    /// 0755 if any exec bit is set in `mode`, else 0644 (bosh-cli's rule).
    pub fn from_bits(mode: u32) -> Self {
        if mode & 0o111 != 0 {
            Mode::Executable
        } else {
            Mode::Regular
        }
    }
}

/// The mtime stamped on every entry: `SOURCE_DATE_EPOCH` if set to an integer, else 0.
pub fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Writes a deterministic tar stream into `W`. Call [`TarWriter::finish`] at the end.
pub struct TarWriter<W: Write> {
    out: W,
    mtime: u64,
    written: u64,
}

/// A deterministic `.tar.gz` writer.
pub type TarGzWriter<W> = TarWriter<GzEncoder<W>>;

impl<W: Write> TarGzWriter<W> {
    /// A `.tgz` writer with the default compression level.
    pub fn new(out: W) -> Self {
        Self::with_level(out, Compression::default())
    }

    /// A `.tgz` writer with an explicit level (use `Compression::fast()` for payloads that
    /// are already compressed).
    pub fn with_level(out: W, level: Compression) -> Self {
        TarWriter::plain(gzip_encoder(out, level))
    }

    /// Ends the tar stream and the gzip stream, returning the underlying writer.
    pub fn finish(self) -> io::Result<W> {
        self.finish_tar()?.finish()
    }
}

impl<W: Write> TarWriter<W> {
    /// An uncompressed tar writer.
    pub fn plain(out: W) -> Self {
        Self {
            out,
            mtime: source_date_epoch(),
            written: 0,
        }
    }

    /// Ends the archive (two zero blocks, padded to a whole record) and returns the writer.
    pub fn finish_tar(mut self) -> io::Result<W> {
        let end = self.written + 2 * BLOCK;
        let padded = end.div_ceil(RECORD) * RECORD;
        self.zeros(padded - self.written)?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// A directory entry (mode 0755); a trailing `/` is added to `name` if missing.
    pub fn add_dir(&mut self, name: &str) -> io::Result<()> {
        let name = if name.ends_with('/') {
            name.to_string()
        } else {
            format!("{name}/")
        };
        let header = self.header(&name, EntryType::Directory, 0o755, 0, None)?;
        self.put(&header, io::empty(), 0, &name)
    }

    /// A regular file from memory.
    pub fn add_bytes(&mut self, name: &str, mode: Mode, bytes: &[u8]) -> io::Result<()> {
        self.add_reader(name, mode, bytes.len() as u64, bytes)
    }

    /// A regular file of exactly `size` bytes read from `data` (streamed). Fails if the
    /// reader ends early.
    pub fn add_reader(
        &mut self,
        name: &str,
        mode: Mode,
        size: u64,
        data: impl Read,
    ) -> io::Result<()> {
        let header = self.header(name, EntryType::Regular, mode.bits(), size, None)?;
        self.put(&header, data, size, name)
    }

    /// Starts a regular file of exactly `size` bytes: write them into the returned
    /// [`FileData`], then call [`FileData::finish`]. For callers that hold the bytes in
    /// buffers already (no [`Read`] in between).
    pub fn start_file(&mut self, name: &str, mode: Mode, size: u64) -> io::Result<FileData<'_, W>> {
        let header = self.header(name, EntryType::Regular, mode.bits(), size, None)?;
        self.out.write_all(header.as_bytes())?;
        self.written += BLOCK;
        Ok(FileData {
            tar: self,
            name: name.to_string(),
            size,
            left: size,
        })
    }

    /// A regular file copied from `path` (streamed); mode 0755 if the source has an exec bit.
    pub fn add_path(&mut self, name: &str, path: &Path) -> io::Result<()> {
        let file = File::open(path).map_err(|e| named(e, path))?;
        let meta = file.metadata().map_err(|e| named(e, path))?;
        let mode = Mode::from_bits(meta.permissions().mode());
        self.add_reader(name, mode, meta.len(), file)
            .map_err(|e| named(e, path))
    }

    /// A regular file copied from `path` (streamed) with an explicit mode.
    pub fn add_path_as(&mut self, name: &str, path: &Path, mode: Mode) -> io::Result<()> {
        let file = File::open(path).map_err(|e| named(e, path))?;
        let len = file.metadata().map_err(|e| named(e, path))?.len();
        self.add_reader(name, mode, len, file)
            .map_err(|e| named(e, path))
    }

    /// A symbolic link (mode 0777) pointing at `target`.
    pub fn add_symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        let header = self.header(name, EntryType::Symlink, 0o777, 0, Some(target))?;
        self.put(&header, io::empty(), 0, name)
    }

    /// A hard link to the earlier entry `target`.
    pub fn add_hardlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        let header = self.header(name, EntryType::Link, 0o644, 0, Some(target))?;
        self.put(&header, io::empty(), 0, name)
    }

    fn header(
        &mut self,
        name: &str,
        kind: EntryType,
        mode: u32,
        size: u64,
        link: Option<&str>,
    ) -> io::Result<Header> {
        if name.len() > 100 {
            self.long_name(b'L', name)?;
        }
        if let Some(link) = link.filter(|l| l.len() > 100) {
            self.long_name(b'K', link)?;
        }
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(self.mtime);
        h.set_username("root")?;
        h.set_groupname("root")?;
        copy_truncated(&mut h.as_old_mut().name, name);
        if let Some(link) = link {
            copy_truncated(&mut h.as_old_mut().linkname, link);
        }
        h.set_cksum();
        Ok(h)
    }

    /// GNU `././@LongLink` record carrying a name longer than 100 bytes.
    fn long_name(&mut self, kind: u8, name: &str) -> io::Result<()> {
        let mut data = name.as_bytes().to_vec();
        data.push(0);
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::new(kind));
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_username("root")?;
        h.set_groupname("root")?;
        copy_truncated(&mut h.as_old_mut().name, "././@LongLink");
        h.set_cksum();
        self.put(&h, &data[..], data.len() as u64, name)
    }

    fn put(&mut self, header: &Header, data: impl Read, size: u64, name: &str) -> io::Result<()> {
        self.out.write_all(header.as_bytes())?;
        self.written += BLOCK;
        let copied = io::copy(&mut data.take(size), &mut self.out)?;
        self.written += copied;
        self.end_data(name, size, copied)
    }

    /// Checks that `copied` bytes are the whole `size` and pads the data to a whole block.
    fn end_data(&mut self, name: &str, size: u64, copied: u64) -> io::Result<()> {
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{name}: source ended after {copied} of {size} bytes"),
            ));
        }
        let pad = (BLOCK - size % BLOCK) % BLOCK;
        self.zeros(pad)
    }

    fn zeros(&mut self, n: u64) -> io::Result<()> {
        io::copy(&mut io::repeat(0).take(n), &mut self.out)?;
        self.written += n;
        Ok(())
    }
}

/// The data of a file started with [`TarWriter::start_file`]; it refuses bytes past the
/// size in the header.
pub struct FileData<'a, W: Write> {
    tar: &'a mut TarWriter<W>,
    name: String,
    size: u64,
    left: u64,
}

impl<W: Write> FileData<'_, W> {
    /// Ends the file: fails unless exactly its size was written.
    pub fn finish(self) -> io::Result<()> {
        self.tar
            .end_data(&self.name, self.size, self.size - self.left)
    }

    /// The writer below the tar stream, e.g. to switch [`super::GzWriter::store`] on for
    /// this file's bytes.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.tar.out
    }

    /// Writes the next `n` bytes of the file with `put`, which hands them to the writer
    /// below some other way than [`Write::write`] (without a copy, say); checked against
    /// the size and counted like any other write.
    pub fn write_with(
        &mut self,
        n: usize,
        put: impl FnOnce(&mut W) -> io::Result<()>,
    ) -> io::Result<()> {
        if n as u64 > self.left {
            return Err(self.too_much());
        }
        put(&mut self.tar.out)?;
        self.left -= n as u64;
        self.tar.written += n as u64;
        Ok(())
    }

    fn too_much(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: more than its {} bytes", self.name, self.size),
        )
    }
}

impl<W: Write> Write for FileData<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(self.too_much());
        }
        let n = self.tar.out.write(buf)?;
        self.left -= n as u64;
        self.tar.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tar.out.flush()
    }
}

fn copy_truncated(field: &mut [u8], s: &str) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s.as_bytes()[..n]);
}

fn named(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample() -> Vec<u8> {
        let mut w = TarGzWriter::new(Vec::new());
        w.add_dir("./").unwrap();
        w.add_bytes("./packaging", Mode::Regular, b"set -e\n")
            .unwrap();
        w.add_dir("./bin").unwrap();
        w.add_bytes("./bin/run", Mode::Executable, b"#!/bin/sh\n")
            .unwrap();
        w.add_symlink("./latest", "bin/run").unwrap();
        let long = format!("./{}/file", "d".repeat(150));
        w.add_bytes(&long, Mode::Regular, b"x").unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn output_is_reproducible_and_gnu_tar_reads_it() {
        let a = sample();
        assert_eq!(a, sample());
        assert_eq!(&a[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&a[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(tar.len() % RECORD as usize, 0);
        assert_eq!(&tar[257..265], b"ustar  \0");

        let dir = tempfile::tempdir().unwrap();
        let tgz = dir.path().join("a.tgz");
        std::fs::write(&tgz, &a).unwrap();
        let out = std::process::Command::new("tar")
            .arg("tzvf")
            .arg(&tgz)
            .output()
            .unwrap();
        assert!(out.status.success());
        let listing = String::from_utf8(out.stdout).unwrap();
        assert!(listing.contains("-rwxr-xr-x root/root"), "{listing}");
        assert!(listing.contains("./latest -> bin/run"), "{listing}");
        assert!(listing.contains(&"d".repeat(150)), "{listing}");
        if std::env::var_os("SOURCE_DATE_EPOCH").is_none() {
            assert!(listing.contains("1970-01-01"), "{listing}");
        }
    }

    #[test]
    fn short_reader_is_an_error_naming_the_entry() {
        let mut w = TarWriter::plain(Vec::new());
        let err = w
            .add_reader("./big", Mode::Regular, 10, &b"abc"[..])
            .unwrap_err();
        assert!(err.to_string().contains("./big"), "{err}");
    }

    #[test]
    fn start_file_writes_what_add_bytes_does_and_checks_the_size() {
        let mut a = TarWriter::plain(Vec::new());
        a.add_bytes("./f", Mode::Executable, b"hello, world")
            .unwrap();
        let mut b = TarWriter::plain(Vec::new());
        let mut f = b.start_file("./f", Mode::Executable, 12).unwrap();
        f.write_all(b"hello, ").unwrap();
        f.write_all(b"world").unwrap();
        f.finish().unwrap();
        assert_eq!(a.finish_tar().unwrap(), b.finish_tar().unwrap());

        let mut w = TarWriter::plain(Vec::new());
        let mut f = w.start_file("./short", Mode::Regular, 4).unwrap();
        assert!(f.write_all(b"12345").is_err());
        f.write_all(b"12").unwrap();
        let err = f.finish().unwrap_err();
        assert!(err.to_string().contains("./short"), "{err}");
    }

    #[test]
    fn add_path_keeps_the_exec_bit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("run.sh");
        std::fs::write(&p, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut w = TarWriter::plain(Vec::new());
        w.add_path("./run.sh", &p).unwrap();
        let tar = w.finish_tar().unwrap();
        let h = Header::from_byte_slice(&tar[..512]);
        assert_eq!(h.mode().unwrap(), 0o755);
        assert_eq!(h.size().unwrap(), 10);
    }
}
