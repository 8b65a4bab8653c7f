//! `inspect-release`, `verify-release` and the hidden `synth-release`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::release::{self, Manifest, manifest};

#[derive(Serialize)]
struct Inspect<'a> {
    name: &'a str,
    version: &'a str,
    commit_hash: &'a str,
    uncommitted_changes: bool,
    fingerprint_era: &'static str,
    compiled: bool,
    jobs: Vec<JobView<'a>>,
    packages: Vec<PackageView<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    compiled_packages: Vec<PackageView<'a>>,
    license: Option<LicenseView<'a>>,
}

#[derive(Serialize)]
struct JobView<'a> {
    name: &'a str,
    fingerprint: &'a str,
    digest: &'a str,
    packages: &'a [String],
}

#[derive(Serialize)]
struct PackageView<'a> {
    name: &'a str,
    fingerprint: &'a str,
    digest: &'a str,
    dependencies: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    stemcell: Option<&'a str>,
}

#[derive(Serialize)]
struct LicenseView<'a> {
    fingerprint: &'a str,
    digest: &'a str,
}

fn package_view(p: &manifest::Package) -> PackageView<'_> {
    PackageView {
        name: &p.name,
        fingerprint: &p.fingerprint,
        digest: &p.sha1,
        dependencies: &p.dependencies,
        stemcell: p.stemcell.as_deref(),
    }
}

fn view(m: &Manifest) -> Inspect<'_> {
    Inspect {
        name: &m.name,
        version: &m.version,
        commit_hash: &m.commit_hash,
        uncommitted_changes: m.uncommitted_changes,
        fingerprint_era: release::era_name(m),
        compiled: m.is_compiled(),
        jobs: m
            .jobs
            .iter()
            .map(|j| JobView {
                name: &j.name,
                fingerprint: &j.fingerprint,
                digest: &j.sha1,
                packages: &j.packages,
            })
            .collect(),
        packages: m.packages.iter().map(package_view).collect(),
        compiled_packages: m.compiled_packages.iter().map(package_view).collect(),
        license: m.license.as_ref().map(|l| LicenseView {
            fingerprint: &l.fingerprint,
            digest: &l.sha1,
        }),
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

/// `baker inspect-release REL.tgz [--json]`: what the release contains, from `release.MF`.
pub fn inspect(path: &Path, json: bool) -> Result<String> {
    let m = release::read_manifest(path)?;
    let v = view(&m);
    if json {
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let mut s = String::new();
    writeln!(s, "release      {} {}", v.name, v.version)?;
    writeln!(
        s,
        "commit       {}{}",
        v.commit_hash,
        if v.uncommitted_changes {
            " (uncommitted changes)"
        } else {
            ""
        }
    )?;
    writeln!(s, "fingerprints {} era", v.fingerprint_era)?;
    writeln!(s, "compiled     {}", if v.compiled { "yes" } else { "no" })?;
    writeln!(s, "jobs ({})", v.jobs.len())?;
    for j in &v.jobs {
        writeln!(s, "  {}", j.name)?;
        writeln!(s, "    fingerprint {}", j.fingerprint)?;
        writeln!(s, "    digest      {}", j.digest)?;
        writeln!(s, "    packages    {}", list(j.packages))?;
    }
    for (title, pkgs) in [
        ("packages", &v.packages),
        ("compiled packages", &v.compiled_packages),
    ] {
        if pkgs.is_empty() && title != "packages" {
            continue;
        }
        writeln!(s, "{title} ({})", pkgs.len())?;
        for p in pkgs.iter() {
            writeln!(s, "  {}", p.name)?;
            writeln!(s, "    fingerprint {}", p.fingerprint)?;
            writeln!(s, "    digest      {}", p.digest)?;
            writeln!(s, "    depends on  {}", list(p.dependencies))?;
            if let Some(st) = p.stemcell {
                writeln!(s, "    stemcell    {st}")?;
            }
        }
    }
    match &v.license {
        Some(l) => {
            writeln!(s, "license")?;
            writeln!(s, "    fingerprint {}", l.fingerprint)?;
            writeln!(s, "    digest      {}", l.digest)?;
        }
        None => writeln!(s, "license      none")?,
    }
    Ok(s)
}

/// `baker verify-release REL.tgz`: every digest and every recomputable fingerprint.
pub fn verify(path: &Path) -> Result<String> {
    let rel = release::read(path, None)?;
    let checked = release::verify(&rel).with_context(|| path.display().to_string())?;
    let m = &rel.manifest;
    Ok(format!(
        "{}: {} {} OK: {} archive digests and {} fingerprints verified ({} era)\n",
        path.display(),
        m.name,
        m.version,
        checked.archives,
        checked.fingerprints,
        release::era_name(m)
    ))
}

/// `baker create-release DIR --version V --tarball OUT`.
pub fn create(dir: &Path, version: &str, tarball: &Path) -> Result<String> {
    let m = release::dir::create(dir, version, tarball)?;
    let mut s = format!("{}: {} {}\n", tarball.display(), m.name, m.version);
    for j in &m.jobs {
        s.push_str(&format!("job     {} {}\n", j.name, j.fingerprint));
    }
    for p in &m.packages {
        s.push_str(&format!("package {} {}\n", p.name, p.fingerprint));
    }
    if let Some(l) = &m.license {
        s.push_str(&format!("license {}\n", l.fingerprint));
    }
    Ok(s)
}

/// Hidden `synth-release`: a synthetic release for benchmarks.
pub fn synth(out: &Path, packages: usize, jobs: usize, mib: u64, golang_mib: u64) -> Result<()> {
    let spec = release::synth::Spec {
        packages,
        jobs,
        blob_bytes: mib << 20,
        golang_bytes: golang_mib << 20,
    };
    release::synth::synthesize(out, &spec).with_context(|| out.display().to_string())
}
