//! `stemcell`: `packages.txt`, `dev_tools_file_list.txt` and the BOSH stemcell tarball
//! from `<out>/root.img`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::bake::{BakeError, Ctx};
use crate::recipe::stemcell::StemcellStage;
use crate::stemcell::{Manifest, PackInput, manifest::API_VERSION, pack};

pub fn run(s: &StemcellStage, ctx: &mut Ctx) -> Result<(), BakeError> {
    let r = ctx.recipe;
    let packages = packages_txt(ctx.rootfs)?;
    let pkg_path = ctx.out.join("packages.txt");
    crate::atomic::write(&pkg_path, packages.as_bytes())
        .map_err(|e| BakeError::io(&pkg_path, e))?;
    let dev_tools = dev_tools_file_list(ctx.rootfs, &s.dev_tools);
    let mut cloud: BTreeMap<String, serde_yaml::Value> = BTreeMap::new();
    cloud.insert("architecture".into(), r.arch.to_string().into());
    cloud.insert("board".into(), r.board.clone().into());
    cloud.insert("disk_format".into(), "raw".into());
    cloud.extend(s.cloud_properties.clone());
    let manifest = Manifest {
        name: r.name.clone(),
        version: r.version.clone(),
        bosh_protocol: 1,
        api_version: API_VERSION,
        operating_system: r.operating_system.clone(),
        stemcell_formats: s.stemcell_formats.clone(),
        sha1: String::new(),
        cloud_properties: cloud,
    };
    let dest = ctx.out.join(format!("{}-{}.tgz", r.name, r.version));
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
    )
    .map_err(|e| BakeError::msg(e.to_string()))?;
    ctx.stemcell = Some(dest);
    Ok(())
}

/// Every installed Debian package and version, sorted. The host's dpkg-query reads the
/// target's database directly: same answer as in the chroot, without emulation.
fn packages_txt(rootfs: &Path) -> Result<String, BakeError> {
    let out = Command::new("dpkg-query")
        .arg(format!(
            "--admindir={}",
            rootfs.join("var/lib/dpkg").display()
        ))
        .args([
            "-W",
            "-f",
            "${db:Status-Abbrev} ${Package} ${Version} ${Architecture}\n",
        ])
        .output()
        .map_err(|e| BakeError::msg(format!("cannot run dpkg-query: {e}")))?;
    if !out.status.success() {
        return Err(BakeError::msg(format!(
            "dpkg-query: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("ii"))
        .map(|l| l[2..].trim().to_string())
        .collect();
    lines.sort();
    if lines.is_empty() {
        return Err(BakeError::msg(
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
