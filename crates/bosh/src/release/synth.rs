//! Synthetic releases for benchmarks and tests: a chosen number of packages with
//! incompressible blobs and small jobs, with correct digests and SHA-256-era fingerprints.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

use flate2::Compression;
use rayon::prelude::*;

use crate::archive::Mode;
use pifoundry_util::atomic::AtomicFile;

use super::digest::Algo;
use super::fingerprint::{self, Era, Resource};
use super::manifest::{Job, License, Manifest, Package};
use super::writer::{self, Content, InnerFile, Parts, build_inner};

/// The shape of a synthetic release.
#[derive(Debug, Clone)]
pub struct Spec {
    pub packages: usize,
    pub jobs: usize,
    /// Total blob bytes, spread evenly over the packages.
    pub blob_bytes: u64,
    /// If non-zero, a `golang-1-linux` package shaped like golang-release's, whose
    /// `golang/go1.22.5.linux-amd64.tar.gz` blob has this size (part of `blob_bytes`).
    pub golang_bytes: u64,
}

/// The synthetic golang package's packaging script (it names the architecture).
pub const GOLANG_PACKAGING: &str =
    "set -e\ntar xzf golang/go*.linux-amd64.tar.gz\ncp -R go/* ${BOSH_INSTALL_TARGET}\n";

/// Deterministic incompressible bytes (xorshift64*).
pub struct Noise {
    state: u64,
    left: u64,
}

impl Noise {
    pub fn new(seed: u64, len: u64) -> Self {
        Self {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            left: len,
        }
    }
}

impl Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let v = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Writes a synthetic release named `synthetic` version `1.0.0` to `out` (atomically).
pub fn synthesize(out: &Path, spec: &Spec) -> io::Result<()> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => tempfile::tempdir_in(p)?,
        _ => tempfile::tempdir_in(".")?,
    };
    let per_blob = spec.blob_bytes.saturating_sub(spec.golang_bytes) / spec.packages.max(1) as u64;
    std::fs::create_dir_all(dir.path().join("packages"))?;
    std::fs::create_dir_all(dir.path().join("jobs"))?;

    let mut packages: Vec<Package> = (0..spec.packages)
        .into_par_iter()
        .map(|i| {
            let name = format!("pkg-{i:04}");
            let dependencies = if i % 10 == 0 {
                vec![]
            } else {
                vec![format!("pkg-{:04}", i - i % 10)]
            };
            let packaging = format!("set -e\ncp -a {name}/* ${{BOSH_INSTALL_TARGET}}/\n");
            let blob = format!("{name}/blob-{i}.bin");
            package(
                dir.path(),
                name,
                dependencies,
                packaging,
                blob,
                i as u64,
                per_blob,
            )
        })
        .collect::<io::Result<_>>()?;
    if spec.golang_bytes > 0 {
        let golang = package(
            dir.path(),
            "golang-1-linux".into(),
            vec![],
            GOLANG_PACKAGING.into(),
            "golang/go1.22.5.linux-amd64.tar.gz".into(),
            u64::MAX,
            spec.golang_bytes,
        )?;
        packages.insert(0, golang);
    }

    let jobs: Vec<Job> = (0..spec.jobs)
        .into_par_iter()
        .map(|i| {
            let name = format!("job-{i:04}");
            let pkg = format!("pkg-{:04}", i % spec.packages.max(1));
            let spec_yaml = format!(
                "---\nname: {name}\ntemplates:\n  ctl.erb: bin/ctl\npackages:\n- {pkg}\nproperties: {{}}\n"
            );
            let monit = format!(
                "check process {name}\n  with pidfile /var/vcap/sys/run/{name}/pid\n  start program \"/var/vcap/jobs/{name}/bin/ctl start\"\n  stop program \"/var/vcap/jobs/{name}/bin/ctl stop\"\n  group vcap\n"
            );
            let files = vec![
                bytes("job.MF", spec_yaml.into_bytes()),
                bytes("monit", monit.into_bytes()),
                bytes(
                    "templates/ctl.erb",
                    format!("#!/bin/bash\nexec /var/vcap/packages/{pkg}/bin/run\n").into_bytes(),
                ),
            ];
            let dest = dir.path().join(format!("jobs/{name}.tgz"));
            let built = build_inner(&dest, files, &[Algo::Sha256])?;
            let fp = fingerprint::fingerprint(Era::Sha256, &Resource::Job, &built.files)
                .map_err(io::Error::other)?;
            Ok(Job {
                name,
                version: fp.clone(),
                fingerprint: fp,
                sha1: format!("sha256:{}", built.digests.get(Algo::Sha256).unwrap_or("")),
                packages: vec![pkg],
                ..Job::default()
            })
        })
        .collect::<io::Result<_>>()?;

    let license_text = b"Synthetic license\n".to_vec();
    let built = build_inner(
        &dir.path().join("license.tgz"),
        vec![bytes("LICENSE", license_text.clone())],
        &[Algo::Sha256],
    )?;
    let fp = fingerprint::fingerprint(Era::Sha256, &Resource::License, &built.files)
        .map_err(io::Error::other)?;
    let license = License {
        version: fp.clone(),
        fingerprint: fp,
        sha1: format!("sha256:{}", built.digests.get(Algo::Sha256).unwrap_or("")),
        extra: vec![],
    };

    let mut archives = BTreeMap::new();
    for p in &packages {
        let path = format!("packages/{}.tgz", p.name);
        archives.insert(path.clone(), dir.path().join(path));
    }
    for j in &jobs {
        let path = format!("jobs/{}.tgz", j.name);
        archives.insert(path.clone(), dir.path().join(path));
    }
    archives.insert("license.tgz".into(), dir.path().join("license.tgz"));
    let manifest = Manifest {
        name: "synthetic".into(),
        version: "1.0.0".into(),
        commit_hash: "non-git".into(),
        uncommitted_changes: false,
        jobs,
        packages,
        license: Some(license),
        no_compression: Some(false),
        ..Manifest::default()
    };
    let top = vec![("LICENSE".to_string(), license_text)];
    let parts = Parts {
        manifest: &manifest,
        archives: &archives,
        top_files: &top,
    };
    let file = writer::write(AtomicFile::create(out)?, &parts, Compression::fast())?;
    file.commit()?;
    Ok(())
}

/// One package: `packaging` plus one incompressible blob.
fn package(
    dir: &Path,
    name: String,
    dependencies: Vec<String>,
    packaging: String,
    blob: String,
    seed: u64,
    size: u64,
) -> io::Result<Package> {
    let files = vec![
        bytes("packaging", packaging.into_bytes()),
        InnerFile {
            name: blob,
            mode: Mode::Regular,
            content: Content::Reader(Box::new(Noise::new(seed, size)), size),
        },
    ];
    let dest = dir.join(format!("packages/{name}.tgz"));
    let built = build_inner(&dest, files, &[Algo::Sha256])?;
    let r = Resource::Package {
        dependencies: &dependencies,
    };
    let fp = fingerprint::fingerprint(Era::Sha256, &r, &built.files).map_err(io::Error::other)?;
    Ok(Package {
        name,
        version: fp.clone(),
        fingerprint: fp,
        sha1: format!("sha256:{}", built.digests.get(Algo::Sha256).unwrap_or("")),
        dependencies,
        ..Package::default()
    })
}

fn bytes(name: &str, content: Vec<u8>) -> InnerFile {
    InnerFile {
        name: name.into(),
        mode: Mode::Regular,
        content: Content::Bytes(content),
    }
}
