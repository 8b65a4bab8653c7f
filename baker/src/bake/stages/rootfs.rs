//! `rootfs`: the Debian base from mmdebstrap, every maintainer script run under qemu-user
//! (on an ARM1176 for armv6l). `update-initramfs` is diverted for the whole install so the
//! slow emulated mkinitramfs runs once, in the `initramfs` stage, not once per trigger.

use std::process::Command;

use pifoundry_util::name::NameRule;
use serde::{Deserialize, Serialize};

use super::{Ctx, FieldError, StageError, StageKind};
use crate::bake::chroot;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootfsStage {
    pub name: String,
    pub suite: String,
    #[serde(default = "default_variant")]
    pub variant: String,
    #[serde(default = "default_components")]
    pub components: Vec<String>,
    #[serde(default)]
    pub packages: Vec<String>,
    #[serde(default = "default_mirror")]
    pub mirror: String,
    /// Pins the archive to snapshot.debian.org at this time, e.g. `20260101T000000Z`.
    #[serde(default)]
    pub snapshot: Option<String>,
}

fn default_variant() -> String {
    "minbase".into()
}
fn default_components() -> Vec<String> {
    vec!["main".into()]
}
fn default_mirror() -> String {
    "http://deb.debian.org/debian".into()
}

/// mmdebstrap's `--variant` values.
const VARIANTS: &[&str] = &[
    "extract",
    "custom",
    "essential",
    "apt",
    "required",
    "minbase",
    "buildd",
    "important",
    "debootstrap",
    "standard",
];

const SUITE: NameRule = NameRule {
    what: "suite",
    max: 64,
    punct: "._-",
    alnum_first: true,
};
const COMPONENT: NameRule = NameRule {
    what: "component",
    max: 64,
    punct: "-",
    alnum_first: true,
};
/// A package as `--include` takes it (`name`, `name:arch`, `name=version`, `name/suite`);
/// commas and blanks would split the list.
const PACKAGE: NameRule = NameRule {
    what: "package",
    max: 128,
    punct: "+.-:=/~",
    alnum_first: true,
};

const DIVERT_UPDATE_INITRAMFS: &str = r#"chroot "$1" dpkg-divert --local --rename --add /usr/sbin/update-initramfs && printf '#!/bin/sh\necho "update-initramfs (diverted): skipped $*" >&2\nexit 0\n' > "$1/usr/sbin/update-initramfs" && chmod 755 "$1/usr/sbin/update-initramfs""#;

impl StageKind for RootfsStage {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<(), FieldError> {
        super::names("suite", &SUITE, std::slice::from_ref(&self.suite)).map_err(|e| {
            FieldError {
                field: "suite".into(),
                ..e
            }
        })?;
        if !VARIANTS.contains(&self.variant.as_str()) {
            return Err(FieldError::new(
                "variant",
                format!("`{}`", self.variant),
                format!("is not an mmdebstrap variant ({})", VARIANTS.join(", ")),
            ));
        }
        super::names("components", &COMPONENT, &self.components)?;
        super::names("packages", &PACKAGE, &self.packages)?;
        let scheme = self.mirror.split_once("://").map(|(s, _)| s);
        if !matches!(scheme, Some("http" | "https" | "file"))
            || self.mirror.contains(char::is_whitespace)
        {
            return Err(FieldError::new(
                "mirror",
                format!("`{}`", self.mirror),
                "must be an http://, https:// or file:// URL",
            ));
        }
        if let Some(snap) = &self.snapshot {
            let ok = snap.len() == 16
                && snap.ends_with('Z')
                && snap.as_bytes()[8] == b'T'
                && snap.chars().filter(|c| c.is_ascii_digit()).count() == 14;
            if !ok {
                return Err(FieldError::new(
                    "snapshot",
                    format!("`{snap}`"),
                    "must look like 20260101T000000Z",
                ));
            }
        }
        Ok(())
    }

    fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), StageError> {
        let arch = ctx.header.arch;
        let mut cmd = Command::new("mmdebstrap");
        chroot::target_env(&mut cmd, arch, ctx.header.source_date_epoch);
        cmd.arg(format!("--arch={}", arch.debian()))
            .arg(format!("--variant={}", self.variant))
            .arg(format!("--components={}", self.components.join(",")))
            .arg(format!("--essential-hook={DIVERT_UPDATE_INITRAMFS}"));
        if !self.packages.is_empty() {
            cmd.arg(format!("--include={}", self.packages.join(",")));
        }
        let mirror = match &self.snapshot {
            Some(date) => {
                cmd.arg("--aptopt=Acquire::Check-Valid-Until \"false\"");
                format!("http://snapshot.debian.org/archive/debian/{date}/")
            }
            None => self.mirror.clone(),
        };
        cmd.arg(&self.suite).arg(ctx.rootfs).arg(mirror);
        pifoundry_util::tool::run_logged(&mut cmd, &ctx.log)?;
        Ok(())
    }
}
