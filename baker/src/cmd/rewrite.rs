//! `rewrite-release`.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::audit;
use crate::blobs::{LocalBlobs, LockedBlobs, Overridden};
use crate::cmd::blobs::FetchArgs;
use crate::recipe::release::ReleaseRecipe;
use crate::release;
use crate::rewrite::{self, Summary};

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

/// `baker rewrite-release`: swap a release's architecture-specific blobs for ARM ones, as a
/// recipe says.
#[derive(clap::Args)]
pub struct RewriteArgs {
    pub release: PathBuf,
    /// recipes/releases/<name>.yml
    #[arg(long)]
    pub recipe: PathBuf,
    /// Output tarball (default: <name>-<version><suffix>.tgz here).
    #[arg(short, long)]
    pub out: Option<PathBuf>,
    /// A local file for a blobs.lock key, as KEY=FILE (repeatable); other keys come
    /// from the lock through the verified cache.
    #[arg(long = "blob", value_name = "KEY=FILE")]
    pub blobs: Vec<String>,
    /// The lock file
    #[arg(long, default_value = crate::blobs_lock::LOCK_FILE)]
    pub lock: PathBuf,
    #[command(flatten)]
    pub fetch: FetchArgs,
    /// Machine-readable summary.
    #[arg(long)]
    pub json: bool,
    /// Do not run the ELF audit on the output.
    #[arg(long)]
    pub no_audit: bool,
    /// Fail, removing the output, when the audit finds binaries that cannot run on the target.
    #[arg(long, conflicts_with = "no_audit")]
    pub strict: bool,
}

pub fn run(a: &RewriteArgs) -> Result<String> {
    let RewriteArgs {
        release: input,
        recipe,
        out,
        blobs,
        lock,
        fetch,
        json,
        no_audit,
        strict,
    } = a;
    let (json, no_audit, strict) = (*json, *no_audit, *strict);
    let (recipe, rules) = ReleaseRecipe::load(recipe)?;
    // `--blob KEY=FILE` first, then blobs.lock through the cache, read only for other keys
    let blobs = Overridden {
        local: local_blobs(blobs)?,
        fallback: LockedBlobs::lazy(lock, fetch.options()).for_target(recipe.target),
    };
    let out = match out {
        Some(o) => o.clone(),
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
    let audit = if no_audit {
        None
    } else {
        Some(audit::audit_path(&out, recipe.target)?)
    };
    if let Some(report) = audit.as_ref().filter(|r| strict && r.errors() > 0) {
        std::fs::remove_file(&out).with_context(|| out.display().to_string())?;
        let first = report
            .findings
            .iter()
            .find(|f| f.severity == audit::Severity::Error)
            .map(|f| format!("{}: {}", f.path, f.message))
            .unwrap_or_default();
        bail!(
            "--strict: the audit of {} found {} error(s), first {first}; output removed",
            out.display(),
            report.errors()
        );
    }
    if json {
        let v = serde_json::json!({ "rewrite": summary, "audit": audit });
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let mut text = human(&summary);
    if let Some(report) = &audit {
        for f in report
            .findings
            .iter()
            .filter(|f| f.severity == audit::Severity::Error)
        {
            let _ = writeln!(text, "  audit error: {}: {}", f.path, f.message);
        }
        let _ = writeln!(text, "  {}", report.summary());
    }
    Ok(text)
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
            if let Some(member) = &b.tgz_member {
                let _ = writeln!(o, "      a .tgz holding {} as member {member}", b.content);
            }
            if b.kept_name {
                let _ = writeln!(
                    o,
                    "      kept name {} no longer describes its content, {}",
                    b.old_path, b.content
                );
            }
            if let Some(v) = &b.version_change {
                let _ = writeln!(o, "      version change {v}");
            }
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
