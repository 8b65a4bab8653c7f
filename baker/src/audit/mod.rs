//! `baker audit`: finds binaries in a release, a blob or a root file system that cannot run
//! on the target Pi.
//!
//! Every ELF file is classified ([`elf::ElfInfo`]) and judged against the target [`Arch`]:
//! - `armv6l` (ARM1176, Pi Zero/1): anything not 32-bit little-endian ARM is an error; so is
//!   ARM code whose Tag_CPU_arch is above v6KZ/v6K (v6T2, v7, v8, M-profiles) or that needs
//!   more than VFPv2 or any NEON, and Go with GOARCH≠arm or GOARM≥7. armhf is fine on its own
//!   (Raspbian is armhf for v6), but armhf built for v7 (Debian armhf) fails the level check.
//! - `arm64` (and `amd64`): code for another machine is an error; Go with another GOARCH is
//!   an error.
//!
//! Archives that are corrupt, truncated or unsafe are errors: they may hide code the audit did
//! not see. Archives it deliberately skips (zstd, zips with data descriptors) and ARM
//! code whose level is unknown are warnings.

pub mod elf;
mod gate;
mod walk;

use std::fmt::Write as _;
use std::path::Path;

use pifoundry_util::{Arch, PathError};
use rayon::prelude::*;
use serde::Serialize;

pub use elf::{ElfInfo, GoInfo};
pub use gate::{AllowEntry, AuditPolicy, GateError, PolicyError, gate};

/// ELF files larger than this are judged by their header alone. 64 MiB covers every binary
/// of a Go toolchain while keeping the audit inside a rewrite's memory budget.
pub const DEFAULT_ELF_CAP: u64 = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    /// An error that a recipe's allow-list accepts, with its reason.
    Allowed,
    Warning,
    Error,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Allowed => "allowed",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Nested paths join archive and member with `!/`: `packages/x.tgz!/bin/foo`.
    pub path: String,
    pub severity: Severity,
    pub elf: Option<ElfInfo>,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub target: Arch,
    pub files: u64,
    pub elf_files: u64,
    pub archives: u64,
    /// One per ELF file, plus one per unreadable file or archive.
    pub findings: Vec<Finding>,
}

/// The path to audit cannot be read at all.
#[derive(Debug, thiserror::Error)]
#[error("audit {0}")]
pub struct AuditError(PathError);

/// Audits a directory tree, an archive (release tarball, blob) or a single file.
pub fn audit_path(path: &Path, target: Arch) -> Result<AuditReport, AuditError> {
    audit_path_with_cap(path, target, DEFAULT_ELF_CAP)
}

pub fn audit_path_with_cap(path: &Path, target: Arch, cap: u64) -> Result<AuditReport, AuditError> {
    let cap = cap.max(64);
    let meta = std::fs::metadata(path).map_err(|e| AuditError(PathError::new(path, e)))?;
    let mut report = AuditReport::empty(target);
    if !meta.is_dir() {
        let name = path.display().to_string();
        walk::Walker {
            sink: &mut report,
            cap,
        }
        .walk_file(&name, path, true);
        return Ok(report);
    }
    // A tree (a root file system) has many independent files: audit them in parallel and
    // merge the partial reports in walk order.
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(path)
        .follow_links(false)
        .sort_by_file_name()
    {
        match entry {
            Ok(e) if e.file_type().is_file() => {
                let rel = e.path().strip_prefix(path).unwrap_or(e.path());
                files.push((rel.to_string_lossy().into_owned(), e.into_path()));
            }
            Ok(_) => {}
            Err(e) => {
                let p = e.path().unwrap_or(path).display().to_string();
                walk::Sink::unreadable(&mut report, &p, e.to_string());
            }
        }
    }
    let parts: Vec<AuditReport> = files
        .par_iter()
        .map(|(rel, abs)| {
            let mut part = AuditReport::empty(target);
            walk::Walker {
                sink: &mut part,
                cap,
            }
            .walk_file(rel, abs, false);
            part
        })
        .collect();
    for part in parts {
        report.files += part.files;
        report.elf_files += part.elf_files;
        report.archives += part.archives;
        report.findings.extend(part.findings);
    }
    Ok(report)
}

impl walk::Sink for AuditReport {
    fn file(&mut self, path: &str, head: &[u8], is_elf: bool, truncated: bool) {
        self.files += 1;
        if !is_elf {
            return;
        }
        self.elf_files += 1;
        let info = if truncated {
            elf::classify_header(head)
        } else {
            elf::classify(head)
        };
        let (mut severity, mut message) = match &info {
            Some(info) => judge(info, self.target, truncated),
            None => (
                Severity::Warning,
                "ELF magic but unreadable header".to_string(),
            ),
        };
        if severity == Severity::Error
            && let Some(other) = go_object_for_other_platform(path, self.target)
        {
            severity = Severity::Warning;
            message = format!("Go object for {other}, never linked for {}", self.target);
        }
        self.push(path, severity, info, message);
    }

    fn archive(&mut self, _path: &str) {
        self.archives += 1;
    }

    fn unreadable(&mut self, path: &str, why: String) {
        let message = format!("unreadable, not inspected: {why}");
        self.push(path, Severity::Error, None, message);
    }

    fn skipped(&mut self, path: &str, why: String) {
        self.push(path, Severity::Warning, None, why);
    }
}

impl AuditReport {
    /// Records a finding; errors under `testdata/` are downgraded (see [`is_test_data`]).
    fn push(&mut self, path: &str, severity: Severity, elf: Option<ElfInfo>, message: String) {
        let (severity, message) = if severity == Severity::Error && is_test_data(path) {
            (
                Severity::Warning,
                format!("test data, never executed: {message}"),
            )
        } else {
            (severity, message)
        };
        self.findings.push(Finding {
            path: path.to_string(),
            severity,
            elf,
            message,
        });
    }
}

/// Toolchains ship foreign ELF files and broken archives as parser fixtures (Go:
/// `src/debug/elf/testdata/`, `src/archive/tar/testdata/`); they are data, so they warn instead
/// of failing the audit. A `testdata` directory anywhere in the path counts: whatever is
/// inside an archive kept under `testdata/` is test data too.
fn is_test_data(path: &str) -> bool {
    path.split(['/', '!']).any(|c| c == "testdata")
}

const GOOS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
    "zos",
];
const GOARCH: &[&str] = &[
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle", "ppc64",
    "ppc64le", "riscv64", "s390x", "wasm",
];

/// Go links a `.syso` object only when its file-name constraint (`x_GOOS_GOARCH.syso`,
/// `x_GOARCH.syso`) matches the build, so Go source trees carry objects for every platform
/// (`src/runtime/race/race_linux_amd64.syso`). Returns the platform when it is not the target's.
fn go_object_for_other_platform(path: &str, target: Arch) -> Option<String> {
    let name = path.rsplit(['/', '!']).next()?.strip_suffix(".syso")?;
    let mut parts = name.rsplit('_');
    let arch = parts.next().filter(|a| GOARCH.contains(a))?;
    let os = parts.next().filter(|o| GOOS.contains(o));
    let want = target.goarch();
    let platform = os.map_or(arch.to_string(), |os| format!("{os}/{arch}"));
    (arch != want || os.is_some_and(|os| os != "linux")).then_some(platform)
}

/// The policy: can this binary run on the target?
pub fn judge(info: &ElfInfo, target: Arch, header_only: bool) -> (Severity, String) {
    use Severity::*;
    let go = info.go.as_ref();
    match target {
        Arch::Arm64 | Arch::Amd64 => {
            if info.machine != elf::machine_name(target.e_machine()) {
                return (
                    Error,
                    format!("{} code cannot run on {target}", describe_machine(info)),
                );
            }
            if let Some(arch) = go.and_then(|g| g.goarch.as_deref())
                && arch != target.goarch()
            {
                return (Error, format!("Go binary built for GOARCH={arch}"));
            }
        }
        Arch::Armv6l => {
            if !info.is_arm32() {
                return (
                    Error,
                    format!("{} code cannot run on armv6l", describe_machine(info)),
                );
            }
            if info.big_endian {
                return (Error, "big-endian ARM cannot run on armv6l".into());
            }
            if let Some(g) = go {
                match (g.goarch.as_deref(), g.goarm) {
                    (Some(a), _) if a != target.goarch() => {
                        return (Error, format!("Go binary built for GOARCH={a}"));
                    }
                    (Some(_), Some(v)) if v >= 7 => {
                        return (
                            Error,
                            format!("Go binary built with GOARM={v}; needs GOARM=6"),
                        );
                    }
                    (Some(_), Some(_)) => {}
                    _ if info.cpu_arch.is_none() => {
                        return (Warning, "Go binary without GOARM in its build info".into());
                    }
                    _ => {}
                }
            }
            // The ARM1176 has VFPv2 and no NEON.
            let mut needs = Vec::new();
            if let Some(fp) = info.fp_arch.filter(|&fp| fp > 2) {
                needs.push(format!("{} floating point", elf::fp_arch_name(fp)));
            }
            if info.simd_arch.is_some_and(|s| s > 0) {
                needs.push("NEON".to_string());
            }
            if !needs.is_empty() {
                return (
                    Error,
                    format!(
                        "needs {}; ARM1176 has VFPv2 and no NEON",
                        needs.join(" and ")
                    ),
                );
            }
            match info.cpu_arch {
                Some(v) if !elf::runs_on_armv6(v) => {
                    let abi = info.abi.as_deref().unwrap_or("arm");
                    return (
                        Error,
                        format!(
                            "{abi} code for ARM {} cannot run on ARM1176 (ARMv6KZ)",
                            elf::cpu_arch_name(v)
                        ),
                    );
                }
                Some(_) => {}
                None if go.is_some_and(|g| g.goarm.is_some()) => {}
                None if header_only => {
                    return (
                        Warning,
                        "ARM level unknown: file larger than the audit cap".into(),
                    );
                }
                None => return (Warning, "ARM level unknown: no .ARM.attributes".into()),
            }
        }
    }
    (Ok, String::new())
}

fn describe_machine(info: &ElfInfo) -> String {
    match info.machine.as_str() {
        "arm" => "32-bit ARM".into(),
        m => m.into(),
    }
}

impl AuditReport {
    fn empty(target: Arch) -> Self {
        Self {
            target,
            files: 0,
            elf_files: 0,
            archives: 0,
            findings: Vec::new(),
        }
    }

    /// Turns every error whose path matches one of `allow` (`(glob, reason)`, first match
    /// wins) into [`Severity::Allowed`]. Returns the indexes of entries that matched no error:
    /// a stale entry would silently accept a future regression.
    pub fn allow(&mut self, allow: &[(globset::GlobMatcher, String)]) -> Vec<usize> {
        let mut used = vec![false; allow.len()];
        for f in &mut self.findings {
            if f.severity != Severity::Error {
                continue;
            }
            if let Some(i) = allow.iter().position(|(m, _)| m.is_match(&f.path)) {
                used[i] = true;
                f.severity = Severity::Allowed;
                f.message = format!("allowed ({}): {}", allow[i].1, f.message);
            }
        }
        (0..allow.len()).filter(|&i| !used[i]).collect()
    }

    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }
    pub fn warnings(&self) -> usize {
        self.count(Severity::Warning)
    }
    fn count(&self, s: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == s).count()
    }

    /// A row per finding, errors first, then a one-line summary.
    pub fn render_table(&self) -> String {
        let mut rows: Vec<&Finding> = self.findings.iter().collect();
        rows.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.path.cmp(&b.path)));
        let cells: Vec<[String; 7]> = rows.iter().map(|f| row(f)).collect();
        let header = ["SEVERITY", "MACHINE", "ABI", "ARM", "GO", "PATH", "NOTE"].map(String::from);
        let mut widths = header.clone().map(|h| h.len());
        for c in &cells {
            for (w, cell) in widths.iter_mut().zip(c) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for c in std::iter::once(&header).chain(&cells) {
            let mut line = String::new();
            for (i, cell) in c.iter().enumerate() {
                if i + 1 == c.len() {
                    line.push_str(cell);
                } else {
                    let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    pub fn summary(&self) -> String {
        format!(
            "audit for {}: {} files, {} ELF, {} nested archives: {} error(s), {} warning(s){}",
            self.target,
            self.files,
            self.elf_files,
            self.archives,
            self.errors(),
            self.warnings(),
            match self.count(Severity::Allowed) {
                0 => String::new(),
                n => format!(", {n} allowed"),
            }
        )
    }
}

/// `v6`, `v6 VFPv3`, `v7 VFPv3-D16 NEON`: what the code needs beyond the baseline.
fn arm_level(e: &ElfInfo) -> Option<String> {
    let mut s = e.cpu_arch_name()?.to_string();
    if let Some(fp) = e.fp_arch.filter(|&fp| fp > 2) {
        s.push(' ');
        s.push_str(elf::fp_arch_name(fp));
    }
    if e.simd_arch.is_some_and(|v| v > 0) {
        s.push_str(" NEON");
    }
    Some(s)
}

fn row(f: &Finding) -> [String; 7] {
    let dash = || "-".to_string();
    let (machine, abi, arm, go) = match &f.elf {
        Some(e) => (
            format!(
                "{}/{}{}",
                e.machine,
                e.class,
                if e.big_endian { "be" } else { "" }
            ),
            e.abi.clone().unwrap_or_else(dash),
            arm_level(e).unwrap_or_else(dash),
            e.go.as_ref().map_or_else(dash, |g| {
                let mut s = g.goarch.clone().unwrap_or_else(|| "go".into());
                if let Some(v) = g.goarm {
                    let _ = write!(s, " GOARM={v}");
                }
                s
            }),
        ),
        None => (dash(), dash(), dash(), dash()),
    };
    [
        f.severity.as_str().into(),
        machine,
        abi,
        arm,
        go,
        f.path.clone(),
        f.message.clone(),
    ]
}
