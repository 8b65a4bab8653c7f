//! `baker inspect-stemcell`: read a stemcell tarball back, check its manifest against its
//! `image` (SHA-1, a tgz whose first entry is `root.img`) without unpacking it to disk.

use std::io::{self, BufReader, Read};
use std::path::Path;

use pifoundry_util::BadInput;
use pifoundry_util::hash::{Algo, HashingReader};
use serde::Serialize;

use super::{Manifest, StemcellError};
use crate::archive::{self, ArchiveError};

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
    let invalid = |message: String| StemcellError::Invalid(BadInput::new(path, message));
    let label = path.display().to_string();
    let mut entries = Vec::new();
    let mut manifest = None;
    let mut image = None;
    let mut packages = 0;
    archive::walk_path(path, &label, |e: &mut archive::Entry<'_>| {
        if e.name.is_empty() {
            return Ok(());
        }
        match e.name.as_str() {
            "stemcell.MF" => {
                let mut text = String::new();
                e.read_to_string(&mut text).map_err(|err| e.error(err))?;
                let m =
                    Manifest::parse(&text).map_err(|err| invalid(format!("stemcell.MF: {err}")))?;
                manifest = Some(m);
            }
            "packages.txt" => {
                let mut text = String::new();
                e.read_to_string(&mut text).map_err(|err| e.error(err))?;
                packages = text.lines().filter(|l| !l.trim().is_empty()).count();
            }
            "image" => image = Some(read_image(e, &format!("{label}!/image"))?),
            _ => {}
        }
        entries.push(Entry {
            name: e.name.clone(),
            size: e.size,
        });
        Ok::<(), StemcellError>(())
    })?;
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

/// Hashes the whole `image` entry and reads its first inner tar header, without inflating
/// the rest of the disk image.
fn read_image(
    e: &mut archive::Entry<'_>,
    label: &str,
) -> Result<(String, Option<Entry>), StemcellError> {
    let mut hashed = BufReader::new(HashingReader::new(&mut *e, &[Algo::Sha1]));
    let mut first = None;
    let res = archive::walk(&mut hashed, label, |inner: &mut archive::Entry<'_>| {
        first = Some(Entry {
            name: inner.name.clone(),
            size: inner.size,
        });
        Err(Stop::Found)
    });
    if let Err(Stop::Broken) = res {
        // not a tgz holding the disk image: reported as no content, the hash still counts
        first = None;
    }
    // what the buffer holds is hashed already; the rest is hashed as it is skipped
    let mut rest = hashed.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|error| ArchiveError::Io {
        archive: label.to_string(),
        error,
    })?;
    Ok((rest.hasher.hex(Algo::Sha1), first))
}

enum Stop {
    Found,
    Broken,
}

impl From<ArchiveError> for Stop {
    fn from(_: ArchiveError) -> Self {
        Stop::Broken
    }
}
