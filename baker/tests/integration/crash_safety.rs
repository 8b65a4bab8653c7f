//! kill -9 at many points: `baker rewrite-release` and `baker fetch` are run as real
//! processes and SIGKILLed at moments spread over a measured uninterrupted run. After every
//! kill nothing partial is visible at the output path (it is absent, or whole and valid), and
//! the next run succeeds with no manual repair.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::busybox_recipe;
use sha2::{Digest, Sha256};

const BAKER: &str = env!("CARGO_BIN_EXE_baker");
const KILLS: u32 = 12;

/// The figure every test prints: kills tried, partial outputs seen, runs needing repair.
#[derive(Default)]
struct Tally {
    kills: u32,
    finished_before_kill: u32,
    partial: Vec<String>,
    repairs: Vec<String>,
    leftovers: usize,
}

impl Tally {
    fn report(&self, what: &str) {
        println!(
            "{what} kill -9: {} kills ({} runs finished first); partial outputs seen: {}; runs that needed manual repair: {}; hidden temp files left by kills: {}",
            self.kills,
            self.finished_before_kill,
            self.partial.len(),
            self.repairs.len(),
            self.leftovers
        );
        assert!(self.partial.is_empty(), "{:#?}", self.partial);
        assert!(self.repairs.is_empty(), "{:#?}", self.repairs);
        assert!(
            self.kills > self.finished_before_kill,
            "every run finished before its kill: the test proves nothing"
        );
    }
}

/// Runs `cmd` to the end and returns how long it took (the span the kills are spread over).
fn timed(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "uninterrupted run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

/// Starts `cmd`, SIGKILLs it after `after`; returns whether it had already finished.
fn kill_after(cmd: &mut Command, after: Duration) -> bool {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let finished = child.try_wait().unwrap().is_some();
    let _ = child.kill();
    child.wait().unwrap();
    finished
}

/// Files and directories beside `out` other than the ones named (temp files a kill left).
fn strays(dir: &Path, keep: &[&str]) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            !keep.contains(&name.to_string_lossy().as_ref())
        })
        .count()
}

fn verify(path: &Path) -> Result<(), String> {
    let out = Command::new(BAKER)
        .args(["verify-release"])
        .arg(path)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

const RECIPE: &str = r#"
release: synthetic
target: armv6l
version_suffix: "+pi.armv6l"
rules:
- packages: golang-1-linux
  files: "golang/go*.linux-amd64.tar.gz"
  replace: { blob: go-armv6l, path: "golang/go1.22.5.linux-{{arch}}.tar.gz" }
- packages: "golang-*"
  patch: { literal: linux-amd64, with: "linux-{{arch}}" }
"#;

#[test]
fn rewrite_release_killed_anywhere_leaves_no_partial_output() {
    let dir = tempfile::Builder::new()
        .prefix("baker-crash-rewrite-")
        .tempdir()
        .unwrap();
    let input = dir.path().join("in/synthetic.tgz");
    std::fs::create_dir_all(input.parent().unwrap()).unwrap();
    // Big enough that the rewrite streams for a while: a 24 MiB toolchain blob to swap out
    // and 8 MiB of other packages to copy through.
    baker::release::synth::synthesize(
        &input,
        &baker::release::synth::Spec {
            packages: 4,
            jobs: 2,
            blob_bytes: 32 << 20,
            golang_bytes: 24 << 20,
        },
    )
    .unwrap();
    let blob = dir.path().join("in/go-armv6l.tgz");
    let mut w = baker::archive::TarGzWriter::new(std::fs::File::create(&blob).unwrap());
    w.add_reader(
        "go/bin/go",
        baker::archive::Mode::Executable,
        12 << 20,
        &mut baker::release::synth::Noise::new(7, 12 << 20),
    )
    .unwrap();
    w.finish().unwrap();
    let recipe = dir.path().join("in/recipe.yml");
    std::fs::write(&recipe, RECIPE).unwrap();
    let outdir = dir.path().join("out");
    std::fs::create_dir_all(&outdir).unwrap();
    let out = outdir.join("synthetic-armv6l.tgz");
    let cmd = || {
        let mut c = Command::new(BAKER);
        c.arg("rewrite-release")
            .arg(&input)
            .arg("--recipe")
            .arg(&recipe)
            .arg("-o")
            .arg(&out)
            .arg("--blob")
            .arg(format!("go-armv6l={}", blob.display()))
            .arg("--no-audit")
            .env_remove("SOURCE_DATE_EPOCH");
        c
    };
    let span = timed(&mut cmd());
    let reference = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();

    let mut tally = Tally::default();
    for i in 0..KILLS {
        let after = span.mul_f64((f64::from(i) + 0.5) / f64::from(KILLS));
        tally.kills += 1;
        if kill_after(&mut cmd(), after) {
            tally.finished_before_kill += 1;
        }
        tally.leftovers += strays(&outdir, &["synthetic-armv6l.tgz"]);
        if out.exists() {
            // The rename happened before the kill: the output must be the whole release.
            match std::fs::read(&out) {
                Ok(bytes) if bytes == reference => {}
                Ok(_) => tally
                    .partial
                    .push(format!("kill {i} after {after:?}: output differs")),
                Err(e) => tally.partial.push(format!("kill {i}: {e}")),
            }
            std::fs::remove_file(&out).unwrap();
        }
        for e in std::fs::read_dir(&outdir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                std::fs::remove_dir_all(&p).unwrap();
            } else {
                std::fs::remove_file(&p).unwrap();
            }
        }
    }
    // The next run after a kill works as if nothing happened.
    kill_after(&mut cmd(), span / 2);
    let after_kill = cmd().output().unwrap();
    if !after_kill.status.success() {
        tally
            .repairs
            .push(String::from_utf8_lossy(&after_kill.stderr).into_owned());
    } else if let Err(e) = verify(&out) {
        tally
            .repairs
            .push(format!("the run after a kill wrote a bad release: {e}"));
    }
    tally.report("rewrite-release");
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn fetch_killed_anywhere_leaves_no_partial_blob_in_the_cache() {
    let dir = tempfile::Builder::new()
        .prefix("baker-crash-fetch-")
        .tempdir()
        .unwrap();
    let srv = crate::support::http::Server::start();
    let mut blobs = Vec::new();
    let mut lock = String::from("blobs:\n");
    for i in 0..4u64 {
        let mut body = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(baker::release::synth::Noise::new(i, 16 << 20), 16 << 20),
            &mut body,
        )
        .unwrap();
        let url = srv.serve_bytes(&format!("/blob-{i}"), &body);
        lock.push_str(&format!(
            "  blob-{i}:\n    url: {url}\n    sha256: {}\n    size: {}\n    arch: armv6l\n",
            sha(&body),
            body.len()
        ));
        blobs.push(body);
    }
    let lockfile = dir.path().join("blobs.lock");
    std::fs::write(&lockfile, lock).unwrap();
    let cache = dir.path().join("cache");
    let cmd = || {
        let mut c = Command::new(BAKER);
        c.arg("fetch")
            .arg("--lock")
            .arg(&lockfile)
            .arg("--cache-dir")
            .arg(&cache)
            .args(["-j", "2"])
            .env_remove("PIFOUNDRY_MIRROR");
        c
    };
    let span = timed(&mut cmd());
    let final_paths: Vec<PathBuf> = blobs
        .iter()
        .map(|b| {
            let h = sha(b);
            cache.join(format!("blobs/sha256/{}/{h}", &h[..2]))
        })
        .collect();
    let mut tally = Tally::default();
    for i in 0..KILLS {
        std::fs::remove_dir_all(&cache).unwrap();
        let after = span.mul_f64((f64::from(i) + 0.5) / f64::from(KILLS));
        tally.kills += 1;
        if kill_after(&mut cmd(), after) {
            tally.finished_before_kill += 1;
        }
        // Every blob at its content address is whole; anything else is a temp file.
        for (p, body) in final_paths.iter().zip(&blobs) {
            if let Ok(bytes) = std::fs::read(p)
                && &bytes != body
            {
                tally.partial.push(format!(
                    "kill {i} after {after:?}: {} holds {} of {} bytes",
                    p.display(),
                    bytes.len(),
                    body.len()
                ));
            }
        }
        tally.leftovers += walk_files(&cache)
            .iter()
            .filter(|p| !final_paths.contains(p))
            .count();
        // The next fetch completes the cache without any help.
        let next = cmd().output().unwrap();
        if !next.status.success() {
            tally.repairs.push(format!(
                "kill {i}: next fetch failed: {}",
                String::from_utf8_lossy(&next.stderr)
            ));
        }
        for (p, body) in final_paths.iter().zip(&blobs) {
            if std::fs::read(p).ok().as_ref() != Some(body) {
                tally
                    .repairs
                    .push(format!("kill {i}: {} missing after refetch", p.display()));
            }
        }
    }
    tally.report("fetch");
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

const BAKE_KILLS: u32 = 6;

/// The bake engine's small real recipe (bake_engine.rs): a busybox `extract` root and two
/// `files` stages, so kills land in mmdebstrap, in cache restores and in cache stores.
fn bake_recipe() -> String {
    busybox_recipe(
        "crash-test",
        r#"  - name: early
    kind: files
    files:
      - {src: files/early.txt, dest: /etc/early.txt}
  - name: late
    kind: files
    files:
      - {src: files/late.txt, dest: /etc/late.txt}
"#,
    )
}

/// Every visible entry of the stage cache must be whole: `lookup` accepts it (size and sha256
/// of its snapshot match its meta). Returns the entries that are not.
fn damaged_cache_entries(cache: &Path) -> Vec<String> {
    let store = baker::bake::cache::StageCache::open(cache).unwrap();
    std::fs::read_dir(cache)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .filter(|key| store.lookup(key).is_none())
        .collect()
}

#[test]
fn bake_killed_anywhere_keeps_its_stage_cache_whole() {
    let dir = tempfile::Builder::new()
        .prefix("baker-crash-bake-")
        .tempdir()
        .unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir_all(project.join("files")).unwrap();
    std::fs::write(project.join("files/early.txt"), "early\n").unwrap();
    std::fs::write(project.join("files/late.txt"), "late\n").unwrap();
    let recipe = project.join("recipe.yml");
    std::fs::write(&recipe, bake_recipe()).unwrap();
    let cache = dir.path().join("cache");
    let out = dir.path().join("out");
    let cmd = |from: Option<&str>| {
        let mut c = Command::new(BAKER);
        c.current_dir(&project)
            .arg("bake")
            .arg("--recipe")
            .arg(&recipe)
            .arg("-o")
            .arg(&out)
            .arg("--cache-dir")
            .arg(&cache);
        if let Some(stage) = from {
            c.args(["--from", stage]);
        }
        c
    };
    // every stage runs in each measured and killed run
    let span = timed(&mut cmd(Some("base")));
    let mut tally = Tally::default();
    for i in 0..BAKE_KILLS {
        let after = span.mul_f64((f64::from(i) + 0.5) / f64::from(BAKE_KILLS));
        tally.kills += 1;
        if kill_after(&mut cmd(Some("base")), after) {
            tally.finished_before_kill += 1;
        }
        for key in damaged_cache_entries(&cache) {
            tally.partial.push(format!(
                "kill {i} after {after:?}: cache entry {key} is not whole"
            ));
        }
        // The next bake finishes with no help and leaves a usable cache behind it.
        let next = cmd(None).output().unwrap();
        if !next.status.success() {
            tally.repairs.push(format!(
                "kill {i}: next bake failed: {}",
                String::from_utf8_lossy(&next.stderr)
            ));
            continue;
        }
        let rerun = cmd(None).output().unwrap();
        let log = String::from_utf8_lossy(&rerun.stderr).into_owned();
        if !rerun.status.success() || !damaged_cache_entries(&cache).is_empty() {
            tally
                .repairs
                .push(format!("kill {i}: the cache after the next bake: {log}"));
        }
        tally.leftovers += std::fs::read_dir(&cache)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(".work-"))
            .count();
    }
    tally.report("bake (stage cache)");
}

/// Child half of the stemcell test: packs `$PIFOUNDRY_CRASH_PACK/root.img` into
/// `$PIFOUNDRY_CRASH_PACK/out/stemcell.tgz` in this process, which the parent kills.
#[test]
#[ignore = "child process of stemcell_tarball_killed_anywhere_is_absent_or_whole"]
fn crash_child_pack_stemcell() {
    let dir = PathBuf::from(std::env::var_os("PIFOUNDRY_CRASH_PACK").expect("run by the parent"));
    let scratch = dir.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let manifest = baker::stemcell::Manifest {
        name: "bosh-pi-crash-test".into(),
        version: "0.1".into(),
        bosh_protocol: 1,
        api_version: baker::stemcell::manifest::API_VERSION,
        operating_system: "debian-bookworm-armv6l".into(),
        stemcell_formats: vec!["pi-raw".into()],
        sha1: String::new(),
        cloud_properties: Default::default(),
    };
    baker::stemcell::pack(
        baker::stemcell::PackInput {
            manifest,
            root_img: &dir.join("root.img"),
            packages_txt: b"busybox-static 1:1.35.0-4+b3\n",
            dev_tools_file_list: b"",
            scratch: &scratch,
        },
        &dir.join("out/stemcell.tgz"),
    )
    .unwrap();
}

#[test]
fn stemcell_tarball_killed_anywhere_is_absent_or_whole() {
    let dir = tempfile::Builder::new()
        .prefix("baker-crash-stemcell-")
        .tempdir()
        .unwrap();
    let img = dir.path().join("root.img");
    let mut f = std::fs::File::create(&img).unwrap();
    std::io::copy(
        &mut std::io::Read::take(baker::release::synth::Noise::new(3, 24 << 20), 24 << 20),
        &mut f,
    )
    .unwrap();
    drop(f);
    let outdir = dir.path().join("out");
    std::fs::create_dir_all(&outdir).unwrap();
    let out = outdir.join("stemcell.tgz");
    let cmd = || {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args([
            "crash_safety::crash_child_pack_stemcell",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("PIFOUNDRY_CRASH_PACK", dir.path());
        c
    };
    let span = timed(&mut cmd());
    let reference = std::fs::read(&out).unwrap();
    baker::stemcell::inspect(&out).unwrap();
    std::fs::remove_file(&out).unwrap();

    let mut tally = Tally::default();
    let half = KILLS / 2;
    for i in 0..KILLS {
        tally.kills += 1;
        let what = if i < half {
            // over the run, mostly while `image` is compressed
            let after = span.mul_f64((f64::from(i) + 0.5) / f64::from(half));
            if kill_after(&mut cmd(), after) {
                tally.finished_before_kill += 1;
            }
            format!("after {after:?}")
        } else {
            // while the outer tarball is written: when its temp file holds a given share
            let share = (f64::from(i - half) + 0.5) / f64::from(KILLS - half);
            let bytes = (reference.len() as f64 * share) as u64;
            if kill_when(&mut cmd(), || temp_bytes(&outdir) >= bytes) {
                tally.finished_before_kill += 1;
            }
            format!("at {bytes} bytes of the tarball")
        };
        tally.leftovers += strays(&outdir, &["stemcell.tgz"]);
        if out.exists() && std::fs::read(&out).unwrap() != reference {
            tally
                .partial
                .push(format!("kill {i} {what}: stemcell.tgz differs"));
        }
        let _ = std::fs::remove_file(&out);
        // The next pack works as if nothing had happened.
        let next = cmd().output().unwrap();
        if !next.status.success() || std::fs::read(&out).ok().as_ref() != Some(&reference) {
            tally.repairs.push(format!(
                "kill {i}: next pack: {}",
                String::from_utf8_lossy(&next.stderr)
            ));
        }
        let _ = std::fs::remove_file(&out);
        for e in std::fs::read_dir(&outdir).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
    }
    tally.report("stemcell tarball");
}

/// Starts `cmd` and SIGKILLs it as soon as `ready()` holds; returns whether it had finished
/// before that.
fn kill_when(cmd: &mut Command, ready: impl Fn() -> bool) -> bool {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let finished = loop {
        if ready() {
            break false;
        }
        if child.try_wait().unwrap().is_some() {
            break true;
        }
        assert!(Instant::now() < deadline, "never became ready");
        std::thread::sleep(Duration::from_micros(200));
    };
    let _ = child.kill();
    child.wait().unwrap();
    finished
}

/// Bytes in the hidden temp files of `dir` (an atomic writer's output before its rename).
fn temp_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}
