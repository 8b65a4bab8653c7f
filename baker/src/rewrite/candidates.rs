//! Packages a rule may change, collected off the thread that inflates the stream: each is
//! read on a thread of its own from the chunks the stream hands it, then planned; a package
//! that changes is counted on a thread of its own while the stream goes on.

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::Path;
use std::thread::{Scope, ScopedJoinHandle};

use crate::archive::{Entry, FileData, Mode, TarWriter};
use crate::blobs::Blobs;
use crate::recipe::release::{Action, CompiledRule};
use crate::release::digest::{Algo, Hasher};
use crate::release::digester::{chunk_channel, for_each_chunk};
use crate::release::fingerprint::Era;
use crate::release::manifest::Package;
use pifoundry_util::background::BackgroundWriter;

use super::collect::{self, Collected};
use super::plan::{self, Progress};
use super::{RewriteError, inner, io_err};

type Outcome<T> = Result<T, RewriteError>;

pub(super) struct Candidates<'scope, 'env> {
    scope: &'scope Scope<'scope, 'env>,
    rules: &'env [CompiledRule],
    blobs: &'env (dyn Blobs + Sync),
    scratch: &'env Path,
    progress: Progress,
    changed: Vec<Changed<'scope, 'env>>,
}

/// A package that changes, being counted.
pub(super) struct Changed<'scope, 'env> {
    pub pkg: &'env Package,
    pub counting: ScopedJoinHandle<'scope, Outcome<Counted>>,
}

impl<'scope, 'env> Candidates<'scope, 'env> {
    pub fn new(
        scope: &'scope Scope<'scope, 'env>,
        rules: &'env [CompiledRule],
        blobs: &'env (dyn Blobs + Sync),
        scratch: &'env Path,
    ) -> Self {
        Self {
            scope,
            rules,
            blobs,
            scratch,
            progress: Progress {
                resolved: Default::default(),
                hits: vec![0; rules.len()],
            },
            changed: Vec::new(),
        }
    }

    /// Reads entry `e`, package `pkg`'s archive, and plans it. The collecting thread keeps
    /// up with the stream, so little is left to wait for once the last chunk is handed
    /// over. An unchanged package is returned, for the caller to copy in place.
    pub fn collect(
        &mut self,
        e: &mut Entry<'_>,
        pkg: &'env Package,
        algos: (Vec<Algo>, Vec<Algo>),
    ) -> Outcome<Option<Collected>> {
        let (feed, chunks) = chunk_channel(&[]);
        let archive = (e.name.clone(), e.size);
        let (scope, rules, blobs, scratch) = (self.scope, self.rules, self.blobs, self.scratch);
        let mut wanted: HashSet<String> = self.progress.resolved.keys().cloned().collect();
        let collecting = self.scope.spawn(move || {
            let algos = (&algos.0[..], &algos.1[..]);
            // A blob that a file of the package is to be swapped for is fetched (or hashed)
            // beside the stream, not after it.
            let mut fetching = Vec::new();
            let seen = |file: &str| {
                for key in swapped_for(rules, &pkg.name, file) {
                    if wanted.insert(key.to_string()) {
                        let key = key.to_string();
                        fetching.push(scope.spawn(move || (blobs.get(&key), key)));
                    }
                }
            };
            let c = collect::collect(chunks, archive, &pkg.name, rules, algos, scratch, seen);
            (c, fetching)
        });
        for_each_chunk(e, |chunk| {
            feed.send(chunk);
            Ok::<(), RewriteError>(())
        })?;
        drop(feed);
        let (c, fetching) = collecting.join().expect("collecting does not panic");
        for f in fetching {
            // A blob that cannot be had is asked for again by the plan, which says why in
            // recipe order.
            if let (Ok(blob), key) = f.join().expect("fetching does not panic") {
                self.progress.resolved.insert(key, blob);
            }
        }
        let c = c?;
        let Some(p) = plan::plan(pkg, &c, self.rules, self.blobs, &mut self.progress)? else {
            return Ok(Some(c));
        };
        let counting = self.scope.spawn(move || count(p, c));
        self.changed.push(Changed { pkg, counting });
        Ok(None)
    }

    /// The packages that change, in stream order, and what the rules did.
    pub fn finish(self) -> (Vec<Changed<'scope, 'env>>, Progress) {
        (self.changed, self.progress)
    }
}

/// The blobs that `replace` rules for package `pkg` swap `file` for.
fn swapped_for<'r>(
    rules: &'r [CompiledRule],
    pkg: &str,
    file: &str,
) -> impl Iterator<Item = &'r str> {
    rules.iter().filter_map(move |r| match &r.action {
        Action::Replace(swap)
            if r.packages.is_match(pkg) && r.files.as_ref().is_some_and(|g| g.is_match(file)) =>
        {
            Some(swap.blob.as_str())
        }
        _ => None,
    })
}

/// A rebuilt package after its counting pass.
pub(super) struct Counted {
    pub plan: plan::Plan,
    pub collected: Collected,
    pub era: Era,
    /// Its size and digests, and its files'.
    pub first: inner::Written,
}

/// The counting pass: the rebuilt archive written into a sink, for its size and digests.
fn count(p: plan::Plan, c: Collected) -> Outcome<Counted> {
    let name = &c.info.path;
    let (era, algos) = plan::algos_for_fingerprint(&p);
    let refs = plan::sources(&p, &c, name)?;
    let first = inner::write_inner(io::sink(), &refs, (&algos, &algos)).map_err(|error| {
        RewriteError::Io {
            path: name.to_string(),
            error,
        }
    })?;
    drop(refs);
    Ok(Counted {
        plan: p,
        collected: c,
        era,
        first,
    })
}

/// Writes a counted package into its tar entry in the output, and checks that the same
/// bytes came out (the files were digested by the counting pass).
pub(super) fn write<W: Write>(k: &Counted, tgz: &mut TarWriter<W>, out: &Path) -> Outcome<()> {
    let name = &k.collected.info.path;
    let in_err = |error| RewriteError::Io {
        path: name.to_string(),
        error,
    };
    let refs = plan::sources(&k.plan, &k.collected, name)?;
    let data = tgz
        .start_file(name, Mode::Regular, k.first.size)
        .map_err(io_err(out))?;
    let mut entry = Output {
        data,
        digest: BackgroundWriter::new(Hasher::new(&[Algo::Sha256]), 1 << 20),
        failed: None,
    };
    let second = inner::write_inner(&mut entry, &refs, (&[], &[]));
    if let Some(error) = entry.failed.take() {
        return Err(io_err(out)(error));
    }
    second.map_err(in_err)?;
    entry.data.finish().map_err(io_err(out))?;
    let digest = entry.digest.finish().map_err(in_err)?.finish();
    if digest.get(Algo::Sha256) != k.first.digests.get(Algo::Sha256) {
        return Err(in_err(io::Error::other(
            "the rebuilt package came out different the second time",
        )));
    }
    Ok(())
}

/// The rebuilt package's tar entry, digested on a thread of its own (this is the one part
/// of a rewrite that runs after the stream, with nothing beside it), and keeping an error
/// of the output apart from those of the package's sources (both reach `write_inner`'s
/// caller as I/O errors).
struct Output<'a, W: Write> {
    data: FileData<'a, W>,
    digest: BackgroundWriter<Hasher>,
    failed: Option<io::Error>,
}

impl<W: Write> Output<'_, W> {
    fn failed(&mut self, e: io::Error) -> io::Error {
        let kind = e.kind();
        self.failed = Some(e);
        io::Error::new(kind, "writing the output")
    }
}

impl<W: Write> Write for Output<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.data.write(buf).map_err(|e| self.failed(e))?;
        self.digest.write_all(&buf[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.data.flush().map_err(|e| self.failed(e))
    }
}
