//! `initramfs`: undo the `rootfs` stage's diversion of `update-initramfs` and build the one
//! initramfs, with `MODULES=list` so emulated mkinitramfs copies a short list of modules
//! (USB networking, NBD, ext4) instead of most of the kernel's 2400.

use pifoundry_util::name::NameRule;
use serde::{Deserialize, Serialize};

use super::{Ctx, FieldError, StageError, StageKind};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitramfsStage {
    pub name: String,
    /// Written to `/etc/initramfs-tools/modules`; the initramfs uses `MODULES=list`.
    pub modules: Vec<String>,
}

const MODULE: NameRule = NameRule {
    what: "kernel module name",
    max: 64,
    punct: "_-",
    alnum_first: false,
};

impl StageKind for InitramfsStage {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<(), FieldError> {
        super::names("modules", &MODULE, &self.modules)
    }

    fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), StageError> {
        ctx.chroot(&script(&self.modules))
    }
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
