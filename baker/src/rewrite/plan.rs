//! Applies recipe rules to the file lists of the packages they match, then rebuilds the
//! packages that changed.

use std::collections::{BTreeMap, HashMap};
use std::fs;

use serde::Serialize;

use crate::archive::{ArchiveError, Mode, TarGzWriter};
use crate::blobs::{Blobs, LockedBlob};
use crate::recipe::release::{Action, CompiledRule, Find};
use crate::release::digest::{Algo, HashingReader};
use crate::release::fingerprint::{self, Era, FileMode, Resource};
use crate::release::manifest::Package;

use super::collect::{Collected, Held, MAX_PATCHED_FILE};
use super::inner::{InnerRef, Src, Written};
use super::{RewriteError, io_err};

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
    /// The blob's own file name (from its URL).
    pub content: String,
    /// The old file name was kept although it no longer describes the content.
    pub kept_name: bool,
    /// `1.23.1 -> 1.23.2: <the recipe's reason>` when the swap changes the version.
    pub version_change: Option<String>,
    /// The blob went in as the one member of a `.tgz`, under this name.
    pub tgz_member: Option<String>,
}

/// The first dotted version number in a file name: `go1.23.2.linux-amd64.tar.gz` → `1.23.2`.
fn version_in(name: &str) -> Option<&str> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| regex::Regex::new(r"\d+(?:\.\d+)+").expect("valid"));
    let base = name.rsplit('/').next().unwrap_or(name);
    re.find(base).map(|m| m.as_str().trim_end_matches('.'))
}

fn base(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
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
    fn new(c: &Collected, pkg: &Package) -> Self {
        let files = c
            .files
            .iter()
            .map(|(name, (mode, _))| {
                let planned = PlannedFile {
                    source: Source::Keep,
                    mode: *mode,
                };
                (name.clone(), planned)
            })
            .collect();
        Self {
            files,
            change: PackageChange {
                package: pkg.name.clone(),
                old_fingerprint: pkg.fingerprint.clone(),
                ..PackageChange::default()
            },
        }
    }

    fn touched(&self) -> bool {
        let c = &self.change;
        !(c.blobs.is_empty() && c.patched.is_empty() && c.removed.is_empty() && c.added.is_empty())
    }
}

/// Blobs resolved so far and how many changes each rule made, across packages.
pub(super) struct Progress {
    pub resolved: HashMap<String, LockedBlob>,
    pub hits: Vec<usize>,
}

/// Applies every rule matching `pkg` to its collected files, in recipe order; `None` when
/// nothing changes. Fails on the first rule that cannot apply.
pub(super) fn plan(
    pkg: &Package,
    c: &Collected,
    rules: &[CompiledRule],
    blobs: &dyn Blobs,
    progress: &mut Progress,
) -> Result<Option<Plan>, RewriteError> {
    let mut plan = Plan::new(c, pkg);
    for (i, rule) in rules.iter().enumerate() {
        if !rule.packages.is_match(&pkg.name) {
            continue;
        }
        let rule_err = |package: &str, message: String| RewriteError::Rule {
            rule: rule.label.clone(),
            package: package.to_string(),
            message,
        };
        let mut hits = 0usize;
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
            Action::Unsupported(_) => {}
            Action::Replace(r) => {
                if r.path.is_some() && selected.len() > 1 {
                    return Err(rule_err(
                        &pkg.name,
                        format!("a new path needs exactly one matching file, got {selected:?}"),
                    ));
                }
                for old in selected {
                    if !progress.resolved.contains_key(&r.blob) {
                        let blob = blobs.get(&r.blob).map_err(|error| RewriteError::Blob {
                            key: r.blob.clone(),
                            error: Box::new(error),
                        })?;
                        progress.resolved.insert(r.blob.clone(), blob);
                    }
                    let blob = progress.resolved[&r.blob].clone();
                    // a bare file name stays in the matched file's directory
                    let new = match (&r.path, old.rsplit_once('/')) {
                        (Some(p), Some((dir, _))) if !p.contains('/') => format!("{dir}/{p}"),
                        (Some(p), _) => p.clone(),
                        (None, _) => old.clone(),
                    };
                    let (was, is) = (version_in(&old), version_in(&blob.name));
                    let version_change = match (was, is, &r.version_change) {
                        (Some(a), Some(b), why) if a != b => match why {
                            Some(why) => Some(format!("{a} -> {b}: {why}")),
                            None => {
                                return Err(rule_err(
                                    &pkg.name,
                                    format!(
                                        "{old} is version {a} but blob {} ({}) is {b}: swap in {a}, or declare the change with `version_change`",
                                        r.blob, blob.name
                                    ),
                                ));
                            }
                        },
                        _ => None,
                    };
                    if let (Some(named), Some(b)) = (version_in(&new), is)
                        && named != b
                    {
                        return Err(rule_err(
                            &pkg.name,
                            format!(
                                "new path {new} names version {named}, blob {} is {b}",
                                r.blob
                            ),
                        ));
                    }
                    let kept_name =
                        r.path.is_none() && r.tgz_member.is_none() && base(&old) != blob.name;
                    plan.files.remove(&old);
                    plan.change.blobs.push(BlobSwap {
                        key: r.blob.clone(),
                        old_path: old,
                        new_path: new.clone(),
                        sha256: blob.sha256.clone(),
                        content: blob.name.clone(),
                        kept_name,
                        version_change,
                        tgz_member: r.tgz_member.clone(),
                    });
                    let source = match &r.tgz_member {
                        Some(member) => Source::Bytes(wrap(&blob, member, &r.blob)?),
                        None => Source::Blob(blob),
                    };
                    let planned = PlannedFile {
                        source,
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
                    Source::Keep => read_member(c, &pkg.name, file)?,
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
        progress.hits[i] += hits;
    }
    Ok(plan.touched().then_some(plan))
}

/// The blob as the one member `member` (mode 0755) of a deterministic `.tgz`, which GNU tar
/// extracts with `tar -xzf x.tgz member`. Checks the blob's sha256 as it reads it.
fn wrap(blob: &LockedBlob, member: &str, key: &str) -> Result<Vec<u8>, RewriteError> {
    const MAX_WRAPPED: u64 = 64 << 20;
    if blob.size > MAX_WRAPPED {
        return Err(RewriteError::Blob {
            key: key.to_string(),
            error: Box::new(crate::blobs::BlobError::TooLargeToWrap(blob.size)),
        });
    }
    let file = fs::File::open(&blob.path).map_err(io_err(&blob.path))?;
    let mut r = HashingReader::new(file, &[Algo::Sha256]);
    let mut tgz = TarGzWriter::new(Vec::new());
    tgz.add_reader(member, Mode::Executable, blob.size, &mut r)
        .map_err(io_err(&blob.path))?;
    let actual = r.hasher.hex(Algo::Sha256);
    if actual != blob.sha256 {
        return Err(RewriteError::BlobMismatch {
            key: key.to_string(),
            path: blob.path.display().to_string(),
            expected: blob.sha256.clone(),
            actual,
        });
    }
    tgz.finish().map_err(io_err(&blob.path))
}

/// One file of a collected package, in memory (package scripts).
fn read_member(c: &Collected, package: &str, name: &str) -> Result<Vec<u8>, RewriteError> {
    let too_large = |size: String| RewriteError::Rule {
        rule: "patch".into(),
        package: package.to_string(),
        message: format!("{name} is {size}, too large to patch"),
    };
    match c.files.get(name).map(|(_, h)| h) {
        Some(Held::Memory(b)) => Ok(b.clone()),
        Some(Held::Spooled(p)) => {
            let size = fs::metadata(p).map_err(io_err(p))?.len();
            if size > MAX_PATCHED_FILE {
                return Err(too_large(format!("{size} bytes")));
            }
            fs::read(p).map_err(io_err(p))
        }
        Some(Held::Dropped) => Err(too_large(format!("over {MAX_PATCHED_FILE} bytes"))),
        Some(Held::Symlink(_)) | None => Ok(Vec::new()),
    }
}

impl From<ArchiveError> for RewriteError {
    fn from(e: ArchiveError) -> Self {
        RewriteError::Release(e.into())
    }
}

/// The rebuilt package's files, sorted, borrowing from the plan and the collected package.
pub(super) fn sources<'a>(
    plan: &'a Plan,
    c: &'a Collected,
    package: &str,
) -> Result<Vec<InnerRef<'a>>, RewriteError> {
    let mut out = Vec::with_capacity(plan.files.len());
    for (name, f) in &plan.files {
        let mode = match f.mode {
            FileMode::Executable => Mode::Executable,
            _ => Mode::Regular,
        };
        let src = match &f.source {
            Source::Keep => match c.files.get(name).map(|(_, h)| h) {
                Some(Held::Memory(b)) => Src::Bytes(b),
                Some(Held::Spooled(p)) => Src::File(p),
                Some(Held::Symlink(t)) => Src::Symlink(t),
                Some(Held::Dropped) | None => {
                    return Err(RewriteError::Rule {
                        rule: "rebuild".into(),
                        package: package.to_string(),
                        message: format!("{name} vanished from {}", c.info.path),
                    });
                }
            },
            Source::Bytes(b) => Src::Bytes(b),
            Source::Blob(b) => Src::File(&b.path),
        };
        out.push(InnerRef { name, mode, src });
    }
    Ok(out)
}

/// The digest algorithms a rebuilt package needs: its fingerprint era's and sha256.
pub(super) fn algos_for_fingerprint(plan: &Plan) -> (Era, Vec<Algo>) {
    let era = Era::of(&plan.change.old_fingerprint).unwrap_or(Era::Sha256);
    let mut algos = vec![era.algo(), Algo::Sha256];
    algos.dedup();
    (era, algos)
}

/// Checks the swapped blobs against the lock and updates `pkg` (fingerprint, version,
/// digest) from what was written.
pub(super) fn finish(
    plan: Plan,
    pkg: &mut Package,
    era: Era,
    built: &Written,
) -> Result<PackageChange, RewriteError> {
    let Plan { files, mut change } = plan;
    for (name, f) in &files {
        let Source::Blob(blob) = &f.source else {
            continue;
        };
        let file = built
            .files
            .iter()
            .find(|f| &f.name == name)
            .expect("written from this plan");
        let actual = file.digests.get(Algo::Sha256).unwrap_or_default();
        if actual != blob.sha256 {
            let key = change
                .blobs
                .iter()
                .find(|b| &b.new_path == name)
                .map(|b| b.key.clone())
                .unwrap_or_default();
            return Err(RewriteError::BlobMismatch {
                key,
                path: blob.path.display().to_string(),
                expected: blob.sha256.clone(),
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
    Ok(change)
}
