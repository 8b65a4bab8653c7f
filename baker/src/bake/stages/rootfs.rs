//! `rootfs`: the Debian base from mmdebstrap, every maintainer script run under qemu-user
//! (on an ARM1176 for armv6l). `update-initramfs` is diverted for the whole install so the
//! slow emulated mkinitramfs runs once, in the `initramfs` stage, not once per trigger.

use std::process::Command;

use crate::bake::{BakeError, Ctx, chroot};
use crate::recipe::stemcell::RootfsStage;

const DIVERT_UPDATE_INITRAMFS: &str = r#"chroot "$1" dpkg-divert --local --rename --add /usr/sbin/update-initramfs && printf '#!/bin/sh\necho "update-initramfs (diverted): skipped $*" >&2\nexit 0\n' > "$1/usr/sbin/update-initramfs" && chmod 755 "$1/usr/sbin/update-initramfs""#;

pub fn run(s: &RootfsStage, ctx: &mut Ctx) -> Result<(), BakeError> {
    let arch = ctx.recipe.arch;
    let mut cmd = Command::new("mmdebstrap");
    chroot::target_env(&mut cmd, arch, ctx.recipe.source_date_epoch());
    cmd.arg(format!("--arch={}", arch.debian()))
        .arg(format!("--variant={}", s.variant))
        .arg(format!("--components={}", s.components.join(",")))
        .arg(format!("--essential-hook={DIVERT_UPDATE_INITRAMFS}"));
    if !s.packages.is_empty() {
        cmd.arg(format!("--include={}", s.packages.join(",")));
    }
    let mirror = match &s.snapshot {
        Some(date) => {
            cmd.arg("--aptopt=Acquire::Check-Valid-Until \"false\"");
            format!("http://snapshot.debian.org/archive/debian/{date}/")
        }
        None => s.mirror.clone(),
    };
    cmd.arg(&s.suite).arg(ctx.rootfs).arg(mirror);
    crate::bake::run_logged(&mut cmd, &ctx.log)
}
