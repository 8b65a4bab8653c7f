//! What a resolver hands back: a readable source of known size, streamed block by block.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};

use crate::RequestPath;

/// Read-ahead of a file source: one blocking read per this many bytes, whatever the block size.
const FILE_READ_AHEAD: usize = 64 * 1024;

/// A readable source with a known size: a file on disk, bytes rendered for one Pi, or any
/// reader. The transfer reads it block by block and never holds more than one read-ahead
/// buffer and one block of it; the size is announced to clients that ask (`tsize`).
pub struct Source {
    reader: Pin<Box<dyn AsyncRead + Send>>,
    size: u64,
}

impl Source {
    /// Bytes held in memory, for small rendered files such as a Pi's `cmdline.txt`.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Source {
        let bytes = bytes.into();
        let size = bytes.len() as u64;
        Source::from_reader(io::Cursor::new(bytes), size)
    }

    /// An open regular file, streamed from its current position; its size is taken now.
    pub fn from_file(file: File) -> io::Result<Source> {
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let file = tokio::fs::File::from_std(file);
        Ok(Source::from_reader(
            BufReader::with_capacity(FILE_READ_AHEAD, file),
            meta.len(),
        ))
    }

    /// Any reader that yields `size` bytes. A reader that ends early fails the transfer with
    /// an error to the client (never a silently short file); bytes past `size` are not sent.
    pub fn from_reader(reader: impl AsyncRead + Send + 'static, size: u64) -> Source {
        Source {
            reader: Box::pin(reader.take(size)),
            size,
        }
    }

    /// The number of bytes the transfer will send.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn reader(&mut self) -> Pin<&mut (dyn AsyncRead + Send)> {
        self.reader.as_mut()
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// A directory whose regular files are served read-only. Lookups are resolved by the kernel
/// beneath the directory (`openat2` with `RESOLVE_BENEATH`), so neither `..` nor a symlink
/// can reach a file outside it; symlinks that stay inside work.
#[derive(Clone)]
pub struct ServedDir {
    root: Arc<OwnedFd>,
    path: PathBuf,
}

impl ServedDir {
    /// Opens `dir` once; later lookups are relative to this directory even if it is renamed.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<ServedDir> {
        let path = dir.as_ref().to_path_buf();
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let root = nix::fcntl::open(&path, flags, Mode::empty()).map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("{}: {e}", path.display()),
            )
        })?;
        Ok(ServedDir {
            root: Arc::new(root),
            path,
        })
    }

    /// The directory as it was named when opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `path` beneath the directory. `Ok(None)` when there is no regular file there,
    /// including a name that would resolve outside the directory.
    pub async fn open_file(&self, path: &RequestPath) -> io::Result<Option<Source>> {
        let root = Arc::clone(&self.root);
        let name = path.as_str().to_owned();
        tokio::task::spawn_blocking(move || match open_beneath(&root, &name)? {
            Some(file) if file.metadata()?.is_file() => Source::from_file(file).map(Some),
            _ => Ok(None),
        })
        .await
        .map_err(io::Error::other)?
    }
}

impl fmt::Debug for ServedDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServedDir")
            .field("path", &self.path)
            .finish()
    }
}

fn open_beneath(root: &OwnedFd, name: &str) -> io::Result<Option<File>> {
    // O_NONBLOCK: opening a FIFO must not hang the lookup; regular files ignore it.
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK;
    let how = OpenHow::new()
        .flags(flags)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    match nix::fcntl::openat2(root, name, how) {
        Ok(fd) => Ok(Some(File::from(fd))),
        // EXDEV: the name resolves outside the directory
        Err(Errno::ENOENT | Errno::ENOTDIR | Errno::EXDEV | Errno::ELOOP | Errno::ENXIO) => {
            Ok(None)
        }
        Err(Errno::ENOSYS) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "openat2 is not available (Linux 5.6 or later is needed to serve a directory)",
        )),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> RequestPath {
        RequestPath::parse(p.as_bytes()).unwrap()
    }

    async fn read_all(mut source: Source) -> Vec<u8> {
        let mut out = Vec::new();
        source.reader().read_to_end(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_files_and_inner_symlinks_but_nothing_outside() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"secret").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("1a2b3c4d")).unwrap();
        std::fs::write(dir.path().join("1a2b3c4d/start.elf"), b"elf").unwrap();
        std::os::unix::fs::symlink("1a2b3c4d/start.elf", dir.path().join("inner")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../../../etc/passwd", dir.path().join("rel")).unwrap();
        let served = ServedDir::open(dir.path()).unwrap();

        let source = served
            .open_file(&path("1a2b3c4d/start.elf"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(source.size(), 3);
        assert_eq!(read_all(source).await, b"elf");
        let inner = served.open_file(&path("inner")).await.unwrap().unwrap();
        assert_eq!(read_all(inner).await, b"elf");
        for name in ["abs", "rel", "missing", "1a2b3c4d", "1a2b3c4d/start.elf/x"] {
            assert!(
                served.open_file(&path(name)).await.unwrap().is_none(),
                "{name}"
            );
        }
    }

    #[tokio::test]
    async fn a_fifo_is_not_served_and_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(&dir.path().join("fifo"), Mode::S_IRWXU).unwrap();
        let served = ServedDir::open(dir.path()).unwrap();
        assert!(served.open_file(&path("fifo")).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_reader_source_is_cut_at_its_size() {
        let source = Source::from_reader(io::Cursor::new(b"0123456789".to_vec()), 4);
        assert_eq!(read_all(source).await, b"0123");
    }
}
