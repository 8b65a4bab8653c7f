//! The bake engine: runs a stemcell recipe's stages in order, each from the stage cache
//! when its key (its definition, its inputs and the previous key) is unchanged. What a stage
//! kind is and does lives in [`stages`], one file per kind.

pub mod cache;
pub mod chroot;
mod key;
pub mod stages;
mod workdir;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use pifoundry_util::PathError;
use pifoundry_util::error::at;
use serde::Serialize;

use cache::StageCache;
use stages::{Ctx, Stage, StageError};

use crate::blobs::{BlobError, Blobs};
use crate::recipe::RecipeError;
use crate::recipe::stemcell::StemcellRecipe;

#[derive(Debug, thiserror::Error)]
pub enum BakeError {
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("stage `{stage}` ({kind}): {error}")]
    Stage {
        stage: String,
        kind: &'static str,
        error: Box<StageError>,
    },
    #[error(
        "stage `{stage}`: blob `{key}` is not available ({error}); record it with `baker lock add {key} <url>` or point PIFOUNDRY_MIRROR at a mirror that holds it"
    )]
    Blob {
        stage: String,
        key: String,
        error: Box<BlobError>,
    },
    #[error("--from {0}: no such stage in the recipe (stages: {1})")]
    UnknownFrom(String, String),
    #[error("interrupted before stage `{0}`")]
    Interrupted(String),
}

impl BakeError {
    /// `error` as it happened in `stage`; a blob that is not there says how to get it.
    pub fn in_stage(stage: &Stage, error: StageError) -> Self {
        match error {
            StageError::Blob { key, error } => BakeError::Blob {
                stage: stage.name().into(),
                key,
                error,
            },
            error => BakeError::Stage {
                stage: stage.name().into(),
                kind: stage.kind(),
                error: Box::new(error),
            },
        }
    }
}

pub struct BakeOptions {
    pub recipe_path: PathBuf,
    /// Recipe paths (`files[].src`, `source.path`, `patches`) are relative to this.
    pub project_root: PathBuf,
    pub cache_dir: PathBuf,
    pub out_dir: PathBuf,
    /// Run this stage and every later one even if cached.
    pub from: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Its cached result was used (restored, or implied by a later restored stage).
    Cached,
    Ran,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    pub name: String,
    pub kind: &'static str,
    pub key: String,
    pub outcome: Outcome,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BakeReport {
    pub recipe: String,
    pub stages: Vec<StageReport>,
    /// The stemcell tarball, when the recipe has a `stemcell` stage.
    pub stemcell: Option<PathBuf>,
    pub seconds: f64,
}

impl BakeReport {
    pub fn ran(&self) -> Vec<&str> {
        self.stages
            .iter()
            .filter(|s| s.outcome == Outcome::Ran)
            .map(|s| s.name.as_str())
            .collect()
    }
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Makes SIGINT, SIGTERM and SIGHUP stop a bake between stages (children in the same
/// process group get Ctrl-C themselves and fail their stage) so that mounts are undone and
/// the work directory is removed instead of the process dying on the spot.
pub fn catch_interrupts() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

/// The project root of a recipe: the nearest ancestor holding `blobs.lock` or `.git`.
pub fn project_root_of(recipe: &Path) -> PathBuf {
    let abs = std::path::absolute(recipe).unwrap_or_else(|_| recipe.to_path_buf());
    abs.ancestors()
        .skip(1)
        .find(|d| d.join("blobs.lock").exists() || d.join(".git").exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| abs.parent().unwrap_or(Path::new(".")).to_path_buf())
}

pub fn bake(
    recipe: &StemcellRecipe,
    opts: &BakeOptions,
    blobs: &dyn Blobs,
) -> Result<BakeReport, BakeError> {
    let started = Instant::now();
    let keys = key::stage_keys(recipe, &opts.project_root, blobs)?;
    let from = match &opts.from {
        None => recipe.stages.len(),
        Some(name) => recipe.stage_index(name).ok_or_else(|| {
            let names: Vec<_> = recipe.stages.iter().map(Stage::name).collect();
            BakeError::UnknownFrom(name.clone(), names.join(", "))
        })?,
    };
    let cache = StageCache::open(&opts.cache_dir)?;
    let hit = (0..from)
        .rev()
        .filter(|&i| recipe.stages[i].mutates_rootfs())
        .find_map(|i| cache.lookup(&keys[i]).map(|snap| (i, snap)));
    let first = hit.as_ref().map_or(0, |(i, _)| i + 1);

    // fail before the long stages, not after them
    for stage in &recipe.stages[first..] {
        for key in stage.def().blobs() {
            blobs.get(key).map_err(|error| BakeError::Blob {
                stage: stage.name().into(),
                key: key.into(),
                error: Box::new(error),
            })?;
        }
    }

    fs::create_dir_all(&opts.out_dir).map_err(at(&opts.out_dir))?;
    let logs = opts.out_dir.join("logs");
    fs::create_dir_all(&logs).map_err(at(&logs))?;
    workdir::sweep(cache.dir());
    let work = workdir::WorkDir::new(cache.dir())?;
    let rootfs = work.path().join("rootfs");
    let mut reports = Vec::new();
    if let Some((i, snap)) = &hit {
        let t = Instant::now();
        cache::restore(snap, &rootfs).map_err(|e| BakeError::in_stage(&recipe.stages[*i], e))?;
        tracing::info!(
            "[{}/{}] {} ({}): cached, restored in {:.1}s",
            i + 1,
            recipe.stages.len(),
            recipe.stages[*i].name(),
            recipe.stages[*i].kind(),
            t.elapsed().as_secs_f64()
        );
        for (j, stage) in recipe.stages[..=*i].iter().enumerate() {
            reports.push(StageReport {
                name: stage.name().into(),
                kind: stage.kind(),
                key: keys[j].clone(),
                outcome: Outcome::Cached,
                seconds: 0.0,
            });
        }
    }
    let mut ctx = Ctx {
        header: recipe.header(),
        audit: &recipe.audit,
        project_root: &opts.project_root,
        rootfs: &rootfs,
        work: work.path(),
        out: &opts.out_dir,
        blobs,
        log: PathBuf::new(),
        stemcell: None,
    };
    for (i, stage) in recipe.stages.iter().enumerate().skip(first) {
        if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(BakeError::Interrupted(stage.name().into()));
        }
        let t = Instant::now();
        tracing::info!(
            "[{}/{}] {} ({}): running",
            i + 1,
            recipe.stages.len(),
            stage.name(),
            stage.kind()
        );
        ctx.log = logs.join(format!("{:02}-{}.log", i + 1, stage.name()));
        let in_stage = |e| BakeError::in_stage(stage, e);
        stage.def().run(&mut ctx).map_err(in_stage)?;
        if stage.mutates_rootfs() {
            cache
                .store(&keys[i], stage.name(), stage.kind(), &rootfs)
                .map_err(in_stage)?;
        }
        let seconds = t.elapsed().as_secs_f64();
        tracing::info!(
            "[{}/{}] {} ({}): done in {seconds:.1}s",
            i + 1,
            recipe.stages.len(),
            stage.name(),
            stage.kind()
        );
        reports.push(StageReport {
            name: stage.name().into(),
            kind: stage.kind(),
            key: keys[i].clone(),
            outcome: Outcome::Ran,
            seconds,
        });
    }
    let report = BakeReport {
        recipe: opts.recipe_path.display().to_string(),
        stages: reports,
        stemcell: ctx.stemcell.clone(),
        seconds: started.elapsed().as_secs_f64(),
    };
    let path = opts.out_dir.join("bake-report.json");
    pifoundry_util::atomic::write(&path, &serde_json::to_vec_pretty(&report).expect("report"))?;
    Ok(report)
}
