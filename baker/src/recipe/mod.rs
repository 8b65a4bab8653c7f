//! Recipes: declarative inputs to baker's pipelines. Every field is checked when the recipe is
//! loaded, and every error names the file and the field.

mod extends;
pub mod release;
pub mod stemcell;

use std::path::PathBuf;

use pifoundry_util::PathError;

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error(transparent)]
    Read(PathError),
    /// Syntax, type and unknown-key errors; serde_yaml's message carries the key path.
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{}: {field}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

impl RecipeError {
    pub(crate) fn invalid(
        path: &std::path::Path,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        RecipeError::Invalid {
            path: path.to_path_buf(),
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn parse(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        RecipeError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

/// Reads a recipe file.
pub(crate) fn read(path: &std::path::Path) -> Result<String, RecipeError> {
    std::fs::read_to_string(path).map_err(|e| RecipeError::Read(PathError::new(path, e)))
}
