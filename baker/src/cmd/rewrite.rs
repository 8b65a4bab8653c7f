//! `rewrite-release`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::recipe::release::ReleaseRecipe;
use crate::release;
use crate::rewrite::{self, LocalBlobs, Summary};

/// Parses `KEY=FILE` blob arguments.
pub fn local_blobs(args: &[String]) -> Result<LocalBlobs> {
    let mut blobs = LocalBlobs::default();
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            bail!("--blob {a}: expected KEY=FILE");
        };
        blobs.0.insert(k.to_string(), PathBuf::from(v));
    }
    Ok(blobs)
}

pub fn run(
    input: &Path,
    recipe: &Path,
    out: Option<&Path>,
    blobs: &[String],
    json: bool,
) -> Result<String> {
    let (recipe, rules) = ReleaseRecipe::load(recipe)?;
    let blobs = local_blobs(blobs)?;
    let out = match out {
        Some(o) => o.to_path_buf(),
        None => {
            let m = release::read_manifest(input)?;
            PathBuf::from(format!(
                "{}-{}{}.tgz",
                m.name, m.version, recipe.version_suffix
            ))
        }
    };
    let summary = rewrite::rewrite(input, &recipe, &rules, &blobs, &out)
        .with_context(|| format!("rewrite-release {}", input.display()))?;
    if json {
        return Ok(serde_json::to_string_pretty(&summary)? + "\n");
    }
    Ok(human(&summary))
}

fn human(s: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} {} -> {} ({}): {}",
        s.release,
        s.old_version,
        s.new_version,
        s.target,
        s.output.display()
    );
    for c in &s.changed {
        let _ = writeln!(o, "  package {}", c.package);
        let _ = writeln!(
            o,
            "    fingerprint {} -> {}",
            c.old_fingerprint, c.new_fingerprint
        );
        for b in &c.blobs {
            let _ = writeln!(
                o,
                "    blob    {} -> {} ({})",
                b.old_path, b.new_path, b.key
            );
        }
        for f in &c.patched {
            let _ = writeln!(o, "    patched {f}");
        }
        for f in &c.removed {
            let _ = writeln!(o, "    removed {f}");
        }
        for f in &c.added {
            let _ = writeln!(o, "    added   {f}");
        }
    }
    let _ = writeln!(o, "  {} archives copied unchanged", s.copied_archives);
    o
}
