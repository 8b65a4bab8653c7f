//! `rewrite-release`: apply a release recipe to an upstream release tarball. Only packages a
//! rule touches are rebuilt (new deterministic archive, same-era fingerprint, `sha256:`
//! digest); every other archive is copied byte for byte.

mod plan;

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use flate2::Compression;
use pifoundry_util::Arch;
use pifoundry_util::atomic::AtomicFile;
use serde::Serialize;

use crate::recipe::release::{CompiledRule, ReleaseRecipe};
use crate::release::{self, ReleaseError, writer};

use crate::blobs::{BlobError, Blobs};
pub use plan::{BlobSwap, PackageChange};

#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error(transparent)]
    Release(#[from] ReleaseError),
    #[error("{release} {version} is a compiled release; its binaries cannot be swapped")]
    Compiled { release: String, version: String },
    #[error("the recipe is for release {expected}, the input is {found}")]
    WrongRelease { expected: String, found: String },
    #[error("{rule}: package {package}: {message}")]
    Unsupported {
        rule: String,
        package: String,
        message: String,
    },
    #[error("{rule}: matched nothing (mark it `optional: true` if that is expected)")]
    NoMatch { rule: String },
    #[error("{rule}: package {package}: {message}")]
    Rule {
        rule: String,
        package: String,
        message: String,
    },
    #[error("blob {key}: {error}")]
    Blob { key: String, error: Box<BlobError> },
    #[error("blob {key}: sha256 mismatch: blobs.lock says {expected}, {path} has {actual}")]
    BlobMismatch {
        key: String,
        path: String,
        expected: String,
        actual: String,
    },
    #[error("{path}: {error}")]
    Io { path: String, error: io::Error },
}

pub(crate) fn io_err(path: &Path) -> impl Fn(io::Error) -> RewriteError + '_ {
    move |error| RewriteError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// What a rewrite did.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub release: String,
    pub old_version: String,
    pub new_version: String,
    pub output: PathBuf,
    pub target: Arch,
    pub changed: Vec<PackageChange>,
    pub copied_archives: usize,
}

/// Rewrites `input` into `out` (atomically).
pub fn rewrite(
    input: &Path,
    recipe: &ReleaseRecipe,
    rules: &[CompiledRule],
    blobs: &dyn Blobs,
    out: &Path,
) -> Result<Summary, RewriteError> {
    let m = release::read_manifest(input)?;
    if m.is_compiled() {
        return Err(RewriteError::Compiled {
            release: m.name,
            version: m.version,
        });
    }
    if m.name != recipe.release {
        return Err(RewriteError::WrongRelease {
            expected: recipe.release.clone(),
            found: m.name,
        });
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let work = tempfile::tempdir_in(&parent).map_err(io_err(&parent))?;
    let spool = work.path().join("in");
    let rel = release::read(input, Some(&spool))?;
    // Self-check before changing anything: a package built with pre_packaging (or a corrupt
    // input) would otherwise get a wrong fingerprint.
    release::verify(&rel)?;

    let mut plans = plan::plan(&rel, recipe, rules, blobs)?;
    let mut manifest = rel.manifest.clone();
    let old_version = manifest.version.clone();
    manifest.version = format!("{old_version}{}", recipe.version_suffix);
    let mut archives = rel.spooled().expect("read with a spool");
    let built_dir = work.path().join("built");
    fs::create_dir_all(&built_dir).map_err(io_err(&built_dir))?;
    let mut changed = Vec::new();
    for pkg in manifest.packages.iter_mut() {
        let Some(p) = plans.remove(&pkg.name) else {
            continue;
        };
        let archive = format!("packages/{}.tgz", pkg.name);
        let dest = built_dir.join(format!("{}.tgz", pkg.name));
        let rebuilt = plan::build(
            &rel.archives[&archive],
            p,
            pkg,
            &dest,
            &work.path().join("x"),
        )?;
        let Some(change) = rebuilt else { continue };
        archives.insert(archive, dest);
        changed.push(change);
    }
    let copied_archives = archives.len() - changed.len();

    let parts = writer::Parts {
        manifest: &manifest,
        archives: &archives,
        top_files: &rel.top_files,
    };
    let file = AtomicFile::create(out).map_err(|e| io_err(&e.path)(e.error))?;
    // Every payload entry is a gzip archive already: store it (still gzip, as directors
    // need) instead of deflating a second time, which would cost more than the rest.
    let file = writer::write(file, &parts, Compression::none()).map_err(io_err(out))?;
    file.commit().map_err(|e| io_err(&e.path)(e.error))?;
    fs::set_permissions(out, fs::Permissions::from_mode(0o644)).map_err(io_err(out))?;
    Ok(Summary {
        release: manifest.name.clone(),
        old_version,
        new_version: manifest.version.clone(),
        output: out.to_path_buf(),
        target: recipe.target,
        changed,
        copied_archives,
    })
}
