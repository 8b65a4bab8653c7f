//! The shell-command backend: uhubctl, SNMP for PoE ports, smart-plug CLIs. Each command runs
//! under `sh -c` with `{{id}}` replaced by the outlet id (ids are restricted to
//! `[A-Za-z0-9._-]`, so the substitution cannot inject shell syntax) and `POWERD_OUTLET` /
//! `POWERD_ACTION` in the environment. A command that outlives its timeout is killed with its
//! whole process group.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::{BackendError, BackendFuture, PowerBackend, PowerState};

pub struct CommandOutlet {
    id: String,
    on: String,
    off: String,
    status: Option<String>,
    timeout: Duration,
}

impl CommandOutlet {
    pub fn new(id: &str, on: &str, off: &str, status: Option<&str>, timeout: Duration) -> Self {
        let subst = |c: &str| c.replace("{{id}}", id);
        CommandOutlet {
            id: id.to_string(),
            on: subst(on),
            off: subst(off),
            status: status.map(subst),
            timeout,
        }
    }

    /// Runs `command`; returns its stdout on exit status 0.
    async fn run(&self, command: &str, action: &str) -> Result<String, BackendError> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .env("POWERD_OUTLET", &self.id)
            .env("POWERD_ACTION", action)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| BackendError::Spawn {
                command: command.to_string(),
                error,
            })?;
        let mut stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let pid = child.id();
        let work = async {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let (o, e, status) = tokio::join!(
                stdout.read_to_end(&mut out),
                stderr.read_to_end(&mut err),
                child.wait()
            );
            o.and(e).and(status.map(|s| (s, out, err)))
        };
        let (status, out, err) = match tokio::time::timeout(self.timeout, work).await {
            Ok(done) => done.map_err(|error| BackendError::Spawn {
                command: command.to_string(),
                error,
            })?,
            Err(_) => {
                if let Some(pid) = pid {
                    let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
                }
                return Err(BackendError::Timeout {
                    command: command.to_string(),
                    timeout: self.timeout,
                });
            }
        };
        if !status.success() {
            return Err(BackendError::Failed {
                command: command.to_string(),
                status: status.to_string(),
                stderr: pifoundry_util::tool::tail(&err),
            });
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

impl PowerBackend for CommandOutlet {
    fn kind(&self) -> &'static str {
        "command"
    }

    fn set(&self, state: PowerState) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            let command = match state {
                PowerState::On => &self.on,
                PowerState::Off => &self.off,
            };
            self.run(command, &state.to_string()).await.map(drop)
        })
    }

    /// The status command prints `on` or `off`.
    fn observe(&self) -> BackendFuture<'_, Option<PowerState>> {
        Box::pin(async move {
            let Some(command) = &self.status else {
                return Ok(None);
            };
            let out = self.run(command, "status").await?;
            match out.trim().to_ascii_lowercase().as_str() {
                "on" => Ok(Some(PowerState::On)),
                "off" => Ok(Some(PowerState::Off)),
                _ => Err(BackendError::BadStatus {
                    command: command.clone(),
                    output: out.trim().chars().take(80).collect(),
                }),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outlet(dir: &std::path::Path, on: &str, timeout_ms: u64) -> CommandOutlet {
        let d = dir.display();
        CommandOutlet::new(
            "node-1",
            &format!("cd {d} && {on}"),
            &format!("cd {d} && rm {{{{id}}}}.on && echo \"$POWERD_ACTION\" > last"),
            Some(&format!(
                "cd {d} && if [ -e {{{{id}}}}.on ]; then echo on; else echo off; fi"
            )),
            Duration::from_millis(timeout_ms),
        )
    }

    #[tokio::test]
    async fn commands_touch_files_with_the_outlet_id() {
        let dir = tempfile::tempdir().unwrap();
        let o = outlet(dir.path(), "touch \"$POWERD_OUTLET.on\"", 5000);
        assert_eq!(o.observe().await.unwrap(), Some(PowerState::Off));
        o.set(PowerState::On).await.unwrap();
        assert!(dir.path().join("node-1.on").exists());
        assert_eq!(o.observe().await.unwrap(), Some(PowerState::On));
        o.set(PowerState::Off).await.unwrap();
        assert!(!dir.path().join("node-1.on").exists());
        let last = std::fs::read_to_string(dir.path().join("last")).unwrap();
        assert_eq!(last.trim(), "off");
    }

    #[tokio::test]
    async fn non_zero_exit_is_an_error_with_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let o = outlet(dir.path(), "echo 'relay 3 jammed' >&2; exit 3", 5000);
        let err = o.set(PowerState::On).await.unwrap_err().to_string();
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(err.contains("relay 3 jammed"), "{err}");
    }

    #[tokio::test]
    async fn slow_command_is_killed_with_its_process_group_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let o = outlet(
            dir.path(),
            "{ sleep 30 & echo $! > sleeper; wait; touch late; }",
            300,
        );
        let err = o.set(PowerState::On).await.unwrap_err();
        assert!(matches!(err, BackendError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("timed out after 300ms"), "{err}");
        let pid = std::fs::read_to_string(dir.path().join("sleeper")).unwrap();
        let stat = format!("/proc/{}/stat", pid.trim());
        let gone = || match std::fs::read_to_string(&stat) {
            Err(_) => true,
            Ok(s) => s
                .rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z')),
        };
        for _ in 0..100 {
            if gone() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            gone(),
            "the command's child `sleep 30` survived the timeout"
        );
        assert!(!dir.path().join("late").exists());
    }

    #[tokio::test]
    async fn garbage_status_output_is_refused() {
        let o = CommandOutlet::new(
            "x",
            "true",
            "true",
            Some("echo maybe"),
            Duration::from_secs(5),
        );
        let err = o.observe().await.unwrap_err().to_string();
        assert!(err.contains("expected `on` or `off`"), "{err}");
    }
}
