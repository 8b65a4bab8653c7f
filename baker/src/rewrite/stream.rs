//! The one pass over the input release. Each entry goes straight to the output: an archive
//! no rule touches is copied as it is read while a worker digests it for verification; a
//! package a rule may change is read by [`Candidates`] as it passes and, if unchanged,
//! copied in place; a rebuilt one is written after the last input entry. `release.MF` is
//! left for the caller to write last, once every digest and fingerprint has been checked.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;

use crate::archive::{self, Entry, EntryKind, Mode, TarWriter};
use crate::blobs::Blobs;
use crate::recipe::release::{Action, CompiledRule};
use crate::release::ArchiveInfo;
use crate::release::digest::Algo;
use crate::release::digester::{Chunk, Digester, for_each_chunk};
use crate::release::manifest::{Manifest, Package};
use crate::release::reader::{Role, algos_for, read_small, role};
use pifoundry_util::background::BackgroundWriter;

use super::candidates::{self, Candidates, Changed, Counted};
use super::plan::{self, PackageChange};
use super::{RewriteError, io_err};

/// What the pass saw and did.
pub(super) struct Streamed {
    /// Every archive's digests and files, as [`release::verify`] needs them.
    pub archives: BTreeMap<String, ArchiveInfo>,
    pub top_files: Vec<(String, Vec<u8>)>,
    /// Rebuilt packages, new manifest entries.
    pub rebuilt: BTreeMap<String, (Package, PackageChange)>,
    pub copied: usize,
    /// Changes per rule, in recipe order.
    pub hits: Vec<usize>,
}

/// Streams `input` into `tgz`, all but `release.MF`.
pub(super) fn run<W: Write + Send + 'static>(
    input: &Path,
    m: &Manifest,
    rules: &[CompiledRule],
    blobs: &(dyn Blobs + Sync),
    scratch: &Path,
    tgz: &mut TarWriter<BackgroundWriter<W>>,
    out: &Path,
) -> Result<Streamed, RewriteError> {
    let label = input.display().to_string();
    let candidates: HashMap<String, &Package> = m
        .packages
        .iter()
        .filter(|p| {
            rules.iter().any(|r| {
                !matches!(r.action, Action::Unsupported(_)) && r.packages.is_match(&p.name)
            })
        })
        .map(|p| (format!("packages/{}.tgz", p.name), p))
        .collect();
    let mut digester = Digester::new();
    let mut dirs: HashSet<String> = HashSet::new();
    let mut done = Streamed {
        archives: BTreeMap::new(),
        top_files: Vec::new(),
        rebuilt: BTreeMap::new(),
        copied: 0,
        hits: Vec::new(),
    };
    let write_err = io_err(out);
    std::thread::scope(|s| {
        let mut pending = Candidates::new(s, rules, blobs, scratch);
        let walked = archive::walk_path(input, &label, |e: &mut Entry<'_>| {
            if e.kind == EntryKind::Dir {
                if ["jobs", "packages", "compiled_packages"].contains(&e.name.as_str())
                    && dirs.insert(e.name.clone())
                {
                    tgz.add_dir(&e.name).map_err(&write_err)?;
                }
                return Ok(());
            }
            if e.kind != EntryKind::File {
                return Ok(());
            }
            match role(&e.name) {
                Role::Manifest | Role::Other => {}
                Role::TopFile => {
                    let bytes = read_small(e)?;
                    tgz.add_bytes(&e.name, Mode::Regular, &bytes)
                        .map_err(&write_err)?;
                    done.top_files.push((e.name.clone(), bytes));
                }
                Role::Archive => {
                    if let Some((dir, _)) = e.name.split_once('/')
                        && dirs.insert(dir.to_string())
                    {
                        tgz.add_dir(dir).map_err(&write_err)?;
                    }
                    let algos = algos_for(Some(m), &e.name);
                    let Some(pkg) = candidates.get(&e.name) else {
                        copy(e, &mut digester, algos, tgz, out)?;
                        done.copied += 1;
                        return Ok(());
                    };
                    if let Some(c) = pending.collect(e, pkg, algos)? {
                        let original = c.original.as_deref().expect("an unchanged package");
                        tgz.add_path_as(&e.name, original, Mode::Regular)
                            .map_err(&write_err)?;
                        done.copied += 1;
                        done.archives.insert(e.name.clone(), c.info);
                    }
                }
            }
            Ok::<(), RewriteError>(())
        });
        let verified = digester.finish();
        walked?;
        done.archives.extend(verified);
        let (changed, progress) = pending.finish();
        done.hits = progress.hits;
        for Changed { pkg, counting } in changed {
            let counted = counting.join().expect("the counting pass does not panic")?;
            candidates::write(&counted, tgz, out)?;
            let Counted {
                plan: p,
                collected,
                era,
                first,
            } = counted;
            let mut pkg = pkg.clone();
            let change = plan::finish(p, &mut pkg, era, &first)?;
            done.rebuilt.insert(pkg.name.clone(), (pkg, change));
            done.archives
                .insert(collected.info.path.clone(), collected.info);
        }
        Ok::<(), RewriteError>(())
    })?;
    Ok(done)
}

/// Copies archive `e` into the output as it is read, a worker digesting the same chunks.
fn copy<W: Write + Send + 'static>(
    e: &mut Entry<'_>,
    digester: &mut Digester,
    algos: (Vec<Algo>, Vec<Algo>),
    tgz: &mut TarWriter<BackgroundWriter<W>>,
    out: &Path,
) -> Result<(), RewriteError> {
    let feed = digester.start(&e.name, e.size, algos, None);
    let name = e.name.clone();
    let mut data = tgz
        .start_file(&name, Mode::Regular, e.size)
        .map_err(io_err(out))?;
    for_each_chunk(e, |chunk| {
        let chunk = Chunk::new(chunk);
        data.write_with(chunk.len(), |w| w.write_shared(chunk.clone()))
            .map_err(io_err(out))?;
        feed.send(chunk);
        Ok::<(), RewriteError>(())
    })?;
    data.finish().map_err(io_err(out))
}
