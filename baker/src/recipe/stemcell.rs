//! Stemcell recipes (`recipes/stemcells/*.yml`): the stemcell's identity plus an ordered list
//! of stages that the bake engine runs. Every stage kind is data here and one module under
//! `bake::stages`.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

/// Target architecture of a stemcell. `armv6l` is Debian `armel` run on an ARM1176 core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Armv6l,
    Arm64,
}

impl Arch {
    pub fn debian(self) -> &'static str {
        match self {
            Arch::Armv6l => "armel",
            Arch::Arm64 => "arm64",
        }
    }
    /// `QEMU_CPU` for emulated commands: ARM1176 proves every binary runs on a Pi Zero.
    pub fn qemu_cpu(self) -> Option<&'static str> {
        match self {
            Arch::Armv6l => Some("arm1176"),
            Arch::Arm64 => None,
        }
    }
    pub fn qemu_user(self) -> &'static str {
        match self {
            Arch::Armv6l => "qemu-arm",
            Arch::Arm64 => "qemu-aarch64",
        }
    }
    /// `(GOARCH, GOARM)`; GOARM is always explicit for 32-bit ARM (the default is 7).
    pub fn go(self) -> (&'static str, Option<&'static str>) {
        match self {
            Arch::Armv6l => ("arm", Some("6")),
            Arch::Arm64 => ("arm64", None),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arch::Armv6l => "armv6l",
            Arch::Arm64 => "arm64",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StemcellRecipe {
    /// e.g. `bosh-pi-debian-bookworm-armv6l`
    pub name: String,
    pub version: String,
    /// Distinct per architecture: the director compiles packages per OS name.
    pub operating_system: String,
    pub arch: Arch,
    pub board: String,
    /// Fixed timestamp for every file and archive; defaults to the recipe file's contents hash
    /// being irrelevant to time, so it must be given or it is 2026-01-01.
    #[serde(default)]
    pub source_date_epoch: Option<u64>,
    /// Gate on the `image` stage's ELF audit; it feeds only the `image` and later stage keys.
    #[serde(default)]
    pub audit: AuditPolicy,
    pub stages: Vec<Stage>,
}

/// `audit:` — findings the bake accepts, each with the reason it is safe. Every other audit
/// error fails the bake, and so does an entry that no longer matches any error.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditPolicy {
    #[serde(default)]
    pub allow: Vec<AllowEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowEntry {
    /// Glob over the finding's path relative to the root (`*` also crosses `/`).
    pub path: String,
    pub reason: String,
}

impl AuditPolicy {
    /// `(matcher, reason)` per entry, in order.
    pub fn compile(&self) -> Result<Vec<(globset::GlobMatcher, String)>, String> {
        self.allow
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let label = format!("audit.allow[{i}]");
                if a.reason.trim().is_empty() {
                    return Err(format!("{label}.reason: must not be empty"));
                }
                if a.path.trim().is_empty() || a.path.starts_with('/') {
                    return Err(format!(
                        "{label}.path: `{}` must be a non-empty glob relative to the root",
                        a.path
                    ));
                }
                let m = super::release::glob(&label, "path", &a.path)?;
                Ok((m, a.reason.trim().to_string()))
            })
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Stage {
    Rootfs(RootfsStage),
    Files(FilesStage),
    Users(UsersStage),
    Chroot(ChrootStage),
    GoBuild(GoBuildStage),
    Initramfs(InitramfsStage),
    Image(ImageStage),
    Stemcell(StemcellStage),
}

impl Stage {
    pub fn name(&self) -> &str {
        match self {
            Stage::Rootfs(s) => &s.name,
            Stage::Files(s) => &s.name,
            Stage::Users(s) => &s.name,
            Stage::Chroot(s) => &s.name,
            Stage::GoBuild(s) => &s.name,
            Stage::Initramfs(s) => &s.name,
            Stage::Image(s) => &s.name,
            Stage::Stemcell(s) => &s.name,
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            Stage::Rootfs(_) => "rootfs",
            Stage::Files(_) => "files",
            Stage::Users(_) => "users",
            Stage::Chroot(_) => "chroot",
            Stage::GoBuild(_) => "go-build",
            Stage::Initramfs(_) => "initramfs",
            Stage::Image(_) => "image",
            Stage::Stemcell(_) => "stemcell",
        }
    }
    /// Stages that change the root file system; their result is snapshotted in the cache.
    /// `image` and `stemcell` only read it and write outputs, which are cheap to redo.
    pub fn mutates_rootfs(&self) -> bool {
        !matches!(self, Stage::Image(_) | Stage::Stemcell(_))
    }
}

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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesStage {
    pub name: String,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Project-relative source file.
    pub src: PathBuf,
    /// Absolute path inside the root file system.
    pub dest: PathBuf,
    /// Octal, e.g. `"0755"`.
    #[serde(default = "default_mode")]
    pub mode: String,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    /// Render `src` as a handlebars template with the recipe's fields.
    #[serde(default)]
    pub template: bool,
}

fn default_mode() -> String {
    "0644".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersStage {
    pub name: String,
    #[serde(default)]
    pub groups: Vec<GroupEntry>,
    #[serde(default)]
    pub users: Vec<UserEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupEntry {
    pub name: String,
    #[serde(default)]
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub name: String,
    pub uid: u32,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default = "default_shell")]
    pub shell: String,
    #[serde(default)]
    pub home: Option<String>,
}

fn default_shell() -> String {
    "/bin/bash".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChrootStage {
    pub name: String,
    /// Each runs as `/bin/sh -ec <command>` inside the target under qemu-user.
    pub commands: Vec<String>,
}

/// Where a Go program's source or toolchain comes from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum Source {
    /// A `blobs.lock` key naming a tarball.
    Blob(String),
    /// A project-relative directory.
    Path(PathBuf),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Toolchain {
    /// The host's `go` on PATH.
    System,
    /// A `blobs.lock` key naming an official `go*.linux-amd64.tar.gz`.
    Blob(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoBuildStage {
    pub name: String,
    pub source: Source,
    #[serde(default = "default_toolchain")]
    pub toolchain: Toolchain,
    /// Main package inside the source, e.g. `./main`.
    #[serde(default = "default_package")]
    pub package: String,
    /// Project-relative patch files applied with `patch -p1` in order.
    #[serde(default)]
    pub patches: Vec<PathBuf>,
    /// Absolute install path in the root file system.
    pub install: PathBuf,
    #[serde(default)]
    pub ldflags: Vec<String>,
}

fn default_toolchain() -> Toolchain {
    Toolchain::System
}
fn default_package() -> String {
    ".".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitramfsStage {
    pub name: String,
    /// Written to `/etc/initramfs-tools/modules`; the initramfs uses `MODULES=list`.
    pub modules: Vec<String>,
}

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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StemcellStage {
    pub name: String,
    #[serde(default = "default_formats")]
    pub stemcell_formats: Vec<String>,
    /// Packages whose files make `dev_tools_file_list.txt`.
    #[serde(default)]
    pub dev_tools: Vec<String>,
    #[serde(default)]
    pub cloud_properties: BTreeMap<String, serde_yaml::Value>,
}

fn default_formats() -> Vec<String> {
    vec!["pi-raw".into()]
}

/// 2026-01-01T00:00:00Z, used when a recipe names no `source_date_epoch`.
pub const DEFAULT_SOURCE_DATE_EPOCH: u64 = 1_767_225_600;

impl StemcellRecipe {
    pub fn load(path: &Path) -> Result<Self, RecipeError> {
        let text = std::fs::read_to_string(path).map_err(|source| RecipeError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        match super::extends::resolve(path, &text)? {
            None => Self::parse(path, &text),
            Some(merged) => {
                let recipe: Self =
                    serde_yaml::from_value(merged).map_err(|e| RecipeError::Parse {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    })?;
                recipe.validate(path)?;
                Ok(recipe)
            }
        }
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, RecipeError> {
        let recipe: Self = serde_yaml::from_str(text).map_err(|e| RecipeError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        recipe.validate(path)?;
        Ok(recipe)
    }

    pub fn source_date_epoch(&self) -> u64 {
        self.source_date_epoch.unwrap_or(DEFAULT_SOURCE_DATE_EPOCH)
    }

    pub fn stage_index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name() == name)
    }

    fn validate(&self, path: &Path) -> Result<(), RecipeError> {
        let bad = |field: String, message: String| RecipeError::Invalid {
            path: path.to_path_buf(),
            field,
            message,
        };
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
        if let Err(m) = self.audit.compile() {
            let (field, message) = m.split_once(": ").unwrap_or(("audit", &m));
            return Err(bad(field.into(), message.into()));
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
            if stage.name().is_empty() || !stage.name().chars().all(is_name_char) {
                return Err(bad(
                    format!("stages[{i}].name"),
                    format!("`{}` must be non-empty [A-Za-z0-9._-]", stage.name()),
                ));
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
            validate_stage(stage).map_err(|m| bad(format!("stages[{i}] ({})", stage.name()), m))?;
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

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn validate_stage(stage: &Stage) -> Result<(), String> {
    let abs = |p: &Path, what: &str| {
        if p.is_absolute() && !p.components().any(|c| c == std::path::Component::ParentDir) {
            Ok(())
        } else {
            Err(format!(
                "{what} `{}` must be an absolute path without `..`",
                p.display()
            ))
        }
    };
    let rel = |p: &Path, what: &str| {
        if p.is_relative() && !p.components().any(|c| c == std::path::Component::ParentDir) {
            Ok(())
        } else {
            Err(format!(
                "{what} `{}` must be project-relative without `..`",
                p.display()
            ))
        }
    };
    match stage {
        Stage::Rootfs(s) => {
            if let Some(snap) = &s.snapshot {
                let ok = snap.len() == 16
                    && snap.ends_with('Z')
                    && snap.as_bytes()[8] == b'T'
                    && snap.chars().filter(|c| c.is_ascii_digit()).count() == 14;
                if !ok {
                    return Err(format!("snapshot `{snap}` must look like 20260101T000000Z"));
                }
            }
        }
        Stage::Files(s) => {
            for (j, f) in s.files.iter().enumerate() {
                rel(&f.src, &format!("files[{j}].src"))?;
                abs(&f.dest, &format!("files[{j}].dest"))?;
                parse_mode(&f.mode).map_err(|m| format!("files[{j}].mode: {m}"))?;
            }
        }
        Stage::GoBuild(s) => {
            abs(&s.install, "install")?;
            if let Source::Path(p) = &s.source {
                rel(p, "source.path")?;
            }
            for p in &s.patches {
                rel(p, "patches")?;
            }
        }
        Stage::Image(s) => {
            if !s.size_mib.is_power_of_two() {
                return Err(format!("size_mib {} must be a power of two", s.size_mib));
            }
            if s.boot_mib + 512 > s.size_mib {
                return Err("size_mib leaves no room for the root partition".into());
            }
            for (what, v) in [
                ("boot_volume_id", &s.boot_volume_id),
                ("disk_id", &s.disk_id),
            ] {
                if v.len() != 8 || !v.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(format!("{what} `{v}` must be 8 hex digits"));
                }
            }
            let uuid_ok = s.root_uuid.len() == 36
                && s.root_uuid.chars().enumerate().all(|(i, c)| {
                    if [8, 13, 18, 23].contains(&i) {
                        c == '-'
                    } else {
                        c.is_ascii_hexdigit()
                    }
                });
            if !uuid_ok {
                return Err(format!("root_uuid `{}` is not a UUID", s.root_uuid));
            }
        }
        Stage::Users(_) | Stage::Chroot(_) | Stage::Initramfs(_) | Stage::Stemcell(_) => {}
    }
    Ok(())
}

pub fn parse_mode(mode: &str) -> Result<u32, String> {
    u32::from_str_radix(mode, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("`{mode}` is not an octal file mode"))
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
