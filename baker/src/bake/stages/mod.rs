//! Stage kinds. A kind is one file here: its recipe type (the fields of `kind: x` in a
//! recipe), how it checks them when the recipe loads, what its cache key depends on besides
//! its definition, and how it runs — the [`StageKind`] trait. [`Stage`] is the list of kinds
//! (one line each); the engine in `bake` only sees the trait.

pub mod chroot;
pub mod files;
pub mod go_build;
pub mod image;
pub mod initramfs;
pub mod rootfs;
pub mod stemcell;
mod tree;
pub mod users;

use std::path::{Path, PathBuf};

use pifoundry_bosh::archive::ArchiveError;
use pifoundry_bosh::stemcell::StemcellError;
use pifoundry_util::name::NameRule;
use pifoundry_util::tool::ToolError;
use pifoundry_util::{Arch, BadInput, PathError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::{AuditPolicy, GateError};
use crate::blobs::{BlobError, Blobs};
use crate::image::ImageError;

pub use tree::{copy_tree, in_root, tree_hash};

/// What every stage kind does.
pub trait StageKind {
    fn name(&self) -> &str;

    /// Stages that change the root file system; their result is snapshotted in the cache.
    /// `image` and `stemcell` only read it and write outputs, which are cheap to redo.
    fn mutates_rootfs(&self) -> bool {
        true
    }

    /// Checks every field, when the recipe is loaded.
    fn validate(&self) -> Result<(), FieldError> {
        Ok(())
    }

    /// The `blobs.lock` keys it builds from; the bake fetches them before any stage runs.
    fn blobs(&self) -> Vec<&str> {
        Vec::new()
    }

    /// What its cache key depends on besides its definition: file contents, blob checksums,
    /// the recipe's header.
    fn key_inputs(&self, _key: &mut KeyInputs<'_>) -> Result<(), StageError> {
        Ok(())
    }

    fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), StageError>;
}

macro_rules! stage_kinds {
    ($($variant:ident($ty:ty) = $kind:literal),* $(,)?) => {
        /// One stage of a recipe, by its `kind:`.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(tag = "kind")]
        pub enum Stage {
            $(#[serde(rename = $kind)] $variant($ty)),*
        }

        impl Stage {
            /// The recipe's `kind:`.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Stage::$variant(_) => $kind),*
                }
            }

            pub fn def(&self) -> &dyn StageKind {
                match self {
                    $(Stage::$variant(s) => s),*
                }
            }
        }
    };
}

stage_kinds! {
    Rootfs(rootfs::RootfsStage) = "rootfs",
    Files(files::FilesStage) = "files",
    Users(users::UsersStage) = "users",
    Chroot(chroot::ChrootStage) = "chroot",
    GoBuild(go_build::GoBuildStage) = "go-build",
    Initramfs(initramfs::InitramfsStage) = "initramfs",
    Image(image::ImageStage) = "image",
    Stemcell(stemcell::StemcellStage) = "stemcell",
}

impl Stage {
    pub fn name(&self) -> &str {
        self.def().name()
    }

    pub fn mutates_rootfs(&self) -> bool {
        self.def().mutates_rootfs()
    }
}

/// A stage field whose value breaks its rule: `size_mib 2000 is not a power of two`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}{}{value} {rule}", if value.is_empty() { "" } else { " " })]
pub struct FieldError {
    pub field: String,
    /// As the recipe spells it (`` `usr/bin/x` ``, `2000`), or empty.
    pub value: String,
    pub rule: String,
}

impl FieldError {
    pub fn new(
        field: impl Into<String>,
        value: impl Into<String>,
        rule: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            value: value.into(),
            rule: rule.into(),
        }
    }
}

/// Why a stage failed; the engine adds the stage's name and kind.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Audit(#[from] GateError),
    #[error(transparent)]
    Stemcell(#[from] StemcellError),
    #[error("blob `{key}`: {error}")]
    Blob { key: String, error: Box<BlobError> },
    #[error("patch {}: does not apply: {error}", patch.display())]
    Patch { patch: PathBuf, error: ToolError },
    /// An input that cannot be used (a template that does not render, a missing kernel).
    #[error(transparent)]
    Input(#[from] BadInput),
    /// A system call on a path (mount, mknod, utimensat).
    #[error("{what} {}: {error}", path.display())]
    Sys {
        what: &'static str,
        path: PathBuf,
        error: nix::Error,
    },
}

impl StageError {
    pub fn input(path: &Path, message: impl Into<String>) -> Self {
        StageError::Input(BadInput::new(path, message))
    }
}

/// The recipe fields stages, templates and the manifest see.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub operating_system: &'a str,
    pub arch: Arch,
    pub board: &'a str,
    pub source_date_epoch: u64,
}

impl Header<'_> {
    /// How the header enters a stage key.
    fn key_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}\n{}",
            self.name, self.version, self.operating_system, self.arch, self.board
        )
    }
}

/// Everything a running stage may touch.
pub struct Ctx<'a> {
    pub header: Header<'a>,
    /// The image stage's audit gate.
    pub audit: &'a AuditPolicy,
    /// Recipe paths (`files[].src`, `source.path`, `patches`) are relative to this.
    pub project_root: &'a Path,
    pub rootfs: &'a Path,
    /// Private scratch space of this bake.
    pub work: &'a Path,
    pub out: &'a Path,
    pub blobs: &'a dyn Blobs,
    /// This stage's log file.
    pub log: PathBuf,
    /// Set by the stage that writes the stemcell tarball.
    pub stemcell: Option<PathBuf>,
}

impl Ctx<'_> {
    /// Runs `script` with `/bin/sh -e` inside the root file system under qemu-user.
    pub fn chroot(&self, script: &str) -> Result<(), StageError> {
        crate::bake::chroot::run(
            self.rootfs,
            self.header.arch,
            self.header.source_date_epoch,
            script,
            &self.log,
        )
    }

    /// A verified local copy of a blob.
    pub fn blob(&self, key: &str) -> Result<PathBuf, StageError> {
        self.blobs
            .get(key)
            .map(|b| b.path)
            .map_err(|error| StageError::Blob {
                key: key.into(),
                error: Box::new(error),
            })
    }
}

/// A stage key being computed: sha256 over length-prefixed named fields.
pub struct KeyInputs<'a> {
    hash: Sha256,
    pub(crate) header: Header<'a>,
    pub(crate) audit: &'a AuditPolicy,
    pub(crate) project_root: &'a Path,
    pub(crate) blobs: &'a dyn Blobs,
}

impl<'a> KeyInputs<'a> {
    pub(crate) fn new(
        header: Header<'a>,
        audit: &'a AuditPolicy,
        project_root: &'a Path,
        blobs: &'a dyn Blobs,
    ) -> Self {
        Self {
            hash: Sha256::new(),
            header,
            audit,
            project_root,
            blobs,
        }
    }

    pub fn field(&mut self, name: &str, value: &[u8]) {
        self.hash.update((name.len() as u64).to_le_bytes());
        self.hash.update(name.as_bytes());
        self.hash.update((value.len() as u64).to_le_bytes());
        self.hash.update(value);
    }

    /// The contents of a project file.
    pub fn project_file(&mut self, name: &str, rel: &Path) -> Result<(), StageError> {
        let path = self.project_root.join(rel);
        let bytes = std::fs::read(&path).map_err(|e| PathError::new(&path, e))?;
        self.field(name, &bytes);
        Ok(())
    }

    /// A project directory tree: paths, kinds, modes, contents, link targets.
    pub fn project_tree(&mut self, name: &str, rel: &Path) -> Result<(), StageError> {
        let tree = tree_hash(&self.project_root.join(rel))?;
        self.field(name, tree.as_bytes());
        Ok(())
    }

    /// The sha256 `blobs.lock` records for `key` (nothing is downloaded).
    pub fn blob(&mut self, name: &str, key: &str) -> Result<(), StageError> {
        let sha = self.blobs.sha256(key).map_err(|error| StageError::Blob {
            key: key.into(),
            error: Box::new(error),
        })?;
        self.field(name, sha.as_bytes());
        Ok(())
    }

    /// The recipe fields templates and the manifest see.
    pub fn header(&mut self) {
        let text = self.header.key_text();
        self.field("header", text.as_bytes());
    }

    /// The recipe's `audit:` allow-list (the image stage's gate).
    pub fn audit(&mut self) {
        let json = serde_json::to_string(self.audit).expect("audit policy serialises");
        self.field("audit", json.as_bytes());
    }

    pub(crate) fn finish(self) -> String {
        hex::encode(self.hash.finalize())
    }
}

/// An absolute path inside the root file system.
pub fn absolute(field: &str, p: &Path) -> Result<(), FieldError> {
    path_rule(field, p, true, "must be an absolute path without `..`")
}

/// A project-relative path that stays inside the project.
pub fn project_relative(field: &str, p: &Path) -> Result<(), FieldError> {
    path_rule(field, p, false, "must be project-relative without `..`")
}

fn path_rule(field: &str, p: &Path, absolute: bool, rule: &str) -> Result<(), FieldError> {
    let up = p.components().any(|c| c == std::path::Component::ParentDir);
    if p.is_absolute() == absolute && !up {
        Ok(())
    } else {
        Err(FieldError::new(field, format!("`{}`", p.display()), rule))
    }
}

/// `value` follows `rule`.
pub fn name(field: impl Into<String>, rule: &NameRule, value: &str) -> Result<(), FieldError> {
    rule.check(value).map_err(|e| {
        FieldError::new(
            field,
            format!("`{value}`"),
            format!("is not {}", e.expected),
        )
    })
}

/// Each of `values` follows `rule`; the error names `field[i]`.
pub fn names(field: &str, rule: &NameRule, values: &[String]) -> Result<(), FieldError> {
    for (i, v) in values.iter().enumerate() {
        name(format!("{field}[{i}]"), rule, v)?;
    }
    Ok(())
}

/// A list that must not be empty, nor hold an empty entry.
pub fn listed(field: &str, values: &[String], what: &str) -> Result<(), FieldError> {
    if values.is_empty() {
        return Err(FieldError::new(
            field,
            "",
            format!("must list at least one {what}"),
        ));
    }
    match values.iter().position(|v| v.trim().is_empty()) {
        Some(i) => Err(FieldError::new(
            format!("{field}[{i}]"),
            "",
            "must not be empty",
        )),
        None => Ok(()),
    }
}
