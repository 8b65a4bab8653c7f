//! The `systemd` supervisor: each export is an instance of the shipped template unit
//! `pifoundry-nbd@.service`, whose values powerd writes to `<env_dir>/<export>.env`
//! (`/run/pifoundry/nbd` on the controller); `systemctl` starts, stops and reports it.

use std::path::{Path, PathBuf};
use std::process::Command;

use pifoundry_util::{atomic, error::at, tool};

use super::BlockError;
use super::image::format_name;
use super::state::Entry;

/// The shipped unit, for the tests that hold it to the detached command line.
pub const UNIT: &str = include_str!("../../systemd/pifoundry-nbd@.service");

pub fn unit_name(name: &str) -> String {
    format!("pifoundry-nbd@{name}.service")
}

pub fn env_path(env_dir: &Path, name: &str) -> PathBuf {
    env_dir.join(format!("{name}.env"))
}

/// The instance's environment file. Values are quoted for systemd's parser; the file path is
/// the only one that may hold arbitrary characters.
pub fn render_env(name: &str, e: &Entry) -> String {
    let quote = |v: &str| {
        let escaped = v.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{escaped}\"")
    };
    format!(
        "# written by powerd for {unit}\n\
         NBD_BIND={bind}\nNBD_PORT={port}\nNBD_EXPORT={name}\nNBD_FORMAT={format}\n\
         NBD_SHARED={shared}\nNBD_FILE={file}\n",
        unit = unit_name(name),
        bind = e.host,
        port = e.port,
        format = format_name(e.format),
        shared = e.shared,
        file = quote(&e.file.to_string_lossy()),
    )
}

pub fn start(systemctl: &Path, env_dir: &Path, name: &str, e: &Entry) -> Result<u32, BlockError> {
    std::fs::create_dir_all(env_dir).map_err(at(env_dir))?;
    atomic::write(env_path(env_dir, name), render_env(name, e).as_bytes())?;
    let unit = unit_name(name);
    let mut cmd = Command::new(systemctl);
    cmd.args(["start", &unit]);
    tool::run(&mut cmd, None).map_err(|err| BlockError::export(name, err.to_string()))?;
    match status(systemctl, name)? {
        Some(pid) => Ok(pid),
        None => Err(BlockError::export(
            name,
            format!("{unit} is not active after its start"),
        )),
    }
}

/// The unit's main pid while it is active.
pub fn status(systemctl: &Path, name: &str) -> Result<Option<u32>, BlockError> {
    let mut cmd = Command::new(systemctl);
    cmd.args([
        "show",
        "-p",
        "ActiveState",
        "-p",
        "MainPID",
        &unit_name(name),
    ]);
    let out = tool::run(&mut cmd, None).map_err(|err| BlockError::export(name, err.to_string()))?;
    Ok(parse_show(&String::from_utf8_lossy(&out.stdout)))
}

fn parse_show(text: &str) -> Option<u32> {
    let mut active = false;
    let mut pid = None;
    for line in text.lines() {
        match line.split_once('=') {
            Some(("ActiveState", v)) => active = v == "active",
            Some(("MainPID", v)) => pid = v.parse().ok().filter(|p| *p != 0),
            _ => {}
        }
    }
    pid.filter(|_| active)
}

/// Stops the instance (idempotent) and removes its env file.
pub fn stop(systemctl: &Path, env_dir: &Path, name: &str) -> Result<(), BlockError> {
    let unit = unit_name(name);
    let mut cmd = Command::new(systemctl);
    cmd.args(["stop", &unit]);
    tool::run(&mut cmd, None).map_err(|err| BlockError::export(name, err.to_string()))?;
    // a unit that failed stays listed as failed until reset; nothing to keep
    let _ = tool::run(Command::new(systemctl).args(["reset-failed", &unit]), None);
    let env = env_path(env_dir, name);
    match std::fs::remove_file(&env) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(at(&env)(e).into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::Supervisor;
    use crate::block::process::qemu_nbd_args;
    use powerd_client::provision::DiskFormat;
    use std::collections::BTreeMap;

    fn entry(file: &str) -> Entry {
        Entry {
            file: file.into(),
            format: DiskFormat::Qcow2,
            host: "10.77.0.1".parse().unwrap(),
            port: 10812,
            allow: "10.77.0.100".parse().unwrap(),
            shared: 8,
            supervisor: Supervisor::Systemd,
            pid: None,
            start_time: None,
        }
    }

    /// Reads an env file the way systemd's EnvironmentFile= does for these values.
    fn parse_env(text: &str) -> BTreeMap<String, String> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                let v = match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                    Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
                    None => v.to_string(),
                };
                (k.to_string(), v)
            })
            .collect()
    }

    /// `${VAR}` in ExecStart is one word, substituted whole (systemd.service(5)).
    fn exec_start(env: &BTreeMap<String, String>) -> Vec<String> {
        let line = UNIT
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap();
        line.split_whitespace()
            .map(|word| {
                let mut w = word.to_string();
                for (k, v) in env {
                    w = w.replace(&format!("${{{k}}}"), v);
                }
                assert!(!w.contains('$'), "{word} has no value in the env file");
                w
            })
            .collect()
    }

    #[test]
    fn the_unit_runs_the_detached_command_line_from_the_env_file() {
        let name = "0123456789abcdef0123456789abcdef";
        for file in [
            "/var/lib/pifoundry/vms/vm-1/root.qcow2",
            "/srv/odd \"dir\"/disk.img",
        ] {
            let e = entry(file);
            let env = render_env(name, &e);
            let argv = exec_start(&parse_env(&env));
            assert_eq!(argv[0], "/usr/bin/qemu-nbd");
            let want: Vec<String> = qemu_nbd_args(name, &e)
                .into_iter()
                .map(|a| a.into_string().unwrap())
                .collect();
            assert_eq!(argv[1..], want[..], "{env}");
        }
        assert!(UNIT.contains("EnvironmentFile=/run/pifoundry/nbd/%i.env"));
        assert_eq!(unit_name(name), format!("pifoundry-nbd@{name}.service"));
    }

    #[test]
    fn show_output_gives_the_pid_only_while_active() {
        assert_eq!(parse_show("MainPID=4242\nActiveState=active\n"), Some(4242));
        assert_eq!(parse_show("ActiveState=failed\nMainPID=0\n"), None);
        assert_eq!(parse_show("ActiveState=activating\nMainPID=17\n"), None);
    }
}
