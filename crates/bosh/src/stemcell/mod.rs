//! BOSH stemcells: the `stemcell.MF` manifest, packing the tarball, and reading it back.

mod inspect;
pub mod manifest;
mod pack;

use pifoundry_util::{BadInput, PathError};

pub use inspect::{Inspection, inspect};
pub use manifest::Manifest;
pub use pack::{PackInput, pack};

use crate::archive::ArchiveError;

#[derive(Debug, thiserror::Error)]
pub enum StemcellError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Invalid(#[from] BadInput),
}
