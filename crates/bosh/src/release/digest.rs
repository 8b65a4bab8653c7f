//! The multi-digest string of `release.MF`'s `sha1` field (bosh-utils `MultipleDigest`):
//! `algo:hex` pieces joined by `;`, a bare hex string meaning SHA-1.

use std::fmt;

pub use pifoundry_util::hash::{Algo, Digests, Hasher, HashingReader, HashingWriter};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest {0:?} is empty")]
    Empty(String),
    #[error("digest {input:?}: unknown algorithm {algo:?}")]
    UnknownAlgo { input: String, algo: String },
    #[error("digest {input:?}: {algo} value is not {len} lowercase hex characters")]
    BadHex {
        input: String,
        algo: Algo,
        len: usize,
    },
    #[error("digest {input:?}: {algo} appears twice")]
    Duplicate { input: String, algo: Algo },
}

/// A parsed multi-digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiDigest {
    pieces: Vec<(Algo, String)>,
}

impl MultiDigest {
    pub fn parse(input: &str) -> Result<Self, DigestError> {
        let mut pieces: Vec<(Algo, String)> = Vec::new();
        for piece in input.split(';') {
            let (algo, hex) = match piece.split_once(':') {
                None => (Algo::Sha1, piece),
                Some((a, hex)) => {
                    let algo = Algo::ALL
                        .into_iter()
                        .find(|x| x.name() == a)
                        .ok_or_else(|| DigestError::UnknownAlgo {
                            input: input.into(),
                            algo: a.into(),
                        })?;
                    (algo, hex)
                }
            };
            if input.is_empty() {
                return Err(DigestError::Empty(input.into()));
            }
            let hex = hex.to_ascii_lowercase();
            if hex.len() != algo.hex_len() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(DigestError::BadHex {
                    input: input.into(),
                    algo,
                    len: algo.hex_len(),
                });
            }
            if pieces.iter().any(|(a, _)| *a == algo) {
                return Err(DigestError::Duplicate {
                    input: input.into(),
                    algo,
                });
            }
            pieces.push((algo, hex));
        }
        Ok(Self { pieces })
    }

    /// The strongest piece, which is the one a verifier checks.
    pub fn strongest(&self) -> (Algo, &str) {
        let (a, h) = self
            .pieces
            .iter()
            .max_by_key(|(a, _)| *a)
            .expect("parse never yields an empty digest");
        (*a, h)
    }

    /// `sha256:<hex>`, the form bosh-cli ≥ v5.5.0 writes.
    pub fn sha256(hex: &str) -> Self {
        Self {
            pieces: vec![(Algo::Sha256, hex.to_string())],
        }
    }
}

impl fmt::Display for MultiDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (algo, hex)) in self.pieces.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{algo}:{hex}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA1: &str = "ba1de0bb6a9253a6fb6d2753f1e6059763e54962";
    const SHA256: &str = "24c217a79477d2d6e8bd22850ac752592b0975ae0cff871d0e4a9e174a39f229";

    #[test]
    fn forms_and_strongest_piece() {
        let bare = MultiDigest::parse(SHA1).unwrap();
        assert_eq!(bare.strongest(), (Algo::Sha1, SHA1));
        let prefixed = MultiDigest::parse(&format!("sha1:{SHA1}")).unwrap();
        assert_eq!(bare, prefixed);
        let multi = MultiDigest::parse(&format!("{SHA1};sha256:{SHA256}")).unwrap();
        assert_eq!(multi.strongest(), (Algo::Sha256, SHA256));
        let sha512 = format!("sha512:{}", "ab".repeat(64));
        let multi = MultiDigest::parse(&format!("sha256:{SHA256};{sha512}")).unwrap();
        assert_eq!(multi.strongest().0, Algo::Sha512);
        assert_eq!(
            MultiDigest::sha256(SHA256).to_string(),
            format!("sha256:{SHA256}")
        );
    }

    #[test]
    fn bad_digests_are_named() {
        let dup = format!("sha256:{SHA256};sha256:{SHA256}");
        assert_eq!(
            MultiDigest::parse(&dup).unwrap_err().to_string(),
            format!("digest {dup:?}: sha256 appears twice")
        );
        let dup = format!("{SHA1};sha1:{SHA1}");
        assert!(matches!(
            MultiDigest::parse(&dup),
            Err(DigestError::Duplicate { .. })
        ));
        assert!(matches!(
            MultiDigest::parse("md5:abc"),
            Err(DigestError::UnknownAlgo { .. })
        ));
        assert!(matches!(
            MultiDigest::parse("sha256:abc"),
            Err(DigestError::BadHex { .. })
        ));
        assert!(MultiDigest::parse("").is_err());
    }
}
