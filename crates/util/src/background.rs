//! Writing on a thread of its own: [`BackgroundWriter`] copies what it is given into a buffer
//! and hands full buffers to a thread that owns the real writer, through a bounded channel,
//! so that a producer busy with other work (inflating, say) does not also pay for the
//! writer's work (compressing, checksums, system calls). Bytes the producer shares with
//! another consumer go over as they are ([`BackgroundWriter::write_shared`]).

use std::io::{self, Write};
use std::mem;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

/// Buffers handed over at once; with the one being filled, memory is bounded by
/// `(IN_FLIGHT + 2) * buffer size`.
const IN_FLIGHT: usize = 4;

/// A [`Write`] whose bytes reach `W` on another thread. [`BackgroundWriter::finish`] waits
/// for all of them to be written and returns `W`; a failure of `W` is reported by the next
/// write or by `finish`.
pub struct BackgroundWriter<W: Write + Send + 'static> {
    buf: Vec<u8>,
    capacity: usize,
    full: Option<SyncSender<Piece>>,
    empty: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<W>>>,
}

/// What is handed over: a buffer this writer filled, or bytes shared with someone else.
enum Piece {
    Filled(Vec<u8>),
    Shared(Arc<Vec<u8>>),
}

impl<W: Write + Send + 'static> BackgroundWriter<W> {
    /// Starts the writing thread; bytes are handed over `capacity` at a time.
    pub fn new(mut inner: W, capacity: usize) -> Self {
        let (full, full_rx) = mpsc::sync_channel::<Piece>(IN_FLIGHT);
        let (empty_tx, empty) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT + 1);
        let thread = thread::spawn(move || {
            for piece in full_rx {
                match piece {
                    Piece::Filled(mut buf) => {
                        inner.write_all(&buf)?;
                        buf.clear();
                        // Returned for reuse; when the producer has enough, it is dropped.
                        let _ = empty_tx.try_send(buf);
                    }
                    Piece::Shared(bytes) => inner.write_all(&bytes)?,
                }
            }
            inner.flush()?;
            Ok(inner)
        });
        Self {
            buf: Vec::with_capacity(capacity),
            capacity,
            full: Some(full),
            empty,
            thread: Some(thread),
        }
    }

    /// Writes out everything and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.hand_over()?;
        drop(self.full.take());
        self.join()
    }

    /// Hands `bytes` over after what is buffered, without copying them.
    pub fn write_shared(&mut self, bytes: Arc<Vec<u8>>) -> io::Result<()> {
        self.hand_over()?;
        self.send(Piece::Shared(bytes))
    }

    fn hand_over(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = self
            .empty
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(self.capacity));
        let buf = mem::replace(&mut self.buf, next);
        self.send(Piece::Filled(buf))
    }

    fn send(&mut self, piece: Piece) -> io::Result<()> {
        let sent = self.full.as_ref().map(|tx| tx.send(piece));
        match sent {
            Some(Ok(())) => Ok(()),
            // The thread stopped: it failed, and says why.
            _ => {
                drop(self.full.take());
                Err(self.join().err().unwrap_or_else(|| {
                    io::Error::other("the writing thread stopped before its input ended")
                }))
            }
        }
    }

    fn join(&mut self) -> io::Result<W> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the writing thread panicked"))),
            None => Err(io::Error::other("the writing thread already stopped")),
        }
    }
}

impl<W: Write + Send + 'static> Write for BackgroundWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(self.capacity - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == self.capacity {
            self.hand_over()?;
        }
        Ok(n)
    }

    /// Hands over what is buffered; only [`BackgroundWriter::finish`] waits for it to be
    /// written.
    fn flush(&mut self) -> io::Result<()> {
        self.hand_over()
    }
}

impl<W: Write + Send + 'static> Drop for BackgroundWriter<W> {
    fn drop(&mut self) {
        drop(self.full.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_in_order_and_whole() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut w = BackgroundWriter::new(Vec::new(), 4096);
        for piece in data.chunks(1000) {
            w.write_all(piece).unwrap();
        }
        w.flush().unwrap();
        w.write_all(b"end").unwrap();
        w.write_shared(Arc::new(b", shared".to_vec())).unwrap();
        w.write_all(b".").unwrap();
        let out = w.finish().unwrap();
        assert_eq!(&out[..data.len()], &data[..]);
        assert_eq!(&out[data.len()..], b"end, shared.");
    }

    #[derive(Debug)]
    struct Failing;

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_inner_writers_error_reaches_the_producer() {
        let mut w = BackgroundWriter::new(Failing, 16);
        let mut err = None;
        for _ in 0..100 {
            if let Err(e) = w.write_all(&[0; 16]) {
                err = Some(e);
                break;
            }
        }
        let err = match err {
            Some(e) => e,
            None => w.finish().unwrap_err(),
        };
        assert_eq!(err.to_string(), "disk full");
    }
}
