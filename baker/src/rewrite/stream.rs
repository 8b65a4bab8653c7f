//! The one pass over the input release. Each entry goes straight to the output: an archive
//! no rule touches is copied as it is read while a worker digests it for verification; a
//! package a rule may change is read and planned as it passes, its rebuilt archive counted on
//! a thread of its own while the stream goes on, and written after the last input entry.
//! `release.MF` is left for the caller to write last, once every digest and fingerprint has
//! been checked.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Write};
use std::path::Path;

use crate::archive::{self, Entry, EntryKind, Mode, TarWriter};
use crate::blobs::Blobs;
use crate::recipe::release::{Action, CompiledRule};
use crate::release::ArchiveInfo;
use crate::release::digest::Algo;
use crate::release::digester::{Digester, for_each_chunk};
use crate::release::fingerprint::Era;
use crate::release::manifest::{Manifest, Package};
use crate::release::reader::{Role, algos_for, read_small, role};

use super::plan::{self, PackageChange, Progress};
use super::{RewriteError, collect, inner, io_err};

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
pub(super) fn run<W: Write>(
    input: &Path,
    m: &Manifest,
    rules: &[CompiledRule],
    blobs: &dyn Blobs,
    scratch: &Path,
    tgz: &mut TarWriter<W>,
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
    let mut progress = Progress {
        resolved: HashMap::new(),
        hits: vec![0; rules.len()],
    };
    let mut done = Streamed {
        archives: BTreeMap::new(),
        top_files: Vec::new(),
        rebuilt: BTreeMap::new(),
        copied: 0,
        hits: Vec::new(),
    };
    let write_err = io_err(out);
    // A rebuilt package's counting pass runs on its own thread while the stream goes on; the
    // package itself is written after the last input entry.
    std::thread::scope(|s| {
        let mut pending = Vec::new();
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
                    let (outer, files) = algos_for(Some(m), &e.name);
                    let Some(pkg) = candidates.get(&e.name) else {
                        copy(e, &mut digester, (outer, files), tgz, out)?;
                        done.copied += 1;
                        return Ok(());
                    };
                    let c = collect::collect(e, &pkg.name, rules, (&outer, &files), scratch)?;
                    match plan::plan(pkg, &c, rules, blobs, &mut progress)? {
                        None => {
                            let original = c.original.as_deref().expect("an unchanged package");
                            tgz.add_path_as(&e.name, original, Mode::Regular)
                                .map_err(&write_err)?;
                            done.copied += 1;
                        }
                        Some(p) => {
                            let name = e.name.clone();
                            let counting = s.spawn(move || count(p, c, &name));
                            pending.push((e.name.clone(), (*pkg).clone(), counting));
                            return Ok(());
                        }
                    }
                    done.archives.insert(e.name.clone(), c.info);
                }
            }
            Ok::<(), RewriteError>(())
        });
        let verified = digester.finish();
        walked?;
        done.archives.extend(verified);
        for (name, mut pkg, counting) in pending {
            let counted = counting.join().expect("the counting pass does not panic")?;
            let built = write(&counted, &name, tgz, out)?;
            let Counted {
                plan: p,
                collected,
                era,
                ..
            } = counted;
            let change = plan::finish(p, &mut pkg, era, &built)?;
            done.rebuilt.insert(pkg.name.clone(), (pkg, change));
            done.archives.insert(name, collected.info);
        }
        Ok::<(), RewriteError>(())
    })?;
    done.hits = progress.hits;
    Ok(done)
}

/// A rebuilt package after its counting pass.
struct Counted {
    plan: plan::Plan,
    collected: collect::Collected,
    era: Era,
    algos: Vec<Algo>,
    first: inner::Written,
}

/// The counting pass: the rebuilt archive written into a sink, for its size and digests.
fn count(p: plan::Plan, c: collect::Collected, name: &str) -> Result<Counted, RewriteError> {
    let (era, algos) = plan::algos_for_fingerprint(&p);
    let refs = plan::sources(&p, &c, name)?;
    let first =
        inner::write_inner(io::sink(), &refs, &algos).map_err(|error| RewriteError::Io {
            path: name.to_string(),
            error,
        })?;
    drop(refs);
    Ok(Counted {
        plan: p,
        collected: c,
        era,
        algos,
        first,
    })
}

/// Writes a counted package into the output, through a pipe into its tar entry, and checks
/// that the same bytes came out.
fn write<W: Write>(
    k: &Counted,
    name: &str,
    tgz: &mut TarWriter<W>,
    out: &Path,
) -> Result<inner::Written, RewriteError> {
    let in_err = |error| RewriteError::Io {
        path: name.to_string(),
        error,
    };
    let refs = plan::sources(&k.plan, &k.collected, name)?;
    let second = std::thread::scope(|s| {
        let (r, w) = io::pipe().map_err(in_err)?;
        let writer = s.spawn(|| inner::write_inner(w, &refs, &k.algos));
        let added = tgz.add_reader(name, Mode::Regular, k.first.size, r);
        let second = writer.join().expect("the package writer does not panic");
        added.map_err(io_err(out))?;
        second.map_err(in_err)
    })?;
    if second.digests.get(Algo::Sha256) != k.first.digests.get(Algo::Sha256) {
        return Err(in_err(io::Error::other(
            "the rebuilt package came out different the second time",
        )));
    }
    Ok(second)
}

/// Copies archive `e` into the output as it is read, a worker digesting the same chunks.
fn copy<W: Write>(
    e: &mut Entry<'_>,
    digester: &mut Digester,
    algos: (Vec<Algo>, Vec<Algo>),
    tgz: &mut TarWriter<W>,
    out: &Path,
) -> Result<(), RewriteError> {
    let feed = digester.start(&e.name, e.size, algos, None);
    let name = e.name.clone();
    let mut data = tgz
        .start_file(&name, Mode::Regular, e.size)
        .map_err(io_err(out))?;
    for_each_chunk(e, |chunk| {
        data.write_all(&chunk).map_err(io_err(out))?;
        feed.send(chunk);
        Ok::<(), RewriteError>(())
    })?;
    data.finish().map_err(io_err(out))
}
