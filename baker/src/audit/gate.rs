//! The bake's audit gate: audit a root file system, accept the findings a recipe's
//! `audit.allow` list names (with their reasons), write the report and fail on anything else.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobMatcher};
use pifoundry_util::{Arch, PathError};
use serde::{Deserialize, Serialize};

use super::{AuditError, AuditReport, Severity};

/// `audit:` in a stemcell recipe — findings the bake accepts, each with the reason it is safe.
/// Every other audit error fails the bake, and so does an entry that no longer matches any
/// error.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditPolicy {
    #[serde(default)]
    pub allow: Vec<AllowEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowEntry {
    /// Glob over the finding's path relative to the root (`*` also crosses `/`).
    pub path: String,
    pub reason: String,
}

/// An `audit.allow` entry that cannot be used; `field` is its path in the recipe.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PolicyError {
    pub field: String,
    pub message: String,
}

impl AuditPolicy {
    /// `(matcher, reason)` per entry, in order.
    pub fn compile(&self) -> Result<Vec<(GlobMatcher, String)>, PolicyError> {
        self.allow
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let bad = |key: &str, message: String| PolicyError {
                    field: format!("audit.allow[{i}].{key}"),
                    message,
                };
                if a.reason.trim().is_empty() {
                    return Err(bad("reason", "must not be empty".into()));
                }
                if a.path.trim().is_empty() || a.path.starts_with('/') {
                    return Err(bad(
                        "path",
                        format!("`{}` must be a non-empty glob relative to the root", a.path),
                    ));
                }
                let m = Glob::new(&a.path)
                    .map_err(|e| bad("path", format!("bad glob {:?}: {e}", a.path)))?
                    .compile_matcher();
                Ok((m, a.reason.trim().to_string()))
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Write(PathError),
    #[error(
        "audit: {count} error(s) no `audit.allow` entry accepts, first {path}: {message} (see {})",
        report.display()
    )]
    Findings {
        count: usize,
        path: String,
        message: String,
        report: PathBuf,
    },
    #[error(
        "audit.allow[{index}] `{pattern}` matches no audit error: remove the stale entry (see {})",
        report.display()
    )]
    Stale {
        index: usize,
        pattern: String,
        report: PathBuf,
    },
}

/// Audits `root`, applies `policy` and writes the table to `report_path` (also on failure).
pub fn gate(
    root: &Path,
    target: Arch,
    policy: &AuditPolicy,
    report_path: &Path,
) -> Result<AuditReport, GateError> {
    let allow = policy.compile()?;
    let mut report = super::audit_path(root, target)?;
    let stale = report.allow(&allow);
    let mut text = report.render_table();
    for &i in &stale {
        let _ = writeln!(
            text,
            "stale: audit.allow[{i}] `{}` matches no audit error",
            policy.allow[i].path
        );
    }
    pifoundry_util::atomic::write(report_path, text.as_bytes()).map_err(GateError::Write)?;
    let mut errors: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    errors.sort_by(|a, b| a.path.cmp(&b.path));
    if let Some(first) = errors.first() {
        return Err(GateError::Findings {
            count: errors.len(),
            path: first.path.clone(),
            message: first.message.clone(),
            report: report_path.to_path_buf(),
        });
    }
    if let Some(&index) = stale.first() {
        return Err(GateError::Stale {
            index,
            pattern: policy.allow[index].path.clone(),
            report: report_path.to_path_buf(),
        });
    }
    Ok(report)
}
