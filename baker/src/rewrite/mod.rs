//! `rewrite-release`: apply a release recipe to an upstream release tarball in one streaming
//! pass. Only packages a rule touches are rebuilt (new deterministic archive, same-era
//! fingerprint, `sha256:` digest); every other archive is copied byte for byte as it is read.

mod candidates;
mod collect;
mod inner;
mod plan;
mod stream;

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use flate2::Compression;
use pifoundry_util::Arch;
use pifoundry_util::atomic::AtomicFile;
use pifoundry_util::background::BackgroundWriter;
use serde::Serialize;

use crate::archive::{GzWriter, Mode, TarWriter};
use crate::recipe::release::{Action, CompiledRule, ReleaseRecipe};
use crate::release::{self, ReleaseError, ReleaseTarball};

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

/// Rewrites `input` into `out` (atomically), in one pass over the input.
pub fn rewrite(
    input: &Path,
    recipe: &ReleaseRecipe,
    rules: &[CompiledRule],
    blobs: &(dyn Blobs + Sync),
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
    for rule in rules {
        if let Action::Unsupported(message) = &rule.action
            && let Some(pkg) = m.packages.iter().find(|p| rule.packages.is_match(&p.name))
        {
            return Err(RewriteError::Unsupported {
                rule: rule.label.clone(),
                package: pkg.name.clone(),
                message: message.clone(),
            });
        }
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let work = tempfile::tempdir_in(&parent).map_err(io_err(&parent))?;
    let file = AtomicFile::create(out)
        .and_then(|f| f.sync_every(64 << 20))
        .map_err(|e| io_err(&e.path)(e.error))?;
    // Every payload entry is a gzip archive already: store it (still gzip, as directors
    // need) instead of deflating a second time, which would cost more than the rest. The
    // gzip framing, its checksum and the writes happen on a thread of their own, beside
    // the one that inflates the input.
    let mut gz = GzWriter::new(file, Compression::none()).map_err(io_err(out))?;
    gz.store(true).map_err(io_err(out))?;
    let mut tgz = TarWriter::plain(BackgroundWriter::new(gz, 1 << 20));
    let done = stream::run(input, &m, rules, blobs, work.path(), &mut tgz, out)?;
    // The input is checked as it passes; nothing is committed unless all of it is sound (a
    // package built with pre_packaging would otherwise get a wrong fingerprint).
    let rel = ReleaseTarball {
        manifest: m,
        manifest_bytes: Vec::new(),
        archives: done.archives,
        top_files: done.top_files,
    };
    release::verify(&rel)?;
    for (rule, hits) in rules.iter().zip(&done.hits) {
        if *hits == 0 && !rule.optional && !matches!(rule.action, Action::Unsupported(_)) {
            return Err(RewriteError::NoMatch {
                rule: rule.label.clone(),
            });
        }
    }
    let mut manifest = rel.manifest;
    let old_version = manifest.version.clone();
    manifest.version = format!("{old_version}{}", recipe.version_suffix);
    let mut rebuilt = done.rebuilt;
    let mut changed = Vec::new();
    for pkg in manifest.packages.iter_mut() {
        if let Some((new, change)) = rebuilt.remove(&pkg.name) {
            *pkg = new;
            changed.push(change);
        }
    }
    // Written last: the director unpacks the whole tarball before reading it.
    tgz.add_bytes("release.MF", Mode::Regular, manifest.to_yaml().as_bytes())
        .map_err(io_err(out))?;
    let file = tgz
        .finish_tar()
        .and_then(BackgroundWriter::finish)
        .and_then(GzWriter::finish)
        .map_err(io_err(out))?;
    file.commit().map_err(|e| io_err(&e.path)(e.error))?;
    fs::set_permissions(out, fs::Permissions::from_mode(0o644)).map_err(io_err(out))?;
    Ok(Summary {
        release: manifest.name.clone(),
        old_version,
        new_version: manifest.version.clone(),
        output: out.to_path_buf(),
        target: recipe.target,
        changed,
        copied_archives: done.copied,
    })
}
