//! The ephemeral disk as the agent left it, read from the host side of the image file: its
//! partition table (`sfdisk --json`) and the file system on each partition (`blkid -p`).
//! Comparing two readings tells whether a boot re-partitioned or re-formatted the disk.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::BootError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub start: u64,
    pub size: u64,
    /// GPT partition GUID (or MBR id), new with every partitioning.
    pub uuid: String,
    pub name: String,
    /// `TYPE` and `UUID` of the file system on it, new with every format.
    pub fs_type: String,
    pub fs_uuid: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskLayout {
    pub label: String,
    pub id: String,
    pub partitions: Vec<Partition>,
}

impl DiskLayout {
    /// `None` when the disk has no partition table yet.
    pub fn read(img: &Path) -> Result<Option<Self>, BootError> {
        let out = Command::new("sfdisk").arg("--json").arg(img).output();
        let out = out.map_err(|e| BootError::Start(format!("sfdisk: {e}")))?;
        if !out.status.success() {
            return Ok(None);
        }
        let doc: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| BootError::Check(format!("sfdisk --json {}: {e}", img.display())))?;
        let table = &doc["partitiontable"];
        let sector = table["sectorsize"].as_u64().unwrap_or(512);
        let mut partitions = Vec::new();
        for p in table["partitions"].as_array().into_iter().flatten() {
            let start = p["start"].as_u64().unwrap_or(0) * sector;
            let size = p["size"].as_u64().unwrap_or(0) * sector;
            let (fs_type, fs_uuid) = probe(img, start, size)?;
            partitions.push(Partition {
                start,
                size,
                uuid: p["uuid"].as_str().unwrap_or_default().to_owned(),
                name: p["name"].as_str().unwrap_or_default().to_owned(),
                fs_type,
                fs_uuid,
            });
        }
        Ok(Some(Self {
            label: table["label"].as_str().unwrap_or_default().to_owned(),
            id: table["id"].as_str().unwrap_or_default().to_owned(),
            partitions,
        }))
    }

    /// The agent's layout: swap, then the ext4 data partition that becomes /var/vcap/data.
    pub fn data_partition(&self) -> Option<&Partition> {
        match self.partitions.as_slice() {
            [swap, data, ..] if swap.fs_type == "swap" && data.fs_type == "ext4" => Some(data),
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| {
                format!(
                    "p{}[{} {} MiB at {} MiB, {} {}]",
                    i + 1,
                    if p.name.is_empty() { "-" } else { &p.name },
                    p.size >> 20,
                    p.start >> 20,
                    if p.fs_type.is_empty() {
                        "no fs"
                    } else {
                        &p.fs_type
                    },
                    p.fs_uuid
                )
            })
            .collect();
        format!("{} {} {}", self.label, self.id, parts.join(" "))
    }
}

fn probe(img: &Path, offset: u64, size: u64) -> Result<(String, String), BootError> {
    // blkid exits 2 when it finds nothing
    let out = Command::new("blkid")
        .args(["-p", "-o", "export", "-O"])
        .arg(offset.to_string())
        .arg("-S")
        .arg(size.to_string())
        .arg(img)
        .output()
        .map_err(|e| BootError::Start(format!("blkid: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
            .unwrap_or_default()
            .to_owned()
    };
    Ok((field("TYPE"), field("UUID")))
}
