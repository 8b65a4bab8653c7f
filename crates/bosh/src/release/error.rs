use crate::archive::ArchiveError;

use super::digest::{Algo, DigestError};
use super::manifest::ManifestError;

/// Everything that can be wrong with a release tarball; each message names the entry.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{tarball}: no release.MF in the tarball")]
    MissingManifest { tarball: String },
    #[error("{entry}: {size} bytes is too large for this entry")]
    TooLarge { entry: String, size: u64 },
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{archive}: listed in release.MF for {what} but missing from the tarball")]
    MissingArchive { archive: String, what: String },
    #[error("{archive}: {error}")]
    BadDigest { archive: String, error: DigestError },
    #[error("{archive}: {algo} mismatch: release.MF says {expected}, the archive has {actual}")]
    DigestMismatch {
        archive: String,
        algo: Algo,
        expected: String,
        actual: String,
    },
    #[error(
        "{archive}: fingerprint mismatch: release.MF says {expected}, the contents give {actual}{hint}"
    )]
    FingerprintMismatch {
        archive: String,
        expected: String,
        actual: String,
        hint: &'static str,
    },
    #[error("{archive}: fingerprint {value:?} is neither 40 nor 64 hex characters")]
    BadFingerprint { archive: String, value: String },
    #[error("{what}: depends on package {name}, which the release does not have")]
    UnknownPackage { what: String, name: String },
    /// A problem inside an inner archive; the message already names it.
    #[error("{message}")]
    Inner { archive: String, message: String },
}
