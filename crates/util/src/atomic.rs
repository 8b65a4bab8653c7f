//! Outputs appear whole or not at all: write a temporary file on the same file system as the
//! destination, fsync it, rename it into place, then fsync the directory so that the rename
//! itself survives a power cut. [`persist`] is that last step for a temporary file made some
//! other way (one that external tools write into, or a download whose name is its digest).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, SyncSender};
use std::thread::{self, JoinHandle};

use tempfile::NamedTempFile;

use crate::error::{PathError, at};

/// A file being written; it becomes visible at `dest` only when [`AtomicFile::commit`]
/// succeeds. Dropping it without committing removes the temporary file.
pub struct AtomicFile {
    dest: PathBuf,
    tmp: BufWriter<NamedTempFile>,
    early: Option<EarlySync>,
}

/// Writes a growing file back to disk on a thread of its own.
struct EarlySync {
    step: u64,
    unsynced: u64,
    wake: SyncSender<()>,
    thread: JoinHandle<io::Result<()>>,
}

impl AtomicFile {
    /// Starts writing `dest`; the temporary file lives beside it, so that the final rename
    /// cannot cross file systems.
    pub fn create(dest: impl AsRef<Path>) -> Result<Self, PathError> {
        let dest = dest.as_ref().to_path_buf();
        let tmp = temp_beside(&dest)?;
        Ok(Self {
            dest,
            tmp: BufWriter::with_capacity(1 << 20, tmp),
            early: None,
        })
    }

    /// Has what is written go to disk every `step` bytes, on a thread of its own, rather than
    /// all of it in [`AtomicFile::commit`]'s fsync: a large file then commits in about the
    /// time its last step takes, and its writes overlap with the work that produces it.
    pub fn sync_every(mut self, step: u64) -> Result<Self, PathError> {
        let file = self.tmp.get_ref().as_file().try_clone();
        let file = file.map_err(at(self.tmp.get_ref().path()))?;
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let thread = thread::spawn(move || {
            for () in woken {
                file.sync_data()?;
            }
            Ok(())
        });
        self.early = Some(EarlySync {
            step,
            unsynced: 0,
            wake,
            thread,
        });
        Ok(self)
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Flushes, fsyncs and renames the file into place, and fsyncs its directory.
    pub fn commit(mut self) -> Result<File, PathError> {
        if let Some(early) = self.early.take() {
            drop(early.wake);
            let synced = early.thread.join().expect("syncing does not panic");
            // An error seen by that thread's fsync need not be reported again to this one.
            synced.map_err(at(self.tmp.get_ref().path()))?;
        }
        let tmp = self
            .tmp
            .into_inner()
            .map_err(|e| PathError::new(&self.dest, e.into_error()))?;
        persist(tmp, &self.dest)
    }
}

impl AtomicFile {
    fn written(&mut self, n: usize) {
        if let Some(early) = &mut self.early {
            early.unsynced += n as u64;
            if early.unsynced >= early.step {
                early.unsynced = 0;
                // Already woken, or stopped on an error that commit reports: nothing to do.
                let _ = early.wake.try_send(());
            }
        }
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.tmp.write(buf)?;
        self.written(n);
        Ok(n)
    }

    /// Large writes (64 KiB or more) go straight to the file, without a copy into the buffer.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        let n = if len >= 64 << 10 {
            self.tmp.flush()?;
            self.tmp.get_mut().write_vectored(bufs)?
        } else {
            self.tmp.write_vectored(bufs)?
        };
        self.written(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

/// Writes `bytes` to `dest` atomically.
pub fn write(dest: impl AsRef<Path>, bytes: &[u8]) -> Result<(), PathError> {
    let dest = dest.as_ref();
    let mut f = AtomicFile::create(dest)?;
    f.write_all(bytes).map_err(at(dest))?;
    f.commit().map(drop)
}

/// An empty temporary file named `.<name>.<random>.tmp` in `dest`'s directory.
pub fn temp_beside(dest: &Path) -> Result<NamedTempFile, PathError> {
    let dir = parent_dir(dest);
    tempfile::Builder::new()
        .prefix(&temp_prefix(dest))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(at(dir))
}

/// Removes the temporary files a killed writer of `dest` left beside it (they are never visible
/// as `dest` itself: a write is only ever renamed into place whole). Returns the paths removed.
/// Call it only where no other writer of `dest` can be running (a daemon's start, under a lock).
pub fn remove_stale(dest: &Path) -> Result<Vec<std::path::PathBuf>, PathError> {
    let dir = parent_dir(dest);
    let prefix = temp_prefix(dest);
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(at(dir))? {
        let entry = entry.map_err(at(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(".tmp") {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(at(&path))?;
            removed.push(path);
        }
    }
    Ok(removed)
}

fn temp_prefix(dest: &Path) -> String {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.")
}

/// Fsyncs `tmp`, renames it to `dest` (on the same file system) and fsyncs `dest`'s directory.
pub fn persist(tmp: NamedTempFile, dest: &Path) -> Result<File, PathError> {
    tmp.as_file().sync_all().map_err(at(tmp.path()))?;
    let file = tmp
        .persist(dest)
        .map_err(|e| PathError::new(dest, e.error))?;
    let dir = parent_dir(dest);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(at(dir))?;
    Ok(file)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_stale_takes_only_this_files_temps() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("state.json");
        write(&dest, b"whole").unwrap();
        let left = temp_beside(&dest).unwrap().keep().unwrap().1;
        let other = dir.path().join(".other.json.x.tmp");
        std::fs::write(&other, b"").unwrap();
        assert_eq!(remove_stale(&dest).unwrap(), vec![left.clone()]);
        assert!(!left.exists() && other.exists() && dest.exists());
    }

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
    fn syncing_as_it_goes_commits_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("big.tgz");
        let mut f = AtomicFile::create(&dest).unwrap().sync_every(4096).unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        for piece in data[..100_000].chunks(3000) {
            f.write_all(piece).unwrap();
        }
        // large writes: straight to the file, after what is buffered
        let mut slices: Vec<_> = data[100_000..]
            .chunks(70_000)
            .map(io::IoSlice::new)
            .collect();
        let mut left = &mut slices[..];
        while !left.is_empty() {
            let n = f.write_vectored(left).unwrap();
            io::IoSlice::advance_slices(&mut left, n);
        }
        assert!(!dest.exists());
        f.commit().unwrap();
        assert!(std::fs::read(&dest).unwrap() == data);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        let f = AtomicFile::create(dir.path().join("dropped")).unwrap();
        let mut f = f.sync_every(1).unwrap();
        f.write_all(b"partial").unwrap();
        drop(f);
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

    #[test]
    fn a_temporary_file_written_by_others_is_persisted_whole() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("root.img");
        let tmp = temp_beside(&dest).unwrap();
        std::fs::write(tmp.path(), b"image").unwrap();
        assert!(!dest.exists());
        persist(tmp, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"image");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
