//! powerd under load and faults: many concurrent clients, a backend that hangs or fails, a full
//! disk under the state file. Each test asserts behaviour (no error, consistent state, a clear
//! error and the last good state kept); latency is printed for the record, never asserted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{Fixture, TOKEN};
use powerd_client::{Client, Credentials};
use powerd_client::{Method, StatusCode};
use serde_json::{Value, json};

/// A small deterministic generator (xorshift), so each client's mix is reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn state_file(fx: &Fixture) -> Value {
    serde_json::from_slice(&std::fs::read(fx.path("state/state.json")).unwrap()).unwrap()
}

fn audit_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every audit line is whole JSON"))
        .collect()
}

const CLIENTS: usize = 50;
const REQUESTS_PER_CLIENT: usize = 40;
const OUTLETS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_mixing_reads_and_power_changes() {
    let fx = Fixture::new();
    let outlets: String = (0..OUTLETS)
        .map(|i| format!("  - {{id: n{i}, backend: sim}}\n"))
        .collect();
    let srv = fx.start(&fx.config(&format!("outlets:\n{outlets}"))).await;
    let url = srv.running.url();
    // Bounded in count and in time: each client stops at its count or at the deadline.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let client = Client::new(&url, Credentials::Bearer(TOKEN.into())).unwrap();
        tasks.spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (c as u64 + 1));
            let mut results = Vec::new();
            for _ in 0..REQUESTS_PER_CLIENT {
                if Instant::now() > deadline {
                    break;
                }
                let id = format!("n{}", rng.below(OUTLETS as u64));
                let (method, path, body) = match rng.below(10) {
                    0..=3 => (Method::GET, "/v1/outlets".to_string(), None),
                    4..=5 => (Method::GET, format!("/v1/outlets/{id}"), None),
                    6..=8 => {
                        let state = if rng.below(2) == 0 { "on" } else { "off" };
                        (
                            Method::PUT,
                            format!("/v1/outlets/{id}/power"),
                            Some(json!({ "state": state })),
                        )
                    }
                    _ => (Method::POST, format!("/v1/outlets/{id}/cycle"), None),
                };
                let started = Instant::now();
                let r = client.call(method.clone(), &path, body.as_ref()).await;
                let took = started.elapsed();
                results.push((method, path, r.map(|r| r.status), took));
            }
            results
        });
    }
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    let (mut reads, mut changes) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        for (method, path, status, took) in done.unwrap() {
            if method == Method::GET {
                reads += 1;
            } else {
                changes += 1;
            }
            latencies.push(took);
            match status {
                Ok(StatusCode::OK) => {}
                other => failures.push(format!("{method} {path}: {other:?}")),
            }
        }
    }
    assert!(failures.is_empty(), "errors under load: {failures:#?}");
    assert_eq!(
        latencies.len(),
        CLIENTS * REQUESTS_PER_CLIENT,
        "deadline hit"
    );
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "powerd load: {CLIENTS} clients, {reads} reads + {changes} power changes, p50 {:?}, p99 {:?}, max {:?} (debug build, sim backend, fsync'd state file)",
        pct(0.50),
        pct(0.99),
        latencies.last().unwrap()
    );

    // Consistent: the API, the switches, the state file and the audit log agree.
    let api = srv.call(Method::GET, "/v1/outlets", None).await.json();
    let file = state_file(&fx);
    let audit = audit_lines(&fx.path("audit.log"));
    let switched = srv.running.app.sim.transitions();
    assert_eq!(audit.len(), switched.len(), "one audit line per switch");
    let mut last_audit: BTreeMap<String, String> = BTreeMap::new();
    for line in &audit {
        last_audit.insert(
            line["outlet"].as_str().unwrap().into(),
            line["state"].as_str().unwrap().into(),
        );
    }
    for o in api["outlets"].as_array().unwrap() {
        let id = o["id"].as_str().unwrap();
        let level = srv.running.app.sim.level(id).map(|s| s.to_string());
        assert_eq!(
            level.as_deref().unwrap_or("off"),
            o["state"],
            "{id}: switch vs API"
        );
        if let Some(rec) = file["outlets"].get(id) {
            assert_eq!(rec["state"], o["state"], "{id}: state file vs API");
            assert_eq!(rec["changed_at"], o["changed_at"], "{id}");
            assert_eq!(last_audit[id], o["state"], "{id}: audit log vs API");
        } else {
            assert_eq!(o["state"], "off", "{id} switched but not in the state file");
        }
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_or_failing_backend_leaves_the_others_responsive() {
    let fx = Fixture::new();
    let d = fx.dir.path().display();
    let cfg = fx.config(&format!(
        "outlets:\n  - {{id: hang, backend: command, on: 'touch {d}/hang.started; sleep 30', off: 'true', timeout: 8s}}\n  - {{id: fail, backend: command, on: 'echo relay jammed >&2; exit 1', off: 'true'}}\n  - {{id: a, backend: sim}}\n  - {{id: b, backend: sim}}\n"
    ));
    let srv = fx.start(&cfg).await;
    let client = srv.client.clone();
    let hanging = tokio::spawn(async move {
        client
            .call(
                Method::PUT,
                "/v1/outlets/hang/power",
                Some(&json!({"state": "on"})),
            )
            .await
            .unwrap()
    });
    while !fx.path("hang.started").exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // While `hang` is stuck in its command, everything else answers.
    for i in 0..20 {
        let id = if i % 2 == 0 { "a" } else { "b" };
        let state = if i % 4 < 2 { "on" } else { "off" };
        let r = srv.power(id, state).await;
        assert_eq!(r.status, StatusCode::OK, "{id} {state}");
        let r = srv.call(Method::GET, "/v1/outlets/hang", None).await;
        assert_eq!(
            (r.status, r.json()["state"].as_str()),
            (StatusCode::OK, Some("off"))
        );
        let r = srv.power("fail", "on").await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY);
        assert_eq!(r.json()["error"]["code"], "backend_failed");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("relay jammed")
        );
    }
    assert!(
        !hanging.is_finished(),
        "the hanging command finished early: the test proves nothing"
    );
    let r = hanging.await.unwrap();
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timed out after 8s"),
        "{}",
        r.json()
    );
    // State consistent: the failed outlets are off everywhere, the others as last commanded.
    let api = srv.call(Method::GET, "/v1/outlets", None).await.json();
    let states: Vec<(&str, &str)> = api["outlets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["id"].as_str().unwrap(), o["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [("hang", "off"), ("fail", "off"), ("a", "off"), ("b", "off")]
    );
    let file = state_file(&fx);
    assert!(file["outlets"].get("hang").is_none());
    assert!(file["outlets"].get("fail").is_none());
    assert_eq!(file["outlets"]["a"]["state"], "off");
    let audit = audit_lines(&fx.path("audit.log"));
    assert!(
        audit
            .iter()
            .all(|l| l["outlet"] == "a" || l["outlet"] == "b")
    );
    assert_eq!(audit.len(), 20);
    srv.stop().await;
}

/// A tmpfs of a few pages mounted for one test, unmounted when dropped (even on failure).
struct SmallTmpfs(PathBuf);

impl SmallTmpfs {
    fn mount(at: PathBuf, bytes: usize) -> SmallTmpfs {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test mounts a tmpfs: run it as root (make test does)"
        );
        std::fs::create_dir_all(&at).unwrap();
        nix::mount::mount(
            Some("pifoundry-test-tmpfs"),
            &at,
            Some("tmpfs"),
            nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
            Some(format!("size={bytes},mode=0700").as_str()),
        )
        .expect("mount tmpfs");
        SmallTmpfs(at)
    }

    /// Writes a filler file until the filesystem is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = [0u8; 512];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        path
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gives_a_clear_error_and_keeps_the_last_good_state() {
    let fx = Fixture::new();
    let disk = SmallTmpfs::mount(fx.path("state"), 64 * 1024);
    let cfg = fx.config(
        "outlets:\n  - {id: a, backend: sim}\n  - {id: b, backend: sim}\n  - {id: c, backend: sim}\n",
    );
    let cfg = powerd::config::Config {
        audit_log: fx.path("state/audit.log"),
        ..cfg
    };
    let srv = fx.start(&cfg).await;
    assert_eq!(srv.power("a", "on").await.status, StatusCode::OK);
    let good = std::fs::read(fx.path("state/state.json")).unwrap();

    let filler = disk.fill();
    for id in ["b", "c"] {
        let r = srv.power(id, "on").await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{id}");
        let e = r.json();
        assert_eq!(e["error"]["code"], "state_not_saved");
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(
            msg.starts_with(&format!(
                "outlet {id}: switched, but the state was not saved: "
            )),
            "{msg}"
        );
        assert!(msg.contains("No space left on device"), "{msg}");
        assert!(
            msg.contains(&fx.path("state").display().to_string()),
            "{msg}"
        );
    }
    // The last good state file is still there, whole; no temp file is left beside it.
    assert_eq!(std::fs::read(fx.path("state/state.json")).unwrap(), good);
    let mut names: Vec<String> = std::fs::read_dir(fx.path("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["audit.log", "filler", "state.json"]);
    for line in audit_lines(&fx.path("state/audit.log")) {
        assert!(line["outlet"].is_string());
    }

    // Space again: the next change saves the whole truth (b and c were switched on).
    std::fs::remove_file(filler).unwrap();
    assert_eq!(srv.power("a", "off").await.status, StatusCode::OK);
    let file = state_file(&fx);
    for (id, state) in [("a", "off"), ("b", "on"), ("c", "on")] {
        assert_eq!(file["outlets"][id]["state"], state, "{id}");
    }
    srv.stop().await;
    // And a restart reads it.
    let srv = fx.start(&cfg).await;
    let api = srv.call(Method::GET, "/v1/outlets", None).await.json();
    let states: Vec<&str> = api["outlets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["off", "on", "on"]);
    srv.stop().await;
    drop(disk);
}
