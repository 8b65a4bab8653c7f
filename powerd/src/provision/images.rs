//! Images: a raw disk image, or a stemcell's `image` member (a gzip'd tar holding the raw
//! image), streamed to a temp file under `images/`, checked, stored once as
//! `images/<id>/disk.img`, with its FAT boot partition's files extracted once to
//! `images/<id>/boot/` by mtools.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use axum::body::Body;
use http_body_util::BodyExt;
use pifoundry_util::hash::{Algo, Hasher};
use pifoundry_util::tool;
use powerd_client::codes;
use powerd_client::provision::{Image, ImageUpload};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::{ProvisionError, Provisioner, now};

/// Prefix of the temp directories uploads are staged in (swept at start).
pub const UPLOAD_PREFIX: &str = ".upload-";

fn bad_image(message: impl Into<String>) -> ProvisionError {
    ProvisionError::bad(codes::BAD_IMAGE, message)
}

fn image_not_found(id: &str) -> ProvisionError {
    ProvisionError::not_found(codes::IMAGE_NOT_FOUND, "image", id)
}

impl Provisioner {
    pub fn images_dir(&self) -> PathBuf {
        self.cfg.data_dir.join("images")
    }

    pub fn images(&self) -> Vec<Image> {
        self.store
            .read(|s| s.images.values().map(|i| s.image_view(i)).collect())
    }

    pub fn image(&self, id: &str) -> Result<Image, ProvisionError> {
        self.store
            .read(|s| s.images.get(id).map(|i| s.image_view(i)))
            .ok_or_else(|| image_not_found(id))
    }

    pub fn boot_dir(&self, id: &str) -> PathBuf {
        self.images_dir().join(id).join("boot")
    }

    pub fn disk_img(&self, id: &str) -> PathBuf {
        self.images_dir().join(id).join("disk.img")
    }

    /// Stores an upload; `true` when it is new (the same bytes again give the stored image).
    pub async fn upload_image(
        &self,
        q: ImageUpload,
        body: Body,
    ) -> Result<(Image, bool), ProvisionError> {
        let arch = q.arch.ok_or_else(|| {
            ProvisionError::bad(codes::INVALID_BODY, "query parameter arch is required")
        })?;
        for (key, v) in [("name", &q.name), ("version", &q.version)] {
            if v.as_ref()
                .is_some_and(|v| v.len() > 128 || v.chars().any(char::is_control))
            {
                return Err(ProvisionError::bad(
                    codes::INVALID_BODY,
                    format!("{key}: at most 128 printable characters"),
                ));
            }
        }
        let stage = tempfile::Builder::new()
            .prefix(UPLOAD_PREFIX)
            .tempdir_in(self.images_dir())
            .map_err(|e| ProvisionError::failed("image.stage", e))?;
        let body_path = stage.path().join("upload");
        let (sent_sha, sent_len) = receive(body, &body_path).await?;
        if let Some(want) = q.sha256.as_ref().filter(|w| !w.is_empty())
            && !want.eq_ignore_ascii_case(&sent_sha)
        {
            return Err(ProvisionError::bad(
                codes::UPLOAD_DIGEST_MISMATCH,
                format!("the body's sha256 is {sent_sha}, not {want} ({sent_len} bytes received)"),
            ));
        }
        self.fail.check("image.unpack").await?;
        let dir = stage.path().to_path_buf();
        let (sha, size) = tokio::task::spawn_blocking(move || unpack(&dir, sent_sha))
            .await
            .map_err(|e| ProvisionError::failed("image.unpack", e))??;
        let id = format!("img-{}", &sha[..16]);
        if let Ok(img) = self.image(&id) {
            return Ok((img, false));
        }
        let dir = stage.path().to_path_buf();
        let boot_files = tokio::task::spawn_blocking(move || extract_boot(&dir))
            .await
            .map_err(|e| ProvisionError::failed("image.boot", e))??;
        self.fail.check("image.commit").await?;
        let _one = self.images_lock.lock().await;
        if let Ok(img) = self.image(&id) {
            return Ok((img, false));
        }
        let dest = self.images_dir().join(&id);
        // a directory left by a powerd killed between this rename and the state write
        if dest.exists() {
            std::fs::remove_dir_all(&dest)
                .map_err(|e| ProvisionError::failed("image.commit", e))?;
        }
        let staged = stage.keep();
        std::fs::rename(&staged, &dest).map_err(|e| {
            let _ = std::fs::remove_dir_all(&staged);
            ProvisionError::failed("image.commit", e)
        })?;
        let _ = std::fs::remove_file(dest.join("upload"));
        File::open(self.images_dir())
            .and_then(|d| d.sync_all())
            .map_err(|e| ProvisionError::failed("image.commit", e))?;
        let image = Image {
            id: id.clone(),
            sha256: sha,
            size,
            arch,
            name: q.name,
            version: q.version,
            boot_files,
            vms: Vec::new(),
            created_at: now(),
        };
        let stored = self.store.update(|s| {
            s.images.insert(id.clone(), image.clone());
            Ok(())
        });
        if let Err(e) = stored {
            let _ = std::fs::remove_dir_all(&dest);
            return Err(e);
        }
        tracing::info!(image = %id, size, "image stored");
        Ok((image, true))
    }

    pub fn delete_image(&self, id: &str) -> Result<(), ProvisionError> {
        self.store.update(|s| {
            if !s.images.contains_key(id) {
                return Err(image_not_found(id));
            }
            let users: Vec<&str> = s
                .vms
                .values()
                .filter(|v| v.image == id)
                .map(|v| v.id.as_str())
                .collect();
            if !users.is_empty() {
                return Err(ProvisionError::conflict(
                    codes::IMAGE_IN_USE,
                    format!("image {id} is used by {}", users.join(", ")),
                ));
            }
            s.images.remove(id);
            Ok(())
        })?;
        let dir = self.images_dir().join(id);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "image removed from the state, its files not");
        }
        Ok(())
    }
}

/// Streams the body to `dest`; returns its sha256 and length.
async fn receive(mut body: Body, dest: &Path) -> Result<(String, u64), ProvisionError> {
    let failed = |e: &dyn std::fmt::Display| ProvisionError::failed("image.receive", e);
    let file = tokio::fs::File::create(dest)
        .await
        .map_err(|e| failed(&e))?;
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut hasher = Hasher::new(&[Algo::Sha256]);
    let mut len = 0u64;
    // zero runs stay holes: a raw image is mostly empty
    let mut hole = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ProvisionError::bad(codes::INVALID_BODY, format!("the upload broke off: {e}"))
        })?;
        if let Ok(data) = frame.into_data() {
            hasher.update(&data);
            len += data.len() as u64;
            if data.iter().all(|&b| b == 0) {
                hole += data.len() as u64;
                continue;
            }
            if hole > 0 {
                out.seek(std::io::SeekFrom::Current(hole as i64))
                    .await
                    .map_err(|e| failed(&e))?;
                hole = 0;
            }
            out.write_all(&data).await.map_err(|e| failed(&e))?;
        }
    }
    out.flush().await.map_err(|e| failed(&e))?;
    let file = out.into_inner();
    file.set_len(len).await.map_err(|e| failed(&e))?;
    if len == 0 {
        return Err(bad_image("the body is empty"));
    }
    Ok((hasher.hex(Algo::Sha256), len))
}

/// Makes `dir/disk.img` from `dir/upload`: the upload itself, or the one file inside it when
/// it is a gzip'd tar. Returns the raw image's sha256 and size.
fn unpack(dir: &Path, upload_sha: String) -> Result<(String, u64), ProvisionError> {
    let upload = dir.join("upload");
    let disk = dir.join("disk.img");
    let failed = |e: &dyn std::fmt::Display| ProvisionError::failed("image.unpack", e);
    let mut magic = [0u8; 2];
    let mut f = File::open(&upload).map_err(|e| failed(&e))?;
    let n = f.read(&mut magic).map_err(|e| failed(&e))?;
    if n < 2 || magic != [0x1f, 0x8b] {
        std::fs::rename(&upload, &disk).map_err(|e| failed(&e))?;
        let size = std::fs::metadata(&disk).map_err(|e| failed(&e))?.len();
        return Ok((upload_sha, size));
    }
    let gz = flate2::read::GzDecoder::new(File::open(&upload).map_err(|e| failed(&e))?);
    let mut tar = tar::Archive::new(gz);
    let bad = |e: std::io::Error| bad_image(format!("the gzip'd tar: {e}"));
    let mut found = None;
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_gnu_sparse()) {
            continue;
        }
        let name = entry.path().map_err(bad)?.display().to_string();
        if found.is_some() {
            return Err(bad_image(format!(
                "the tar holds more than one file ({name}); expected only the raw image"
            )));
        }
        let mut out = File::create(&disk).map_err(|e| failed(&e))?;
        let mut hasher = Hasher::new(&[Algo::Sha256]);
        let size = sparse_copy(&mut entry, &mut out, &mut hasher).map_err(bad)?;
        out.sync_all().map_err(|e| failed(&e))?;
        found = Some((hasher.hex(Algo::Sha256), size));
    }
    let _ = std::fs::remove_file(&upload);
    found.ok_or_else(|| bad_image("the gzip'd tar holds no file"))
}

/// Copies `r` to `out`, hashing it, leaving all-zero blocks as holes (disk images are mostly
/// empty, and stored sparse they cost only what they hold).
fn sparse_copy(r: &mut impl Read, out: &mut File, hasher: &mut Hasher) -> std::io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let mut n = 0;
        while n < buf.len() {
            match r.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        hasher.update(chunk);
        if chunk.iter().all(|&b| b == 0) {
            out.seek(SeekFrom::Current(n as i64))?;
        } else {
            out.write_all(chunk)?;
        }
        size += n as u64;
    }
    out.set_len(size)?;
    Ok(size)
}

/// Extracts the first partition (FAT) of `dir/disk.img` to `dir/boot`; returns the files.
fn extract_boot(dir: &Path) -> Result<Vec<String>, ProvisionError> {
    let disk = dir.join("disk.img");
    let out = tool::run(Command::new("sfdisk").arg("--json").arg(&disk), None)
        .map_err(|e| bad_image(format!("no partition table: {e}")))?;
    let table: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| ProvisionError::failed("image.boot", format!("sfdisk --json: {e}")))?;
    let t = &table["partitiontable"];
    let sector = t["sectorsize"].as_u64().unwrap_or(512);
    let start = t["partitions"][0]["start"]
        .as_u64()
        .ok_or_else(|| bad_image("the partition table has no partition"))?;
    let boot = dir.join("boot");
    std::fs::create_dir(&boot).map_err(|e| ProvisionError::failed("image.boot", e))?;
    tool::run(
        Command::new("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-s", "-n", "-i"])
            .arg(format!("{}@@{}", disk.display(), start * sector))
            .arg("::/")
            .arg(&boot),
        None,
    )
    .map_err(|e| {
        bad_image(format!(
            "partition 1 is not a readable FAT file system: {e}"
        ))
    })?;
    let mut files = Vec::new();
    for e in walkdir::WalkDir::new(&boot).sort_by_file_name() {
        let e = e.map_err(|e| ProvisionError::failed("image.boot", e))?;
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(&boot).expect("under boot");
            files.push(rel.display().to_string());
        }
    }
    if files.is_empty() {
        return Err(bad_image("the boot partition holds no file"));
    }
    Ok(files)
}
