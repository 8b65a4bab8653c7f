//! Packing a stemcell: `image` (a tgz holding `root.img`), then the outer tarball with
//! `stemcell.MF`, `packages.txt`, `dev_tools_file_list.txt` and `image`. Streamed (the disk
//! image never sits in memory), deterministic (`crate::archive`'s writer: fixed order,
//! owners, modes, mtimes and gzip header) and atomic (temporary file, then rename).

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use flate2::Compression;
use pifoundry_util::atomic::AtomicFile;
use pifoundry_util::error::{PathError, at};
use pifoundry_util::hash::{Algo, HashingWriter};

use super::{Manifest, StemcellError};
use crate::archive::{Mode, TarGzWriter};

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
        move |error| StemcellError::Io(PathError::new(path, error))
    };
    let image = input.scratch.join("image");
    let sha1 = write_image(input.root_img, &image)?;
    let mut manifest = input.manifest;
    manifest.sha1 = sha1;
    let mf = manifest.to_yaml();

    let out = AtomicFile::create(dest)?;
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
    let file = tgz.finish().map_err(io(dest))?.commit()?;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(io(dest))?;
    let _ = std::fs::remove_file(&image);
    Ok(manifest)
}

/// `image`: tgz of `root.img`; returns its SHA-1, computed while writing.
fn write_image(root_img: &Path, dest: &Path) -> Result<String, PathError> {
    let f = File::open(root_img).map_err(at(root_img))?;
    let len = f.metadata().map_err(at(root_img))?.len();
    let out = HashingWriter::new(
        io::BufWriter::with_capacity(1 << 20, File::create(dest).map_err(at(dest))?),
        &[Algo::Sha1],
    );
    let mut tgz = TarGzWriter::with_level(out, Compression::fast());
    tgz.add_reader(
        "root.img",
        Mode::Regular,
        len,
        BufReader::with_capacity(1 << 20, f),
    )
    .map_err(at(dest))?;
    let mut out = tgz.finish().map_err(at(dest))?;
    out.inner.flush().map_err(at(dest))?;
    out.inner.get_ref().sync_all().map_err(at(dest))?;
    Ok(out.hasher.hex(Algo::Sha1))
}
