//! The one place for tar + gzip: a deterministic writer ([`TarWriter`], [`TarGzWriter`]) and a
//! safe streaming reader ([`walk`]) that refuses entries which could land outside their
//! target directory.
//!
//! Writing a deterministic `.tgz`:
//!
//! ```no_run
//! use pifoundry_bosh::archive::{Mode, TarGzWriter};
//! # fn main() -> std::io::Result<()> {
//! let out = std::fs::File::create("out.tgz")?;
//! let mut tgz = TarGzWriter::new(out);
//! tgz.add_dir("./")?;
//! tgz.add_bytes("./packaging", Mode::Regular, b"set -e\n")?;
//! tgz.add_path("./blob.tar.gz", std::path::Path::new("/tmp/blob.tar.gz"))?; // streamed
//! tgz.add_symlink("./latest", "blob.tar.gz")?;
//! tgz.finish()?;
//! # Ok(()) }
//! ```
//!
//! Entries are written in the order the caller adds them; sort them first if order matters.
//! [`unpack`] extracts through [`walk`]'s checks; [`scan`] is the one unchecked reader, for
//! inspecting what an archive carries without writing anything.

mod gzip;
mod reader;
mod unpack;
mod writer;

pub use gzip::{GzWriter, SAMPLE, gzip_encoder, incompressible};
pub use reader::{Entry, EntryKind, open_maybe_gzip, scan, walk, walk_path};
pub use unpack::unpack;
pub use writer::{FileData, Mode, TarGzWriter, TarWriter, source_date_epoch};

/// What can go wrong reading an archive. Every variant names the archive and, where there is
/// one, the entry.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{archive}: {error}")]
    Io {
        archive: String,
        error: std::io::Error,
    },
    #[error("{archive}: gzip stream is truncated or corrupt{}: {detail}", where_(.at))]
    Gzip {
        archive: String,
        at: Option<String>,
        detail: String,
    },
    #[error("{archive}: not a tar archive: {detail}")]
    NotTar { archive: String, detail: String },
    #[error("{archive}: malformed tar{}: {detail}", where_(.at))]
    Tar {
        archive: String,
        at: Option<String>,
        detail: String,
    },
    #[error("{archive}: entry {entry}: {reason}")]
    Unsafe {
        archive: String,
        entry: String,
        reason: String,
    },
    #[error("{archive}: entry {entry} appears twice")]
    Duplicate { archive: String, entry: String },
    #[error("{archive}: entry {entry} claims {claimed} bytes but the archive ends after {found}")]
    Truncated {
        archive: String,
        entry: String,
        claimed: u64,
        found: u64,
    },
    #[error("{archive}: entry {entry}: unsupported entry type {kind}")]
    Unsupported {
        archive: String,
        entry: String,
        kind: String,
    },
    #[error("{archive}: extracting {}: {error}", path.display())]
    Extract {
        archive: String,
        path: std::path::PathBuf,
        error: std::io::Error,
    },
}

fn where_(at: &Option<String>) -> String {
    match at {
        Some(e) => format!(" ({e})"),
        None => String::new(),
    }
}
