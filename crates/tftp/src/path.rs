//! The requested file name, checked and normalised before any resolver sees it.

use std::fmt;

/// Longest request path served, in bytes (Pi boot paths are `SERIAL/name`, well under this).
pub const MAX_PATH_LEN: usize = 512;

/// A requested path that can only name something inside the served tree: relative, `/`-separated,
/// UTF-8, without `..`, control characters or backslashes; empty and `.` components are dropped
/// (`a//./b` is `a/b`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestPath(String);

/// Why a requested file name is refused (answered with an access-violation error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("empty file name")]
    Empty,
    #[error("file name is longer than {MAX_PATH_LEN} bytes")]
    TooLong,
    #[error("file name is not UTF-8")]
    NotUtf8,
    #[error("absolute file name")]
    Absolute,
    #[error("file name contains `..`")]
    ParentDir,
    #[error("file name contains a backslash")]
    Backslash,
    #[error("file name contains a control character")]
    ControlChar,
}

impl RequestPath {
    /// Checks and normalises a file name as it came off the wire.
    pub fn parse(raw: &[u8]) -> Result<RequestPath, PathError> {
        if raw.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        let text = std::str::from_utf8(raw).map_err(|_| PathError::NotUtf8)?;
        if text.chars().any(char::is_control) {
            return Err(PathError::ControlChar);
        }
        if text.contains('\\') {
            return Err(PathError::Backslash);
        }
        if text.starts_with('/') {
            return Err(PathError::Absolute);
        }
        let mut parts = Vec::new();
        for part in text.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(PathError::ParentDir),
                name => parts.push(name),
            }
        }
        if parts.is_empty() {
            return Err(PathError::Empty);
        }
        Ok(RequestPath(parts.join("/")))
    }

    /// The normalised path, e.g. `1a2b3c4d/start.elf`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's components; none is empty, `.` or `..`.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The first component and the rest, if any: `("1a2b3c4d", Some("start.elf"))` for a Pi's
    /// per-serial prefix, `("bootcode.bin", None)` for a file at the root.
    pub fn split_first(&self) -> (&str, Option<RequestPath>) {
        match self.0.split_once('/') {
            Some((first, rest)) => (first, Some(RequestPath(rest.to_owned()))),
            None => (&self.0, None),
        }
    }
}

impl fmt::Display for RequestPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_relative_names() {
        for (raw, want) in [
            ("bootcode.bin", "bootcode.bin"),
            ("1a2b3c4d/start.elf", "1a2b3c4d/start.elf"),
            ("a//./b/", "a/b"),
            ("./config.txt", "config.txt"),
            ("...", "..."),
            ("a/..b", "a/..b"),
        ] {
            assert_eq!(
                RequestPath::parse(raw.as_bytes()).unwrap().as_str(),
                want,
                "{raw}"
            );
        }
    }

    #[test]
    fn refuses_names_that_could_leave_the_tree() {
        for (raw, want) in [
            (&b""[..], PathError::Empty),
            (b"./", PathError::Empty),
            (b"/etc/passwd", PathError::Absolute),
            (b"../x", PathError::ParentDir),
            (b"a/../../x", PathError::ParentDir),
            (b"a/..", PathError::ParentDir),
            (b"..\\x", PathError::Backslash),
            (b"a\0b", PathError::ControlChar),
            (b"a\nb", PathError::ControlChar),
            (b"\xff", PathError::NotUtf8),
        ] {
            assert_eq!(RequestPath::parse(raw), Err(want), "{raw:?}");
        }
        assert_eq!(
            RequestPath::parse(&[b'a'; MAX_PATH_LEN + 1]),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn splits_the_serial_prefix() {
        let path = RequestPath::parse(b"1a2b3c4d/overlays/x.dtbo").unwrap();
        let (first, rest) = path.split_first();
        assert_eq!(first, "1a2b3c4d");
        assert_eq!(rest.unwrap().as_str(), "overlays/x.dtbo");
        assert_eq!(
            RequestPath::parse(b"bootcode.bin").unwrap().split_first(),
            ("bootcode.bin", None)
        );
        assert_eq!(
            path.components().collect::<Vec<_>>(),
            ["1a2b3c4d", "overlays", "x.dtbo"]
        );
    }
}
