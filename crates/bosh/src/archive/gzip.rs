//! Gzip writing with a reproducible header: [`gzip_encoder`] (flate2's encoder), and
//! [`GzWriter`], one gzip stream that stores the stretches it is told are compressed already
//! (a `.tar.gz` blob inside a package) instead of deflating them a second time, which costs
//! more than everything else about writing them and gains nothing.

use std::io::{self, IoSlice, Write};

use flate2::write::GzEncoder;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Bytes of a file looked at to tell whether it is compressed already.
pub const SAMPLE: usize = 64 << 10;
/// The most a stored deflate block holds.
const STORED_BLOCK: usize = 65535;
const OUT_BUF: usize = 64 << 10;

/// A gzip encoder with a reproducible header (mtime 0, no name, OS byte 3 = Unix).
pub fn gzip_encoder<W: Write>(out: W, level: Compression) -> GzEncoder<W> {
    flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(3)
        .write(out, level)
}

/// Whether deflating `sample` at the fastest level saves less than 1/32 of it: the bytes are
/// compressed (or random) already, and are better stored.
pub fn incompressible(sample: &[u8]) -> bool {
    let mut c = Compress::new(Compression::fast(), false);
    let mut out = Vec::with_capacity(sample.len() + sample.len() / 8 + 64);
    match c.compress_vec(sample, &mut out, FlushCompress::Finish) {
        Ok(Status::StreamEnd) => out.len() + sample.len() / 32 >= sample.len(),
        _ => true,
    }
}

/// One gzip stream, byte for byte what [`gzip_encoder`] writes at the same level and for
/// the same writes until [`GzWriter::store`] is switched on (deflate's output depends on how
/// its input was cut). Stored stretches are cut into blocks by their length only.
pub struct GzWriter<W: Write> {
    out: W,
    deflate: Compress,
    crc: Crc,
    buf: Vec<u8>,
    storing: bool,
    /// The start of a stored block shorter than [`STORED_BLOCK`].
    stored: Vec<u8>,
}

impl<W: Write> GzWriter<W> {
    pub fn new(mut out: W, level: Compression) -> io::Result<Self> {
        // flate2's header: XFL 2 for the best level, 4 for the fastest.
        let xfl = match level.level() {
            9.. => 2,
            0 | 1 => 4,
            _ => 0,
        };
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3])?;
        Ok(Self {
            out,
            deflate: Compress::new(level, false),
            crc: Crc::new(),
            buf: Vec::with_capacity(OUT_BUF),
            storing: false,
            stored: Vec::new(),
        })
    }

    /// Stores (`true`) or deflates (`false`) what is written from now on.
    pub fn store(&mut self, on: bool) -> io::Result<()> {
        if on == self.storing {
            return Ok(());
        }
        if on {
            // Byte-aligns the deflate stream, and leaves the compressor nothing to refer
            // back to across the stored bytes that follow.
            self.deflate(&[], FlushCompress::Full)?;
        } else {
            self.end_stored_block()?;
        }
        self.storing = on;
        Ok(())
    }

    /// Ends the stream (final block, CRC-32, length) and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.end_stored_block()?;
        self.deflate(&[], FlushCompress::Finish)?;
        self.out.write_all(&self.crc.sum().to_le_bytes())?;
        self.out.write_all(&self.crc.amount().to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn deflate(&mut self, mut input: &[u8], flush: FlushCompress) -> io::Result<()> {
        loop {
            self.buf.clear();
            let before = self.deflate.total_in();
            let status = self
                .deflate
                .compress_vec(input, &mut self.buf, flush)
                .map_err(io::Error::other)?;
            input = &input[(self.deflate.total_in() - before) as usize..];
            self.out.write_all(&self.buf)?;
            let room_left = self.buf.len() < self.buf.capacity();
            if status == Status::StreamEnd || (input.is_empty() && room_left) {
                return Ok(());
            }
        }
    }

    fn write_stored(&mut self, mut data: &[u8]) -> io::Result<()> {
        if !self.stored.is_empty() {
            let n = data.len().min(STORED_BLOCK - self.stored.len());
            self.stored.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.stored.len() < STORED_BLOCK {
                return Ok(());
            }
            self.end_stored_block()?;
        }
        let whole = data.len() - data.len() % STORED_BLOCK;
        stored_blocks(&mut self.out, &data[..whole])?;
        self.stored.extend_from_slice(&data[whole..]);
        Ok(())
    }

    fn end_stored_block(&mut self) -> io::Result<()> {
        if !self.stored.is_empty() {
            stored_block(&mut self.out, &self.stored)?;
            self.stored.clear();
        }
        Ok(())
    }
}

/// A stored block that is not the last: BFINAL 0, BTYPE 00 (the stream is byte-aligned
/// here), LEN, its complement, the bytes.
fn stored_block(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    out.write_all(&block_header(data.len()))?;
    out.write_all(data)
}

fn block_header(len: usize) -> [u8; 5] {
    let len = u16::try_from(len).expect("at most STORED_BLOCK bytes");
    let [lo, hi] = len.to_le_bytes();
    [0, lo, hi, !lo, !hi]
}

/// Full stored blocks, handed to `out` as one vectored write: a buffered file passes a
/// write that large straight to the system without copying it.
fn stored_blocks(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    let header = block_header(STORED_BLOCK);
    let mut slices: Vec<IoSlice<'_>> = data
        .chunks(STORED_BLOCK)
        .flat_map(|block| [IoSlice::new(&header), IoSlice::new(block)])
        .collect();
    let mut left = &mut slices[..];
    while !left.is_empty() {
        match out.write_vectored(left) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut left, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl<W: Write> Write for GzWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.crc.update(data);
        if self.storing {
            self.write_stored(data)?;
        } else {
            self.deflate(data, FlushCompress::None)?;
        }
        Ok(data.len())
    }

    /// Ends the stored block begun, or sync-flushes the deflate stream as flate2 does.
    fn flush(&mut self) -> io::Result<()> {
        if self.storing {
            self.end_stored_block()?;
        } else {
            self.deflate(&[], FlushCompress::Sync)?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::synth::Noise;
    use std::io::Read;

    fn noise(len: usize) -> Vec<u8> {
        let mut v = Vec::new();
        Noise::new(7, len as u64).read_to_end(&mut v).unwrap();
        v
    }

    /// Four bits of entropy a byte: deflate saves about half.
    fn text(len: usize) -> Vec<u8> {
        noise(len)
            .iter()
            .map(|b| b"etaoinshrdlu \n-/"[(b % 16) as usize])
            .collect()
    }

    #[test]
    fn without_storing_it_writes_what_flate2_writes() {
        let data = [text(300_000), noise(200_000), text(5)].concat();
        let mut theirs = gzip_encoder(Vec::new(), Compression::fast());
        let mut ours = GzWriter::new(Vec::new(), Compression::fast()).unwrap();
        for piece in data.chunks(8192) {
            theirs.write_all(piece).unwrap();
            ours.write_all(piece).unwrap();
        }
        theirs.flush().unwrap();
        ours.flush().unwrap();
        theirs.write_all(b"after a flush").unwrap();
        ours.write_all(b"after a flush").unwrap();
        let (ours, theirs) = (ours.finish().unwrap(), theirs.finish().unwrap());
        assert_eq!(ours.len(), theirs.len());
        assert!(ours == theirs);
    }

    #[test]
    fn stored_stretches_decode_and_do_not_depend_on_write_sizes() {
        let parts = [text(70_000), noise(300_000), text(1000), noise(10), text(3)];
        let write = |piece: usize| {
            let mut w = GzWriter::new(Vec::new(), Compression::fast()).unwrap();
            for (i, p) in parts.iter().enumerate() {
                let stored = i % 2 == 1;
                w.store(stored).unwrap();
                for c in p.chunks(if stored { piece } else { p.len() }) {
                    w.write_all(c).unwrap();
                }
            }
            w.finish().unwrap()
        };
        let gz = write(4096);
        assert!(gz == write(1 << 20));
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == parts.concat());
        // The noise went in stored, five bytes a block, where deflating it would add 6%.
        assert!(gz.len() < 300_010 + 71_003 + 1000, "{}", gz.len());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mixed.gz");
        std::fs::write(&path, &gz).unwrap();
        let out = std::process::Command::new("gzip")
            .arg("-t")
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }

    #[test]
    fn a_stream_stored_from_the_start_decodes() {
        let data = [noise(200_000), text(70_000)].concat();
        let mut w = GzWriter::new(Vec::new(), Compression::none()).unwrap();
        w.store(true).unwrap();
        w.write_all(&data).unwrap();
        let gz = w.finish().unwrap();
        assert!(gz.len() < data.len() + 100, "{}", gz.len());
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data);
    }

    #[test]
    fn compressed_bytes_are_told_from_text() {
        assert!(incompressible(&noise(SAMPLE)));
        let mut gz = gzip_encoder(Vec::new(), Compression::default());
        gz.write_all(&text(4 * SAMPLE)).unwrap();
        assert!(incompressible(&gz.finish().unwrap()[..SAMPLE]));
        assert!(!incompressible(&text(SAMPLE)));
    }
}
