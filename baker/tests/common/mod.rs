#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use baker::release::writer::{self, Parts};
use baker::release::{self, Manifest};

/// `shared/bosh-vectors`: `$PIFOUNDRY_VECTORS`, else `shared/bosh-vectors` beside the
/// checkout or beside any of its ancestors (CI puts shared/ next to the repo).
pub fn vectors() -> PathBuf {
    if let Some(p) = std::env::var_os("PIFOUNDRY_VECTORS") {
        return PathBuf::from(p);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    repo.ancestors()
        .map(|a| a.join("shared/bosh-vectors"))
        .find(|p| p.join("sample-release.tgz").is_file())
        .expect("bosh vectors not found: set PIFOUNDRY_VECTORS or put shared/ beside the checkout")
}

pub fn sample() -> PathBuf {
    vectors().join("sample-release.tgz")
}

pub fn sample_sha1() -> PathBuf {
    vectors().join("sample-release-sha1.tgz")
}

pub fn baker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baker"))
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap()
}

/// The contents of a release, spooled so that tests can rebuild altered tarballs.
pub struct Unpacked {
    pub dir: tempfile::TempDir,
    pub manifest: Manifest,
    pub archives: BTreeMap<String, PathBuf>,
    pub top_files: Vec<(String, Vec<u8>)>,
}

pub fn unpack(path: &Path) -> Unpacked {
    let dir = tempfile::tempdir().unwrap();
    let rel = release::read(path, Some(&dir.path().join("spool"))).unwrap();
    let archives = rel
        .archives
        .iter()
        .map(|(k, v)| (k.clone(), v.spooled.clone().unwrap()))
        .collect();
    Unpacked {
        dir,
        manifest: rel.manifest,
        archives,
        top_files: rel.top_files,
    }
}

impl Unpacked {
    pub fn write(&self, name: &str) -> PathBuf {
        let out = self.dir.path().join(name);
        let parts = Parts {
            manifest: &self.manifest,
            archives: &self.archives,
            top_files: &self.top_files,
        };
        let f = std::fs::File::create(&out).unwrap();
        writer::write(f, &parts, flate2::Compression::default()).unwrap();
        out
    }
}
