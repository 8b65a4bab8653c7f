//! `image`: make the root file system reproducible, audit it, lay out the boot files (also in
//! `<out>/boot/` for the QEMU boot check) and write `<out>/root.img`.
//!
//! The disk image itself is `crate::image` (MBR, FAT32 boot + ext4 root, file-based,
//! reproducible), which owns the rules for sizes and identifiers: this stage hands it the
//! recipe's values when the recipe loads and names the recipe's field when one breaks a rule.

use std::fs;
use std::path::{Path, PathBuf};

use pifoundry_util::error::at;
use serde::{Deserialize, Serialize};

use super::{Ctx, FieldError, KeyInputs, StageError, StageKind, copy_tree};
use crate::image::{ImageError, ImageSpec, MIB, build_disk_image, parse_hex_id};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageStage {
    pub name: String,
    /// Whole disk size; a power of two so QEMU accepts it as an SD card.
    pub size_mib: u64,
    #[serde(default = "default_boot_mib")]
    pub boot_mib: u64,
    /// Fixed ext4 UUID so two bakes give the same bytes.
    pub root_uuid: String,
    /// ext4 directory hash seed (a UUID); defaults to `root_uuid`.
    #[serde(default)]
    pub hash_seed: Option<String>,
    /// Fixed FAT volume id (8 hex digits).
    pub boot_volume_id: String,
    /// MBR disk identifier (8 hex digits).
    pub disk_id: String,
}

fn default_boot_mib() -> u64 {
    256
}

impl ImageStage {
    /// The image engine's spec from the recipe's values.
    fn spec(&self, rootfs: &Path, bootfs: &Path, epoch: u64) -> Result<ImageSpec, ImageError> {
        let mut spec = ImageSpec::new(rootfs, bootfs);
        spec.total_size = self.size_mib.saturating_mul(MIB);
        spec.boot_size = self.boot_mib.saturating_mul(MIB);
        spec.root_uuid = self.root_uuid.clone();
        spec.hash_seed = self
            .hash_seed
            .clone()
            .unwrap_or_else(|| self.root_uuid.clone());
        spec.boot_volume_id = parse_hex_id("boot_volume_id", &self.boot_volume_id)?;
        spec.disk_id = parse_hex_id("disk_id", &self.disk_id)?;
        spec.source_date_epoch = epoch;
        Ok(spec)
    }

    /// The recipe's name and spelling of the value an engine rule is about.
    fn recipe_field(&self, spec_field: &str) -> (&'static str, String) {
        match spec_field {
            "total_size" => ("size_mib", self.size_mib.to_string()),
            "boot_size" => ("boot_mib", self.boot_mib.to_string()),
            "root_uuid" => ("root_uuid", format!("`{}`", self.root_uuid)),
            "hash_seed" => match &self.hash_seed {
                Some(seed) => ("hash_seed", format!("`{seed}`")),
                None => ("root_uuid", format!("`{}`", self.root_uuid)),
            },
            "boot_volume_id" => ("boot_volume_id", format!("`{}`", self.boot_volume_id)),
            "disk_id" => ("disk_id", format!("`{}`", self.disk_id)),
            _ => ("(image)", String::new()),
        }
    }
}

impl StageKind for ImageStage {
    fn name(&self) -> &str {
        &self.name
    }

    fn mutates_rootfs(&self) -> bool {
        false
    }

    fn validate(&self) -> Result<(), FieldError> {
        let checked = self
            .spec(Path::new("/"), Path::new("/"), 0)
            .and_then(|spec| spec.check());
        match checked {
            Ok(_) => Ok(()),
            Err(ImageError::Spec { field, rule, .. }) => {
                let (field, value) = self.recipe_field(field);
                Err(FieldError::new(field, value, rule))
            }
            Err(e) => Err(FieldError::new("(image)", "", e.to_string())),
        }
    }

    fn key_inputs(&self, key: &mut KeyInputs<'_>) -> Result<(), StageError> {
        key.header();
        // The audit gate runs here: its allow-list feeds this key and later ones only.
        key.audit();
        Ok(())
    }

    fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), StageError> {
        let epoch = ctx.header.source_date_epoch;
        let bootfs = ctx.work.join("bootfs");
        let _ = fs::remove_dir_all(&bootfs);
        fs::create_dir_all(&bootfs).map_err(at(&bootfs))?;
        // The FAT partition is mounted over /boot/firmware: its files live there, not in ext4.
        let fw = ctx.rootfs.join("boot/firmware");
        if fw.is_dir() {
            copy_tree(&fw, &bootfs)?;
            fs::remove_dir_all(&fw).map_err(at(&fw))?;
            fs::create_dir(&fw).map_err(at(&fw))?;
        }
        normalize(ctx.rootfs)?;
        audit(ctx)?;
        clamp_mtimes(ctx.rootfs, epoch)?;
        clamp_mtimes(&bootfs, epoch)?;
        export_boot(ctx.rootfs, &bootfs, &ctx.out.join("boot"))?;
        let spec = self.spec(ctx.rootfs, &bootfs, epoch)?;
        build_disk_image(&spec, &ctx.out.join("root.img"))?;
        Ok(())
    }
}

/// `<out>/audit.txt`: every ELF in the root and whether the target CPU can run it. The bake
/// fails on any error the recipe's `audit.allow` list does not accept, and on stale entries.
fn audit(ctx: &Ctx<'_>) -> Result<(), StageError> {
    let path = ctx.out.join("audit.txt");
    let report = crate::audit::gate(ctx.rootfs, ctx.header.arch, ctx.audit, &path)?;
    tracing::info!("{} (see {})", report.summary(), path.display());
    Ok(())
}

/// Files that differ between two runs of the same install and mean nothing in an image.
fn normalize(rootfs: &Path) -> Result<(), StageError> {
    for f in [
        "var/cache/ldconfig/aux-cache",
        "var/lib/dbus/machine-id",
        "etc/ssh/ssh_host_ecdsa_key",
        "etc/ssh/ssh_host_ecdsa_key.pub",
        "etc/ssh/ssh_host_ed25519_key",
        "etc/ssh/ssh_host_ed25519_key.pub",
        "etc/ssh/ssh_host_rsa_key",
        "etc/ssh/ssh_host_rsa_key.pub",
        "var/lib/systemd/random-seed",
    ] {
        let _ = fs::remove_file(rootfs.join(f));
    }
    // an empty machine-id makes systemd generate one on first boot
    let mid = rootfs.join("etc/machine-id");
    fs::write(&mid, b"").map_err(at(&mid))?;
    for dir in ["var/log", "var/lib/dpkg", "var/cache/debconf"] {
        let dir = rootfs.join(dir);
        for e in walkdir::WalkDir::new(&dir)
            .into_iter()
            .filter_map(Result::ok)
        {
            if !e.file_type().is_file() {
                continue;
            }
            let name = e.file_name().to_string_lossy();
            if name.ends_with("-old") {
                let _ = fs::remove_file(e.path());
            } else if e.path().starts_with(rootfs.join("var/log")) {
                // keep the files (and their owners), drop their timestamps
                let _ = fs::write(e.path(), b"");
            }
        }
    }
    Ok(())
}

/// Every mtime newer than `epoch` becomes `epoch` (symlinks included, not followed).
pub fn clamp_mtimes(dir: &Path, epoch: u64) -> Result<(), StageError> {
    use nix::sys::stat::{UtimensatFlags, utimensat};
    use nix::sys::time::TimeSpec;
    use std::os::unix::fs::MetadataExt;
    let t = TimeSpec::new(epoch as i64, 0);
    for e in walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
    {
        let Ok(m) = e.path().symlink_metadata() else {
            continue;
        };
        if m.mtime() as u64 > epoch || m.atime() as u64 > epoch {
            utimensat(
                nix::fcntl::AT_FDCWD,
                e.path(),
                &t,
                &t,
                UtimensatFlags::NoFollowSymlink,
            )
            .map_err(|error| StageError::Sys {
                what: "utimensat",
                path: e.path().to_path_buf(),
                error,
            })?;
        }
    }
    Ok(())
}

/// `<out>/boot/`: the boot partition's files plus the kernel, initrd and device trees
/// under their Debian names, for QEMU (`-kernel`, `-initrd`, `-dtb`).
fn export_boot(rootfs: &Path, bootfs: &Path, dest: &Path) -> Result<(), StageError> {
    let _ = fs::remove_dir_all(dest);
    fs::create_dir_all(dest).map_err(at(dest))?;
    copy_tree(bootfs, &dest.join("firmware"))?;
    let boot = rootfs.join("boot");
    let mut found_kernel = false;
    for e in fs::read_dir(&boot).map_err(at(&boot))? {
        let e = e.map_err(at(&boot))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if (name.starts_with("vmlinuz-") || name.starts_with("initrd.img-")) && e.path().is_file() {
            found_kernel |= name.starts_with("vmlinuz-");
            fs::copy(e.path(), dest.join(&name)).map_err(at(&e.path()))?;
        }
    }
    if !found_kernel {
        return Err(StageError::input(&boot, "no kernel (vmlinuz-*) in it"));
    }
    let dtbs = dest.join("dtbs");
    for lib in glob_dirs(&rootfs.join("usr/lib"), "linux-image-") {
        for e in walkdir::WalkDir::new(&lib)
            .into_iter()
            .filter_map(Result::ok)
        {
            if e.path().extension().is_some_and(|x| x == "dtb") {
                fs::create_dir_all(&dtbs).map_err(at(&dtbs))?;
                let to = dtbs.join(e.file_name());
                fs::copy(e.path(), &to).map_err(at(&to))?;
            }
        }
    }
    Ok(())
}

fn glob_dirs(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
