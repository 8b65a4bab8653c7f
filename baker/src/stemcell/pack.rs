//! Packing a stemcell: `image` (a tgz holding `root.img`), then the outer tarball with
//! `stemcell.MF`, `packages.txt`, `dev_tools_file_list.txt` and `image`. Streamed (the disk
//! image never sits in memory), deterministic (fixed order, owners, modes, mtimes, gzip
//! header) and atomic (temporary file, then rename).

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use sha1::{Digest, Sha1};

use super::{Manifest, StemcellError};
use crate::atomic::AtomicFile;

pub struct PackInput<'a> {
    pub manifest: Manifest,
    pub root_img: &'a Path,
    pub packages_txt: &'a [u8],
    pub dev_tools_file_list: &'a [u8],
    pub mtime: u64,
    /// Where the intermediate `image` file is written.
    pub scratch: &'a Path,
}

/// Writes `<dest>` and returns the manifest with its `sha1` filled in.
pub fn pack(input: PackInput, dest: &Path) -> Result<Manifest, StemcellError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StemcellError::Io { path, source }
    };
    let image = input.scratch.join("image");
    let sha1 = write_image(input.root_img, &image, input.mtime).map_err(io(&image))?;
    let mut manifest = input.manifest;
    manifest.sha1 = sha1;
    let mf = manifest.to_yaml();

    let out = AtomicFile::create(dest).map_err(io(dest))?;
    let gz = GzBuilder::new().mtime(0).write(out, Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut add = |name: &str, len: u64, data: &mut dyn io::Read| {
        let mut h = header(len, input.mtime);
        tar.append_data(&mut h, name, data)
    };
    add("stemcell.MF", mf.len() as u64, &mut mf.as_bytes()).map_err(io(dest))?;
    add(
        "packages.txt",
        input.packages_txt.len() as u64,
        &mut &*input.packages_txt,
    )
    .map_err(io(dest))?;
    add(
        "dev_tools_file_list.txt",
        input.dev_tools_file_list.len() as u64,
        &mut &*input.dev_tools_file_list,
    )
    .map_err(io(dest))?;
    let f = File::open(&image).map_err(io(&image))?;
    let len = f.metadata().map_err(io(&image))?.len();
    add("image", len, &mut BufReader::with_capacity(1 << 20, f)).map_err(io(dest))?;
    let gz = tar.into_inner().map_err(io(dest))?;
    let out = gz.finish().map_err(io(dest))?;
    out.commit().map_err(io(dest))?;
    let _ = std::fs::remove_file(&image);
    Ok(manifest)
}

fn header(len: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(len);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

/// `image`: tgz of `root.img`; returns its SHA-1, computed while writing.
fn write_image(root_img: &Path, dest: &PathBuf, mtime: u64) -> io::Result<String> {
    let f = File::open(root_img)?;
    let len = f.metadata()?.len();
    let out = HashingWriter {
        inner: io::BufWriter::with_capacity(1 << 20, File::create(dest)?),
        hash: Sha1::new(),
    };
    let gz = GzBuilder::new().mtime(0).write(out, Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut h = header(len, mtime);
    tar.append_data(&mut h, "root.img", BufReader::with_capacity(1 << 20, f))?;
    let mut out = tar.into_inner()?.finish()?;
    out.inner.flush()?;
    out.inner.get_ref().sync_all()?;
    Ok(hex::encode(out.hash.finalize()))
}

struct HashingWriter<W> {
    inner: W,
    hash: Sha1,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
