//! `baker inspect-stemcell`: read a stemcell tarball back, check its manifest against its
//! `image` (SHA-1, a tgz whose first entry is `root.img`) without unpacking it to disk.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use flate2::read::GzDecoder;
use serde::Serialize;
use sha1::{Digest, Sha1};

use super::{Manifest, StemcellError};

#[derive(Debug, Serialize)]
pub struct Entry {
    pub name: String,
    pub size: u64,
}

#[derive(Debug, Serialize)]
pub struct Inspection {
    pub manifest: Manifest,
    pub entries: Vec<Entry>,
    /// SHA-1 of the `image` entry as found.
    pub image_sha1: String,
    pub sha1_matches: bool,
    /// Name and size of the first entry inside `image`.
    pub image_content: Option<Entry>,
    pub packages: usize,
}

pub fn inspect(path: &Path) -> Result<Inspection, StemcellError> {
    let invalid = |message: String| StemcellError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let io = |source| StemcellError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = File::open(path).map_err(io)?;
    let mut ar = tar::Archive::new(GzDecoder::new(BufReader::with_capacity(1 << 20, f)));
    let mut entries = Vec::new();
    let mut manifest = None;
    let mut image = None;
    let mut packages = 0;
    for e in ar.entries().map_err(io)? {
        let mut e = e.map_err(io)?;
        let name = e.path().map_err(io)?.to_string_lossy().into_owned();
        let size = e.header().size().map_err(io)?;
        match name.trim_start_matches("./") {
            "stemcell.MF" => {
                let mut text = String::new();
                e.read_to_string(&mut text).map_err(io)?;
                let m =
                    Manifest::parse(&text).map_err(|err| invalid(format!("stemcell.MF: {err}")))?;
                manifest = Some(m);
            }
            "packages.txt" => {
                let mut text = String::new();
                e.read_to_string(&mut text).map_err(io)?;
                packages = text.lines().filter(|l| !l.trim().is_empty()).count();
            }
            "image" => image = Some(read_image(&mut e).map_err(io)?),
            _ => {}
        }
        entries.push(Entry { name, size });
    }
    let manifest = manifest.ok_or_else(|| invalid("no stemcell.MF entry".into()))?;
    let (image_sha1, image_content) = image.ok_or_else(|| invalid("no image entry".into()))?;
    Ok(Inspection {
        sha1_matches: manifest.sha1 == image_sha1,
        manifest,
        entries,
        image_sha1,
        image_content,
        packages,
    })
}

/// Hashes the whole `image` entry and peeks at its first inner tar header.
fn read_image(r: &mut dyn Read) -> io::Result<(String, Option<Entry>)> {
    let tee = Tee {
        inner: r,
        hash: Sha1::new(),
    };
    let mut inner = tar::Archive::new(GzDecoder::new(tee));
    let first = match inner.entries()?.next() {
        Some(Ok(e)) => Some(Entry {
            name: e.path()?.to_string_lossy().into_owned(),
            size: e.header().size()?,
        }),
        _ => None,
    };
    let mut tee = inner.into_inner().into_inner();
    io::copy(&mut tee, &mut io::sink())?;
    Ok((hex::encode(tee.hash.finalize()), first))
}

struct Tee<'a> {
    inner: &'a mut dyn Read,
    hash: Sha1,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}
