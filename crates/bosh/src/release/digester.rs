//! Digests inner archives on rayon's pool while one thread inflates the outer tarball. An
//! archive's bytes reach its worker as chunks through a bounded channel, so neither the
//! release nor an archive is ever held in memory, and at most one archive more than the pool
//! has threads is in flight.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};

use crate::archive::{ArchiveError, Entry};

use super::digest::{Algo, Digests, Hasher};
use super::reader::{ArchiveInfo, summarize_files};

/// Bytes per chunk: large reads keep inflate's per-call work (window copies) small.
pub const CHUNK: usize = 256 << 10;
const CHUNKS_IN_FLIGHT: usize = 8;

/// Digests of every archive started, collected as workers finish.
pub struct Digester {
    done_tx: Sender<ArchiveInfo>,
    done_rx: Receiver<ArchiveInfo>,
    inflight: usize,
    max: usize,
    infos: BTreeMap<String, ArchiveInfo>,
}

/// Bytes of an archive, shared with whatever else needs them (a writer of the output)
/// rather than copied.
pub type Chunk = Arc<Vec<u8>>;

/// Where one archive's bytes go, in order; dropping it ends the archive.
pub struct Feed(SyncSender<Chunk>);

/// A bounded channel of chunks, for a thread that reads an archive while another streams
/// it: [`Feed::send`] at one end, [`Chunks`] (read in place, digested with `algos` as the
/// chunks arrive) at the other.
pub fn chunk_channel(algos: &[Algo]) -> (Feed, Chunks) {
    let (tx, rx) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
    let chunks = Chunks {
        rx,
        buf: Chunk::default(),
        pos: 0,
        hasher: Hasher::new(algos),
    };
    (Feed(tx), chunks)
}

impl Feed {
    pub fn send(&self, chunk: impl Into<Chunk>) {
        // A worker that gave up has already recorded why; the caller keeps streaming.
        let _ = self.0.send(chunk.into());
    }
}

impl Default for Digester {
    fn default() -> Self {
        Self::new()
    }
}

impl Digester {
    /// Call it from outside rayon's pool (not from inside `par_iter`): the workers run there.
    pub fn new() -> Self {
        let (done_tx, done_rx) = mpsc::channel();
        Self {
            done_tx,
            done_rx,
            inflight: 0,
            max: rayon::current_num_threads() + 1,
            infos: BTreeMap::new(),
        }
    }

    /// Starts a worker for archive `path` (`size` bytes), which digests the archive's bytes
    /// with `outer` and every file inside with `files`. Waits while the pool is full.
    pub fn start(
        &mut self,
        path: &str,
        size: u64,
        (outer, files): (Vec<Algo>, Vec<Algo>),
        spooled: Option<PathBuf>,
    ) -> Feed {
        while self.inflight >= self.max {
            let info = self.done_rx.recv().expect("workers hold a sender");
            self.infos.insert(info.path.clone(), info);
            self.inflight -= 1;
        }
        let (feed, mut chunks) = chunk_channel(&outer);
        let done = self.done_tx.clone();
        let path = path.to_string();
        rayon::spawn(move || {
            let files = summarize_files(&path, &mut chunks, &files).map_err(|e| e.to_string());
            let _ = done.send(ArchiveInfo {
                path,
                size,
                digests: chunks.finish(),
                files,
                spooled,
            });
        });
        self.inflight += 1;
        feed
    }

    /// Waits for every worker.
    pub fn finish(mut self) -> BTreeMap<String, ArchiveInfo> {
        drop(self.done_tx);
        for info in self.done_rx {
            self.infos.insert(info.path.clone(), info);
        }
        self.infos
    }
}

/// Reads entry `e` to its end, handing its bytes to `each` in chunks of [`CHUNK`] bytes (the
/// last one shorter).
pub fn for_each_chunk<E: From<ArchiveError>>(
    e: &mut Entry<'_>,
    mut each: impl FnMut(Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    loop {
        let mut buf = vec![0u8; CHUNK];
        let mut filled = 0;
        while filled < CHUNK {
            match e.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(e.error(err).into()),
            }
        }
        if filled == 0 {
            return Ok(());
        }
        buf.truncate(filled);
        each(buf)?;
    }
}

/// The reading end of a [`chunk_channel`]: read in place (no copy into a second buffer),
/// and hashed as each chunk arrives.
pub struct Chunks {
    rx: Receiver<Chunk>,
    buf: Chunk,
    pos: usize,
    hasher: Hasher,
}

impl Chunks {
    /// Reads to the end (the digests cover every byte sent) and returns the digests.
    pub fn finish(mut self) -> Digests {
        let _ = io::copy(&mut self, &mut io::sink());
        self.hasher.finish()
    }
}

impl Read for Chunks {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = out.len().min(available.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Chunks {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.buf.len() {
            let Ok(next) = self.rx.recv() else { break };
            self.hasher.update(&next);
            self.buf = next;
            self.pos = 0;
        }
        Ok(&self.buf[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
    }
}
