//! Raw Raspberry Pi disk images built from directories with file-based tools only (no loop
//! devices, no mounts): an MBR with a bootable FAT32 partition at sector 8192 for the
//! VideoCore firmware and an ext4 root after it. Every identifier and timestamp comes from
//! the [`ImageSpec`], so the same inputs give the same bytes.

mod ext4;
mod fat;

use pifoundry_util::BadInput;
use std::path::{Path, PathBuf};
use std::process::Command;

use pifoundry_util::error::at;
use pifoundry_util::tool::{self, ToolError};
use pifoundry_util::{PathError, atomic, name};

pub const SECTOR: u64 = 512;
/// First sector of the boot partition: 4 MiB, the alignment SD cards erase in.
pub const BOOT_START: u64 = 8192;
pub const MIB: u64 = 1024 * 1024;
const MIN_PARTITION: u64 = 64 * MIB;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A field of the [`ImageSpec`] breaks its rule: `value` as the spec holds it, `rule` what
    /// is wrong with it (a recipe names its own field and value in front of the rule).
    #[error("image spec: {field}: {value} {rule}")]
    Spec {
        field: &'static str,
        value: String,
        rule: String,
    },
    #[error(transparent)]
    Io(#[from] PathError),
    #[error(transparent)]
    Input(#[from] BadInput),
    #[error(transparent)]
    Tool(#[from] ToolError),
}

impl ImageError {
    fn spec(field: &'static str, value: impl Into<String>, rule: impl Into<String>) -> Self {
        Self::Spec {
            field,
            value: value.into(),
            rule: rule.into(),
        }
    }

    fn invalid(field: &'static str, e: name::Invalid) -> Self {
        Self::spec(
            field,
            format!("{:?}", e.value),
            format!("is not {}", e.expected),
        )
    }
}

/// What goes into a disk image and the fixed values that make it reproducible.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// Becomes the ext4 root file system (owners and modes kept; run as root).
    pub rootfs: PathBuf,
    /// Becomes the FAT32 boot partition (`config.txt`, `cmdline.txt`, kernel, DTBs, firmware).
    pub boot_files: PathBuf,
    /// Whole disk in bytes: a power of two, because QEMU's SD card model insists on it.
    pub total_size: u64,
    /// Boot partition in bytes, a whole number of MiB.
    pub boot_size: u64,
    pub boot_label: String,
    pub root_label: String,
    /// ext4 file system UUID.
    pub root_uuid: String,
    /// ext4 directory hash seed (a UUID).
    pub hash_seed: String,
    /// FAT volume id (the serial number `blkid` shows as XXXX-XXXX).
    pub boot_volume_id: u32,
    /// MBR disk identifier; partitions are `PARTUUID=<id>-01` and `-02`.
    pub disk_id: u32,
    /// Every timestamp in both file systems is at most this.
    pub source_date_epoch: u64,
}

impl ImageSpec {
    /// A 2 GiB image with a 256 MiB boot partition and fixed identifiers. 2 GiB is also the
    /// smallest root the agent's 32-bit size parsing must be proven against (see the notes).
    pub fn new(rootfs: impl Into<PathBuf>, boot_files: impl Into<PathBuf>) -> Self {
        Self {
            rootfs: rootfs.into(),
            boot_files: boot_files.into(),
            total_size: 2048 * MIB,
            boot_size: 256 * MIB,
            boot_label: "BOOT".into(),
            root_label: "rootfs".into(),
            root_uuid: "5049464f-756e-4472-b900-000000000002".into(),
            hash_seed: "5049464f-756e-4472-b900-0000000000a5".into(),
            boot_volume_id: 0x5049_0001,
            disk_id: 0x5049_4630,
            source_date_epoch: 1_767_225_600,
        }
    }

    /// Checks every value before any tool runs, naming the offending field.
    pub fn check(&self) -> Result<Layout, ImageError> {
        let bytes = |n: u64| format!("{n} bytes");
        if !self.total_size.is_power_of_two() {
            return Err(ImageError::spec(
                "total_size",
                bytes(self.total_size),
                "is not a power of two (QEMU's SD card needs one)",
            ));
        }
        if !self.boot_size.is_multiple_of(MIB) || self.boot_size < MIN_PARTITION {
            return Err(ImageError::spec(
                "boot_size",
                bytes(self.boot_size),
                "must be a whole number of MiB and at least 64 MiB",
            ));
        }
        let layout = Layout {
            boot_start: BOOT_START,
            boot_sectors: self.boot_size / SECTOR,
            root_start: BOOT_START + self.boot_size / SECTOR,
            total_sectors: self.total_size / SECTOR,
        };
        if self.total_size < BOOT_START * SECTOR + self.boot_size + MIN_PARTITION {
            return Err(ImageError::spec(
                "total_size",
                bytes(self.total_size),
                format!(
                    "leaves less than 64 MiB for the root after a {} MiB boot partition",
                    self.boot_size / MIB
                ),
            ));
        }
        if self.boot_label.is_empty()
            || self.boot_label.len() > 11
            || !self
                .boot_label
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(ImageError::spec(
                "boot_label",
                format!("{:?}", self.boot_label),
                "is not a FAT label (1 to 11 of A-Z 0-9 _ -)",
            ));
        }
        if self.root_label.is_empty() || self.root_label.len() > 16 {
            return Err(ImageError::spec(
                "root_label",
                format!("{:?}", self.root_label),
                "is not an ext4 label (1 to 16 bytes)",
            ));
        }
        name::check_uuid(&self.root_uuid).map_err(|e| ImageError::invalid("root_uuid", e))?;
        name::check_uuid(&self.hash_seed).map_err(|e| ImageError::invalid("hash_seed", e))?;
        Ok(layout)
    }

    /// [`ImageSpec::check`], and the two input directories exist.
    pub fn validate(&self) -> Result<Layout, ImageError> {
        let layout = self.check()?;
        for (field, dir) in [("rootfs", &self.rootfs), ("boot_files", &self.boot_files)] {
            if !dir.is_dir() {
                return Err(ImageError::spec(
                    field,
                    dir.display().to_string(),
                    "is not a directory",
                ));
            }
        }
        Ok(layout)
    }
}

/// Parses an 8-hex-digit identifier as recipes spell them (`"50490001"`, `0x` allowed) for
/// [`ImageSpec::boot_volume_id`] and [`ImageSpec::disk_id`].
pub fn parse_hex_id(field: &'static str, s: &str) -> Result<u32, ImageError> {
    name::parse_hex_u32(s).map_err(|e| ImageError::invalid(field, e))
}

/// Where the partitions lie, in 512-byte sectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub boot_start: u64,
    pub boot_sectors: u64,
    pub root_start: u64,
    pub total_sectors: u64,
}

impl Layout {
    pub fn root_sectors(&self) -> u64 {
        self.total_sectors - self.root_start
    }
    pub fn boot_offset(&self) -> u64 {
        self.boot_start * SECTOR
    }
    pub fn root_offset(&self) -> u64 {
        self.root_start * SECTOR
    }
    /// The `sfdisk` script: a DOS label, p1 bootable FAT32 (LBA), p2 Linux to the end.
    fn sfdisk_script(&self, disk_id: u32) -> String {
        format!(
            "label: dos\nlabel-id: 0x{disk_id:08x}\nunit: sectors\n\
             start={}, size={}, type=c, bootable\nstart={}, size={}, type=83\n",
            self.boot_start,
            self.boot_sectors,
            self.root_start,
            self.root_sectors()
        )
    }
}

/// Builds the disk image `out` from `spec`: a sparse file written in place by sfdisk,
/// mkfs.vfat + mtools and mke2fs, in a temporary file beside `out` that is renamed over it
/// only when everything succeeded.
pub fn build_disk_image(spec: &ImageSpec, out: &Path) -> Result<Layout, ImageError> {
    let layout = spec.validate()?;
    let tmp = atomic::temp_beside(out)?;
    tmp.as_file()
        .set_len(spec.total_size)
        .map_err(at(tmp.path()))?;
    let img = tmp.path();

    tool::run(
        Command::new("sfdisk")
            .args(["--quiet", "--no-reread", "--no-tell-kernel"])
            .arg(img),
        Some(layout.sfdisk_script(spec.disk_id).as_bytes()),
    )?;
    fat::format(img, &layout, spec)?;
    fat::copy_tree(img, &layout, spec)?;
    ext4::make(img, &layout, spec)?;
    ext4::clamp_times(img, &layout, spec)?;

    atomic::persist(tmp, out)?;
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_ids_parse_as_recipes_write_them() {
        assert_eq!(parse_hex_id("disk_id", "50494630").unwrap(), 0x5049_4630);
        assert_eq!(parse_hex_id("disk_id", "0x5049ABCD").unwrap(), 0x5049_abcd);
        let err = parse_hex_id("boot_volume_id", "5049").unwrap_err();
        assert_eq!(
            err.to_string(),
            "image spec: boot_volume_id: \"5049\" is not 8 hex digits"
        );
        assert!(parse_hex_id("disk_id", "5049463g").is_err());
    }

    #[test]
    fn the_default_layout_puts_root_after_a_256_mib_boot() {
        let dir = tempfile::tempdir().unwrap();
        let layout = ImageSpec::new(dir.path(), dir.path()).validate().unwrap();
        assert_eq!(layout.boot_start, 8192);
        assert_eq!(layout.root_start, 8192 + 524_288);
        assert_eq!(layout.total_sectors, 4_194_304);
        assert!(
            layout
                .sfdisk_script(0x5049_4630)
                .contains("label-id: 0x50494630\n")
        );
    }
}
