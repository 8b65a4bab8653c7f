//! Applies recipe rules to the file lists of the packages they match, then rebuilds the
//! packages that changed.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::path::Path;

use serde::Serialize;

use crate::archive::{self, ArchiveError, Entry, EntryKind, Mode};
use crate::recipe::release::{Action, CompiledRule, Find, ReleaseRecipe};
use crate::release::digest::Algo;
use crate::release::fingerprint::{self, Era, FileMode, Resource};
use crate::release::manifest::Package;
use crate::release::writer::{Content, InnerFile, build_inner};
use crate::release::{ArchiveInfo, ReleaseTarball};

use super::{RewriteError, io_err};
use crate::blobs::{Blobs, LockedBlob};

const MAX_PATCHED_FILE: u64 = 16 << 20;

/// One package's changes, for the summary.
#[derive(Debug, Default, Serialize)]
pub struct PackageChange {
    pub package: String,
    pub old_fingerprint: String,
    pub new_fingerprint: String,
    pub blobs: Vec<BlobSwap>,
    pub patched: Vec<String>,
    pub removed: Vec<String>,
    pub added: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct BlobSwap {
    pub key: String,
    pub old_path: String,
    pub new_path: String,
    pub sha256: String,
}

enum Source {
    Keep,
    Blob(LockedBlob),
    Bytes(Vec<u8>),
}

struct PlannedFile {
    source: Source,
    mode: FileMode,
}

pub(super) struct Plan {
    files: BTreeMap<String, PlannedFile>,
    change: PackageChange,
}

impl Plan {
    fn new(info: &ArchiveInfo, pkg: &Package) -> Result<Self, RewriteError> {
        let listed = info.files.as_ref().map_err(|message| RewriteError::Rule {
            rule: "reading".into(),
            package: pkg.name.clone(),
            message: message.clone(),
        })?;
        let files = listed
            .iter()
            .map(|f| {
                let planned = PlannedFile {
                    source: Source::Keep,
                    mode: f.mode,
                };
                (f.name.clone(), planned)
            })
            .collect();
        Ok(Self {
            files,
            change: PackageChange {
                package: pkg.name.clone(),
                old_fingerprint: pkg.fingerprint.clone(),
                ..PackageChange::default()
            },
        })
    }

    fn touched(&self) -> bool {
        let c = &self.change;
        !(c.blobs.is_empty() && c.patched.is_empty() && c.removed.is_empty() && c.added.is_empty())
    }
}

/// Works out every package's new file list. Fails on the first rule that cannot apply.
pub(super) fn plan(
    rel: &ReleaseTarball,
    _recipe: &ReleaseRecipe,
    rules: &[CompiledRule],
    blobs: &dyn Blobs,
) -> Result<BTreeMap<String, Plan>, RewriteError> {
    let mut plans: BTreeMap<String, Plan> = BTreeMap::new();
    let mut resolved: HashMap<String, LockedBlob> = HashMap::new();
    for rule in rules {
        let matched: Vec<&Package> = rel
            .manifest
            .packages
            .iter()
            .filter(|p| rule.packages.is_match(&p.name))
            .collect();
        let rule_err = |package: &str, message: String| RewriteError::Rule {
            rule: rule.label.clone(),
            package: package.to_string(),
            message,
        };
        let mut hits = 0usize;
        for pkg in matched {
            if let Action::Unsupported(message) = &rule.action {
                return Err(RewriteError::Unsupported {
                    rule: rule.label.clone(),
                    package: pkg.name.clone(),
                    message: message.clone(),
                });
            }
            let archive = format!("packages/{}.tgz", pkg.name);
            let info = &rel.archives[&archive];
            if !plans.contains_key(&pkg.name) {
                plans.insert(pkg.name.clone(), Plan::new(info, pkg)?);
            }
            let plan = plans.get_mut(&pkg.name).expect("just inserted");
            let selected: Vec<String> = match &rule.files {
                Some(g) => plan
                    .files
                    .iter()
                    .filter(|(n, f)| g.is_match(n) && f.mode != FileMode::Symlink)
                    .map(|(n, _)| n.clone())
                    .collect(),
                None => vec![],
            };
            match &rule.action {
                Action::Unsupported(_) => unreachable!("returned above"),
                Action::Replace(r) => {
                    if r.path.is_some() && selected.len() > 1 {
                        return Err(rule_err(
                            &pkg.name,
                            format!("a new path needs exactly one matching file, got {selected:?}"),
                        ));
                    }
                    for old in selected {
                        if !resolved.contains_key(&r.blob) {
                            let blob = blobs.get(&r.blob).map_err(|error| RewriteError::Blob {
                                key: r.blob.clone(),
                                error: Box::new(error),
                            })?;
                            resolved.insert(r.blob.clone(), blob);
                        }
                        let blob = resolved[&r.blob].clone();
                        let new = r.path.clone().unwrap_or_else(|| old.clone());
                        plan.files.remove(&old);
                        plan.change.blobs.push(BlobSwap {
                            key: r.blob.clone(),
                            old_path: old,
                            new_path: new.clone(),
                            sha256: blob.sha256.clone(),
                        });
                        let planned = PlannedFile {
                            source: Source::Blob(blob),
                            mode: FileMode::Regular,
                        };
                        plan.files.insert(new, planned);
                        hits += 1;
                    }
                }
                Action::Remove => {
                    for old in selected {
                        plan.files.remove(&old);
                        plan.change.removed.push(old);
                        hits += 1;
                    }
                }
                Action::Patch { file, find, with } => {
                    let Some(planned) = plan.files.get_mut(file) else {
                        continue;
                    };
                    let text = match &planned.source {
                        Source::Keep => read_member(info, file)?,
                        Source::Bytes(b) => b.clone(),
                        Source::Blob(_) => {
                            return Err(rule_err(&pkg.name, format!("{file} is a swapped blob")));
                        }
                    };
                    let text = String::from_utf8(text)
                        .map_err(|_| rule_err(&pkg.name, format!("{file} is not UTF-8 text")))?;
                    let patched = match find {
                        Find::Literal(l) => text.replace(l.as_str(), with),
                        Find::Regex(r) => r.replace_all(&text, with.as_str()).into_owned(),
                    };
                    if patched != text {
                        planned.source = Source::Bytes(patched.into_bytes());
                        plan.change.patched.push(file.clone());
                        hits += 1;
                    }
                }
                Action::Add(a) => {
                    let mode = if a.executable {
                        FileMode::Executable
                    } else {
                        FileMode::Regular
                    };
                    let planned = PlannedFile {
                        source: Source::Bytes(a.content.clone().into_bytes()),
                        mode,
                    };
                    plan.files.insert(a.path.clone(), planned);
                    plan.change.added.push(a.path.clone());
                    hits += 1;
                }
            }
        }
        if hits == 0 && !rule.optional {
            return Err(RewriteError::NoMatch {
                rule: rule.label.clone(),
            });
        }
    }
    plans.retain(|_, p| p.touched());
    Ok(plans)
}

/// One file of an inner archive, in memory (package scripts).
fn read_member(info: &ArchiveInfo, name: &str) -> Result<Vec<u8>, RewriteError> {
    let path = info.spooled.as_deref().expect("read with a spool");
    let mut found = None;
    archive::walk_path(path, &info.path, |e: &mut Entry<'_>| {
        if e.name == name && e.kind == EntryKind::File {
            if e.size > MAX_PATCHED_FILE {
                return Err(RewriteError::Rule {
                    rule: "patch".into(),
                    package: info.path.clone(),
                    message: format!("{name} is {} bytes, too large to patch", e.size),
                });
            }
            let mut buf = Vec::with_capacity(e.size as usize);
            e.read_to_end(&mut buf).map_err(|err| e.error(err))?;
            found = Some(buf);
        }
        Ok(())
    })?;
    Ok(found.unwrap_or_default())
}

impl From<ArchiveError> for RewriteError {
    fn from(e: ArchiveError) -> Self {
        RewriteError::Release(e.into())
    }
}

/// Rebuilds one package: kept files are extracted from the original archive into
/// `scratch`, then everything is written to `dest`. Updates `pkg` in place.
pub(super) fn build(
    info: &ArchiveInfo,
    plan: Plan,
    pkg: &mut Package,
    dest: &Path,
    scratch: &Path,
) -> Result<Option<PackageChange>, RewriteError> {
    let Plan { files, mut change } = plan;
    let dir = scratch.join(&pkg.name);
    let mut kept: HashMap<String, Content> = HashMap::new();
    let src = info.spooled.as_deref().expect("read with a spool");
    archive::walk_path(src, &info.path, |e: &mut Entry<'_>| {
        if !matches!(
            files.get(&e.name),
            Some(PlannedFile {
                source: Source::Keep,
                ..
            })
        ) {
            return Ok(());
        }
        let content = match &e.kind {
            EntryKind::Dir => return Ok(()),
            EntryKind::Symlink(t) => Content::Symlink(t.clone()),
            EntryKind::File | EntryKind::Hardlink(_) => {
                let out = dir.join(&e.name);
                if let Some(parent) = out.parent() {
                    fs::create_dir_all(parent).map_err(io_err(parent))?;
                }
                match &e.kind {
                    EntryKind::Hardlink(t) => {
                        fs::copy(dir.join(t), &out).map_err(io_err(&out))?;
                    }
                    _ => {
                        let mut f = fs::File::create(&out).map_err(io_err(&out))?;
                        std::io::copy(e, &mut f).map_err(|err| RewriteError::Io {
                            path: format!("{}: {}", info.path, e.name),
                            error: err,
                        })?;
                    }
                }
                Content::File(out)
            }
        };
        kept.insert(e.name.clone(), content);
        Ok::<(), RewriteError>(())
    })?;

    let mut inner = Vec::with_capacity(files.len());
    let mut blob_sums = Vec::new();
    for (name, f) in files {
        let mode = match f.mode {
            FileMode::Executable => Mode::Executable,
            _ => Mode::Regular,
        };
        let content = match f.source {
            Source::Keep => kept.remove(&name).ok_or_else(|| RewriteError::Rule {
                rule: "rebuild".into(),
                package: pkg.name.clone(),
                message: format!("{name} vanished from {}", info.path),
            })?,
            Source::Bytes(b) => Content::Bytes(b),
            Source::Blob(b) => {
                blob_sums.push((name.clone(), b.clone()));
                Content::File(b.path)
            }
        };
        inner.push(InnerFile {
            name,
            mode,
            content,
        });
    }
    let era = Era::of(&pkg.fingerprint).unwrap_or(Era::Sha256);
    let mut algos = vec![era.algo(), Algo::Sha256];
    algos.dedup();
    let built = build_inner(dest, inner, &algos).map_err(io_err(dest))?;
    for (name, blob) in blob_sums {
        let file = built
            .files
            .iter()
            .find(|f| f.name == name)
            .expect("built it");
        let actual = file.digests.get(Algo::Sha256).unwrap_or_default();
        if actual != blob.sha256 {
            let key = change
                .blobs
                .iter()
                .find(|b| b.new_path == name)
                .map(|b| b.key.clone())
                .unwrap_or_default();
            return Err(RewriteError::BlobMismatch {
                key,
                path: blob.path.display().to_string(),
                expected: blob.sha256,
                actual: actual.to_string(),
            });
        }
    }
    let resource = Resource::Package {
        dependencies: &pkg.dependencies,
    };
    let fp =
        fingerprint::fingerprint(era, &resource, &built.files).map_err(|e| RewriteError::Rule {
            rule: "fingerprint".into(),
            package: pkg.name.clone(),
            message: e.to_string(),
        })?;
    change.new_fingerprint = fp.clone();
    pkg.version = fp.clone();
    pkg.fingerprint = fp;
    pkg.sha1 = format!(
        "sha256:{}",
        built.digests.get(Algo::Sha256).unwrap_or_default()
    );
    Ok(Some(change))
}
