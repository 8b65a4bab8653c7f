//! `baker lock go VERSION`: Go toolchain entries from the Go project's own machine-readable
//! download index (`https://go.dev/dl/?mode=json&include=all`), which publishes every file's
//! sha256 and size, so an operator never types a checksum and nothing is downloaded.

use pifoundry_util::Arch;
use serde::Deserialize;

use crate::blobs_lock::LockEntry;

/// The index with every release, not just the current ones.
pub const GO_INDEX: &str = "https://go.dev/dl/?mode=json&include=all";
/// Where the files of that index are downloaded from.
pub const GO_DL: &str = "https://go.dev/dl/";

#[derive(Debug, thiserror::Error)]
pub enum GoIndexError {
    #[error("{index}: not a Go download index: {error}")]
    Parse {
        index: String,
        error: serde_json::Error,
    },
    #[error("{index}: no release go{version}")]
    NoRelease { index: String, version: String },
    #[error(
        "{index}: go{version} has no linux-{arch} archive (the Go project does not publish it)"
    )]
    NoFile {
        index: String,
        version: String,
        arch: &'static str,
    },
    #[error("{index}: {filename}: bad sha256 {sha256:?}")]
    BadSha {
        index: String,
        filename: String,
        sha256: String,
    },
}

#[derive(Deserialize)]
struct Release {
    version: String,
    #[serde(default)]
    files: Vec<File>,
}

#[derive(Deserialize)]
struct File {
    filename: String,
    os: String,
    arch: String,
    sha256: String,
    size: u64,
    kind: String,
}

/// The Go project's name for an architecture in file names (`armv6l`, `arm64`, `amd64`).
pub fn go_arch(arch: Arch) -> &'static str {
    arch.name()
}

/// The lock key of a Go toolchain: `go-1.25.14-linux-arm64`.
pub fn key(version: &str, arch: Arch) -> String {
    format!("go-{version}-linux-{}", go_arch(arch))
}

/// What a toolchain entry replaces, as the shipped lock words it.
pub fn replaces(arch: Arch) -> String {
    match arch {
        Arch::Amd64 => {
            "nothing: host Go toolchain for cross builds on an amd64 build machine".into()
        }
        a => format!(
            "go*.linux-amd64.tar.gz toolchain blob of golang-1.x-linux packages ({} releases)",
            go_arch(a)
        ),
    }
}

/// The linux archive of `go<version>` for each of `arches`, as lock entries pointing at
/// [`GO_DL`]. `index` names the source in errors.
pub fn entries(
    json: &[u8],
    index: &str,
    version: &str,
    arches: &[Arch],
) -> Result<Vec<LockEntry>, GoIndexError> {
    let version = version.trim_start_matches("go");
    let releases: Vec<Release> =
        serde_json::from_slice(json).map_err(|error| GoIndexError::Parse {
            index: index.to_string(),
            error,
        })?;
    let release = releases
        .iter()
        .find(|r| r.version == format!("go{version}"))
        .ok_or_else(|| GoIndexError::NoRelease {
            index: index.to_string(),
            version: version.to_string(),
        })?;
    arches
        .iter()
        .map(|&arch| {
            let f = release
                .files
                .iter()
                .find(|f| f.os == "linux" && f.kind == "archive" && f.arch == go_arch(arch))
                .ok_or_else(|| GoIndexError::NoFile {
                    index: index.to_string(),
                    version: version.to_string(),
                    arch: go_arch(arch),
                })?;
            if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(GoIndexError::BadSha {
                    index: index.to_string(),
                    filename: f.filename.clone(),
                    sha256: f.sha256.clone(),
                });
            }
            Ok(LockEntry {
                key: key(version, arch),
                url: format!("{GO_DL}{}", f.filename),
                sha256: f.sha256.to_ascii_lowercase(),
                tree: None,
                links: false,
                size: Some(f.size),
                arch: Some(arch),
                replaces: Some(replaces(arch)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"[{"version":"go1.25.14","stable":true,"files":[
      {"filename":"go1.25.14.src.tar.gz","os":"","arch":"","version":"go1.25.14","sha256":"00","size":1,"kind":"source"},
      {"filename":"go1.25.14.linux-arm64.tar.gz","os":"linux","arch":"arm64","version":"go1.25.14","sha256":"9bf234ea70ffec9347fdf6b22ce4add51717d3386a38a441e8c8743fceb5eaee","size":57360344,"kind":"archive"}]}]"#;

    #[test]
    fn picks_the_linux_archive_and_names_what_is_missing() {
        let e = entries(INDEX.as_bytes(), "i.json", "1.25.14", &[Arch::Arm64]).unwrap();
        assert_eq!(e[0].key, "go-1.25.14-linux-arm64");
        assert_eq!(e[0].url, "https://go.dev/dl/go1.25.14.linux-arm64.tar.gz");
        assert_eq!(e[0].size, Some(57360344));
        let err = entries(INDEX.as_bytes(), "i.json", "1.25.14", &[Arch::Armv6l]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "i.json: go1.25.14 has no linux-armv6l archive (the Go project does not publish it)"
        );
        let err = entries(INDEX.as_bytes(), "i.json", "1.99.0", &[Arch::Arm64]).unwrap_err();
        assert_eq!(err.to_string(), "i.json: no release go1.99.0");
    }
}
