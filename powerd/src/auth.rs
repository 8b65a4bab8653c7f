//! Who may switch power: bearer tokens, or HTTP Basic with the token as the password (for
//! Redfish clients). Tokens live in a file, one per line as `NAME:TOKEN` (or a bare `TOKEN`,
//! named `default`); the name is what the audit log records. Comparison is constant-time over
//! SHA-256 digests, so neither the content nor the length of a token leaks through timing.

use std::path::{Path, PathBuf};

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Shorter tokens are refused: they can be guessed over the network.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Bad {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: no tokens in the file; every mutating call needs one")]
    Empty { path: PathBuf },
    #[error(
        "{path}: mode {mode:04o} lets other users read or change the tokens; chmod 600 it (640 for a group of operators)"
    )]
    Exposed { path: PathBuf, mode: u32 },
}

/// Permission bits a token file must not have: group write, or any access by others. Group
/// read is allowed, so that a group of operators can run `powerd ctl` with the daemon's file.
pub const FORBIDDEN_MODE: u32 = 0o027;

/// Why a request was not authenticated (the client sees this message with a 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error(
        "this call needs credentials: Authorization: Bearer TOKEN, or Basic with the token as password"
    )]
    Missing,
    #[error("the Authorization header is malformed")]
    Malformed,
    #[error("the token is not valid")]
    Invalid,
}

/// The value of `WWW-Authenticate` challenges sent with a 401.
pub const CHALLENGES: [&str; 2] = [
    "Bearer realm=\"powerd\"",
    "Basic realm=\"powerd\", charset=\"UTF-8\"",
];

struct Token {
    name: String,
    digest: [u8; 32],
}

pub struct Auth {
    tokens: Vec<Token>,
    open_reads: bool,
}

fn digest(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

impl Auth {
    /// Reads the daemon's token file; refuses one that other users can read or change (a
    /// leaked token switches power, so this is an error, not a warning).
    pub fn load(path: &Path, open_reads: bool) -> Result<Auth, AuthError> {
        use std::io::Read;
        use std::os::unix::fs::PermissionsExt;
        let read = |error| AuthError::Read {
            path: path.to_path_buf(),
            error,
        };
        let mut file = std::fs::File::open(path).map_err(read)?;
        let mode = file.metadata().map_err(read)?.permissions().mode() & 0o7777;
        if mode & FORBIDDEN_MODE != 0 {
            return Err(AuthError::Exposed {
                path: path.to_path_buf(),
                mode,
            });
        }
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(read)?;
        let bad = |line: usize, message: String| AuthError::Bad {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut tokens: Vec<(String, String)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, secret) = line.split_once(':').unwrap_or(("default", line));
            let (name, secret) = (name.trim(), secret.trim());
            if name.is_empty() {
                return Err(bad(i + 1, "empty token name before `:`".into()));
            }
            if secret.len() < MIN_TOKEN_LEN {
                return Err(bad(
                    i + 1,
                    format!("token {name:?} is shorter than {MIN_TOKEN_LEN} characters"),
                ));
            }
            if tokens.iter().any(|(n, _)| n == name) {
                return Err(bad(i + 1, format!("duplicate token name {name:?}")));
            }
            tokens.push((name.to_string(), secret.to_string()));
        }
        if tokens.is_empty() {
            return Err(AuthError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(Auth::new(tokens, open_reads))
    }

    pub fn new(tokens: impl IntoIterator<Item = (String, String)>, open_reads: bool) -> Auth {
        Auth {
            tokens: tokens
                .into_iter()
                .map(|(name, secret)| Token {
                    name,
                    digest: digest(secret.as_bytes()),
                })
                .collect(),
            open_reads,
        }
    }

    pub fn open_reads(&self) -> bool {
        self.open_reads
    }

    /// Checks an `Authorization` header value; returns who is calling (for the audit log).
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<String, Denied> {
        let header = authorization.ok_or(Denied::Missing)?;
        let header = std::str::from_utf8(header).map_err(|_| Denied::Malformed)?;
        let (scheme, rest) = header.trim().split_once(' ').ok_or(Denied::Malformed)?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            self.find(rest.as_bytes()).map(|t| t.name.clone())
        } else if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .map_err(|_| Denied::Malformed)?;
            let decoded = String::from_utf8(decoded).map_err(|_| Denied::Malformed)?;
            let (user, password) = decoded.split_once(':').ok_or(Denied::Malformed)?;
            let token = self.find(password.as_bytes())?;
            Ok(if user.is_empty() || user == token.name {
                token.name.clone()
            } else {
                format!("{user} (token {})", token.name)
            })
        } else {
            Err(Denied::Malformed)
        }
    }

    fn find(&self, secret: &[u8]) -> Result<&Token, Denied> {
        let presented = digest(secret);
        // Look at every token so the time taken does not depend on which one matched.
        let mut found = None;
        for t in &self.tokens {
            if bool::from(t.digest.ct_eq(&presented)) {
                found = Some(t);
            }
        }
        found.ok_or(Denied::Invalid)
    }
}

/// The token a client presents: the first one in a token file (same format as the daemon's).
pub fn client_token(path: &Path) -> Result<String, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|error| AuthError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once(':').map_or(l, |(_, t)| t).trim().to_string())
        .ok_or_else(|| AuthError::Empty {
            path: path.to_path_buf(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(
            [
                ("cpi".to_string(), "0123456789abcdef-cpi".to_string()),
                ("ops".to_string(), "0123456789abcdef-ops".to_string()),
            ],
            false,
        )
    }

    fn basic(user: &str, pw: &str) -> Vec<u8> {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
        format!("Basic {b}").into_bytes()
    }

    #[test]
    fn bearer_and_basic() {
        let a = auth();
        assert_eq!(
            a.check(Some(b"Bearer 0123456789abcdef-ops")).unwrap(),
            "ops"
        );
        assert_eq!(
            a.check(Some(b"bearer 0123456789abcdef-cpi")).unwrap(),
            "cpi"
        );
        assert_eq!(
            a.check(Some(&basic("admin", "0123456789abcdef-cpi")))
                .unwrap(),
            "admin (token cpi)"
        );
        assert_eq!(a.check(Some(b"Bearer nope")), Err(Denied::Invalid));
        assert_eq!(a.check(Some(&basic("cpi", "nope"))), Err(Denied::Invalid));
        assert_eq!(a.check(None), Err(Denied::Missing));
        assert_eq!(a.check(Some(b"Digest x")), Err(Denied::Malformed));
        assert_eq!(a.check(Some(b"Basic !!!")), Err(Denied::Malformed));
    }

    fn write_private(p: &Path, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(p, text).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn token_file_others_can_read_or_change_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens");
        write_private(&p, "cpi:0123456789abcdef-cpi\n");
        for (mode, ok) in [
            (0o600, true),
            (0o640, true),
            (0o400, true),
            (0o644, false),
            (0o660, false),
            (0o604, false),
            (0o602, false),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            match Auth::load(&p, false) {
                Ok(_) => assert!(ok, "mode {mode:o} was accepted"),
                Err(e) => {
                    assert!(!ok, "mode {mode:o} was refused: {e}");
                    assert_eq!(
                        e.to_string(),
                        format!(
                            "{}: mode {mode:04o} lets other users read or change the tokens; chmod 600 it (640 for a group of operators)",
                            p.display()
                        )
                    );
                }
            }
        }
    }

    #[test]
    fn token_file_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens");
        write_private(&p, "# operators\ncpi:0123456789abcdef-cpi\nops:short\n");
        let err = Auth::load(&p, false).err().unwrap().to_string();
        assert_eq!(
            err,
            format!(
                "{}:3: token \"ops\" is shorter than 16 characters",
                p.display()
            )
        );
        write_private(&p, "# nothing\n");
        assert!(
            Auth::load(&p, false)
                .err()
                .unwrap()
                .to_string()
                .contains("no tokens")
        );
        write_private(&p, "0123456789abcdef-bare\n");
        let a = Auth::load(&p, true).unwrap();
        assert_eq!(
            a.check(Some(b"Bearer 0123456789abcdef-bare")).unwrap(),
            "default"
        );
    }
}
