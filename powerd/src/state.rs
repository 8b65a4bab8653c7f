//! The commanded state of every outlet, persisted so that it survives a restart, and the
//! audit log (one line per transition: who, what, when).
//!
//! The state file is rewritten whole (`pifoundry_util::atomic`: temp file, fsync, rename, fsync
//! of the directory), so it is always either the old or the new version. Concurrent changes share one write: a change
//! waits until a snapshot that includes it is on disk.
//!
//! The audit line of a transition is written before the state file, right after the switch.
//! The state file records how much of the audit log it covers (`audit_offset`), so a powerd
//! killed between the two rolls the lines past that offset forward when it starts: it comes
//! back in the state the switches were really left in.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::outlet::PowerState;

const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: not a powerd state file: {message}")]
    Corrupt { path: PathBuf, message: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutletRecord {
    pub state: PowerState,
    /// RFC 3339, UTC.
    pub changed_at: String,
    pub changed_by: String,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    /// Length of the audit log whose transitions this snapshot includes.
    #[serde(default)]
    audit_offset: u64,
    outlets: BTreeMap<String, OutletRecord>,
}

struct Snapshot {
    generation: u64,
    file: StateFile,
}

pub struct Store {
    path: PathBuf,
    audit_path: PathBuf,
    current: Mutex<Snapshot>,
    /// Generation last written to disk; held while writing, which serialises writers.
    persisted: tokio::sync::Mutex<u64>,
    audit: Mutex<File>,
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl Store {
    pub fn open(path: &Path, audit_path: &Path) -> Result<Store, StateError> {
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |error| StateError::Io { path: p, error }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let stale = pifoundry_util::atomic::remove_stale(path).map_err(|e| StateError::Io {
            path: e.path,
            error: e.error,
        })?;
        for file in stale {
            tracing::info!(file = %file.display(), "removed a temp file left by a killed powerd");
        }
        let mut file = match std::fs::read(path) {
            Ok(bytes) => {
                let file: StateFile =
                    serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    })?;
                if file.version != VERSION {
                    return Err(StateError::Corrupt {
                        path: path.to_path_buf(),
                        message: format!("version {} (this powerd reads {VERSION})", file.version),
                    });
                }
                file
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateFile {
                version: VERSION,
                audit_offset: 0,
                outlets: BTreeMap::new(),
            },
            Err(e) => return Err(io(path)(e)),
        };
        if let Some(dir) = audit_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let audit = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(audit_path)
            .map_err(io(audit_path))?;
        repair_audit(&audit, audit_path).map_err(io(audit_path))?;
        roll_forward(&mut file, &audit, audit_path).map_err(io(audit_path))?;
        Ok(Store {
            path: path.to_path_buf(),
            audit_path: audit_path.to_path_buf(),
            current: Mutex::new(Snapshot {
                generation: 0,
                file,
            }),
            persisted: tokio::sync::Mutex::new(0),
            audit: Mutex::new(audit),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, id: &str) -> Option<OutletRecord> {
        self.lock().file.outlets.get(id).cloned()
    }

    /// Records a transition of `id` to `state` made by `who` through `action`: in memory, an
    /// audit line, then the state file. Returns once the new state is on disk.
    pub async fn record(
        self: &Arc<Self>,
        id: &str,
        state: PowerState,
        who: &str,
        action: &str,
    ) -> Result<OutletRecord, StateError> {
        let record = OutletRecord {
            state,
            changed_at: now_rfc3339(),
            changed_by: who.to_string(),
        };
        // The audit line and the snapshot change together, so that the snapshot's audit_offset
        // covers exactly the transitions it includes. The switch happened: the state file must
        // say so even when the audit line could not be written (on a full disk both fail, and
        // the state file keeps its last good version).
        let (mine, audited) = {
            let mut snap = self.lock();
            let audited = self.audit(id, action, &record);
            if let Ok(len) = audited {
                snap.file.audit_offset = len;
            }
            snap.file.outlets.insert(id.to_string(), record.clone());
            snap.generation += 1;
            (snap.generation, audited)
        };
        self.persist(mine).await?;
        audited.map(|_| record)
    }

    /// Returns once a snapshot at least as new as generation `mine` is on disk.
    async fn persist(&self, mine: u64) -> Result<(), StateError> {
        let mut persisted = self.persisted.lock().await;
        if *persisted >= mine {
            return Ok(());
        }
        let (generation, bytes) = {
            let snap = self.lock();
            let mut bytes = serde_json::to_vec_pretty(&snap.file).expect("state serialises");
            bytes.push(b'\n');
            (snap.generation, bytes)
        };
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || pifoundry_util::atomic::write(&path, &bytes))
            .await
            .expect("state writer panicked")
            .map_err(|e| StateError::Io {
                path: e.path,
                error: e.error,
            })?;
        *persisted = generation;
        Ok(())
    }

    /// Appends the audit line; returns the log's length after it.
    fn audit(&self, id: &str, action: &str, record: &OutletRecord) -> Result<u64, StateError> {
        let line = serde_json::json!({
            "at": record.changed_at,
            "who": record.changed_by,
            "outlet": id,
            "action": action,
            "state": record.state,
        });
        tracing::info!(target: "powerd::audit", outlet = id, action, state = %record.state, who = %record.changed_by, "transition");
        let mut line = line.to_string();
        line.push('\n');
        let mut f = self.audit.lock().unwrap_or_else(|e| e.into_inner());
        append_line(&mut f, line.as_bytes()).map_err(|error| StateError::Io {
            path: self.audit_path.clone(),
            error,
        })
    }
}

/// Appends one whole line or nothing: a write cut short (a full disk) is cut back off, so the
/// log never holds half a line that the next line would be glued to. Returns the new length.
fn append_line(f: &mut File, line: &[u8]) -> std::io::Result<u64> {
    let len = f.metadata()?.len();
    f.write_all(line).inspect_err(|_| {
        let _ = f.set_len(len);
    })?;
    Ok(len + line.len() as u64)
}

/// Applies the audit lines past the snapshot's `audit_offset`: transitions that happened (the
/// switch, then its audit line) but whose state file write a kill or a crash cut off. A line
/// older than the outlet's record is skipped, so a rotated log cannot move a state backwards.
fn roll_forward(file: &mut StateFile, audit: &File, path: &Path) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Seek, SeekFrom};
    #[derive(Deserialize)]
    struct Line {
        at: String,
        who: String,
        outlet: String,
        state: PowerState,
    }
    let len = audit.metadata()?.len();
    // Past the offset every line is newer than the snapshot. A log shorter than the offset was
    // rotated, and with no offset (a state file from before it was kept) there is no mark:
    // then each line is judged by its time against the outlet's record.
    let by_time = file.audit_offset == 0 || file.audit_offset > len;
    let start = if by_time { 0 } else { file.audit_offset };
    let mut r = BufReader::new(audit);
    r.seek(SeekFrom::Start(start))?;
    let mut applied = 0;
    for line in r.lines() {
        let line = line?;
        let Ok(l) = serde_json::from_str::<Line>(&line) else {
            tracing::warn!(file = %path.display(), line, "skipping an audit line that is not a transition");
            continue;
        };
        let newer = !by_time
            || file
                .outlets
                .get(&l.outlet)
                .is_none_or(|r| l.at.as_str() > r.changed_at.as_str());
        if newer {
            file.outlets.insert(
                l.outlet,
                OutletRecord {
                    state: l.state,
                    changed_at: l.at,
                    changed_by: l.who,
                },
            );
            applied += 1;
        }
    }
    file.audit_offset = len;
    if applied > 0 {
        tracing::warn!(file = %path.display(), transitions = applied, "rolled forward transitions the state file missed (powerd was killed)");
    }
    Ok(())
}

/// Cuts a torn last line (the machine lost power mid-append) so the log is whole lines again.
fn repair_audit(f: &File, path: &Path) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut r = f;
    let mut tail = Vec::new();
    let from = len.saturating_sub(64 * 1024);
    r.seek(SeekFrom::Start(from))?;
    r.take(len - from).read_to_end(&mut tail)?;
    if tail.last() == Some(&b'\n') {
        return Ok(());
    }
    let keep = match tail.iter().rposition(|&b| b == b'\n') {
        Some(i) => from + i as u64 + 1,
        None if from == 0 => 0,
        None => return Ok(()), // one line longer than 64 KiB: not ours, leave it
    };
    tracing::warn!(file = %path.display(), bytes = len - keep, "audit log ended in a torn line; cut it");
    f.set_len(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn state_survives_reopen_and_audit_has_a_line_per_transition() {
        let dir = tempfile::tempdir().unwrap();
        let (state, audit) = (
            dir.path().join("s/state.json"),
            dir.path().join("audit.log"),
        );
        let store = Arc::new(Store::open(&state, &audit).unwrap());
        store
            .record("n1", PowerState::On, "cpi", "on")
            .await
            .unwrap();
        store
            .record("n1", PowerState::Off, "alice", "off")
            .await
            .unwrap();
        drop(store);
        let store = Store::open(&state, &audit).unwrap();
        let rec = store.get("n1").unwrap();
        assert_eq!(
            (rec.state, rec.changed_by.as_str()),
            (PowerState::Off, "alice")
        );
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&audit)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["who"], "cpi");
        assert_eq!(lines[1]["state"], "off");
        assert!(lines[1]["at"].as_str().unwrap().ends_with('Z'));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("s")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temp files left behind");
    }

    #[tokio::test]
    async fn a_torn_last_audit_line_is_cut_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let (state, audit) = (dir.path().join("state.json"), dir.path().join("audit.log"));
        let whole = "{\"at\":\"2026-01-01T00:00:00.000Z\",\"outlet\":\"n1\"}\n";
        std::fs::write(&audit, format!("{whole}{{\"at\":\"2026-01-")).unwrap();
        let store = Arc::new(Store::open(&state, &audit).unwrap());
        store
            .record("n1", PowerState::On, "cpi", "on")
            .await
            .unwrap();
        let text = std::fs::read_to_string(&audit).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0], whole.trim_end());
        let last: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(last["who"], "cpi");
        // a log that is only a torn line is emptied
        std::fs::write(&audit, "{\"at\"").unwrap();
        drop(Store::open(&state, &audit).unwrap());
        assert_eq!(std::fs::read(&audit).unwrap(), b"");
    }

    #[tokio::test]
    async fn transitions_audited_but_not_saved_are_rolled_forward() {
        let dir = tempfile::tempdir().unwrap();
        let (state, audit) = (dir.path().join("state.json"), dir.path().join("audit.log"));
        let store = Arc::new(Store::open(&state, &audit).unwrap());
        store
            .record("n1", PowerState::On, "cpi", "on")
            .await
            .unwrap();
        store
            .record("n2", PowerState::On, "cpi", "on")
            .await
            .unwrap();
        drop(store);
        let saved = std::fs::read(&state).unwrap();
        // Killed after the switch and its audit line, before the state file: two transitions.
        let mut f = OpenOptions::new().append(true).open(&audit).unwrap();
        for (outlet, state) in [("n1", "off"), ("n3", "on")] {
            writeln!(f, "{}", serde_json::json!({"at": now_rfc3339(), "who": "ops", "outlet": outlet, "action": state, "state": state})).unwrap();
        }
        let store = Store::open(&state, &audit).unwrap();
        assert_eq!(store.get("n1").unwrap().state, PowerState::Off);
        assert_eq!(store.get("n1").unwrap().changed_by, "ops");
        assert_eq!(store.get("n2").unwrap().state, PowerState::On);
        assert_eq!(store.get("n3").unwrap().state, PowerState::On);
        // A rotated (shorter) log never moves a state backwards: only lines newer than the
        // record count.
        drop(store);
        std::fs::write(&state, &saved).unwrap();
        std::fs::write(
            &audit,
            format!("{}\n", serde_json::json!({"at": "2000-01-01T00:00:00.000Z", "who": "old", "outlet": "n1", "action": "off", "state": "off"})),
        )
        .unwrap();
        let store = Store::open(&state, &audit).unwrap();
        assert_eq!(store.get("n1").unwrap().state, PowerState::On);
    }

    #[test]
    fn corrupt_state_file_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        std::fs::write(
            &state,
            "{\"version\":1,\"outlets\":{\"n1\":{\"state\":\"maybe\"",
        )
        .unwrap();
        let err = Store::open(&state, &dir.path().join("a.log"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with(&format!("{}: not a powerd state file", state.display())),
            "{err}"
        );
    }
}
