//! The one pass over the input release. Each entry goes straight to the output: an archive
//! no rule touches is copied as it is read while a worker digests it for verification; a
//! package a rule may change is read and planned as it passes, its rebuilt archive counted on
//! a thread of its own while the stream goes on, and written after the last input entry.
//! `release.MF` is left for the caller to write last, once every digest and fingerprint has
//! been checked.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, BufReader, Read, Write};
use std::mem;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};

use crate::archive::{self, ArchiveError, Entry, EntryKind, Mode, TarGzWriter};
use crate::blobs::Blobs;
use crate::recipe::release::{Action, CompiledRule};
use crate::release::digest::{Algo, Digests, HashingReader, MultiDigest};
use crate::release::fingerprint::{Era, FileDigest};
use crate::release::manifest::{Manifest, Package};
use crate::release::reader::summarize_files;
use crate::release::reader::{Role, role};
use crate::release::{self, ArchiveInfo};

use super::plan::{self, PackageChange, Progress};
use super::{RewriteError, collect, inner, io_err};

const CHUNK: usize = 256 << 10;
const CHUNKS_IN_FLIGHT: usize = 8;
const MAX_SMALL_FILE: u64 = 64 << 20;

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
    tgz: &mut TarGzWriter<W>,
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
    let mut verifier = Verifier::new();
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
                    let (outer, files) = algos_for(m, &e.name);
                    let Some(pkg) = candidates.get(&e.name) else {
                        verifier.copy(e, tgz, outer, files, out)?;
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
        let verified = verifier.finish();
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
    tgz: &mut TarGzWriter<W>,
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

/// Digests copied archives on rayon's pool while the main thread streams.
struct Verifier {
    done_tx: Sender<ArchiveInfo>,
    done_rx: Receiver<ArchiveInfo>,
    inflight: usize,
    max: usize,
    infos: BTreeMap<String, ArchiveInfo>,
}

impl Verifier {
    fn new() -> Self {
        let (done_tx, done_rx) = mpsc::channel();
        Self {
            done_tx,
            done_rx,
            inflight: 0,
            max: rayon::current_num_threads() + 1,
            infos: BTreeMap::new(),
        }
    }

    /// Copies archive `e` into the output as it is read, feeding a worker.
    fn copy<W: Write>(
        &mut self,
        e: &mut Entry<'_>,
        tgz: &mut TarGzWriter<W>,
        outer: Vec<Algo>,
        files: Vec<Algo>,
        out: &Path,
    ) -> Result<(), RewriteError> {
        while self.inflight >= self.max {
            let info = self.done_rx.recv().expect("workers hold a sender");
            self.infos.insert(info.path.clone(), info);
            self.inflight -= 1;
        }
        let (tx, rx) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
        let done = self.done_tx.clone();
        let (name, size) = (e.name.clone(), e.size);
        rayon::spawn(move || {
            let (digests, files) = summarize(&name, rx, &outer, &files);
            let _ = done.send(ArchiveInfo {
                path: name,
                size,
                digests,
                files,
                spooled: None,
            });
        });
        self.inflight += 1;
        let name = e.name.clone();
        let mut tee = Tee {
            inner: e,
            tx,
            buf: Vec::with_capacity(CHUNK),
            failed: None,
        };
        let added = tgz.add_reader(&name, Mode::Regular, size, &mut tee);
        if let Some(err) = tee.failed.take() {
            return Err(err.into());
        }
        added.map_err(io_err(out))?;
        tee.send_rest();
        Ok(())
    }

    fn finish(mut self) -> BTreeMap<String, ArchiveInfo> {
        drop(self.done_tx);
        for info in self.done_rx {
            self.infos.insert(info.path.clone(), info);
        }
        self.infos
    }
}

/// Reads an outer entry, collecting what it reads into chunks for a worker.
struct Tee<'a, 'e> {
    inner: &'a mut Entry<'e>,
    tx: SyncSender<Vec<u8>>,
    buf: Vec<u8>,
    failed: Option<ArchiveError>,
}

impl Tee<'_, '_> {
    fn send_rest(&mut self) {
        if !self.buf.is_empty() {
            // A worker that gave up has already recorded why; keep streaming.
            let _ = self.tx.send(mem::take(&mut self.buf));
        }
    }
}

impl Read for Tee<'_, '_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(out) {
            Ok(n) => n,
            Err(e) => {
                let kind = e.kind();
                self.failed = Some(self.inner.error(e));
                return Err(io::Error::new(kind, "reading the release"));
            }
        };
        self.buf.extend_from_slice(&out[..n]);
        if self.buf.len() >= CHUNK {
            let full = mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
            let _ = self.tx.send(full);
        }
        Ok(n)
    }
}

struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(b) => (self.buf, self.pos) = (b, 0),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Hashes an inner archive's bytes and digests its files; always reads to the end.
fn summarize(
    name: &str,
    rx: Receiver<Vec<u8>>,
    outer: &[Algo],
    file_algos: &[Algo],
) -> (Digests, Result<Vec<FileDigest>, String>) {
    let channel = ChannelReader {
        rx,
        buf: Vec::new(),
        pos: 0,
    };
    let mut buffered = BufReader::with_capacity(CHUNK, HashingReader::new(channel, outer));
    let files = summarize_files(name, &mut buffered, file_algos).map_err(|e| e.to_string());
    let _ = io::copy(&mut buffered, &mut io::sink());
    (buffered.into_inner().hasher.finish(), files)
}

/// The archive's own digest algorithm and its fingerprint era's per-file one (plus sha256).
fn algos_for(m: &Manifest, path: &str) -> (Vec<Algo>, Vec<Algo>) {
    let entry = release::entries(m).into_iter().find(|e| e.archive == path);
    let Some(entry) = entry else {
        return (vec![Algo::Sha256], vec![Algo::Sha256]);
    };
    let mut outer = MultiDigest::parse(entry.sha1)
        .map(|d| vec![d.strongest().0, Algo::Sha256])
        .unwrap_or_else(|_| vec![Algo::Sha256]);
    let mut files = match Era::of(entry.fingerprint) {
        Some(era) => vec![era.algo(), Algo::Sha256],
        None => vec![Algo::Sha256],
    };
    for v in [&mut outer, &mut files] {
        v.sort();
        v.dedup();
    }
    (outer, files)
}

fn read_small(e: &mut Entry<'_>) -> Result<Vec<u8>, RewriteError> {
    if e.size > MAX_SMALL_FILE {
        return Err(release::ReleaseError::TooLarge {
            entry: e.name.clone(),
            size: e.size,
        }
        .into());
    }
    let mut bytes = Vec::with_capacity(e.size as usize);
    e.read_to_end(&mut bytes).map_err(|err| e.error(err))?;
    Ok(bytes)
}
