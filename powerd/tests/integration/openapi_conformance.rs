//! powerd tried by a tool that reads its spec: schemathesis (PyPI, installed by
//! scripts/install-prereqs.sh) generates requests from the served `/openapi.json` and checks
//! every response against it — no 5xx, status codes, content types, bodies and headers as
//! documented — plus `auth_is_enforced` (tests/schemathesis/powerd_hooks.py): without the
//! valid token every call is a 401 (reads too, unless reads are open), with it never.
//!
//! `make api-fuzz` runs the same test with many more examples (PIFOUNDRY_SCHEMATHESIS_EXAMPLES).

use std::path::{Path, PathBuf};

use crate::support::{Fixture, TOKEN};

const DEFAULT_EXAMPLES: &str = "25";

fn schemathesis() -> PathBuf {
    let path = std::env::var_os("PIFOUNDRY_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/cache/pifoundry/tools/schemathesis/bin/schemathesis".into());
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/install-prereqs.sh api` (make test does)",
        path.display()
    );
    path
}

/// Runs schemathesis against `url` (the daemon's base URL) with `--checks all`; panics with
/// its report unless it found nothing.
async fn run_schemathesis(url: &str, token: Option<&str>, open_reads: bool, work: &Path) {
    let examples = std::env::var("PIFOUNDRY_SCHEMATHESIS_EXAMPLES")
        .unwrap_or_else(|_| DEFAULT_EXAMPLES.to_string());
    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis");
    let mut cmd = tokio::process::Command::new(schemathesis());
    cmd.arg("run")
        .arg(format!("{url}/openapi.json"))
        .args(["--checks", "all", "--workers", "1"])
        // POST /v1/images takes any bytes by its schema, but only a bootable disk image is
        // stored (400 bad_image otherwise), which no schema can say; a per-operation
        // exclusion in schemathesis.toml was not honoured, so the check is off for all.
        // The stateful phase attaches a disk it just created to a VM id it made up: powerd
        // answers 404 vm_not_found (the VM in the body), which ensure_resource_availability
        // reads as the disk in the path having vanished.
        .args([
            "--exclude-checks",
            "positive_data_acceptance,ensure_resource_availability",
        ])
        .args(["--max-examples", &examples])
        .args(["--request-timeout", "30"])
        // its .hypothesis database and reports stay out of the source tree
        .current_dir(work)
        .env("PYTHONPATH", &hooks)
        .env("SCHEMATHESIS_HOOKS", "powerd_hooks")
        .env("POWERD_TEST_TOKEN", TOKEN)
        .env("POWERD_TEST_OPEN_READS", if open_reads { "1" } else { "0" })
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    if let Some(t) = token {
        cmd.args(["--header", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd.output().await.expect("schemathesis runs");
    let report = String::from_utf8_lossy(&out.stdout);
    let what = match (token, open_reads) {
        (Some(_), _) => "with the token",
        (None, false) => "without a token",
        (None, true) => "without a token, open reads",
    };
    assert!(
        out.status.success(),
        "schemathesis {what} found problems ({}):\n{report}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = report
        .lines()
        .rev()
        .find(|l| l.contains("generated"))
        .unwrap_or("");
    println!("schemathesis {what}: {}", summary.trim());
}

const OUTLETS: &str =
    "outlets:\n  - {id: n1, backend: sim}\n  - {id: node-2.rack_a, backend: sim}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_with_and_without_the_token() {
    let fx = Fixture::new();
    // with provisioning: its routes really run (on empty inventories)
    let cfg = fx.config(&format!("{OUTLETS}{}", crate::support::prov::section(&fx)));
    let server = fx.start(&cfg).await;
    let work = fx.path("schemathesis");
    std::fs::create_dir_all(&work).unwrap();
    let url = server.running.url();
    run_schemathesis(&url, Some(TOKEN), false, &work).await;
    run_schemathesis(&url, None, false, &work).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_with_open_reads_still_needs_the_token_to_mutate() {
    let fx = Fixture::new();
    let d = fx.dir.path().display();
    let cfg = fx.config(&format!(
        "auth: {{token_file: {d}/tokens, open_reads: true}}\n{OUTLETS}"
    ));
    let server = fx.start(&cfg).await;
    let work = fx.path("schemathesis");
    std::fs::create_dir_all(&work).unwrap();
    run_schemathesis(&server.running.url(), None, true, &work).await;
    server.stop().await;
}
