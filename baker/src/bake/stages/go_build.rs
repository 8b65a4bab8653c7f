//! `go-build`: cross-build a Go program (the bosh-agent, or in CI a stand-in) from a source
//! tarball in blobs.lock or a project directory, and install it into the root file system.
//! Static (`CGO_ENABLED=0`), `GOARM` always explicit (the default, 7, dies on a Pi Zero),
//! reproducible (`-trimpath`, `-buildvcs=false`, empty build id), offline (`GOPROXY=off`,
//! vendored modules).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use pifoundry_bosh::archive;
use pifoundry_util::error::at;
use pifoundry_util::tool;
use serde::{Deserialize, Serialize};

use super::{Ctx, FieldError, KeyInputs, StageError, StageKind, copy_tree, in_root};

/// Where a Go program's source comes from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum Source {
    /// A `blobs.lock` key naming a tarball.
    Blob(String),
    /// A project-relative directory.
    Path(PathBuf),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Toolchain {
    /// The host's `go` on PATH.
    System,
    /// A `blobs.lock` key naming an official `go*.linux-amd64.tar.gz`.
    Blob(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoBuildStage {
    pub name: String,
    pub source: Source,
    #[serde(default = "default_toolchain")]
    pub toolchain: Toolchain,
    /// Main package inside the source, e.g. `./main`.
    #[serde(default = "default_package")]
    pub package: String,
    /// Project-relative patch files applied with `patch -p1` in order.
    #[serde(default)]
    pub patches: Vec<PathBuf>,
    /// Literal text replacements in the source, applied after the patches, each with the
    /// reason beside it. One that matches nothing fails the bake: the upstream code moved.
    #[serde(default)]
    pub substitutions: Vec<Substitution>,
    /// Absolute install path in the root file system.
    pub install: PathBuf,
    #[serde(default)]
    pub ldflags: Vec<String>,
}

/// Replace every occurrence of `replace` in `file` with `with`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Substitution {
    /// Path inside the source tree.
    pub file: PathBuf,
    pub replace: String,
    pub with: String,
    /// Why the source needs this change.
    pub why: String,
}

fn default_toolchain() -> Toolchain {
    Toolchain::System
}
fn default_package() -> String {
    ".".into()
}

impl StageKind for GoBuildStage {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<(), FieldError> {
        super::absolute("install", &self.install)?;
        if let Source::Path(p) = &self.source {
            super::project_relative("source.path", p)?;
        }
        for p in &self.patches {
            super::project_relative("patches", p)?;
        }
        let package = Path::new(&self.package);
        if self.package.is_empty()
            || package.is_absolute()
            || package
                .components()
                .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(FieldError::new(
                "package",
                format!("`{}`", self.package),
                "must be a package inside the source, such as `.` or `./main`",
            ));
        }
        for (i, sub) in self.substitutions.iter().enumerate() {
            sub.validate(&format!("substitutions[{i}]"))?;
        }
        if self.ldflags.is_empty() {
            return Ok(());
        }
        super::listed("ldflags", &self.ldflags, "flag")
    }

    fn blobs(&self) -> Vec<&str> {
        let mut keys = Vec::new();
        if let Source::Blob(k) = &self.source {
            keys.push(k.as_str());
        }
        if let Toolchain::Blob(k) = &self.toolchain {
            keys.push(k.as_str());
        }
        keys
    }

    fn key_inputs(&self, key: &mut KeyInputs<'_>) -> Result<(), StageError> {
        match &self.source {
            Source::Blob(k) => key.blob("source-blob", k)?,
            Source::Path(p) => key.project_tree("source-tree", p)?,
        }
        match &self.toolchain {
            Toolchain::Blob(k) => key.blob("toolchain-blob", k)?,
            Toolchain::System => key.field("toolchain", system_go_version().as_bytes()),
        }
        for p in &self.patches {
            key.project_file("patch", p)?;
        }
        Ok(())
    }

    fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), StageError> {
        build(self, ctx)
    }
}

fn system_go_version() -> String {
    Command::new("go")
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|_| "go: not found".into())
}

fn build(s: &GoBuildStage, ctx: &mut Ctx<'_>) -> Result<(), StageError> {
    let base = ctx.work.join(format!("go-build-{}", s.name));
    let _ = fs::remove_dir_all(&base);
    let src = base.join("src");
    fs::create_dir_all(&src).map_err(at(&src))?;
    let src = match &s.source {
        Source::Path(p) => {
            copy_tree(&ctx.project_root.join(p), &src)?;
            src
        }
        Source::Blob(key) => {
            let tgz = ctx.blob(key)?;
            archive::unpack(&tgz, &format!("blob {key}"), &src)?;
            single_top_dir(&src)
        }
    };
    for patch in &s.patches {
        let p = ctx.project_root.join(patch);
        let mut cmd = Command::new("patch");
        cmd.args([
            "-p1",
            "--batch",
            "--forward",
            "--no-backup-if-mismatch",
            "-d",
        ])
        .arg(&src)
        .arg("-i")
        .arg(&p);
        tool::run(&mut cmd, None).map_err(|error| StageError::Patch { patch: p, error })?;
    }
    for (i, sub) in s.substitutions.iter().enumerate() {
        sub.apply(&src, i)?;
    }
    let go = match &s.toolchain {
        Toolchain::System => PathBuf::from("go"),
        Toolchain::Blob(key) => {
            let tgz = ctx.blob(key)?;
            let dir = base.join("toolchain");
            archive::unpack(&tgz, &format!("blob {key}"), &dir)?;
            dir.join("go/bin/go")
        }
    };
    let bin = base.join("out").join("program");
    let (goarch, goarm) = (ctx.header.arch.goarch(), ctx.header.arch.goarm());
    let mut ldflags = vec!["-s".to_string(), "-w".into(), "-buildid=".into()];
    ldflags.extend(s.ldflags.iter().cloned());
    let mut cmd = Command::new(&go);
    cmd.current_dir(&src)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &base)
        .env("GOPATH", base.join("gopath"))
        .env("GOCACHE", base.join("gocache"))
        .env("GOPROXY", "off")
        .env("GOSUMDB", "off")
        .env("GOTOOLCHAIN", "local")
        .env(
            "GOFLAGS",
            if src.join("vendor").is_dir() {
                "-mod=vendor"
            } else {
                ""
            },
        )
        .env("CGO_ENABLED", "0")
        .env("GOOS", "linux")
        .env("GOARCH", goarch)
        .env(
            "SOURCE_DATE_EPOCH",
            ctx.header.source_date_epoch.to_string(),
        )
        .args(["build", "-trimpath", "-buildvcs=false", "-ldflags"])
        .arg(ldflags.join(" "))
        .arg("-o")
        .arg(&bin)
        .arg(&s.package);
    if let Some(arm) = goarm {
        cmd.env("GOARM", arm);
    }
    tool::run_logged(&mut cmd, &ctx.log)?;
    let dest = in_root(ctx.rootfs, &s.install)?;
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(at(parent))?;
    }
    fs::copy(&bin, &dest).map_err(at(&dest))?;
    fs::set_permissions(&dest, fs::Permissions::from_mode(0o755)).map_err(at(&dest))?;
    std::os::unix::fs::lchown(&dest, Some(0), Some(0)).map_err(at(&dest))?;
    Ok(())
}

impl Substitution {
    fn validate(&self, field: &str) -> Result<(), FieldError> {
        let up = self
            .file
            .components()
            .any(|c| c == std::path::Component::ParentDir);
        if self.file.is_absolute() || up || self.file.as_os_str().is_empty() {
            return Err(FieldError::new(
                format!("{field}.file"),
                format!("`{}`", self.file.display()),
                "must be a path inside the source without `..`",
            ));
        }
        for (name, value) in [("replace", &self.replace), ("why", &self.why)] {
            if value.trim().is_empty() {
                return Err(FieldError::new(
                    format!("{field}.{name}"),
                    "",
                    "must not be empty",
                ));
            }
        }
        if self.replace == self.with {
            return Err(FieldError::new(
                format!("{field}.with"),
                "",
                "is the same as `replace`",
            ));
        }
        Ok(())
    }

    /// Rewrites the file in the scratch copy of the source; `i` is its place in the recipe.
    pub fn apply(&self, src: &Path, i: usize) -> Result<usize, StageError> {
        let path = src.join(&self.file);
        let text = fs::read_to_string(&path).map_err(at(&path))?;
        let n = text.matches(&self.replace).count();
        if n == 0 {
            return Err(StageError::input(
                &path,
                format!(
                    "substitutions[{i}]: `{}` matches nothing (the source changed; the substitution was for: {})",
                    self.replace,
                    self.why.trim()
                ),
            ));
        }
        fs::write(&path, text.replace(&self.replace, &self.with)).map_err(at(&path))?;
        Ok(n)
    }
}

/// GitHub tag tarballs wrap the tree in one `name-version/` directory.
fn single_top_dir(dir: &Path) -> PathBuf {
    let entries: Vec<_> = fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).collect())
        .unwrap_or_default();
    match entries.as_slice() {
        [one] if one.path().is_dir() => one.path(),
        _ => dir.to_path_buf(),
    }
}
