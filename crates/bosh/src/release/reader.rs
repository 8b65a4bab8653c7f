//! Streams a release tarball once. Inner archives are hashed and walked on rayon threads
//! while the outer stream inflates ([`Digester`]), so neither the release nor an archive is
//! ever held in memory. With a spool directory the inner archives are also kept on disk for
//! a writer to copy.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::archive::{self, ArchiveError, Entry, EntryKind};

use super::ReleaseError;
use super::digest::{Algo, Digests, Hasher, MultiDigest};
use super::digester::{Digester, Feed, for_each_chunk};
use super::fingerprint::{Era, FileDigest, FileMode};
use super::manifest::Manifest;

const MAX_SMALL_FILE: u64 = 64 << 20;

/// One inner archive as read from the tarball.
#[derive(Debug)]
pub struct ArchiveInfo {
    /// Path in the outer tarball, e.g. `packages/hello.tgz`.
    pub path: String,
    pub size: u64,
    /// Digests of the compressed bytes.
    pub digests: Digests,
    /// The files inside (directories left out), or why they could not be read.
    pub files: Result<Vec<FileDigest>, String>,
    /// Where the bytes were kept, when reading with a spool directory.
    pub spooled: Option<PathBuf>,
}

/// A release tarball, read.
#[derive(Debug)]
pub struct ReleaseTarball {
    pub manifest: Manifest,
    pub manifest_bytes: Vec<u8>,
    /// By path in the tarball.
    pub archives: BTreeMap<String, ArchiveInfo>,
    /// Top-level `LICENSE*` / `NOTICE*` files.
    pub top_files: Vec<(String, Vec<u8>)>,
}

impl ReleaseTarball {
    /// Archive path in the tarball → the file holding its bytes; `None` unless the release was
    /// read with a spool directory.
    pub fn spooled(&self) -> Option<BTreeMap<String, PathBuf>> {
        self.archives
            .iter()
            .map(|(k, v)| Some((k.clone(), v.spooled.clone()?)))
            .collect()
    }
}

/// What an outer entry of a release tarball is, as bosh-cli lays a release out.
pub enum Role {
    Manifest,
    Archive,
    TopFile,
    Other,
}

pub fn role(name: &str) -> Role {
    let in_dir = |dir: &str| {
        name.strip_prefix(dir)
            .and_then(|n| n.strip_prefix('/'))
            .is_some_and(|n| !n.contains('/') && n.ends_with(".tgz"))
    };
    if name == "release.MF" {
        Role::Manifest
    } else if name == "license.tgz"
        || ["jobs", "packages", "compiled_packages"]
            .iter()
            .any(|d| in_dir(d))
    {
        Role::Archive
    } else if !name.contains('/') && (name.starts_with("LICENSE") || name.starts_with("NOTICE")) {
        Role::TopFile
    } else {
        Role::Other
    }
}

/// Reads only `release.MF`, stopping as soon as it is found.
pub fn read_manifest(path: &Path) -> Result<Manifest, ReleaseError> {
    let label = path.display().to_string();
    enum Stop {
        Found(Vec<u8>),
        Err(ReleaseError),
    }
    impl From<ArchiveError> for Stop {
        fn from(e: ArchiveError) -> Self {
            Stop::Err(e.into())
        }
    }
    let res = archive::walk_path(path, &label, |e: &mut Entry<'_>| {
        if e.name == "release.MF" {
            return Err(Stop::Found(read_small(e).map_err(Stop::Err)?));
        }
        Ok(())
    });
    match res {
        Err(Stop::Found(bytes)) => Ok(Manifest::parse(&bytes)?),
        Err(Stop::Err(e)) => Err(e),
        Ok(()) => Err(ReleaseError::MissingManifest { tarball: label }),
    }
}

/// Reads the whole tarball. With `spool`, inner archives are kept as files below it.
///
/// Inner archives are digested on rayon's global pool while this thread inflates the outer
/// stream ([`Digester`]), so call it from outside that pool (not from inside `par_iter`).
pub fn read(path: &Path, spool: Option<&Path>) -> Result<ReleaseTarball, ReleaseError> {
    let label = path.display().to_string();
    let mut digester = Digester::new();
    let mut manifest: Option<(Manifest, Vec<u8>)> = None;
    let mut top_files = Vec::new();

    let walked = archive::walk_path(
        path,
        &label,
        |e: &mut Entry<'_>| -> Result<(), ReleaseError> {
            if e.kind != EntryKind::File {
                return Ok(());
            }
            match role(&e.name) {
                Role::Manifest => {
                    let bytes = read_small(e)?;
                    manifest = Some((Manifest::parse(&bytes)?, bytes));
                }
                Role::TopFile => top_files.push((e.name.clone(), read_small(e)?)),
                Role::Other => {}
                Role::Archive => {
                    let algos = algos_for(manifest.as_ref().map(|m| &m.0), &e.name);
                    let spooled = spool.map(|d| d.join(&e.name));
                    let feed = digester.start(&e.name, e.size, algos, spooled.clone());
                    feed_spooled(e, &feed, spooled.as_deref())?;
                }
            }
            Ok(())
        },
    );
    let archives = digester.finish();
    walked?;
    let (manifest, manifest_bytes) =
        manifest.ok_or(ReleaseError::MissingManifest { tarball: label })?;
    Ok(ReleaseTarball {
        manifest,
        manifest_bytes,
        archives,
        top_files,
    })
}

/// Copies one entry into the worker's feed (and the spool file).
fn feed_spooled(e: &mut Entry<'_>, feed: &Feed, spool: Option<&Path>) -> Result<(), ReleaseError> {
    let Some(path) = spool else {
        return for_each_chunk(e, |chunk| {
            feed.send(chunk);
            Ok::<(), ReleaseError>(())
        });
    };
    let io_err = |error| ReleaseError::Io {
        path: path.display().to_string(),
        error,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_err)?;
    }
    let mut file = File::create(path).map_err(io_err)?;
    for_each_chunk(e, |chunk| {
        file.write_all(&chunk).map_err(io_err)?;
        feed.send(chunk);
        Ok(())
    })
}

/// Which digests to compute for archive `path`: its own digest algorithm and the fingerprint
/// era's per-file algorithm (each with SHA-256) when the manifest is already known;
/// everything when it is not.
pub fn algos_for(manifest: Option<&Manifest>, path: &str) -> (Vec<Algo>, Vec<Algo>) {
    let Some(m) = manifest else {
        return (Algo::ALL.to_vec(), vec![Algo::Sha1, Algo::Sha256]);
    };
    let entry = super::entries(m).into_iter().find(|e| e.archive == path);
    let Some(entry) = entry else {
        return (vec![Algo::Sha256], vec![Algo::Sha256]);
    };
    let outer = MultiDigest::parse(entry.sha1)
        .map(|d| vec![d.strongest().0, Algo::Sha256])
        .unwrap_or_else(|_| vec![Algo::Sha256]);
    let files = match Era::of(entry.fingerprint) {
        Some(era) => vec![era.algo(), Algo::Sha256],
        None => vec![Algo::Sha256],
    };
    (dedup(outer), dedup(files))
}

fn dedup(mut v: Vec<Algo>) -> Vec<Algo> {
    v.sort();
    v.dedup();
    v
}

/// The per-file digests of an archive, as fingerprints need them.
pub fn summarize_files(
    label: &str,
    input: impl io::BufRead,
    algos: &[Algo],
) -> Result<Vec<FileDigest>, ArchiveError> {
    let mut files: Vec<FileDigest> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    archive::walk(input, label, |e: &mut Entry<'_>| {
        let (mode, digests) = match &e.kind {
            EntryKind::Dir => return Ok(()),
            EntryKind::File => {
                let d = Hasher::new(algos)
                    .read_all(&mut *e)
                    .map_err(|err| e.error(err))?;
                (FileMode::from_bits(e.mode), d)
            }
            EntryKind::Symlink(t) => {
                let d = Hasher::new(algos)
                    .read_all(t.as_bytes())
                    .expect("hashing memory cannot fail");
                (FileMode::Symlink, d)
            }
            EntryKind::Hardlink(t) => match by_name.get(t) {
                Some(&i) => (files[i].mode, files[i].digests.clone()),
                None => return Ok(()),
            },
        };
        by_name.insert(e.name.clone(), files.len());
        files.push(FileDigest {
            name: e.name.clone(),
            mode,
            digests,
        });
        Ok::<(), ArchiveError>(())
    })?;
    Ok(files)
}

/// A small entry's bytes (`release.MF`, a license file); refuses an entry over 64 MiB.
pub fn read_small(e: &mut Entry<'_>) -> Result<Vec<u8>, ReleaseError> {
    if e.size > MAX_SMALL_FILE {
        return Err(ReleaseError::TooLarge {
            entry: e.name.clone(),
            size: e.size,
        });
    }
    let mut bytes = Vec::with_capacity(e.size as usize);
    e.read_to_end(&mut bytes).map_err(|err| e.error(err))?;
    Ok(bytes)
}
