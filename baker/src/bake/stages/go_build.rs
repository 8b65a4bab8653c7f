//! `go-build`: cross-build a Go program (the bosh-agent, or in CI a stand-in) from a source
//! tarball in blobs.lock or a project directory, and install it into the root file system.
//! Static (`CGO_ENABLED=0`), `GOARM` always explicit (the default, 7, dies on a Pi Zero),
//! reproducible (`-trimpath`, `-buildvcs=false`, empty build id), offline (`GOPROXY=off`,
//! vendored modules).

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::read::GzDecoder;

use super::in_root;
use crate::bake::{BakeError, Ctx, run_logged};
use crate::recipe::stemcell::{GoBuildStage, Source, Toolchain};

pub fn run(s: &GoBuildStage, ctx: &mut Ctx) -> Result<(), BakeError> {
    let base = ctx.work.join(format!("go-build-{}", s.name));
    let _ = fs::remove_dir_all(&base);
    let src = base.join("src");
    fs::create_dir_all(&src).map_err(|e| BakeError::io(&src, e))?;
    let src = match &s.source {
        Source::Path(p) => {
            super::copy_tree(&ctx.project_root.join(p), &src)?;
            src
        }
        Source::Blob(key) => {
            let tgz = ctx.blobs.ensure(key).map_err(BakeError::msg)?;
            unpack_tgz(&tgz, &src)?;
            single_top_dir(&src)
        }
    };
    for patch in &s.patches {
        let p = ctx.project_root.join(patch);
        let file = File::open(&p).map_err(|e| BakeError::io(&p, e))?;
        let mut cmd = Command::new("patch");
        cmd.args([
            "-p1",
            "--batch",
            "--forward",
            "--no-backup-if-mismatch",
            "-d",
        ])
        .arg(&src)
        .stdin(file);
        run_patch(cmd, &p)?;
    }
    let go = match &s.toolchain {
        Toolchain::System => PathBuf::from("go"),
        Toolchain::Blob(key) => {
            let tgz = ctx.blobs.ensure(key).map_err(BakeError::msg)?;
            let dir = base.join("toolchain");
            fs::create_dir_all(&dir).map_err(|e| BakeError::io(&dir, e))?;
            unpack_tgz(&tgz, &dir)?;
            dir.join("go/bin/go")
        }
    };
    let bin = base.join("out").join("program");
    let (goarch, goarm) = ctx.recipe.arch.go();
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
            ctx.recipe.source_date_epoch().to_string(),
        )
        .args(["build", "-trimpath", "-buildvcs=false", "-ldflags"])
        .arg(ldflags.join(" "))
        .arg("-o")
        .arg(&bin)
        .arg(&s.package);
    if let Some(arm) = goarm {
        cmd.env("GOARM", arm);
    }
    run_logged(&mut cmd, &ctx.log)?;
    let dest = in_root(ctx.rootfs, &s.install)?;
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(|e| BakeError::io(parent, e))?;
    }
    fs::copy(&bin, &dest).map_err(|e| BakeError::io(&dest, e))?;
    fs::set_permissions(&dest, fs::Permissions::from_mode(0o755))
        .map_err(|e| BakeError::io(&dest, e))?;
    std::os::unix::fs::lchown(&dest, Some(0), Some(0)).map_err(|e| BakeError::io(&dest, e))
}

fn run_patch(mut cmd: Command, patch: &Path) -> Result<(), BakeError> {
    let out = cmd
        .output()
        .map_err(|e| BakeError::msg(format!("cannot run patch: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(BakeError::msg(format!(
        "patch {} does not apply: {}",
        patch.display(),
        String::from_utf8_lossy(&out.stdout).trim()
    )))
}

/// The tar crate refuses entries that would land outside `dest` (`..`, absolute paths,
/// links out of the tree).
fn unpack_tgz(tgz: &Path, dest: &Path) -> Result<(), BakeError> {
    let f = File::open(tgz).map_err(|e| BakeError::io(tgz, e))?;
    let mut ar = tar::Archive::new(GzDecoder::new(f));
    ar.set_preserve_permissions(true);
    ar.unpack(dest)
        .map_err(|e| BakeError::msg(format!("{}: {e}", tgz.display())))
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
