//! Running an external tool (mmdebstrap, mke2fs, sfdisk, patch, fdtput, qemu-img, dnsmasq…)
//! and turning a failure into one error line: the tool, its exit status and the last lines it
//! printed. [`run`] captures the output, [`run_logged`] appends it to a log file (long builds),
//! [`pipe`] runs `producer | consumer`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Output, Stdio};

/// How many non-empty lines of a tool's complaint an error carries.
const TAIL_LINES: usize = 3;
/// Keeps the tail short enough for one error line.
const TAIL_CHARS: usize = 400;

#[derive(Debug, thiserror::Error)]
#[error("{tool}: {detail}")]
pub struct ToolError {
    pub tool: String,
    pub detail: String,
}

impl ToolError {
    fn of(cmd: &Command, detail: String) -> Self {
        Self {
            tool: program(cmd),
            detail,
        }
    }
}

fn program(cmd: &Command) -> String {
    cmd.get_program().to_string_lossy().into_owned()
}

/// Runs `cmd` to completion with `stdin` fed to it, capturing both outputs; a non-zero exit
/// becomes an error carrying the tail of stderr (of stdout when stderr is empty).
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<Output, ToolError> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| ToolError::of(cmd, format!("cannot start: {e}")))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(input)
            .map_err(|e| ToolError::of(cmd, format!("writing its input: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| ToolError::of(cmd, format!("waiting for it: {e}")))?;
    if out.status.success() {
        return Ok(out);
    }
    let said = if out.stderr.iter().all(u8::is_ascii_whitespace) {
        &out.stdout
    } else {
        &out.stderr
    };
    Err(ToolError::of(cmd, failed(out.status, said)))
}

/// Runs `cmd` with stdout and stderr appended to `log` (after a `$ command` line); a failure
/// carries the log's last lines and names the log.
pub fn run_logged(cmd: &mut Command, log: &Path) -> Result<(), ToolError> {
    let open_log = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(log)
    };
    let mut file =
        open_log().map_err(|e| ToolError::of(cmd, format!("log {}: {e}", log.display())))?;
    let start = file.seek(std::io::SeekFrom::End(0)).unwrap_or(0);
    let _ = writeln!(file, "$ {cmd:?}");
    let err = file
        .try_clone()
        .map_err(|e| ToolError::of(cmd, format!("log {}: {e}", log.display())))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .status()
        .map_err(|e| ToolError::of(cmd, format!("cannot start: {e}")))?;
    if status.success() {
        return Ok(());
    }
    let mut said = Vec::new();
    if let Ok(mut f) = open_log() {
        let _ = f.seek(std::io::SeekFrom::Start(start));
        let _ = f.read_to_end(&mut said);
    }
    Err(ToolError::of(
        cmd,
        format!("{}; log {}", failed(status, &said), log.display()),
    ))
}

/// Runs `producer | consumer` (set the consumer's stdout before the call to keep its output);
/// the first of the two that fails is the error.
pub fn pipe(producer: &mut Command, consumer: &mut Command) -> Result<(), ToolError> {
    let stderr_file = |cmd: &Command| {
        tempfile::tempfile().map_err(|e| ToolError::of(cmd, format!("cannot start: {e}")))
    };
    let (mut p_err, mut c_err) = (stderr_file(producer)?, stderr_file(consumer)?);
    let (p_out, c_out) = (clone(&p_err, producer)?, clone(&c_err, consumer)?);
    let mut first = producer
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(p_out)
        .spawn()
        .map_err(|e| ToolError::of(producer, format!("cannot start: {e}")))?;
    let second = consumer
        .stdin(first.stdout.take().expect("stdout is piped"))
        .stderr(c_out)
        .status();
    let first_status = first
        .wait()
        .map_err(|e| ToolError::of(producer, format!("waiting for it: {e}")))?;
    let second = second.map_err(|e| ToolError::of(consumer, format!("cannot start: {e}")))?;
    for (cmd, status, err) in [
        (&*producer, first_status, &mut p_err),
        (&*consumer, second, &mut c_err),
    ] {
        if !status.success() {
            let mut said = Vec::new();
            let _ = err.rewind();
            let _ = err.read_to_end(&mut said);
            return Err(ToolError::of(cmd, failed(status, &said)));
        }
    }
    Ok(())
}

fn clone(f: &File, cmd: &Command) -> Result<File, ToolError> {
    f.try_clone()
        .map_err(|e| ToolError::of(cmd, format!("cannot start: {e}")))
}

fn failed(status: ExitStatus, said: &[u8]) -> String {
    format!("{} ({status})", tail(said))
}

/// The last few non-empty lines of a tool's output, joined on one line with ` | ` and cut to
/// a few hundred characters.
pub fn tail(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let joined = lines[lines.len().saturating_sub(TAIL_LINES)..].join(" | ");
    if joined.is_empty() {
        return "failed without a message".into();
    }
    match joined.char_indices().rev().nth(TAIL_CHARS - 1) {
        Some((cut, _)) => format!("…{}", &joined[cut..]),
        None => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn a_failure_names_the_tool_its_status_and_its_last_words() {
        let e = run(&mut sh("echo one >&2; echo two >&2; exit 3"), None).unwrap_err();
        assert_eq!(e.to_string(), "sh: one | two (exit status: 3)");
        let e = run(&mut sh("echo 'hunk FAILED'; exit 1"), None).unwrap_err();
        assert_eq!(e.to_string(), "sh: hunk FAILED (exit status: 1)");
        let out = run(&mut sh("cat"), Some(b"fed")).unwrap();
        assert_eq!(out.stdout, b"fed");
        let e = run(&mut Command::new("/nonexistent/tool"), None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/tool: cannot start: "),
            "{e}"
        );
    }

    #[test]
    fn logged_runs_append_and_report_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stage.log");
        run_logged(&mut sh("echo fine"), &log).unwrap();
        let e = run_logged(&mut sh("echo broken >&2; exit 2"), &log).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "sh: $ \"sh\" \"-c\" \"echo broken >&2; exit 2\" | broken (exit status: 2); log {}",
                log.display()
            )
        );
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("fine\n") && text.contains("broken\n"),
            "{text}"
        );
    }

    #[test]
    fn a_pipe_reports_the_side_that_failed() {
        let dir = tempfile::tempdir().unwrap();
        let out = File::create(dir.path().join("out")).unwrap();
        pipe(&mut sh("echo data"), sh("cat").stdout(out)).unwrap();
        assert_eq!(std::fs::read(dir.path().join("out")).unwrap(), b"data\n");
        let e = pipe(&mut sh("echo no >&2; exit 4"), &mut sh("cat >/dev/null")).unwrap_err();
        assert_eq!(e.to_string(), "sh: no (exit status: 4)");
    }

    #[test]
    fn the_tail_is_short() {
        assert_eq!(tail(b"\n\n"), "failed without a message");
        assert_eq!(tail(b"a\nb\nc\nd\n"), "b | c | d");
        let long = "x".repeat(1000);
        assert_eq!(tail(long.as_bytes()).chars().count(), TAIL_CHARS + 1);
    }
}
