//! Running commands inside the target root file system under qemu-user (binfmt_misc with
//! the `F` flag, so no emulator is copied into the target). `/proc`, `/sys` and a private
//! `/dev` are mounted for the duration and always unmounted, also on error or panic.
//!
//! `/dev` is a fresh tmpfs with a few nodes rather than a bind mount of the host's: should
//! anything ever delete the work directory while it is mounted, only the copies go.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use pifoundry_util::Arch;
use pifoundry_util::error::at;

use super::stages::StageError;

/// Mounts that live as long as this value.
pub struct Mounts {
    points: Vec<PathBuf>,
}

impl Mounts {
    pub fn new(rootfs: &Path) -> Result<Self, StageError> {
        let mut m = Mounts { points: Vec::new() };
        let mnt = |target: &Path, fstype: &'static str, flags: MsFlags, data: Option<&str>| {
            fs::create_dir_all(target).map_err(at(target))?;
            mount(Some(fstype), target, Some(fstype), flags, data).map_err(|error| {
                StageError::Sys {
                    what: fstype,
                    path: target.to_path_buf(),
                    error,
                }
            })
        };
        let safe = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        let proc_ = rootfs.join("proc");
        mnt(&proc_, "proc", safe, None)?;
        m.points.push(proc_);
        let sys = rootfs.join("sys");
        mnt(&sys, "sysfs", safe | MsFlags::MS_RDONLY, None)?;
        m.points.push(sys);
        let dev = rootfs.join("dev");
        mnt(
            &dev,
            "tmpfs",
            MsFlags::MS_NOSUID,
            Some("mode=0755,size=16m"),
        )?;
        m.points.push(dev.clone());
        for (name, major, minor) in [
            ("null", 1, 3),
            ("zero", 1, 5),
            ("full", 1, 7),
            ("random", 1, 8),
            ("urandom", 1, 9),
            ("tty", 5, 0),
        ] {
            let p = dev.join(name);
            mknod(
                &p,
                SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o666),
                makedev(major, minor),
            )
            .map_err(|error| StageError::Sys {
                what: "mknod",
                path: p.clone(),
                error,
            })?;
        }
        for d in ["pts", "shm"] {
            fs::create_dir_all(dev.join(d)).map_err(at(&dev))?;
        }
        Ok(m)
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for p in self.points.iter().rev() {
            if let Err(e) = umount2(p, MntFlags::MNT_DETACH) {
                tracing::error!("cannot unmount {}: {e}", p.display());
            }
        }
    }
}

/// Whether anything is mounted at or below `dir` (checked before a work dir is deleted).
pub fn mounted_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// The environment every emulated command gets: nothing from the host but these.
pub fn target_env(cmd: &mut Command, arch: Arch, source_date_epoch: u64) {
    cmd.env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", "/root")
        .env("LANG", "C.UTF-8")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("SOURCE_DATE_EPOCH", source_date_epoch.to_string());
    if let Some(cpu) = arch.qemu_cpu() {
        cmd.env("QEMU_CPU", cpu);
    }
}

/// Runs `/bin/sh -ec script` inside `rootfs` with proc/sys/dev mounted.
pub fn run(
    rootfs: &Path,
    arch: Arch,
    source_date_epoch: u64,
    script: &str,
    log: &Path,
) -> Result<(), StageError> {
    let _mounts = Mounts::new(rootfs)?;
    let mut cmd = Command::new("chroot");
    cmd.arg(rootfs).args(["/bin/sh", "-ec", script]);
    target_env(&mut cmd, arch, source_date_epoch);
    pifoundry_util::tool::run_logged(&mut cmd, log)?;
    Ok(())
}
