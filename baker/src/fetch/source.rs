//! Where blob bytes come from: `file://` and `http(s)://` URLs, and mirrors looked up by sha256.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::Client;

/// Environment variable naming a mirror (below `--mirror`).
pub const MIRROR_ENV: &str = "PIFOUNDRY_MIRROR";

/// Why opening or reading a source failed; decides whether a retry may help.
#[derive(Debug)]
pub enum SourceError {
    NotFound,
    Transient(String),
    Fatal(String),
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceError::NotFound => f.write_str("not found"),
            SourceError::Transient(m) | SourceError::Fatal(m) => f.write_str(m),
        }
    }
}

/// A `--mirror` / `PIFOUNDRY_MIRROR` value that is not a directory or URL.
#[derive(Debug, thiserror::Error)]
#[error("mirror {mirror:?}: {problem}")]
pub struct BadMirror {
    pub mirror: String,
    pub problem: String,
}

/// A mirror holding blobs by content: `<mirror>/sha256/<hex>` or, the cache's own layout,
/// `<mirror>/sha256/<hex[..2]>/<hex>` (so a cache's `blobs/` directory works as a mirror).
#[derive(Debug, Clone)]
pub enum Mirror {
    Dir(PathBuf),
    Url(String),
}

impl Mirror {
    /// `DIR`, `file:///DIR` or an `http(s)://` base URL.
    pub fn parse(s: &str) -> Result<Self, BadMirror> {
        let bad = |problem: String| BadMirror {
            mirror: s.to_string(),
            problem,
        };
        if s.starts_with("http://") || s.starts_with("https://") {
            return Ok(Mirror::Url(s.trim_end_matches('/').to_string()));
        }
        if s.starts_with("file://") {
            return file_url_path(s)
                .map(Mirror::Dir)
                .ok_or_else(|| bad(not_a_file_url(s)));
        }
        if s.contains("://") {
            return Err(bad("expected a directory, file:// or http(s):// URL".into()));
        }
        std::path::absolute(s)
            .map(Mirror::Dir)
            .map_err(|e| bad(e.to_string()))
    }

    /// Candidate URLs for a blob, in lookup order.
    pub fn candidates(&self, sha256: &str) -> Vec<String> {
        self.candidates_for("sha256", sha256)
    }

    /// Candidate URLs for a blob pinned by `kind` (`sha256`, or `tree` for content pins):
    /// `<mirror>/<kind>/<hex>`, then `<mirror>/<kind>/<hex[..2]>/<hex>`.
    pub fn candidates_for(&self, kind: &str, hex: &str) -> Vec<String> {
        let rels = [
            format!("{kind}/{hex}"),
            format!("{kind}/{}/{hex}", &hex[..2]),
        ];
        match self {
            Mirror::Dir(d) => rels
                .iter()
                .map(|r| format!("file://{}", d.join(r).display()))
                .collect(),
            Mirror::Url(u) => rels.iter().map(|r| format!("{u}/{r}")).collect(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Mirror::Dir(d) => d.display().to_string(),
            Mirror::Url(u) => u.clone(),
        }
    }
}

/// The path of an absolute `file://` URL.
fn file_url_path(url: &str) -> Option<PathBuf> {
    reqwest::Url::parse(url).ok()?.to_file_path().ok()
}

fn not_a_file_url(url: &str) -> String {
    format!("{url}: not a valid absolute file:// URL")
}

/// Opens sources; holds one HTTP client, built on first use.
pub struct Opener {
    client: OnceLock<Result<Client, String>>,
    timeout: Duration,
}

/// An open source: the body reader and its length when the source announces one.
pub struct Opened {
    pub reader: Box<dyn Read + Send>,
    pub len: Option<u64>,
}

impl Opener {
    pub fn new(timeout: Duration) -> Self {
        Self {
            client: OnceLock::new(),
            timeout,
        }
    }

    fn client(&self) -> Result<&Client, SourceError> {
        self.client
            .get_or_init(|| {
                Client::builder()
                    .connect_timeout(self.timeout)
                    // per wait (headers, each body read), not for the whole download
                    .timeout(self.timeout)
                    .user_agent(concat!("pifoundry-baker/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| format!("cannot start the HTTP client: {e}"))
            })
            .as_ref()
            .map_err(|e| SourceError::Fatal(e.clone()))
    }

    pub fn open(&self, url: &str) -> Result<Opened, SourceError> {
        if url.starts_with("file://") {
            let path = file_url_path(url).ok_or_else(|| SourceError::Fatal(not_a_file_url(url)))?;
            return match File::open(&path) {
                Ok(f) => {
                    let len = f.metadata().ok().map(|m| m.len());
                    Ok(Opened {
                        reader: Box::new(f),
                        len,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Err(SourceError::NotFound),
                Err(e) => Err(SourceError::Fatal(e.to_string())),
            };
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(SourceError::Fatal(
                "unsupported URL scheme (use file://, http:// or https://)".into(),
            ));
        }
        let resp = self
            .client()?
            .get(url)
            .send()
            .map_err(|e| SourceError::Transient(pifoundry_util::error::chain(&e)))?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
            return Err(SourceError::NotFound);
        }
        if status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
        {
            return Err(SourceError::Transient(format!("HTTP {status}")));
        }
        if !status.is_success() {
            return Err(SourceError::Fatal(format!("HTTP {status}")));
        }
        let len = resp.content_length();
        Ok(Opened {
            reader: Box::new(resp),
            len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_forms() {
        let sha = "ab".repeat(32);
        let m = Mirror::parse("/srv/mirror").unwrap();
        assert_eq!(
            m.candidates(&sha),
            vec![
                format!("file:///srv/mirror/sha256/{sha}"),
                format!("file:///srv/mirror/sha256/ab/{sha}")
            ]
        );
        let m = Mirror::parse("http://m.local/blobs/").unwrap();
        assert_eq!(
            m.candidates(&sha)[0],
            format!("http://m.local/blobs/sha256/{sha}")
        );
        assert!(matches!(
            Mirror::parse("file:///srv/m").unwrap(),
            Mirror::Dir(_)
        ));
        assert!(Mirror::parse("ftp://x").is_err());
    }
}
