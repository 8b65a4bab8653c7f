//! Stemcell recipes (`recipes/stemcells/*.yml`): the stemcell's identity plus an ordered list
//! of stages that the bake engine runs. The recipe is data: every stage kind — its fields,
//! their checks, its cache-key inputs and how it runs — is one file under `bake::stages`.

use std::collections::HashSet;
use std::path::Path;

use pifoundry_util::Arch;
use pifoundry_util::name::NameRule;
use serde::{Deserialize, Serialize};

pub use crate::audit::{AllowEntry, AuditPolicy};
pub use crate::bake::stages::chroot::ChrootStage;
pub use crate::bake::stages::files::{FileEntry, FilesStage};
pub use crate::bake::stages::go_build::{GoBuildStage, Source, Toolchain};
pub use crate::bake::stages::image::ImageStage;
pub use crate::bake::stages::initramfs::InitramfsStage;
pub use crate::bake::stages::rootfs::RootfsStage;
pub use crate::bake::stages::stemcell::StemcellStage;
pub use crate::bake::stages::users::{GroupEntry, UserEntry, UsersStage};
pub use crate::bake::stages::{Header, Stage};

use super::RecipeError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StemcellRecipe {
    /// e.g. `bosh-pi-debian-bookworm-armv6l`
    pub name: String,
    pub version: String,
    /// Distinct per architecture: the director compiles packages per OS name.
    pub operating_system: String,
    /// `armv6l` (Debian `armel` run on an ARM1176 core) or `arm64`.
    pub arch: Arch,
    pub board: String,
    /// Fixed timestamp for every file and archive; 2026-01-01 when not given.
    #[serde(default)]
    pub source_date_epoch: Option<u64>,
    /// Gate on the `image` stage's ELF audit; it feeds only the `image` and later stage keys.
    #[serde(default)]
    pub audit: AuditPolicy,
    pub stages: Vec<Stage>,
}

/// 2026-01-01T00:00:00Z, used when a recipe names no `source_date_epoch`.
pub const DEFAULT_SOURCE_DATE_EPOCH: u64 = 1_767_225_600;

/// Stage names appear in log file names, cache metadata and `--from`.
const STAGE_NAME: NameRule = NameRule {
    what: "stage name",
    max: 64,
    punct: "._-",
    alnum_first: false,
};

impl StemcellRecipe {
    pub fn load(path: &Path) -> Result<Self, RecipeError> {
        let text = super::read(path)?;
        match super::extends::resolve(path, &text)? {
            None => Self::parse(path, &text),
            Some(merged) => {
                let recipe: Self =
                    serde_yaml::from_value(merged).map_err(|e| RecipeError::parse(path, e))?;
                recipe.validate(path)?;
                Ok(recipe)
            }
        }
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, RecipeError> {
        let recipe: Self = serde_yaml::from_str(text).map_err(|e| RecipeError::parse(path, e))?;
        recipe.validate(path)?;
        Ok(recipe)
    }

    pub fn source_date_epoch(&self) -> u64 {
        self.source_date_epoch.unwrap_or(DEFAULT_SOURCE_DATE_EPOCH)
    }

    pub fn stage_index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name() == name)
    }

    /// The fields stages, templates and the stemcell manifest see.
    pub fn header(&self) -> Header<'_> {
        Header {
            name: &self.name,
            version: &self.version,
            operating_system: &self.operating_system,
            arch: self.arch,
            board: &self.board,
            source_date_epoch: self.source_date_epoch(),
        }
    }

    fn validate(&self, path: &Path) -> Result<(), RecipeError> {
        let bad = |field: String, message: String| RecipeError::invalid(path, field, message);
        for (field, value) in [
            ("name", &self.name),
            ("version", &self.version),
            ("operating_system", &self.operating_system),
            ("board", &self.board),
        ] {
            if value.trim().is_empty() {
                return Err(bad(field.into(), "must not be empty".into()));
            }
        }
        if !self.arch.is_pi() {
            return Err(bad(
                "arch".into(),
                format!(
                    "{} is not a Raspberry Pi architecture (armv6l or arm64)",
                    self.arch
                ),
            ));
        }
        if let Err(e) = self.audit.compile() {
            return Err(bad(e.field, e.message));
        }
        if self.stages.is_empty() {
            return Err(bad("stages".into(), "at least one stage is needed".into()));
        }
        if !matches!(self.stages[0], Stage::Rootfs(_)) {
            return Err(bad(
                "stages[0]".into(),
                "the first stage must be of kind `rootfs`".into(),
            ));
        }
        let mut seen = HashSet::new();
        let mut past_outputs = false;
        for (i, stage) in self.stages.iter().enumerate() {
            let field = format!("stages[{i}] ({})", stage.name());
            if let Err(e) = STAGE_NAME.check(stage.name()) {
                return Err(bad(format!("stages[{i}].name"), e.to_string()));
            }
            if !seen.insert(stage.name()) {
                return Err(bad(field, "duplicate stage name".into()));
            }
            if i > 0 && matches!(stage, Stage::Rootfs(_)) {
                return Err(bad(field, "only the first stage may be `rootfs`".into()));
            }
            if stage.mutates_rootfs() && past_outputs {
                return Err(bad(
                    field,
                    "root file system stages must come before `image` and `stemcell`".into(),
                ));
            }
            past_outputs |= !stage.mutates_rootfs();
            stage
                .def()
                .validate()
                .map_err(|e| bad(field, e.to_string()))?;
        }
        let stemcell = self
            .stages
            .iter()
            .position(|s| matches!(s, Stage::Stemcell(_)));
        let image = self
            .stages
            .iter()
            .position(|s| matches!(s, Stage::Image(_)));
        if let Some(i) = stemcell
            && image.is_none_or(|j| j > i)
        {
            return Err(bad(
                format!("stages[{i}]"),
                "a `stemcell` stage needs an `image` stage before it".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name: bosh-pi-debian-bookworm-armv6l
version: '0.1.0'
operating_system: debian-bookworm-armv6l
arch: armv6l
board: rpi-zero
stages:
  - {name: base, kind: rootfs, suite: bookworm, packages: [busybox]}
  - {name: agent, kind: go-build, source: {blob: bosh-agent-src}, toolchain: {blob: go}, install: /var/vcap/bosh/bin/bosh-agent}
  - {name: stub, kind: go-build, source: {path: tests/fixtures/agent-stub}, toolchain: system, install: /usr/bin/x}
  - {name: image, kind: image, size_mib: 2048, root_uuid: 5049464f-756e-4472-b900-000000000002, boot_volume_id: '50490001', disk_id: '50494630'}
  - {name: stemcell, kind: stemcell}
"#;

    fn parse(text: &str) -> Result<StemcellRecipe, RecipeError> {
        StemcellRecipe::parse(Path::new("recipes/stemcells/x.yml"), text)
    }

    #[test]
    fn a_good_recipe_parses() {
        let r = parse(GOOD).unwrap();
        assert_eq!(r.arch, Arch::Armv6l);
        assert_eq!(r.stages.len(), 5);
        let Stage::GoBuild(g) = &r.stages[1] else {
            panic!()
        };
        assert_eq!(g.source, Source::Blob("bosh-agent-src".into()));
        assert_eq!(g.toolchain, Toolchain::Blob("go".into()));
        let Stage::GoBuild(g) = &r.stages[2] else {
            panic!()
        };
        assert_eq!(g.toolchain, Toolchain::System);
        assert_eq!(r.source_date_epoch(), DEFAULT_SOURCE_DATE_EPOCH);
    }

    #[test]
    fn shipped_recipes_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes/stemcells");
        for name in [
            "bookworm-armv6l.yml",
            "ci-armv6l.yml",
            "bookworm-arm64.yml",
            "ci-arm64.yml",
        ] {
            StemcellRecipe::load(&dir.join(name)).unwrap();
        }
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let text = GOOD.replace("board: rpi-zero", "board: rpi-zero\nbord: x");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.starts_with("recipes/stemcells/x.yml: "), "{e}");
        assert!(e.contains("unknown field `bord`"), "{e}");
    }

    #[test]
    fn unknown_key_inside_a_stage_is_rejected() {
        let text = GOOD.replace("suite: bookworm,", "suite: bookworm, pakages: [x],");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("unknown field `pakages`"), "{e}");
        assert!(e.contains("stages") && e.contains("line 8"), "{e}");
    }

    #[test]
    fn unknown_stage_kind_is_rejected() {
        let text = GOOD.replace("kind: stemcell", "kind: stemcel");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("unknown variant `stemcel`"), "{e}");
        assert!(e.contains("stages[4]"), "{e}");
    }

    #[test]
    fn semantic_errors_name_the_field() {
        let cases = [
            (
                "size_mib: 2048",
                "size_mib: 2000",
                "stages[3] (image): size_mib 2000",
            ),
            (
                "install: /usr/bin/x",
                "install: usr/bin/x",
                "stages[2] (stub): install",
            ),
            (
                "{path: tests/fixtures/agent-stub}",
                "{path: ../x}",
                "source.path `../x`",
            ),
            ("name: agent,", "name: base,", "duplicate stage name"),
            ("disk_id: '50494630'", "disk_id: 'xyz'", "disk_id `xyz`"),
        ];
        for (from, to, want) in cases {
            let e = parse(&GOOD.replace(from, to)).unwrap_err().to_string();
            assert!(e.contains(want), "{to}: {e}");
            assert!(e.starts_with("recipes/stemcells/x.yml: "), "{e}");
        }
    }

    #[test]
    fn audit_allow_entries_need_a_reason_and_known_keys() {
        let with =
            |allow: &str| GOOD.replace("stages:\n", &format!("audit:\n  allow:\n{allow}stages:\n"));
        let r = parse(&with(
            "    - {path: 'usr/lib/raspi-firmware/*.elf', reason: VideoCore code}\n",
        ))
        .unwrap();
        assert_eq!(r.audit.allow.len(), 1);
        assert!(parse(GOOD).unwrap().audit.allow.is_empty());
        let cases = [
            ("    - {path: x}\n", "missing field `reason`"),
            (
                "    - {path: x, reason: '  '}\n",
                "audit.allow[0].reason: must not be empty",
            ),
            (
                "    - {path: x, reason: y, resaon: z}\n",
                "unknown field `resaon`",
            ),
            (
                "    - {path: '/usr/x', reason: y}\n",
                "audit.allow[0].path: `/usr/x`",
            ),
            (
                "    - {path: 'a[', reason: y}\n",
                "audit.allow[0].path: bad glob",
            ),
        ];
        for (allow, want) in cases {
            let e = parse(&with(allow)).unwrap_err().to_string();
            assert!(e.contains(want), "{allow}: {e}");
            assert!(e.starts_with("recipes/stemcells/x.yml: "), "{e}");
        }
        let e = parse(&GOOD.replace("stages:\n", "audit: {alow: []}\nstages:\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `alow`"), "{e}");
    }

    #[test]
    fn stage_order_is_checked() {
        let text = GOOD.replace(
            "  - {name: stemcell, kind: stemcell}",
            "  - {name: stemcell, kind: stemcell}\n  - {name: late, kind: chroot, commands: [\"true\"]}",
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("must come before `image`"), "{e}");
    }
}
