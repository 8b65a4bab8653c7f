//! Outputs appear whole or not at all: write to a temporary file beside the destination,
//! flush it to disk, then rename it into place.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// A file being written; it becomes visible at `dest` only when [`AtomicFile::commit`]
/// succeeds. Dropping it without committing removes the temporary file.
pub struct AtomicFile {
    dest: PathBuf,
    tmp: BufWriter<NamedTempFile>,
}

impl AtomicFile {
    /// Starts writing `dest`; the temporary file lives in the same directory so that the
    /// final rename cannot cross file systems.
    pub fn create(dest: impl AsRef<Path>) -> io::Result<Self> {
        let dest = dest.as_ref().to_path_buf();
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(|e| annotate(e, &dir))?;
        Ok(Self {
            dest,
            tmp: BufWriter::with_capacity(1 << 20, tmp),
        })
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(self) -> io::Result<File> {
        let dest = self.dest;
        let tmp = self.tmp.into_inner().map_err(|e| e.into_error())?;
        tmp.as_file().sync_all()?;
        let file = tmp.persist(&dest).map_err(|e| annotate(e.error, &dest))?;
        Ok(file)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

/// Writes `bytes` to `dest` atomically.
pub fn write(dest: impl AsRef<Path>, bytes: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(dest)?;
    f.write_all(bytes)?;
    f.commit().map(drop)
}

fn annotate(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_appears_only_after_commit() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.tgz");
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"hello").unwrap();
        assert!(!dest.exists());
        f.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn dropped_writer_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.tgz");
        {
            let mut f = AtomicFile::create(&dest).unwrap();
            f.write_all(b"partial").unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn replaces_an_existing_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("state.json");
        write(&dest, b"old").unwrap();
        write(&dest, b"new contents").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new contents");
    }

    #[test]
    fn missing_directory_is_named_in_the_error() {
        let err = AtomicFile::create("/nonexistent-dir-pifoundry/out.tgz")
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("/nonexistent-dir-pifoundry"),
            "{err}"
        );
    }
}
