//! Hashing bytes as they stream past: one [`Hasher`] computes any set of SHA-1 / SHA-256 /
//! SHA-512 at once, [`HashingReader`] and [`HashingWriter`] feed it from a stream without a
//! second pass, and [`hash_file`] is the SHA-256 and length of a file.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha1::Sha1;
use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{PathError, at};

/// A hash algorithm, ordered by strength.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Algo {
    Sha1,
    Sha256,
    Sha512,
}

impl Algo {
    pub const ALL: [Algo; 3] = [Algo::Sha1, Algo::Sha256, Algo::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            Algo::Sha1 => "sha1",
            Algo::Sha256 => "sha256",
            Algo::Sha512 => "sha512",
        }
    }

    pub fn hex_len(self) -> usize {
        match self {
            Algo::Sha1 => 40,
            Algo::Sha256 => 64,
            Algo::Sha512 => 128,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Algo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Hex digests of one byte stream, for the algorithms that were asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digests([Option<String>; 3]);

impl Digests {
    pub fn get(&self, algo: Algo) -> Option<&str> {
        self.0[algo.index()].as_deref()
    }
}

/// Hashes one stream with a chosen set of algorithms at once.
#[derive(Clone, Default)]
pub struct Hasher {
    sha1: Option<Sha1>,
    sha256: Option<Sha256>,
    sha512: Option<Sha512>,
}

impl Hasher {
    pub fn new(algos: &[Algo]) -> Self {
        let mut h = Self::default();
        for a in algos {
            match a {
                Algo::Sha1 => h.sha1 = Some(Sha1::new()),
                Algo::Sha256 => h.sha256 = Some(Sha256::new()),
                Algo::Sha512 => h.sha512 = Some(Sha512::new()),
            }
        }
        h
    }

    pub fn update(&mut self, data: &[u8]) {
        if let Some(h) = &mut self.sha1 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha256 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha512 {
            h.update(data);
        }
    }

    pub fn finish(self) -> Digests {
        Digests([
            self.sha1.map(|h| hex::encode(h.finalize())),
            self.sha256.map(|h| hex::encode(h.finalize())),
            self.sha512.map(|h| hex::encode(h.finalize())),
        ])
    }

    /// The lowercase hex digest of `algo`, which must be one of those asked for.
    pub fn hex(self, algo: Algo) -> String {
        self.finish()
            .get(algo)
            .expect("the hasher computes the algorithms it was asked for")
            .to_string()
    }

    /// Hashes everything `r` yields.
    pub fn read_all(mut self, mut r: impl Read) -> io::Result<Digests> {
        io::copy(&mut r, &mut self)?;
        Ok(self.finish())
    }
}

impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that hashes and counts what passes through it.
pub struct HashingReader<R> {
    pub inner: R,
    pub hasher: Hasher,
    pub count: u64,
}

impl<R> HashingReader<R> {
    pub fn new(inner: R, algos: &[Algo]) -> Self {
        Self {
            inner,
            hasher: Hasher::new(algos),
            count: 0,
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W> {
    pub inner: W,
    pub hasher: Hasher,
    pub count: u64,
}

impl<W> HashingWriter<W> {
    pub fn new(inner: W, algos: &[Algo]) -> Self {
        Self {
            inner,
            hasher: Hasher::new(algos),
            count: 0,
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A file's lowercase hex SHA-256 and its length.
pub fn hash_file(path: &Path) -> Result<(String, u64), PathError> {
    let f = File::open(path).map_err(at(path))?;
    let mut r = HashingReader::new(io::BufReader::with_capacity(1 << 20, f), &[Algo::Sha256]);
    io::copy(&mut r, &mut io::sink()).map_err(at(path))?;
    Ok((r.hasher.hex(Algo::Sha256), r.count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hasher_computes_requested_algorithms_only() {
        let d = Hasher::new(&[Algo::Sha256]).read_all(&b"abc"[..]).unwrap();
        assert_eq!(
            d.get(Algo::Sha256),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(d.get(Algo::Sha1), None);
    }

    #[test]
    fn hash_file_gives_sha256_and_length() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let (sha, len) = hash_file(&p).unwrap();
        assert_eq!(len, 3);
        assert!(sha.starts_with("ba7816bf"));
        let e = hash_file(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
