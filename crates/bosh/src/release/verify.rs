//! Checks a read release: every archive `release.MF` lists is present, matches its digest
//! (the strongest piece), and reproduces its fingerprint; package references resolve.

use std::collections::HashSet;

use super::digest::MultiDigest;
use super::fingerprint::{self, Era, Resource};
use super::{ReleaseError, ReleaseTarball, entries};

/// What was checked.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Checked {
    pub archives: usize,
    pub fingerprints: usize,
}

/// Verifies everything; the error names the first bad entry in `release.MF` order.
pub fn verify(rel: &ReleaseTarball) -> Result<Checked, ReleaseError> {
    let m = &rel.manifest;
    let packages: HashSet<&str> = m
        .packages
        .iter()
        .chain(&m.compiled_packages)
        .map(|p| p.name.as_str())
        .collect();
    let refs = m
        .jobs
        .iter()
        .flat_map(|j| {
            j.packages
                .iter()
                .map(move |p| (format!("job {}", j.name), p))
        })
        .chain(m.packages.iter().chain(&m.compiled_packages).flat_map(|p| {
            p.dependencies
                .iter()
                .map(move |d| (format!("package {}", p.name), d))
        }));
    for (what, name) in refs {
        if !packages.contains(name.as_str()) {
            return Err(ReleaseError::UnknownPackage {
                what,
                name: name.clone(),
            });
        }
    }

    let mut checked = Checked::default();
    for entry in entries(m) {
        let archive = &entry.archive;
        let info = rel
            .archives
            .get(archive)
            .ok_or_else(|| ReleaseError::MissingArchive {
                archive: archive.clone(),
                what: entry.what.clone(),
            })?;
        let expected = MultiDigest::parse(entry.sha1).map_err(|error| ReleaseError::BadDigest {
            archive: archive.clone(),
            error,
        })?;
        let (algo, want) = expected.strongest();
        let have = info.digests.get(algo).unwrap_or("(not computed)");
        if have != want {
            return Err(ReleaseError::DigestMismatch {
                archive: archive.clone(),
                algo,
                expected: want.to_string(),
                actual: have.to_string(),
            });
        }
        checked.archives += 1;
        let files = info.files.as_ref().map_err(|message| ReleaseError::Inner {
            archive: archive.clone(),
            message: message.clone(),
        })?;
        let Some(resource) = &entry.resource else {
            continue;
        };
        let era = Era::of(entry.fingerprint).ok_or_else(|| ReleaseError::BadFingerprint {
            archive: archive.clone(),
            value: entry.fingerprint.to_string(),
        })?;
        let actual =
            fingerprint::fingerprint(era, resource, files).map_err(|e| ReleaseError::Inner {
                archive: archive.clone(),
                message: format!("{archive}: {e}"),
            })?;
        if actual != entry.fingerprint {
            let hint = match resource {
                Resource::Package { .. } => {
                    " (a package built with a pre_packaging script, or altered contents)"
                }
                _ => "",
            };
            return Err(ReleaseError::FingerprintMismatch {
                archive: archive.clone(),
                expected: entry.fingerprint.to_string(),
                actual,
                hint,
            });
        }
        checked.fingerprints += 1;
    }
    Ok(checked)
}
