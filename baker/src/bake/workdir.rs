//! Private work directories (`<cache>/.work-*`): one per bake, locked while the bake runs,
//! removed when it ends, also on error. A bake that was killed leaves its directory (and
//! possibly its chroot mounts) behind; the next bake finds it unlocked and clears it.

use std::fs::{self, File};
use std::path::Path;
use std::time::{Duration, SystemTime};

use nix::mount::{MntFlags, umount2};
use pifoundry_util::PathError;
use pifoundry_util::error::at;

use super::chroot;

const LOCK: &str = ".lock";

pub struct WorkDir {
    dir: Option<tempfile::TempDir>,
    _lock: File,
}

impl WorkDir {
    pub fn new(parent: &Path) -> Result<Self, PathError> {
        let dir = tempfile::Builder::new()
            .prefix(".work-")
            .tempdir_in(parent)
            .map_err(at(parent))?;
        let lock_path = dir.path().join(LOCK);
        let lock = File::create(&lock_path).map_err(at(&lock_path))?;
        lock.lock().map_err(at(&lock_path))?;
        Ok(WorkDir {
            dir: Some(dir),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("live").path()
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let dir = self.dir.take().expect("live");
        let mounted = chroot::mounted_below(dir.path());
        if mounted.is_empty() {
            if let Err(e) = dir.close() {
                tracing::warn!("cannot remove work dir: {e}");
            }
        } else {
            // deleting through a mount point could reach the host's files
            tracing::error!(
                "leaving {} in place: still mounted: {mounted:?}",
                dir.keep().display()
            );
        }
    }
}

/// Clears what killed bakes left in `cache_dir`: unlocked work dirs (unmounting anything
/// still mounted in them first) and cache stores abandoned for over an hour.
pub fn sweep(cache_dir: &Path) {
    let Ok(rd) = fs::read_dir(cache_dir) else {
        return;
    };
    for e in rd.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let stale = if name.starts_with(".work-") {
            match File::open(path.join(LOCK)) {
                Ok(f) => f.try_lock().is_ok(),
                Err(_) => older_than(&path, Duration::from_secs(600)),
            }
        } else if name.starts_with(".store-") {
            older_than(&path, Duration::from_secs(3600))
        } else {
            false
        };
        if !stale {
            continue;
        }
        let mut mounts = chroot::mounted_below(&path);
        mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
        for m in &mounts {
            let _ = umount2(m, MntFlags::MNT_DETACH);
        }
        if chroot::mounted_below(&path).is_empty() {
            tracing::info!("removing {} left by an interrupted bake", path.display());
            let _ = fs::remove_dir_all(&path);
        }
    }
}

fn older_than(path: &Path, age: Duration) -> bool {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|d| d > age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_clears_unlocked_work_dirs_only() {
        let cache = tempfile::tempdir().unwrap();
        let live = WorkDir::new(cache.path()).unwrap();
        fs::create_dir_all(live.path().join("rootfs/etc")).unwrap();
        let dead = cache.path().join(".work-dead");
        fs::create_dir_all(dead.join("rootfs/etc")).unwrap();
        File::create(dead.join(LOCK)).unwrap();
        let entry = cache.path().join("0123abcd");
        fs::create_dir_all(&entry).unwrap();
        sweep(cache.path());
        assert!(live.path().join("rootfs/etc").is_dir());
        assert!(!dead.exists());
        assert!(entry.is_dir(), "cache entries are not the sweep's business");
        let p = live.path().to_path_buf();
        drop(live);
        assert!(!p.exists());
    }
}
