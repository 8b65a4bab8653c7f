//! Runs the external file-system tools (sfdisk, mkfs.vfat, mtools, mke2fs, debugfs, fdtput)
//! and turns a failure into one error line naming the tool and its complaint.

use std::io::Write;
use std::process::{Command, Output, Stdio};

#[derive(Debug, thiserror::Error)]
#[error("{tool}: {detail}")]
pub struct ToolError {
    pub tool: String,
    pub detail: String,
}

/// Runs `cmd` to completion with `stdin` fed to it, capturing both outputs; a non-zero
/// exit becomes an error carrying the last lines of stderr.
pub(crate) fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<Output, ToolError> {
    let tool = cmd.get_program().to_string_lossy().into_owned();
    let err = |detail: String| ToolError {
        tool: tool.clone(),
        detail,
    };
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| err(format!("cannot start: {e}")))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(input)
            .map_err(|e| err(format!("writing its input: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| err(format!("waiting for it: {e}")))?;
    if out.status.success() {
        return Ok(out);
    }
    Err(err(format!(
        "{} ({})",
        stderr_tail(&out.stderr),
        out.status
    )))
}

/// The last few non-empty lines of a tool's stderr, joined on one line.
pub(crate) fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    if tail.is_empty() {
        "failed without a message".into()
    } else {
        tail.join(" | ")
    }
}
