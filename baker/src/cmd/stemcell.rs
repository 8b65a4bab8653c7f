//! `baker bake` and `baker inspect-stemcell`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::bake::{self, BakeOptions, cache::StageCache};
use crate::blobs::LockedBlobs;
use crate::blobs_lock::LOCK_FILE;
use crate::fetch::FetchOptions;
use crate::recipe::stemcell::StemcellRecipe;

pub fn bake(
    recipe: &Path,
    from: Option<String>,
    out: &Path,
    cache_dir: Option<PathBuf>,
) -> Result<String> {
    let r = StemcellRecipe::load(recipe)?;
    let project_root = bake::project_root_of(recipe);
    let blobs = LockedBlobs::load(&project_root.join(LOCK_FILE), FetchOptions::from_env())?;
    let opts = BakeOptions {
        project_root,
        recipe_path: recipe.to_path_buf(),
        cache_dir: cache_dir.unwrap_or_else(StageCache::default_dir),
        out_dir: out.to_path_buf(),
        from,
    };
    bake::catch_interrupts();
    let report = bake::bake(&r, &opts, &blobs)?;
    let mut s = String::new();
    for st in &report.stages {
        let outcome = match st.outcome {
            bake::Outcome::Cached => "cached",
            bake::Outcome::Ran => "ran",
        };
        let _ = writeln!(
            s,
            "{:<14} {:<10} {:<7} {:>7.1}s",
            st.name, st.kind, outcome, st.seconds
        );
    }
    if let Some(p) = &report.stemcell {
        let _ = writeln!(s, "stemcell: {}", p.display());
    }
    let _ = writeln!(s, "total: {:.1}s", report.seconds);
    Ok(s)
}

pub fn inspect(file: &Path, json: bool) -> Result<String> {
    let i = crate::stemcell::inspect(file)?;
    let mut s = String::new();
    if json {
        s = serde_json::to_string_pretty(&i)? + "\n";
    } else {
        s += &i.manifest.to_yaml();
        s += "---\n";
        for e in &i.entries {
            let _ = writeln!(s, "{:>12}  {}", e.size, e.name);
        }
        if let Some(c) = &i.image_content {
            let _ = writeln!(s, "image holds {} ({} bytes)", c.name, c.size);
        }
        let _ = writeln!(s, "packages: {}", i.packages);
    }
    if !i.sha1_matches {
        print!("{s}");
        bail!(
            "{}: image SHA-1 {} does not match stemcell.MF sha1 {}",
            file.display(),
            i.image_sha1,
            i.manifest.sha1
        );
    }
    Ok(s)
}
