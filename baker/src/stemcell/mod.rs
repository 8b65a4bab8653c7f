//! BOSH stemcells: the `stemcell.MF` manifest, packing the tarball, and reading it back.

mod inspect;
pub mod manifest;
mod pack;

pub use inspect::{Inspection, inspect};
pub use manifest::Manifest;
pub use pack::{PackInput, pack};

#[derive(Debug, thiserror::Error)]
pub enum StemcellError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid {
        path: std::path::PathBuf,
        message: String,
    },
}
