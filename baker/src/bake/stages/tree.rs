//! Paths in and out of the root file system being built: resolving a target path the way the
//! target would (symlinks included) without leaving the root, copying trees, hashing trees.

use std::fs;
use std::path::{Component, Path, PathBuf};

use pifoundry_util::PathError;
use pifoundry_util::error::at;
use sha2::{Digest, Sha256};

use super::StageError;

/// Resolves the absolute target path `path` inside `rootfs`, following symlinks as the
/// target would (absolute links restart at `rootfs`), so nothing is written outside it.
/// The last component is not followed.
pub fn in_root(rootfs: &Path, path: &Path) -> Result<PathBuf, StageError> {
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
                    return Err(StageError::input(path, "too many symlinks in the target"));
                }
                let target = fs::read_link(&full).map_err(at(&full))?;
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
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), PathError> {
    for entry in walkdir::WalkDir::new(from).sort_by_file_name() {
        let entry = entry.map_err(|e| walk_error(from, e))?;
        let dest = to.join(entry.path().strip_prefix(from).expect("below"));
        let ft = entry.file_type();
        // the root itself may be a symlink to the tree (walkdir follows it)
        if entry.depth() == 0 || ft.is_dir() {
            fs::create_dir_all(&dest).map_err(at(&dest))?;
        } else if ft.is_symlink() {
            let t = fs::read_link(entry.path()).map_err(at(entry.path()))?;
            std::os::unix::fs::symlink(t, &dest).map_err(at(&dest))?;
        } else {
            fs::copy(entry.path(), &dest).map_err(at(&dest))?;
        }
    }
    Ok(())
}

/// Hash of a directory tree: relative paths, kinds, modes, contents and link targets.
pub fn tree_hash(dir: &Path) -> Result<String, PathError> {
    use std::os::unix::fs::PermissionsExt;
    let mut h = Sha256::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|e| walk_error(dir, e))?;
        let rel = entry.path().strip_prefix(dir).expect("below dir");
        let meta = entry.path().symlink_metadata().map_err(at(entry.path()))?;
        h.update(rel.as_os_str().as_encoded_bytes());
        h.update([0]);
        h.update(meta.permissions().mode().to_le_bytes());
        if meta.file_type().is_symlink() {
            let target = fs::read_link(entry.path()).map_err(at(entry.path()))?;
            h.update(target.as_os_str().as_encoded_bytes());
        } else if meta.is_file() {
            h.update(pifoundry_util::hash::hash_file(entry.path())?.0.as_bytes());
        }
        h.update([0]);
    }
    Ok(hex::encode(h.finalize()))
}

fn walk_error(root: &Path, e: walkdir::Error) -> PathError {
    let path = e.path().unwrap_or(root).to_path_buf();
    PathError::new(
        path,
        e.into_io_error()
            .unwrap_or_else(|| std::io::Error::other("filesystem loop")),
    )
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

    #[test]
    fn copy_tree_copies_a_tree_reached_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::create_dir_all(real.join("sub")).unwrap();
        fs::write(real.join("sub/f"), "x").unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let to = dir.path().join("to");
        fs::create_dir_all(&to).unwrap();
        copy_tree(&dir.path().join("link"), &to).unwrap();
        assert_eq!(fs::read_to_string(to.join("sub/f")).unwrap(), "x");
    }
}
