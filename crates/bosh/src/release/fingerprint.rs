//! bosh-cli's fingerprints (`release/resource/fingerprint.go`): `v2`, then NAME DIGEST MODE
//! for each file sorted by name, then the sorted additional chunks joined by `,`; hashed
//! with SHA-256 (current era, `sha256:`-prefixed file digests) or SHA-1 (before bosh-cli
//! v5.5.0, bare-hex file digests).

use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use super::digest::{Algo, Digests};

/// Which generation of bosh-cli computed a fingerprint; told apart by its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Era {
    Sha1,
    Sha256,
}

impl Era {
    /// The era of an existing fingerprint, if it has a known length.
    pub fn of(fingerprint: &str) -> Option<Era> {
        match fingerprint.len() {
            40 => Some(Era::Sha1),
            64 => Some(Era::Sha256),
            _ => None,
        }
    }

    pub fn algo(self) -> Algo {
        match self {
            Era::Sha1 => Algo::Sha1,
            Era::Sha256 => Algo::Sha256,
        }
    }
}

/// What a resource is; decides names, modes and the extra chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource<'a> {
    Package { dependencies: &'a [String] },
    Job,
    License,
}

/// How a file contributes its MODE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileMode {
    Regular,
    Executable,
    Symlink,
}

impl FileMode {
    /// From tar/stat mode bits: executable if any exec bit is set.
    pub fn from_bits(mode: u32) -> Self {
        if mode & 0o111 != 0 {
            FileMode::Executable
        } else {
            FileMode::Regular
        }
    }

    fn git(self) -> &'static str {
        match self {
            FileMode::Regular => "100644",
            FileMode::Executable => "100755",
            FileMode::Symlink => "symlink",
        }
    }
}

/// One file of a resource as a fingerprint sees it. `digests` covers the content, or the
/// link target for a symlink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    pub name: String,
    pub mode: FileMode,
    pub digests: Digests,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("file {file} has no {algo} digest")]
pub struct MissingDigest {
    pub file: String,
    pub algo: Algo,
}

/// The exact string that is hashed (useful in error messages and tests).
pub fn input_string(
    era: Era,
    resource: &Resource<'_>,
    files: &[FileDigest],
) -> Result<String, MissingDigest> {
    let mut files: Vec<&FileDigest> = files.iter().collect();
    let name_of = |f: &FileDigest| -> String {
        match resource {
            Resource::License => f.name.rsplit('/').next().unwrap_or(&f.name).to_string(),
            _ => f.name.clone(),
        }
    };
    files.sort_by_key(|f| name_of(f));
    let mut s = String::from("v2");
    for f in files {
        let name = name_of(f);
        let hex = f.digests.get(era.algo()).ok_or_else(|| MissingDigest {
            file: f.name.clone(),
            algo: era.algo(),
        })?;
        s.push_str(&name);
        if era == Era::Sha256 {
            s.push_str("sha256:");
        }
        s.push_str(hex);
        let with_mode = match resource {
            Resource::Package { .. } => name != "packaging" && name != "pre_packaging",
            Resource::Job => true,
            Resource::License => false,
        };
        if with_mode {
            s.push_str(f.mode.git());
        }
    }
    if let Resource::Package { dependencies } = resource
        && !dependencies.is_empty()
    {
        let mut deps: Vec<&str> = dependencies.iter().map(String::as_str).collect();
        deps.sort_unstable();
        s.push_str(&deps.join(","));
    }
    Ok(s)
}

/// The fingerprint: lowercase hex of the era's hash over [`input_string`].
pub fn fingerprint(
    era: Era,
    resource: &Resource<'_>,
    files: &[FileDigest],
) -> Result<String, MissingDigest> {
    let s = input_string(era, resource, files)?;
    Ok(match era {
        Era::Sha1 => hex::encode(Sha1::digest(s.as_bytes())),
        Era::Sha256 => hex::encode(Sha256::digest(s.as_bytes())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::digest::Hasher;

    fn file(name: &str, mode: FileMode, content: &[u8]) -> FileDigest {
        FileDigest {
            name: name.into(),
            mode,
            digests: Hasher::new(&[Algo::Sha1, Algo::Sha256])
                .read_all(content)
                .unwrap(),
        }
    }

    #[test]
    fn hello_package_reproduces_the_notes_input_string_and_fingerprint() {
        let files = [
            file(
                "packaging",
                FileMode::Regular,
                b"set -e\nexport GOROOT=/var/vcap/packages/golang-1-linux\nmkdir -p ${BOSH_INSTALL_TARGET}/bin\ncp hello/run.sh ${BOSH_INSTALL_TARGET}/bin/\n",
            ),
            file(
                "hello/run.sh",
                FileMode::Executable,
                b"#!/bin/sh\nexec /var/vcap/packages/hello/bin/hello \"$@\"\n",
            ),
            file(
                "hello/main.go",
                FileMode::Regular,
                b"package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello pi\") }\n",
            ),
        ];
        let deps = vec!["golang-1-linux".to_string()];
        let r = Resource::Package {
            dependencies: &deps,
        };
        assert_eq!(
            input_string(Era::Sha256, &r, &files).unwrap(),
            "v2hello/main.gosha256:a31a01d6376b75860c82186cce82840187a1228678518c4061674a31ce5a03f4100644hello/run.shsha256:1a27f2fac2b8dbf9da8135560661a276343bff5e8ea88c1661a11e74ac7fdbad100755packagingsha256:b339221462a87f12fa74499f46268a2497f5edbb5b8ea8a43d24057ec12da8a3golang-1-linux"
        );
        assert_eq!(
            fingerprint(Era::Sha256, &r, &files).unwrap(),
            "475d911f5ba18799870442c96c966bc329aa4eee340558422b8018cc51db4199"
        );
        let sha1 = input_string(Era::Sha1, &r, &files).unwrap();
        assert!(sha1.starts_with("v2hello/main.go"));
        assert!(!sha1.contains("sha256:"));
        assert_eq!(fingerprint(Era::Sha1, &r, &files).unwrap().len(), 40);
    }

    #[test]
    fn license_uses_basenames_without_mode() {
        let files = [
            file("./NOTICE", FileMode::Regular, b"Sample NOTICE\n"),
            file(
                "LICENSE",
                FileMode::Regular,
                b"Apache License 2.0 (sample)\n",
            ),
        ];
        assert_eq!(
            fingerprint(Era::Sha256, &Resource::License, &files).unwrap(),
            "5946176fad2c7f2444c53c51fbecfeb091e8f71e5cf66bc4d5ce1f0b033ad3dd"
        );
    }

    #[test]
    fn missing_digest_is_named() {
        let f = FileDigest {
            name: "x".into(),
            mode: FileMode::Regular,
            digests: Hasher::new(&[Algo::Sha256]).finish(),
        };
        let e = fingerprint(Era::Sha1, &Resource::Job, &[f]).unwrap_err();
        assert_eq!(e.to_string(), "file x has no sha1 digest");
    }
}
