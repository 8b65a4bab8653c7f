//! The ext4 root: `mke2fs -d` writes it straight from the directory at its offset in the
//! image, with E2FSPROGS_FAKE_TIME for the superblock and journal times. e2fsprogs 1.47.0
//! still copies each inode's atime and ctime from the host, where ctime cannot be set, so a
//! debugfs pass then sets atime and ctime to SOURCE_DATE_EPOCH and clamps newer mtimes.

use pifoundry_util::BadInput;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use walkdir::WalkDir;

use pifoundry_util::tool;

use super::{ImageError, ImageSpec, Layout};

pub(super) fn make(img: &Path, layout: &Layout, spec: &ImageSpec) -> Result<(), ImageError> {
    tool::run(
        Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-L"])
            .arg(&spec.root_label)
            .arg("-U")
            .arg(&spec.root_uuid)
            .arg("-E")
            .arg(format!(
                "offset={},root_owner=0:0,hash_seed={},nodiscard",
                layout.root_offset(),
                spec.hash_seed
            ))
            .arg("-d")
            .arg(&spec.rootfs)
            .arg(img)
            .arg(format!("{}k", layout.root_sectors() / 2))
            .env("E2FSPROGS_FAKE_TIME", spec.source_date_epoch.to_string()),
        None,
    )?;
    Ok(())
}

pub(super) fn clamp_times(img: &Path, layout: &Layout, spec: &ImageSpec) -> Result<(), ImageError> {
    let epoch = spec.source_date_epoch;
    let mut script: Vec<u8> = Vec::new();
    for entry in WalkDir::new(&spec.rootfs).sort_by_file_name() {
        let entry = entry.map_err(|e| {
            ImageError::Input(BadInput::new(
                e.path().unwrap_or(&spec.rootfs).to_path_buf(),
                e.to_string(),
            ))
        })?;
        let rel = entry
            .path()
            .strip_prefix(&spec.rootfs)
            .expect("walk stays under root");
        // debugfs reads one command per line; inside double quotes a backslash is literal
        // and a doubled quote stands for one quote
        let mut path = b"/".to_vec();
        for &b in rel.as_os_str().as_bytes() {
            match b {
                b'\n' => {
                    return Err(ImageError::Input(BadInput::new(
                        entry.path(),
                        "file name contains a newline, which debugfs cannot address",
                    )));
                }
                b'"' => path.extend_from_slice(b"\"\""),
                _ => path.push(b),
            }
        }
        let meta = entry
            .path()
            .symlink_metadata()
            .map_err(pifoundry_util::error::at(entry.path()))?;
        let mut fields = vec![("atime", epoch), ("ctime", epoch)];
        if meta.mtime() < 0 || meta.mtime() as u64 > epoch {
            fields.push(("mtime", epoch));
        }
        // mke2fs 1.47.0 stores whole seconds only (the *_extra fields stay 0); the
        // reproducibility test would catch a version that copies nanoseconds too
        for (field, value) in fields {
            writeln_script(&mut script, &path, field, &format!("@{value}"));
        }
    }
    let cmds =
        tempfile::NamedTempFile::new().map_err(pifoundry_util::error::at(&std::env::temp_dir()))?;
    cmds.as_file()
        .write_all(&script)
        .map_err(pifoundry_util::error::at(cmds.path()))?;
    let out = tool::run(
        Command::new("debugfs")
            .arg("-w")
            .arg("-f")
            .arg(cmds.path())
            .arg(format!("{}?offset={}", img.display(), layout.root_offset()))
            // or debugfs stamps the superblock's last-write time with the clock
            .env("E2FSPROGS_FAKE_TIME", epoch.to_string()),
        None,
    )?;
    // debugfs exits 0 even when a command fails; anything on stderr besides its banner is one
    let complaints: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("debugfs "))
        .take(3)
        .map(str::to_owned)
        .collect();
    if !complaints.is_empty() {
        return Err(tool::ToolError {
            tool: "debugfs".into(),
            detail: complaints.join(" | "),
        }
        .into());
    }
    Ok(())
}

fn writeln_script(script: &mut Vec<u8>, path: &[u8], field: &str, value: &str) {
    script.extend_from_slice(b"sif \"");
    script.extend_from_slice(path);
    script.extend_from_slice(format!("\" {field} {value}\n").as_bytes());
}
