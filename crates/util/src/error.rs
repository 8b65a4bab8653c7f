//! The error convention of every PiFoundry crate: an error's message is complete on its own
//! (it names the file, entry or field and says what its cause said), so no error type also
//! hands out that cause as [`std::error::Error::source`]. The one place a chain is walked is
//! the edge: a CLI prints [`chain`] of what reached it, which joins the context layers and any
//! foreign causes (reqwest, hyper) on one line and skips a cause the message already carries.

use std::error::Error;
use std::io;
use std::path::{Path, PathBuf};

/// An I/O error on a named file or directory.
#[derive(Debug, thiserror::Error)]
#[error("{}: {error}", path.display())]
pub struct PathError {
    pub path: PathBuf,
    pub error: io::Error,
}

impl PathError {
    pub fn new(path: impl Into<PathBuf>, error: io::Error) -> Self {
        Self {
            path: path.into(),
            error,
        }
    }

    pub fn kind(&self) -> io::ErrorKind {
        self.error.kind()
    }
}

/// A file or directory that exists but cannot be used as it is, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct BadInput {
    pub path: PathBuf,
    pub message: String,
}

impl BadInput {
    pub fn new(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// `.map_err(at(path))`: names `path` in an I/O error.
pub fn at(path: &Path) -> impl Fn(io::Error) -> PathError + '_ {
    move |error| PathError::new(path, error)
}

impl From<PathError> for io::Error {
    fn from(e: PathError) -> io::Error {
        io::Error::new(e.error.kind(), e.to_string())
    }
}

/// `err` and its causes on one line, joined by `: `, each cause once: a cause whose text is
/// already part of the line is skipped.
pub fn chain(err: &(dyn Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut cur = err.source();
    while let Some(cause) = cur {
        let text = cause.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cur = cause.source();
    }
    one_line(&line)
}

/// Newlines (from a tool's or a guest's output) become ` | `, so a message stays one line.
pub fn one_line(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] PathError);

    #[derive(Debug, thiserror::Error)]
    #[error("context")]
    struct Context(#[source] Outer);

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let e = PathError::new("/x/y", io::Error::from(io::ErrorKind::NotFound));
        let line = chain(&Context(Outer(e)));
        assert_eq!(line, "context: outer: /x/y: entity not found");
    }

    #[test]
    fn multi_line_messages_become_one_line() {
        assert_eq!(one_line("a\n  b\n\nc\n"), "a | b | c");
    }
}
