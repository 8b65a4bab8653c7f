//! Extracting a tar (or tar.gz) into a directory through [`super::walk`], so that nothing the
//! walk refuses (`..`, absolute paths, links out of the tree, paths through a symlink) is ever
//! written. Modes are kept (without set-id bits); owners and mtimes are not.

use std::fs::{self, File};
use std::io::BufReader;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use super::{ArchiveError, Entry, EntryKind, walk};

/// Extracts the archive at `path` (named `label` in errors) into the directory `dest`.
pub fn unpack(path: &Path, label: &str, dest: &Path) -> Result<(), ArchiveError> {
    let file = File::open(path).map_err(|error| ArchiveError::Io {
        archive: label.to_string(),
        error,
    })?;
    let extract_err = |at: &Path, error| ArchiveError::Extract {
        archive: label.to_string(),
        path: at.to_path_buf(),
        error,
    };
    fs::create_dir_all(dest).map_err(|e| extract_err(dest, e))?;
    walk(
        BufReader::with_capacity(1 << 16, file),
        label,
        |e: &mut Entry<'_>| {
            let out = dest.join(&e.name);
            let mode = fs::Permissions::from_mode(e.mode & 0o777);
            if let Some(parent) = out.parent() {
                fs::create_dir_all(parent).map_err(|err| extract_err(parent, err))?;
            }
            match &e.kind {
                EntryKind::Dir => {
                    fs::create_dir_all(&out).map_err(|err| extract_err(&out, err))?;
                    fs::set_permissions(&out, mode).map_err(|err| extract_err(&out, err))?;
                }
                EntryKind::File => {
                    let mut f = File::create(&out).map_err(|err| extract_err(&out, err))?;
                    std::io::copy(e, &mut f).map_err(|err| extract_err(&out, err))?;
                    f.set_permissions(mode)
                        .map_err(|err| extract_err(&out, err))?;
                }
                EntryKind::Symlink(target) => {
                    symlink(target, &out).map_err(|err| extract_err(&out, err))?;
                }
                EntryKind::Hardlink(target) => {
                    fs::hard_link(dest.join(target), &out).map_err(|err| extract_err(&out, err))?;
                }
            }
            Ok::<(), ArchiveError>(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{Mode, TarGzWriter};

    #[test]
    fn a_tree_comes_out_with_its_modes_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let tgz = dir.path().join("src.tgz");
        let mut w = TarGzWriter::new(File::create(&tgz).unwrap());
        w.add_dir("hello-1.0/").unwrap();
        w.add_bytes("hello-1.0/bin/run", Mode::Executable, b"#!/bin/sh\n")
            .unwrap();
        w.add_symlink("hello-1.0/latest", "bin/run").unwrap();
        w.add_hardlink("hello-1.0/run2", "hello-1.0/bin/run")
            .unwrap();
        w.finish().unwrap();
        let out = dir.path().join("out");
        unpack(&tgz, "src.tgz", &out).unwrap();
        let run = out.join("hello-1.0/bin/run");
        assert_eq!(fs::read(&run).unwrap(), b"#!/bin/sh\n");
        assert_eq!(
            fs::metadata(&run).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert_eq!(
            fs::read_link(out.join("hello-1.0/latest")).unwrap(),
            Path::new("bin/run")
        );
        assert_eq!(
            fs::read(out.join("hello-1.0/run2")).unwrap(),
            b"#!/bin/sh\n"
        );
    }

    #[test]
    fn nothing_lands_outside_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let tgz = dir.path().join("evil.tgz");
        let mut w = TarGzWriter::new(File::create(&tgz).unwrap());
        w.add_symlink("up", "..").unwrap();
        w.finish().unwrap();
        let e = unpack(&tgz, "evil.tgz", &dir.path().join("out")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "evil.tgz: entry up: symlink target .. escapes the archive"
        );
    }
}
