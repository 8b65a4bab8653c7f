//! Files on disk, made by `qemu-img`: copy-on-write overlays over a raw base image, sparse
//! raw or qcow2 disks, growing a disk. Each is created under a temporary name beside its
//! destination and renamed into place only when whole (never over an existing file).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use pifoundry_util::{PathError, atomic, error::at, tool};
use powerd_client::provision::DiskFormat;

use super::BlockError;

pub fn format_name(format: DiskFormat) -> &'static str {
    match format {
        DiskFormat::Raw => "raw",
        DiskFormat::Qcow2 => "qcow2",
    }
}

/// `qemu-img create -f qcow2 -b BASE -F raw DEST`: O(1) whatever the base's size. The
/// overlay names its base by absolute path, so that it does not depend on where it is opened
/// from; qemu opens a backing file read-only, so the base is never written.
pub fn create_overlay(qemu_img: &Path, base: &Path, dest: &Path) -> Result<(), BlockError> {
    let base_abs = std::fs::canonicalize(base).map_err(at(base))?;
    let meta = std::fs::metadata(&base_abs).map_err(at(base))?;
    if !meta.is_file() {
        return Err(BlockError::refused(
            base,
            "the base image is not a regular file",
        ));
    }
    let mut cmd = Command::new(qemu_img);
    cmd.args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(&base_abs);
    create_whole(dest, cmd, &[])
}

/// A new sparse disk of `size_mib` MiB.
pub fn create_disk(
    qemu_img: &Path,
    dest: &Path,
    size_mib: u64,
    format: DiskFormat,
) -> Result<(), BlockError> {
    if size_mib == 0 {
        return Err(BlockError::refused(
            dest,
            "a disk needs a size of at least 1 MiB",
        ));
    }
    let mut cmd = Command::new(qemu_img);
    cmd.args(["create", "-q", "-f", format_name(format)]);
    create_whole(dest, cmd, &[format!("{size_mib}M")])
}

/// Runs `cmd TEMP extra…` and renames TEMP to `dest`, refusing to replace a file.
fn create_whole(dest: &Path, mut cmd: Command, extra: &[String]) -> Result<(), BlockError> {
    if dest.symlink_metadata().is_ok() {
        return Err(BlockError::refused(dest, "already exists"));
    }
    let tmp = atomic::temp_beside(dest)?;
    cmd.arg(tmp.path()).args(extra);
    tool::run(&mut cmd, None).map_err(|e| BlockError::tool(dest, e))?;
    // qemu-img may have replaced the file at that path: sync what the path names now
    File::open(tmp.path())
        .and_then(|f| f.sync_all())
        .map_err(at(tmp.path()))?;
    tmp.persist_noclobber(dest)
        .map_err(|e| PathError::new(dest, e.error))?;
    sync_dir(dest)
}

fn sync_dir(path: &Path) -> Result<(), BlockError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| PathError::new(dir, e).into())
}

/// The disk's virtual size in bytes, as `qemu-img info` reads it in `format`.
pub fn virtual_size(qemu_img: &Path, path: &Path, format: DiskFormat) -> Result<u64, BlockError> {
    let mut cmd = Command::new(qemu_img);
    // -U: an exported image is locked by its qemu-nbd; reading its header is still safe
    cmd.args(["info", "-U", "--output=json", "-f", format_name(format)])
        .arg(path);
    let out = tool::run(&mut cmd, None).map_err(|e| BlockError::tool(path, e))?;
    let info: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| BlockError::refused(path, format!("qemu-img info printed no JSON: {e}")))?;
    info["virtual-size"]
        .as_u64()
        .ok_or_else(|| BlockError::refused(path, "qemu-img info gave no virtual-size"))
}

/// Grows the disk to `size_mib` MiB; the same size is a no-op, a smaller one is refused.
pub fn resize_disk(
    qemu_img: &Path,
    path: &Path,
    format: DiskFormat,
    size_mib: u64,
) -> Result<(), BlockError> {
    let now = virtual_size(qemu_img, path, format)?;
    let want = size_mib
        .checked_mul(1 << 20)
        .ok_or_else(|| BlockError::refused(path, format!("{size_mib} MiB is too large")))?;
    if want < now {
        return Err(BlockError::refused(
            path,
            format!(
                "disks only grow: {size_mib} MiB is smaller than its {} MiB",
                now.div_ceil(1 << 20)
            ),
        ));
    }
    if want == now {
        return Ok(());
    }
    let mut cmd = Command::new(qemu_img);
    cmd.args(["resize", "-q", "-f", format_name(format)])
        .arg(path)
        .arg(want.to_string());
    tool::run(&mut cmd, None).map_err(|e| BlockError::tool(path, e))?;
    Ok(())
}
