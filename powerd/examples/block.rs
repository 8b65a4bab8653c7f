//! powerd's block layer from the command line, for scripts/bench-nbd.sh and by hand:
//!
//! ```text
//! block overlay-times RUNS BASE…           seconds per Block::create_overlay, best of RUNS
//! block overlay BASE DEST                  one overlay
//! block export STATE_DIR FILE raw|qcow2    exports on 127.0.0.1 (firewall none), prints the URL
//! block unexport STATE_DIR NAME
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use powerd::block::{Block, BlockConfig, ExportRequest, Firewall};
use powerd_client::provision::DiskFormat;

fn open(state_dir: &Path) -> anyhow::Result<Block> {
    let mut cfg = BlockConfig::new(state_dir, "127.0.0.1".parse()?, 10810..=10899);
    cfg.firewall = Firewall::None;
    Ok(Block::open(&cfg)?)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["overlay-times", runs, ref bases @ ..] => {
            let runs: usize = runs.parse().context("RUNS")?;
            let scratch = tempfile::tempdir()?;
            let block = open(&scratch.path().join("state"))?;
            for base in bases {
                let mut best = f64::MAX;
                for i in 0..runs {
                    let dest = scratch.path().join(format!("ov-{i}.qcow2"));
                    let t = Instant::now();
                    block.create_overlay(Path::new(base), &dest)?;
                    best = best.min(t.elapsed().as_secs_f64());
                    std::fs::remove_file(&dest)?;
                }
                println!("{base} {best:.4}");
            }
        }
        ["overlay", base, dest] => {
            let scratch = tempfile::tempdir()?;
            open(&scratch.path().join("state"))?
                .create_overlay(Path::new(base), Path::new(dest))?;
        }
        ["export", state, file, format] => {
            let format = match format {
                "raw" => DiskFormat::Raw,
                "qcow2" => DiskFormat::Qcow2,
                other => bail!("format {other:?}: raw or qcow2"),
            };
            let block = open(Path::new(state))?;
            let e = block.export(&ExportRequest {
                file: PathBuf::from(file),
                format,
                allow: "127.0.0.1".parse()?,
            })?;
            println!("nbd://{}:{}/{} {}", e.host, e.port, e.name, e.name);
        }
        ["unexport", state, name] => open(Path::new(state))?.unexport(name)?,
        _ => bail!(
            "usage: block overlay-times RUNS BASE… | overlay BASE DEST | export STATE_DIR FILE FORMAT | unexport STATE_DIR NAME"
        ),
    }
    Ok(())
}
