//! Packing a stemcell: `image` (a tgz holding `root.img`), then the outer tarball with
//! `stemcell.MF`, `packages.txt`, `dev_tools_file_list.txt` and `image`. Streamed (the disk
//! image never sits in memory), deterministic (`crate::archive`'s writer: fixed order,
//! owners, modes, mtimes and gzip header) and atomic (temporary file, then rename).

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use flate2::Compression;
use sha1::{Digest, Sha1};

use super::{Manifest, StemcellError};
use crate::archive::{Mode, TarGzWriter};
use crate::atomic::AtomicFile;

pub struct PackInput<'a> {
    pub manifest: Manifest,
    pub root_img: &'a Path,
    pub packages_txt: &'a [u8],
    pub dev_tools_file_list: &'a [u8],
    /// Where the intermediate `image` file is written.
    pub scratch: &'a Path,
}

/// Writes `dest` and returns the manifest with its `sha1` filled in.
pub fn pack(input: PackInput, dest: &Path) -> Result<Manifest, StemcellError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StemcellError::Io { path, source }
    };
    let image = input.scratch.join("image");
    let sha1 = write_image(input.root_img, &image).map_err(io(&image))?;
    let mut manifest = input.manifest;
    manifest.sha1 = sha1;
    let mf = manifest.to_yaml();

    let out = AtomicFile::create(dest).map_err(io(dest))?;
    // `image` is already compressed: stored deflate blocks keep the outer gzip valid
    // without spending CPU on compressing it again
    let mut tgz = TarGzWriter::with_level(out, Compression::none());
    tgz.add_bytes("stemcell.MF", Mode::Regular, mf.as_bytes())
        .map_err(io(dest))?;
    tgz.add_bytes("packages.txt", Mode::Regular, input.packages_txt)
        .map_err(io(dest))?;
    tgz.add_bytes(
        "dev_tools_file_list.txt",
        Mode::Regular,
        input.dev_tools_file_list,
    )
    .map_err(io(dest))?;
    tgz.add_path_as("image", &image, Mode::Regular)
        .map_err(io(dest))?;
    let file = tgz.finish().map_err(io(dest))?.commit().map_err(io(dest))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(io(dest))?;
    let _ = std::fs::remove_file(&image);
    Ok(manifest)
}

/// `image`: tgz of `root.img`; returns its SHA-1, computed while writing.
fn write_image(root_img: &Path, dest: &Path) -> io::Result<String> {
    let f = File::open(root_img)?;
    let len = f.metadata()?.len();
    let out = HashingWriter {
        inner: io::BufWriter::with_capacity(1 << 20, File::create(dest)?),
        hash: Sha1::new(),
    };
    let mut tgz = TarGzWriter::with_level(out, Compression::fast());
    tgz.add_reader(
        "root.img",
        Mode::Regular,
        len,
        BufReader::with_capacity(1 << 20, f),
    )?;
    let mut out = tgz.finish()?;
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
