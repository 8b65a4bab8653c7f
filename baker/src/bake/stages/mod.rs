//! One module per stage kind.

mod files;
mod go_build;
mod image;
mod initramfs;
mod rootfs;
mod stemcell;
mod users;

use std::fs;
use std::path::{Component, Path, PathBuf};

use super::{BakeError, Blobs, Ctx};
use crate::recipe::stemcell::{Source, Stage, Toolchain};

/// Checks, before anything runs, what a stage needs from outside the recipe.
pub fn preflight(stage: &Stage, blobs: &dyn Blobs) -> Result<(), BakeError> {
    if let Stage::GoBuild(s) = stage {
        let mut keys = Vec::new();
        if let Source::Blob(k) = &s.source {
            keys.push(k);
        }
        if let Toolchain::Blob(k) = &s.toolchain {
            keys.push(k);
        }
        for k in keys {
            blobs.ensure(k).map_err(|reason| BakeError::Blob {
                stage: s.name.clone(),
                key: k.clone(),
                reason,
            })?;
        }
    }
    Ok(())
}

pub fn run(stage: &Stage, ctx: &mut Ctx) -> Result<(), BakeError> {
    match stage {
        Stage::Rootfs(s) => rootfs::run(s, ctx),
        Stage::Files(s) => files::run(s, ctx),
        Stage::Users(s) => users::run(s, ctx),
        Stage::Chroot(s) => {
            let script = s.commands.join("\n");
            super::chroot::run(
                ctx.rootfs,
                ctx.recipe.arch,
                ctx.recipe.source_date_epoch(),
                &script,
                &ctx.log,
            )
        }
        Stage::GoBuild(s) => go_build::run(s, ctx),
        Stage::Initramfs(s) => initramfs::run(s, ctx),
        Stage::Image(s) => image::run(s, ctx),
        Stage::Stemcell(s) => stemcell::run(s, ctx),
    }
}

/// Resolves the absolute target path `path` inside `rootfs`, following symlinks as the
/// target would (absolute links restart at `rootfs`), so nothing is written outside it.
/// The last component is not followed.
pub fn in_root(rootfs: &Path, path: &Path) -> Result<PathBuf, BakeError> {
    let mut parts: Vec<std::ffi::OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .collect();
    parts.reverse();
    let mut cur = PathBuf::new(); // relative to rootfs
    let mut hops = 0;
    while let Some(part) = parts.pop() {
        let candidate = cur.join(&part);
        let full = rootfs.join(&candidate);
        let is_last = parts.is_empty();
        match fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() && !is_last => {
                hops += 1;
                if hops > 40 {
                    return Err(BakeError::msg(format!(
                        "{}: too many symlinks in the target",
                        path.display()
                    )));
                }
                let target = fs::read_link(&full).map_err(|e| BakeError::io(&full, e))?;
                if target.is_absolute() {
                    cur = PathBuf::new();
                }
                let mut new: Vec<_> = Vec::new();
                for c in target.components() {
                    match c {
                        Component::Normal(n) => new.push(n.to_os_string()),
                        Component::ParentDir => new.push("..".into()),
                        _ => {}
                    }
                }
                for n in new.into_iter().rev() {
                    parts.push(n);
                }
            }
            _ if part == ".." => {
                cur.pop();
            }
            _ => cur = candidate,
        }
    }
    Ok(rootfs.join(cur))
}

/// Copies a directory tree (regular files, directories, symlinks), keeping modes.
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), BakeError> {
    for entry in walkdir::WalkDir::new(from).sort_by_file_name() {
        let entry = entry.map_err(|e| BakeError::msg(format!("{}: {e}", from.display())))?;
        let dest = to.join(entry.path().strip_prefix(from).expect("below"));
        let ft = entry.file_type();
        if ft.is_dir() {
            fs::create_dir_all(&dest).map_err(|e| BakeError::io(&dest, e))?;
        } else if ft.is_symlink() {
            let t = fs::read_link(entry.path()).map_err(|e| BakeError::io(entry.path(), e))?;
            std::os::unix::fs::symlink(t, &dest).map_err(|e| BakeError::io(&dest, e))?;
        } else {
            fs::copy(entry.path(), &dest).map_err(|e| BakeError::io(&dest, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_root_keeps_absolute_symlinks_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("run")).unwrap();
        fs::create_dir_all(root.join("var")).unwrap();
        std::os::unix::fs::symlink("/run", root.join("var/run")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", root.join("var/up")).unwrap();
        assert_eq!(
            in_root(root, Path::new("/var/run/x.pid")).unwrap(),
            root.join("run/x.pid")
        );
        assert_eq!(
            in_root(root, Path::new("/var/up/passwd")).unwrap(),
            root.join("etc/passwd")
        );
    }
}
