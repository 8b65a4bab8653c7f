//! The FAT32 boot partition: formatted in place with `mkfs.vfat --offset`, filled with
//! mtools. mtools stamps every entry with SOURCE_DATE_EPOCH (no `-m`: host mtimes are not
//! reproducible), and the tree is copied one directory at a time in sorted order so that
//! directory entries do not follow the host's readdir order.

use pifoundry_util::BadInput;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use walkdir::WalkDir;

use pifoundry_util::tool;

use super::{ImageError, ImageSpec, Layout};

pub(super) fn format(img: &Path, layout: &Layout, spec: &ImageSpec) -> Result<(), ImageError> {
    // --invariant pins the remaining time-based fields; -i after it sets our volume id.
    // -s 1: a small FAT32 needs one-sector clusters to reach the 65525 clusters FAT32
    // requires, or mtools refuses it. The "block count mismatch" warning is expected.
    tool::run(
        Command::new("mkfs.vfat")
            .args(["-F", "32", "-s", "1", "--invariant"])
            .arg("-i")
            .arg(format!("{:08x}", spec.boot_volume_id))
            .arg("-n")
            .arg(&spec.boot_label)
            .arg("--offset")
            .arg(layout.boot_start.to_string())
            .arg(img)
            .arg((layout.boot_sectors / 2).to_string()),
        None,
    )?;
    Ok(())
}

pub(super) fn copy_tree(img: &Path, layout: &Layout, spec: &ImageSpec) -> Result<(), ImageError> {
    let root = &spec.boot_files;
    let drive = format!("{}@@{}", img.display(), layout.boot_offset());
    let mut dirs: Vec<String> = Vec::new();
    let mut files: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    for entry in WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let entry = entry.map_err(|e| {
            ImageError::Input(BadInput::new(
                e.path().unwrap_or(root).to_path_buf(),
                e.to_string(),
            ))
        })?;
        let rel = entry
            .path()
            .strip_prefix(root)
            .expect("walk stays under root");
        let Some(rel_str) = rel.to_str() else {
            return Err(input(entry.path(), "file name is not UTF-8"));
        };
        // FAT names are case-insensitive: two such names would make mcopy prompt.
        if !seen.insert(rel_str.to_lowercase()) {
            return Err(input(
                entry.path(),
                "differs from another boot file only in case; FAT cannot hold both",
            ));
        }
        let ft = entry.file_type();
        if ft.is_dir() {
            dirs.push(format!("::/{rel_str}"));
        } else if ft.is_file() {
            let parent = rel.parent().and_then(Path::to_str).unwrap_or("");
            files
                .entry(format!("::/{parent}"))
                .or_default()
                .push(entry.path().to_path_buf());
        } else {
            return Err(input(
                entry.path(),
                "FAT holds only regular files and directories (symlink or special file)",
            ));
        }
    }
    let mtools = |cmd: &str| {
        let mut c = Command::new(cmd);
        c.arg("-i")
            .arg(&drive)
            .env("SOURCE_DATE_EPOCH", spec.source_date_epoch.to_string());
        c
    };
    if !dirs.is_empty() {
        // sorted parents first, so one mmd creates them all
        tool::run(mtools("mmd").args(&dirs), None)?;
    }
    for (dest, srcs) in &files {
        let dest = if dest.ends_with('/') {
            dest.clone()
        } else {
            format!("{dest}/")
        };
        tool::run(mtools("mcopy").args(srcs).arg(dest), None)?;
    }
    Ok(())
}

fn input(path: &Path, message: &str) -> ImageError {
    ImageError::Input(BadInput::new(path, message))
}
