//! `chroot`: shell commands run inside the target root file system under qemu-user, each as
//! `/bin/sh -ec COMMAND`, with `/proc`, `/sys` and a private `/dev` mounted.

use serde::{Deserialize, Serialize};

use super::{Ctx, FieldError, StageError, StageKind};

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
        super::listed("commands", &self.commands, "command")
    }

    fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), StageError> {
        ctx.chroot(&self.commands.join("\n"))
    }
}
