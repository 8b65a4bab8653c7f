//! `image`: make the root file system reproducible, lay out the boot files (also in
//! `<out>/boot/` for the QEMU boot check) and write `<out>/root.img`.
//!
//! The disk image itself is `crate::image` (MBR, FAT32 boot + ext4 root, file-based,
//! reproducible).

use crate::bake::{BakeError, Ctx};
use crate::image::{ImageSpec, MIB, build_disk_image};
use crate::recipe::stemcell::ImageStage;
use std::fs;
use std::path::{Path, PathBuf};

pub fn run(s: &ImageStage, ctx: &mut Ctx) -> Result<(), BakeError> {
    let epoch = ctx.recipe.source_date_epoch();
    let bootfs = ctx.work.join("bootfs");
    let _ = fs::remove_dir_all(&bootfs);
    fs::create_dir_all(&bootfs).map_err(|e| BakeError::io(&bootfs, e))?;
    // The FAT partition is mounted over /boot/firmware: its files live there, not in ext4.
    let fw = ctx.rootfs.join("boot/firmware");
    if fw.is_dir() {
        super::copy_tree(&fw, &bootfs)?;
        fs::remove_dir_all(&fw).map_err(|e| BakeError::io(&fw, e))?;
        fs::create_dir(&fw).map_err(|e| BakeError::io(&fw, e))?;
    }
    normalize(ctx.rootfs)?;
    audit(ctx)?;
    clamp_mtimes(ctx.rootfs, epoch)?;
    clamp_mtimes(&bootfs, epoch)?;
    export_boot(ctx.rootfs, &bootfs, &ctx.out.join("boot"))?;
    let img = ctx.out.join("root.img");
    build_image(s, ctx, &bootfs, &img, epoch)
}

/// `<out>/audit.txt`: every ELF in the root and whether the target CPU can run it. The bake
/// fails on any error the recipe's `audit.allow` list does not accept, and on stale entries.
fn audit(ctx: &Ctx) -> Result<(), BakeError> {
    use crate::audit::Target;
    use crate::recipe::stemcell::Arch;
    let target = match ctx.recipe.arch {
        Arch::Armv6l => Target::Armv6l,
        Arch::Arm64 => Target::Arm64,
    };
    let path = ctx.out.join("audit.txt");
    let report = crate::audit::gate(ctx.rootfs, target, &ctx.recipe.audit, &path)
        .map_err(|e| BakeError::msg(e.to_string()))?;
    tracing::info!("{} (see {})", report.summary(), path.display());
    Ok(())
}

/// Files that differ between two runs of the same install and mean nothing in an image.
fn normalize(rootfs: &Path) -> Result<(), BakeError> {
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
    fs::write(&mid, b"").map_err(|e| BakeError::io(&mid, e))?;
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
pub fn clamp_mtimes(dir: &Path, epoch: u64) -> Result<(), BakeError> {
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
            .map_err(|err| BakeError::msg(format!("{}: {err}", e.path().display())))?;
        }
    }
    Ok(())
}

/// `<out>/boot/`: the boot partition's files plus the kernel, initrd and device trees
/// under their Debian names, for QEMU (`-kernel`, `-initrd`, `-dtb`).
fn export_boot(rootfs: &Path, bootfs: &Path, dest: &Path) -> Result<(), BakeError> {
    let _ = fs::remove_dir_all(dest);
    fs::create_dir_all(dest).map_err(|e| BakeError::io(dest, e))?;
    super::copy_tree(bootfs, &dest.join("firmware"))?;
    let boot = rootfs.join("boot");
    let mut found_kernel = false;
    for e in fs::read_dir(&boot).map_err(|e| BakeError::io(&boot, e))? {
        let e = e.map_err(|e| BakeError::io(&boot, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if (name.starts_with("vmlinuz-") || name.starts_with("initrd.img-")) && e.path().is_file() {
            found_kernel |= name.starts_with("vmlinuz-");
            fs::copy(e.path(), dest.join(&name)).map_err(|err| BakeError::io(&e.path(), err))?;
        }
    }
    if !found_kernel {
        return Err(BakeError::msg(format!(
            "no kernel (vmlinuz-*) in {}",
            boot.display()
        )));
    }
    let dtbs = dest.join("dtbs");
    for lib in glob_dirs(&rootfs.join("usr/lib"), "linux-image-") {
        for e in walkdir::WalkDir::new(&lib)
            .into_iter()
            .filter_map(Result::ok)
        {
            if e.path().extension().is_some_and(|x| x == "dtb") {
                fs::create_dir_all(&dtbs).map_err(|err| BakeError::io(&dtbs, err))?;
                let to = dtbs.join(e.file_name());
                fs::copy(e.path(), &to).map_err(|err| BakeError::io(&to, err))?;
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

fn build_image(
    s: &ImageStage,
    ctx: &Ctx,
    bootfs: &Path,
    img: &Path,
    epoch: u64,
) -> Result<(), BakeError> {
    let mut spec = ImageSpec::new(ctx.rootfs, bootfs);
    spec.total_size = s.size_mib * MIB;
    spec.boot_size = s.boot_mib * MIB;
    spec.root_uuid = s.root_uuid.clone();
    spec.hash_seed = s.hash_seed.clone().unwrap_or_else(|| s.root_uuid.clone());
    spec.boot_volume_id = u32::from_str_radix(&s.boot_volume_id, 16)
        .map_err(|e| BakeError::msg(format!("boot_volume_id: {e}")))?;
    spec.disk_id =
        u32::from_str_radix(&s.disk_id, 16).map_err(|e| BakeError::msg(format!("disk_id: {e}")))?;
    spec.source_date_epoch = epoch;
    build_disk_image(&spec, img).map_err(|e| BakeError::msg(e.to_string()))?;
    Ok(())
}
