//! BOSH release tarballs, with bosh-cli's nouns: the manifest (`release.MF`), archive
//! digests, fingerprints, and streaming reading, writing and verification.

pub mod digest;
pub mod digester;
pub mod dir;
mod error;
pub mod fingerprint;
pub mod manifest;
pub mod reader;
pub mod synth;
pub mod verify;
pub mod writer;
mod yaml;

pub use error::ReleaseError;
pub use manifest::Manifest;
pub use reader::{ArchiveInfo, ReleaseTarball, read, read_manifest};
pub use verify::verify;

use fingerprint::Resource;

/// One archive-backed entry of `release.MF`.
#[derive(Debug, Clone)]
pub struct ManifestEntry<'a> {
    /// Path of the archive in the tarball, e.g. `packages/hello.tgz`.
    pub archive: String,
    /// For messages: `package hello`.
    pub what: String,
    pub fingerprint: &'a str,
    pub sha1: &'a str,
    /// How to recompute the fingerprint; `None` for compiled packages, whose fingerprint is
    /// the source package's.
    pub resource: Option<Resource<'a>>,
}

/// Every job, package, compiled package and the license, in `release.MF` order.
pub fn entries(m: &Manifest) -> Vec<ManifestEntry<'_>> {
    let mut out = Vec::new();
    for j in &m.jobs {
        out.push(ManifestEntry {
            archive: format!("jobs/{}.tgz", j.name),
            what: format!("job {}", j.name),
            fingerprint: &j.fingerprint,
            sha1: &j.sha1,
            resource: Some(Resource::Job),
        });
    }
    for p in &m.packages {
        out.push(ManifestEntry {
            archive: format!("packages/{}.tgz", p.name),
            what: format!("package {}", p.name),
            fingerprint: &p.fingerprint,
            sha1: &p.sha1,
            resource: Some(Resource::Package {
                dependencies: &p.dependencies,
            }),
        });
    }
    for p in &m.compiled_packages {
        out.push(ManifestEntry {
            archive: format!("compiled_packages/{}.tgz", p.name),
            what: format!("compiled package {}", p.name),
            fingerprint: &p.fingerprint,
            sha1: &p.sha1,
            resource: None,
        });
    }
    if let Some(l) = &m.license {
        out.push(ManifestEntry {
            archive: "license.tgz".into(),
            what: "the license".into(),
            fingerprint: &l.fingerprint,
            sha1: &l.sha1,
            resource: Some(Resource::License),
        });
    }
    out
}

/// The fingerprint era of a whole release: `sha256`, `sha1`, `mixed`, or `none`.
pub fn era_name(m: &Manifest) -> &'static str {
    use fingerprint::Era;
    let eras: std::collections::HashSet<_> =
        entries(m).iter().map(|e| Era::of(e.fingerprint)).collect();
    match eras.len() {
        0 => "none",
        1 => match eras.into_iter().next().flatten() {
            Some(Era::Sha256) => "sha256",
            Some(Era::Sha1) => "sha1",
            None => "unknown",
        },
        _ => "mixed",
    }
}
