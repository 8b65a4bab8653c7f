//! `chroot`: shell commands run inside the target root file system under qemu-user, each as
//! `/bin/sh -ec COMMAND`, with `/proc`, `/sys` and a private `/dev` mounted.

use serde::{Deserialize, Serialize};

use super::{Ctx, FieldError, StageError, StageKind};
use crate::bake::chroot;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChrootStage {
    pub name: String,
    /// Each runs as `/bin/sh -ec <command>` inside the target under qemu-user.
    pub commands: Vec<String>,
}

impl StageKind for ChrootStage {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<(), FieldError> {
        if self.commands.is_empty() {
            return Err(FieldError::new(
                "commands",
                "",
                "must list at least one command",
            ));
        }
        match self.commands.iter().position(|c| c.trim().is_empty()) {
            Some(i) => Err(FieldError::new(
                format!("commands[{i}]"),
                "",
                "must not be empty",
            )),
            None => Ok(()),
        }
    }

    fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), StageError> {
        chroot::run(
            ctx.rootfs,
            ctx.header.arch,
            ctx.header.source_date_epoch,
            &self.commands.join("\n"),
            &ctx.log,
        )
    }
}
