//! `stemcell`: `packages.txt`, `dev_tools_file_list.txt` and the BOSH stemcell tarball
//! from `<out>/root.img`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use pifoundry_bosh::stemcell::{Manifest, PackInput, manifest::API_VERSION, pack};
use pifoundry_util::name::NameRule;
use pifoundry_util::tool;
use serde::{Deserialize, Serialize};

use super::{Ctx, FieldError, KeyInputs, StageError, StageKind};

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

const FORMAT: NameRule = NameRule {
    what: "stemcell format",
    max: 64,
    punct: "._-",
    alnum_first: true,
};
const PACKAGE: NameRule = NameRule {
    what: "Debian package name",
    max: 128,
    punct: "+.-",
    alnum_first: true,
};

impl StageKind for StemcellStage {
    fn name(&self) -> &str {
        &self.name
    }

    fn mutates_rootfs(&self) -> bool {
        false
    }

    fn validate(&self) -> Result<(), FieldError> {
        if self.stemcell_formats.is_empty() {
            return Err(FieldError::new(
                "stemcell_formats",
                "",
                "must name at least one format (the CPI's, e.g. pi-raw)",
            ));
        }
        super::names("stemcell_formats", &FORMAT, &self.stemcell_formats)?;
        super::names("dev_tools", &PACKAGE, &self.dev_tools)
    }

    fn key_inputs(&self, key: &mut KeyInputs<'_>) -> Result<(), StageError> {
        key.header();
        Ok(())
    }

    fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), StageError> {
        let h = ctx.header;
        let packages = packages_txt(ctx.rootfs)?;
        let pkg_path = ctx.out.join("packages.txt");
        pifoundry_util::atomic::write(&pkg_path, packages.as_bytes())?;
        let dev_tools = dev_tools_file_list(ctx.rootfs, &self.dev_tools);
        let mut cloud: BTreeMap<String, serde_yaml::Value> = BTreeMap::new();
        cloud.insert("architecture".into(), h.arch.to_string().into());
        cloud.insert("board".into(), h.board.into());
        cloud.insert("disk_format".into(), "raw".into());
        cloud.extend(self.cloud_properties.clone());
        let manifest = Manifest {
            name: h.name.into(),
            version: h.version.into(),
            bosh_protocol: 1,
            api_version: API_VERSION,
            operating_system: h.operating_system.into(),
            stemcell_formats: self.stemcell_formats.clone(),
            sha1: String::new(),
            cloud_properties: cloud,
        };
        let dest = ctx.out.join(format!("{}-{}.tgz", h.name, h.version));
        let root_img = ctx.out.join("root.img");
        pack(
            PackInput {
                manifest,
                root_img: &root_img,
                packages_txt: packages.as_bytes(),
                dev_tools_file_list: dev_tools.as_bytes(),
                scratch: ctx.work,
            },
            &dest,
        )?;
        ctx.stemcell = Some(dest);
        Ok(())
    }
}

/// Every installed Debian package and version, sorted. The host's dpkg-query reads the
/// target's database directly: same answer as in the chroot, without emulation.
fn packages_txt(rootfs: &Path) -> Result<String, StageError> {
    let admin = rootfs.join("var/lib/dpkg");
    let out = tool::run(
        Command::new("dpkg-query")
            .arg(format!("--admindir={}", admin.display()))
            .args([
                "-W",
                "-f",
                "${db:Status-Abbrev} ${Package} ${Version} ${Architecture}\n",
            ]),
        None,
    )?;
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("ii"))
        .map(|l| l[2..].trim().to_string())
        .collect();
    lines.sort();
    if lines.is_empty() {
        return Err(StageError::input(
            &admin,
            "no installed packages in the root file system",
        ));
    }
    Ok(lines.join("\n") + "\n")
}

/// Files of the named packages, from dpkg's lists, for `env.bosh.remove_dev_tools`.
fn dev_tools_file_list(rootfs: &Path, packages: &[String]) -> String {
    let info = rootfs.join("var/lib/dpkg/info");
    let mut files = Vec::new();
    for p in packages {
        let list = fs::read_to_string(info.join(format!("{p}.list")))
            .or_else(|_| {
                fs::read_dir(&info)
                    .into_iter()
                    .flatten()
                    .filter_map(Result::ok)
                    .find(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(&format!("{p}:"))
                            && e.file_name().to_string_lossy().ends_with(".list")
                    })
                    .map(|e| fs::read_to_string(e.path()))
                    .unwrap_or_else(|| Ok(String::new()))
            })
            .unwrap_or_default();
        for l in list.lines() {
            let p = rootfs.join(l.trim_start_matches('/'));
            if p.symlink_metadata().is_ok_and(|m| m.is_file()) {
                files.push(l.to_string());
            }
        }
    }
    files.sort();
    files.dedup();
    files.into_iter().map(|f| f + "\n").collect()
}
