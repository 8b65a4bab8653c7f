//! The block layer's own state file, `<state_dir>/block.json`: every export it started, with
//! what identifies its process (pid and start time), so that a restarted powerd re-adopts the
//! exports that are still serving. Written whole with `pifoundry_util::atomic`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use pifoundry_util::{BadInput, PathError, atomic};
use powerd_client::provision::DiskFormat;
use serde::{Deserialize, Serialize};

use super::Supervisor;

const VERSION: u32 = 1;

/// One export as recorded. `pid` is `None` between the record of the intent and the start of
/// its process: a powerd killed in that window finds the entry at open and rolls it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub file: PathBuf,
    pub format: DiskFormat,
    pub host: IpAddr,
    pub port: u16,
    pub allow: IpAddr,
    pub shared: u32,
    pub supervisor: Supervisor,
    #[serde(default)]
    pub pid: Option<u32>,
    /// The process's start time in clock ticks since boot (`/proc/PID/stat` field 22): a pid
    /// reused by another process after a crash does not match it.
    #[serde(default)]
    pub start_time: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateFile {
    pub version: u32,
    pub exports: BTreeMap<String, Entry>,
}

pub fn load(path: &Path) -> Result<StateFile, super::BlockError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(StateFile {
                version: VERSION,
                exports: BTreeMap::new(),
            });
        }
        Err(e) => return Err(PathError::new(path, e).into()),
    };
    let file: StateFile = serde_json::from_slice(&text)
        .map_err(|e| BadInput::new(path, format!("not a block state file: {e}")))?;
    if file.version != VERSION {
        return Err(BadInput::new(
            path,
            format!(
                "block state file version {} (this powerd reads {VERSION})",
                file.version
            ),
        )
        .into());
    }
    Ok(file)
}

pub fn save(path: &Path, file: &StateFile) -> Result<(), PathError> {
    let mut text = serde_json::to_vec_pretty(file).expect("the state serializes");
    text.push(b'\n');
    atomic::write(path, &text)
}
