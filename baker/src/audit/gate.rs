//! The bake's audit gate: audit a root file system, accept the findings a recipe's
//! `audit.allow` list names (with their reasons), write the report and fail on anything else.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{AuditError, AuditReport, Severity, Target};
use crate::recipe::stemcell::AuditPolicy;

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("{0}")]
    Policy(String),
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
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
    target: Target,
    policy: &AuditPolicy,
    report_path: &Path,
) -> Result<AuditReport, GateError> {
    let allow = policy.compile().map_err(GateError::Policy)?;
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
    crate::atomic::write(report_path, text.as_bytes()).map_err(|source| GateError::Write {
        path: report_path.to_path_buf(),
        source,
    })?;
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
