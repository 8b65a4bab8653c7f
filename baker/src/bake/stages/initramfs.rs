//! `initramfs`: undo the `rootfs` stage's diversion of `update-initramfs` and build the one
//! initramfs, with `MODULES=list` so emulated mkinitramfs copies a short list of modules
//! (USB networking, NBD, ext4) instead of most of the kernel's 2400.

use crate::bake::{BakeError, Ctx, chroot};
use crate::recipe::stemcell::InitramfsStage;

pub fn run(s: &InitramfsStage, ctx: &mut Ctx) -> Result<(), BakeError> {
    for m in &s.modules {
        if m.is_empty()
            || !m
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
        {
            return Err(BakeError::msg(format!(
                "modules: `{m}` is not a module name"
            )));
        }
    }
    chroot::run(
        ctx.rootfs,
        ctx.recipe.arch,
        ctx.recipe.source_date_epoch(),
        &script(&s.modules),
        &ctx.log,
    )
}

fn script(modules: &[String]) -> String {
    format!(
        r#"printf 'MODULES=list\nCOMPRESS=gzip\n' > /etc/initramfs-tools/conf.d/pifoundry.conf
printf '%s\n' {mods} >> /etc/initramfs-tools/modules
if dpkg-divert --list /usr/sbin/update-initramfs | grep -q local; then
  rm -f /usr/sbin/update-initramfs
  dpkg-divert --local --rename --remove /usr/sbin/update-initramfs
fi
mkdir -p /boot/firmware
update-initramfs -c -k all
ls /boot/initrd.img-*
"#,
        mods = modules.join(" ")
    )
}
