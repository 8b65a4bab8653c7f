//! A release tarball from a release directory, as `bosh create-release --tarball` builds it
//! (`release/{pkg,job,license}/dir_reader.go`): packages from `packages/<p>/{spec,packaging}`
//! and the files their `files:` globs match in `src/` then `blobs/`; jobs from
//! `jobs/<j>/{spec,monit,templates/…}`; the license from `LICENSE*`/`NOTICE*` at the root.
//! Fingerprints come out as bosh-cli computes them (SHA-256 era); archive bytes are ours
//! (deterministic), so archive digests differ from bosh-cli's as they do between two of its
//! own runs.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::Compression;
use globset::{Glob, GlobBuilder};
use serde::Deserialize;

use crate::archive::Mode;
use pifoundry_util::atomic::AtomicFile;

use super::digest::Algo;
use super::fingerprint::{self, Era, Resource};
use super::manifest::{Job, License, Manifest, Package};
use super::writer::{self, Content, InnerFile, Parts, build_inner};

/// A problem with one file of the release directory.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct DirError {
    pub path: String,
    pub message: String,
}

fn err(path: &Path, message: impl std::fmt::Display) -> DirError {
    DirError {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

#[derive(Deserialize)]
struct FinalYml {
    #[serde(alias = "final_name")]
    name: String,
}

#[derive(Deserialize)]
struct PackageSpec {
    name: String,
    #[serde(default)]
    dependencies: Vec<String>,
    #[serde(default)]
    files: Vec<String>,
    #[serde(default)]
    excluded_files: Vec<String>,
}

#[derive(Deserialize)]
struct JobSpec {
    name: String,
    #[serde(default)]
    templates: BTreeMap<String, String>,
    #[serde(default)]
    packages: Vec<String>,
}

/// Builds `out` (atomically) from the release directory `dir` with this version; returns
/// the manifest written as `release.MF`.
pub fn create(dir: &Path, version: &str, out: &Path) -> Result<Manifest, DirError> {
    let final_yml = dir.join("config/final.yml");
    let text = std::fs::read(&final_yml).map_err(|e| err(&final_yml, e))?;
    let name = serde_yaml::from_slice::<FinalYml>(&text)
        .map_err(|e| err(&final_yml, e))?
        .name;
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let staging = tempfile::tempdir_in(parent).map_err(|e| err(parent, e))?;
    for d in ["packages", "jobs"] {
        std::fs::create_dir_all(staging.path().join(d)).map_err(|e| err(staging.path(), e))?;
    }
    let mut archives = BTreeMap::new();

    let mut packages = Vec::new();
    for p in subdirs(&dir.join("packages"))? {
        let (pkg, path) = package(dir, &p, staging.path())?;
        archives.insert(format!("packages/{}.tgz", pkg.name), path);
        packages.push(pkg);
    }
    let mut jobs = Vec::new();
    for j in subdirs(&dir.join("jobs"))? {
        let (job, path) = job(&j, staging.path())?;
        archives.insert(format!("jobs/{}.tgz", job.name), path);
        jobs.push(job);
    }
    let (license, top_files) = license(dir, staging.path())?;
    if license.is_some() {
        archives.insert("license.tgz".into(), staging.path().join("license.tgz"));
    }
    let manifest = Manifest {
        name,
        version: version.to_string(),
        commit_hash: commit_hash(dir),
        uncommitted_changes: dirty(dir),
        jobs,
        packages,
        license,
        no_compression: Some(false),
        ..Manifest::default()
    };
    let parts = Parts {
        manifest: &manifest,
        archives: &archives,
        top_files: &top_files,
    };
    let file = AtomicFile::create(out).map_err(|e| err(out, e))?;
    let file = writer::write(file, &parts, Compression::default()).map_err(|e| err(out, e))?;
    file.commit().map_err(|e| err(out, e))?;
    Ok(manifest)
}

/// Subdirectories sorted by name (bosh-cli sorts jobs and packages in release.MF).
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, DirError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(err(dir, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| err(dir, e))?;
        if entry.path().is_dir() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

fn sha256_field(built: &writer::Built) -> String {
    format!("sha256:{}", built.digests.get(Algo::Sha256).unwrap_or(""))
}

fn file_mode(path: &Path) -> Result<Mode, DirError> {
    use std::os::unix::fs::PermissionsExt;
    let md = std::fs::metadata(path).map_err(|e| err(path, e))?;
    Ok(Mode::from_bits(md.permissions().mode()))
}

fn regular(path: &Path, name: &str) -> Result<InnerFile, DirError> {
    Ok(InnerFile {
        name: name.to_string(),
        mode: file_mode(path)?,
        content: Content::File(path.to_path_buf()),
    })
}

fn package(root: &Path, dir: &Path, staging: &Path) -> Result<(Package, PathBuf), DirError> {
    let spec_path = dir.join("spec");
    if dir.join("spec.lock").exists() {
        return Err(err(
            &dir.join("spec.lock"),
            "vendored packages are not supported",
        ));
    }
    if dir.join("pre_packaging").exists() {
        return Err(err(
            &dir.join("pre_packaging"),
            "pre_packaging is not supported",
        ));
    }
    let text = std::fs::read(&spec_path).map_err(|e| err(&spec_path, e))?;
    let spec: PackageSpec = serde_yaml::from_slice(&text).map_err(|e| err(&spec_path, e))?;
    let packaging = dir.join("packaging");
    if !packaging.is_file() {
        return Err(err(
            &packaging,
            format!("expected for package '{}'", spec.name),
        ));
    }
    let mut by_name: BTreeMap<String, InnerFile> = BTreeMap::new();
    let trees = [root.join("src"), root.join("blobs")];
    let listed: Vec<Vec<(String, PathBuf)>> =
        trees.iter().map(|t| walk(t)).collect::<Result<_, _>>()?;
    for pattern in &spec.files {
        let m = matcher(pattern, &spec_path)?;
        let mut found = false;
        for files in &listed {
            for (rel, path) in files.iter().filter(|(rel, _)| m.is_match(rel)) {
                found = true;
                if let Entry::Vacant(slot) = by_name.entry(rel.clone()) {
                    slot.insert(packaged(path, rel)?);
                }
            }
        }
        if !found {
            return Err(err(
                &spec_path,
                format!("missing files for pattern '{pattern}'"),
            ));
        }
    }
    for pattern in &spec.excluded_files {
        let m = matcher(pattern, &spec_path)?;
        by_name.retain(|rel, _| !m.is_match(rel));
    }
    if by_name.contains_key("packaging") {
        return Err(err(
            &spec_path,
            "'packaging' must not be matched by 'files'",
        ));
    }
    let mut files: Vec<InnerFile> = by_name.into_values().collect();
    files.push(regular(&packaging, "packaging")?);
    let dest = staging.join(format!("packages/{}.tgz", spec.name));
    let built = build_inner(&dest, files, &[Algo::Sha256]).map_err(|e| err(dir, e))?;
    let r = Resource::Package {
        dependencies: &spec.dependencies,
    };
    let fp = fingerprint::fingerprint(Era::Sha256, &r, &built.files).map_err(|e| err(dir, e))?;
    let pkg = Package {
        name: spec.name,
        version: fp.clone(),
        fingerprint: fp,
        sha1: sha256_field(&built),
        dependencies: spec.dependencies,
        ..Package::default()
    };
    Ok((pkg, dest))
}

/// Packages keep symlinks as symlinks.
fn packaged(path: &Path, rel: &str) -> Result<InnerFile, DirError> {
    let md = std::fs::symlink_metadata(path).map_err(|e| err(path, e))?;
    if md.file_type().is_symlink() {
        let target = std::fs::read_link(path).map_err(|e| err(path, e))?;
        return Ok(InnerFile {
            name: rel.to_string(),
            mode: Mode::Regular,
            content: Content::Symlink(target.to_string_lossy().into_owned()),
        });
    }
    regular(path, rel)
}

/// bosh-utils' doublestar globs: `*` stays within a path segment, `**` crosses them.
fn matcher(pattern: &str, spec: &Path) -> Result<globset::GlobMatcher, DirError> {
    let glob: Glob = GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| err(spec, e))?;
    Ok(glob.compile_matcher())
}

/// Every non-directory under `tree`, as (path relative to it, full path).
fn walk(tree: &Path) -> Result<Vec<(String, PathBuf)>, DirError> {
    if !tree.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(tree).sort_by_file_name() {
        let entry = entry.map_err(|e| err(tree, e))?;
        if entry.file_type().is_dir() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(tree)
            .map_err(|e| err(entry.path(), e))?
            .to_string_lossy()
            .into_owned();
        out.push((rel, entry.path().to_path_buf()));
    }
    Ok(out)
}

fn job(dir: &Path, staging: &Path) -> Result<(Job, PathBuf), DirError> {
    let spec_path = dir.join("spec");
    let text = std::fs::read(&spec_path).map_err(|e| err(&spec_path, e))?;
    let spec: JobSpec = serde_yaml::from_slice(&text).map_err(|e| err(&spec_path, e))?;
    let mut files = vec![regular(&spec_path, "job.MF")?];
    let monit = dir.join("monit");
    if monit.exists() {
        files.push(regular(&monit, "monit")?);
    }
    let schema = dir.join("properties_schema.json");
    if schema.exists() {
        files.push(regular(&schema, "properties_schema.json")?);
    }
    for src in spec.templates.keys() {
        let path = dir.join("templates").join(src);
        if !path.is_file() {
            return Err(err(
                &spec_path,
                format!("template '{src}' is not in templates/"),
            ));
        }
        files.push(regular(&path, &format!("templates/{src}"))?);
    }
    let dest = staging.join(format!("jobs/{}.tgz", spec.name));
    let built = build_inner(&dest, files, &[Algo::Sha256]).map_err(|e| err(dir, e))?;
    let fp = fingerprint::fingerprint(Era::Sha256, &Resource::Job, &built.files)
        .map_err(|e| err(dir, e))?;
    let job = Job {
        name: spec.name,
        version: fp.clone(),
        fingerprint: fp,
        sha1: sha256_field(&built),
        packages: spec.packages,
        ..Job::default()
    };
    Ok((job, dest))
}

type TopFiles = Vec<(String, Vec<u8>)>;

fn license(dir: &Path, staging: &Path) -> Result<(Option<License>, TopFiles), DirError> {
    let mut top = Vec::new();
    let mut files = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| err(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| err(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if (name.starts_with("LICENSE") || name.starts_with("NOTICE")) && entry.path().is_file() {
            let bytes = std::fs::read(entry.path()).map_err(|e| err(&entry.path(), e))?;
            files.push(regular(&entry.path(), &name)?);
            top.push((name, bytes));
        }
    }
    if files.is_empty() {
        return Ok((None, top));
    }
    let dest = staging.join("license.tgz");
    let built = build_inner(&dest, files, &[Algo::Sha256]).map_err(|e| err(dir, e))?;
    let fp = fingerprint::fingerprint(Era::Sha256, &Resource::License, &built.files)
        .map_err(|e| err(dir, e))?;
    let license = License {
        version: fp.clone(),
        fingerprint: fp,
        sha1: sha256_field(&built),
        ..License::default()
    };
    Ok((Some(license), top))
}

/// `git rev-parse --short HEAD`, or `non-git` as bosh-cli writes outside a repository.
fn commit_hash(dir: &Path) -> String {
    let out = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(dir)
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) if String::from_utf8_lossy(&o.stderr).contains("Needed a single revision") => {
            "empty".into()
        }
        _ => "non-git".into(),
    }
}

fn dirty(dir: &Path) -> bool {
    Command::new("git")
        .args(["status", "--porcelain=1"])
        .current_dir(dir)
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.trim_ascii().is_empty())
}
