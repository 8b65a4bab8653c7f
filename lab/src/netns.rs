//! The lab's network namespace: made with `ip netns`, entered by threads (`setns`) that
//! need a socket inside it, and by child processes through `ip netns exec`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use pifoundry_util::tool;

pub fn exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

pub fn ip(args: &[&str]) -> Result<()> {
    tool::run(Command::new("ip").args(args), None)?;
    Ok(())
}

/// `ip -n NAME …`.
pub fn ip_in(name: &str, args: &[&str]) -> Result<()> {
    let mut all = vec!["-n", name];
    all.extend_from_slice(args);
    ip(&all)
}

/// A new namespace with its loopback up.
pub fn create(name: &str) -> Result<()> {
    ip(&["netns", "add", name])?;
    ip_in(name, &["link", "set", "lo", "up"])
}

/// `program` run inside the namespace.
pub fn command(name: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", name]).arg(program);
    cmd
}

/// Pids of every process inside the namespace.
pub fn pids(name: &str) -> Vec<i32> {
    Command::new("ip")
        .args(["netns", "pids", name])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

pub fn delete(name: &str) -> Result<()> {
    if exists(name) {
        ip(&["netns", "del", name])
            .with_context(|| format!("deleting network namespace {name}"))?;
    }
    Ok(())
}

/// Runs `f` on a thread that has entered the namespace: every socket it opens is inside.
pub fn within<T: Send>(name: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let path = Path::new("/run/netns").join(name);
    std::thread::scope(|s| {
        s.spawn(|| {
            let fd = std::fs::File::open(&path)
                .with_context(|| format!("{}: no such network namespace", path.display()))?;
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("entering network namespace {name}"))?;
            f()
        })
        .join()
        .unwrap_or_else(|_| anyhow::bail!("a thread inside network namespace {name} panicked"))
    })
}
