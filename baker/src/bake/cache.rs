//! The stage cache: one directory per stage key holding a snapshot of the root file system
//! after that stage (`rootfs.tar.zst`) and `meta.json` describing it. Entries are written
//! into a temporary directory and renamed into place, and checked (size and sha256) before
//! use, so a partial or corrupt entry is ignored rather than restored.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use pifoundry_util::PathError;
use pifoundry_util::error::at;
use pifoundry_util::hash::hash_file;
use pifoundry_util::tool;
use serde::{Deserialize, Serialize};

use super::stages::StageError;

const SNAPSHOT: &str = "rootfs.tar.zst";
const META: &str = "meta.json";

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Meta {
    pub key: String,
    pub stage: String,
    pub kind: String,
    pub size: u64,
    pub sha256: String,
}

pub struct StageCache {
    dir: PathBuf,
}

impl StageCache {
    /// `--cache-dir`, else `PIFOUNDRY_STAGE_CACHE`, else `$XDG_CACHE_HOME/pifoundry/stages`
    /// (`~/.cache/pifoundry/stages`).
    pub fn default_dir() -> PathBuf {
        if let Some(d) = std::env::var_os("PIFOUNDRY_STAGE_CACHE").filter(|d| !d.is_empty()) {
            return d.into();
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
                PathBuf::from(home).join(".cache")
            });
        base.join("pifoundry").join("stages")
    }

    /// `PIFOUNDRY_STAGE_CACHE`, else the machine-wide `/var/cache/pifoundry/stages` when it
    /// is writable, else `fallback`: the tests' choice, so that every bake on one machine (a CI
    /// run's bake test and lab test among them) makes the slow stages once.
    pub fn machine_dir_or(fallback: &Path) -> PathBuf {
        if let Some(d) = std::env::var_os("PIFOUNDRY_STAGE_CACHE").filter(|d| !d.is_empty()) {
            return d.into();
        }
        let shared = PathBuf::from("/var/cache/pifoundry/stages");
        if fs::create_dir_all(&shared).is_ok() && tempfile::tempfile_in(&shared).is_ok() {
            return shared;
        }
        fallback.to_path_buf()
    }

    pub fn open(dir: &Path) -> Result<Self, PathError> {
        fs::create_dir_all(dir).map_err(at(dir))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// The snapshot for `key` if it is complete and intact.
    pub fn lookup(&self, key: &str) -> Option<PathBuf> {
        let dir = self.entry(key);
        let meta: Meta = serde_json::from_slice(&fs::read(dir.join(META)).ok()?).ok()?;
        let snap = dir.join(SNAPSHOT);
        let len = fs::metadata(&snap).ok()?.len();
        if meta.key != key || meta.size != len {
            tracing::warn!("stage cache: ignoring damaged entry {}", dir.display());
            return None;
        }
        match hash_file(&snap) {
            Ok((sum, _)) if sum == meta.sha256 => Some(snap),
            _ => {
                tracing::warn!("stage cache: ignoring corrupt entry {}", dir.display());
                None
            }
        }
    }

    /// Snapshots `rootfs` as the result of `stage` under `key`.
    pub fn store(
        &self,
        key: &str,
        stage: &str,
        kind: &str,
        rootfs: &Path,
    ) -> Result<(), StageError> {
        let tmp = tempfile::Builder::new()
            .prefix(".store-")
            .tempdir_in(&self.dir)
            .map_err(at(&self.dir))?;
        let snap = tmp.path().join(SNAPSHOT);
        snapshot(rootfs, &snap)?;
        let (sha256, size) = hash_file(&snap)?;
        let meta = Meta {
            key: key.into(),
            stage: stage.into(),
            kind: kind.into(),
            size,
            sha256,
        };
        let meta_path = tmp.path().join(META);
        pifoundry_util::atomic::write(
            &meta_path,
            &serde_json::to_vec_pretty(&meta).expect("meta"),
        )?;
        let dest = self.entry(key);
        if dest.exists() {
            // a damaged entry that `lookup` refused, or a concurrent bake that won the race
            let _ = fs::remove_dir_all(&dest);
        }
        let kept = tmp.keep();
        fs::rename(&kept, &dest).map_err(|e| {
            let _ = fs::remove_dir_all(&kept);
            StageError::Io(PathError::new(&dest, e))
        })
    }
}

/// `tar | zstd -1` of a whole root file system. Measured on the 400 MB armel root (2 cores,
/// busy): zstd -1 3.7 s / 159 MB, zstd -3 6.7 s / 140 MB, plain tar 5.6 s / 400 MB,
/// gzip -1 16 s / 164 MB; restoring from zstd is I/O-bound. Numeric owners, xattrs (file capabilities),
/// device nodes and hard links survive, which the tar crate's unpacker does not promise.
fn snapshot(rootfs: &Path, dest: &Path) -> Result<(), StageError> {
    let out = File::create(dest).map_err(at(dest))?;
    tool::pipe(
        Command::new("tar")
            .args([
                "--create",
                "--numeric-owner",
                "--xattrs",
                "--xattrs-include=*",
                "--sort=name",
            ])
            .arg("--directory")
            .arg(rootfs)
            .arg("."),
        Command::new("zstd")
            .args(["-q", "-1", "-T0", "-c"])
            .stdout(out),
    )?;
    Ok(())
}

/// Unpacks a snapshot into an empty `rootfs` directory.
pub fn restore(snapshot: &Path, rootfs: &Path) -> Result<(), StageError> {
    fs::create_dir_all(rootfs).map_err(at(rootfs))?;
    tool::pipe(
        Command::new("zstd").args(["-q", "-d", "-c"]).arg(snapshot),
        Command::new("tar")
            .args([
                "--extract",
                "--numeric-owner",
                "--same-permissions",
                "--same-owner",
                "--xattrs",
                "--xattrs-include=*",
            ])
            .arg("--directory")
            .arg(rootfs),
    )?;
    Ok(())
}
