//! The blob cache against a real HTTP server on loopback, `file://` URLs and mirrors.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use baker::blobs_lock::{BlobsLock, LockEntry};
use baker::fetch::{FetchError, FetchOptions, Fetcher};
use pifoundry_util::Arch;
use sha2::{Digest, Sha256};

use crate::support::http::{Route, Server};

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn entry(key: &str, url: &str, body: &[u8]) -> LockEntry {
    LockEntry {
        key: key.into(),
        url: url.into(),
        sha256: sha(body),
        tree: None,
        links: false,
        size: Some(body.len() as u64),
        arch: Some(Arch::Armv6l),
        replaces: None,
    }
}

fn opts(cache: &Path) -> FetchOptions {
    FetchOptions {
        cache_dir: Some(cache.to_path_buf()),
        mirror: None,
        retries: 3,
        backoff: Duration::from_millis(1),
        jobs: 3,
        timeout: Duration::from_secs(20),
        progress: false,
    }
}

/// Every file under the cache's blob store except the (empty) temp dir.
fn cached_files(cache: &Path) -> Vec<String> {
    let dir = cache.join("blobs");
    if !dir.exists() {
        return vec![];
    }
    walkdir::WalkDir::new(&dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(&dir).unwrap().display().to_string())
        .collect()
}

fn body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn http_blob_lands_content_addressed_and_is_reused() {
    let srv = Server::start();
    let data = body(300_000);
    let url = srv.serve_bytes("/go.tgz", &data);
    let cache = tempfile::tempdir().unwrap();
    let f = Fetcher::new(opts(cache.path())).unwrap();
    let e = entry("go", &url, &data);
    let p = f.ensure(&e).unwrap();
    let hex = sha(&data);
    assert_eq!(
        p,
        cache
            .path()
            .join(format!("blobs/sha256/{}/{hex}", &hex[..2]))
    );
    assert_eq!(std::fs::read(&p).unwrap(), data);
    assert_eq!(f.ensure(&e).unwrap(), p);
    assert_eq!(
        srv.hits("/go.tgz"),
        1,
        "second ensure must come from the cache"
    );
    assert_eq!(
        cached_files(cache.path()),
        vec![format!("sha256/{}/{hex}", &hex[..2])]
    );
}

#[test]
fn transient_503s_are_retried() {
    let srv = Server::start();
    let data = body(1000);
    let url = srv.route(
        "/b",
        Route {
            body: data.clone(),
            fail_first: 2,
            ..Route::default()
        },
    );
    let cache = tempfile::tempdir().unwrap();
    let f = Fetcher::new(opts(cache.path())).unwrap();
    f.ensure(&entry("b", &url, &data)).unwrap();
    assert_eq!(srv.hits("/b"), 3);
}

#[test]
fn cut_off_body_is_retried() {
    let srv = Server::start();
    let data = body(200_000);
    let url = srv.route(
        "/cut",
        Route {
            body: data.clone(),
            cut_first: 1,
            ..Route::default()
        },
    );
    let cache = tempfile::tempdir().unwrap();
    let f = Fetcher::new(opts(cache.path())).unwrap();
    let p = f.ensure(&entry("cut", &url, &data)).unwrap();
    assert_eq!(std::fs::read(p).unwrap(), data);
    assert_eq!(srv.hits("/cut"), 2);
}

#[test]
fn persistent_failure_gives_up_after_the_retries() {
    let srv = Server::start();
    let url = srv.route(
        "/down",
        Route {
            body: b"x".to_vec(),
            fail_first: 100,
            ..Route::default()
        },
    );
    let cache = tempfile::tempdir().unwrap();
    let f = Fetcher::new(opts(cache.path())).unwrap();
    let err = f.ensure(&entry("down", &url, b"x")).unwrap_err();
    assert!(
        matches!(err, FetchError::Source { attempts: 4, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("blob down") && msg.contains("503"), "{msg}");
    assert_eq!(srv.hits("/down"), 4);
    assert!(cached_files(cache.path()).is_empty());
}

#[test]
fn wrong_bytes_name_key_and_both_digests_and_leave_nothing() {
    let srv = Server::start();
    let good = body(5000);
    let mut bad = good.clone();
    bad[100] ^= 1;
    let url = srv.serve_bytes("/evil", &bad);
    let cache = tempfile::tempdir().unwrap();
    let f = Fetcher::new(opts(cache.path())).unwrap();
    let err = f.ensure(&entry("go-armv6l", &url, &good)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, FetchError::Checksum { .. }), "{msg}");
    assert!(msg.contains("go-armv6l"), "{msg}");
    assert!(
        msg.contains(&sha(&good)) && msg.contains(&sha(&bad)),
        "{msg}"
    );
    assert_eq!(srv.hits("/evil"), 1, "a checksum mismatch is not retried");
    assert!(cached_files(cache.path()).is_empty());
}

#[test]
fn wrong_size_is_an_error_and_leaves_nothing() {
    let srv = Server::start();
    let data = body(5000);
    let url = srv.serve_bytes("/s", &data);
    let cache = tempfile::tempdir().unwrap();
    let f = Fetcher::new(opts(cache.path())).unwrap();
    for size in [4999, 5001] {
        let mut e = entry("sized", &url, &data);
        e.size = Some(size);
        let err = f.ensure(&e).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, FetchError::Size { .. }), "{msg}");
        assert!(
            msg.contains("sized") && msg.contains(&size.to_string()),
            "{msg}"
        );
    }
    assert!(cached_files(cache.path()).is_empty());
}

#[test]
fn unknown_size_verifies_by_sha256_alone() {
    let srv = Server::start();
    let data = body(1234);
    let url = srv.serve_bytes("/nosize", &data);
    let cache = tempfile::tempdir().unwrap();
    let f = Fetcher::new(opts(cache.path())).unwrap();
    let mut e = entry("nosize", &url, &data);
    e.size = None;
    assert_eq!(std::fs::read(f.ensure(&e).unwrap()).unwrap(), data);
}

#[test]
fn http_404_is_not_retried_and_names_key_and_url() {
    let srv = Server::start();
    let cache = tempfile::tempdir().unwrap();
    let f = Fetcher::new(opts(cache.path())).unwrap();
    let url = format!("{}/missing.tgz", srv.base);
    let err = f.ensure(&entry("gone", &url, b"x")).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, FetchError::NotFound { .. }), "{msg}");
    assert!(msg.contains("gone") && msg.contains(&url), "{msg}");
    assert_eq!(srv.hits("/missing.tgz"), 1);
}

#[test]
fn file_urls_work() {
    let src = tempfile::tempdir().unwrap();
    let data = body(777);
    let p = src.path().join("blob with space.tgz");
    std::fs::write(&p, &data).unwrap();
    let url = reqwest::Url::from_file_path(&p).unwrap().to_string();
    let cache = tempfile::tempdir().unwrap();
    let f = Fetcher::new(opts(cache.path())).unwrap();
    assert_eq!(
        std::fs::read(f.ensure(&entry("local", &url, &data)).unwrap()).unwrap(),
        data
    );
    let missing = entry("nofile", "file:///nonexistent/pifoundry.tgz", b"other");
    let err = f.ensure(&missing).unwrap_err().to_string();
    assert!(err.contains("nofile") && err.contains("not found"), "{err}");
}

#[test]
fn mirror_dir_replaces_upstream_in_both_layouts() {
    let a = body(100);
    let b = body(200);
    let mirror = tempfile::tempdir().unwrap();
    let (ha, hb) = (sha(&a), sha(&b));
    std::fs::create_dir_all(mirror.path().join("sha256").join(&hb[..2])).unwrap();
    std::fs::write(mirror.path().join("sha256").join(&ha), &a).unwrap();
    std::fs::write(mirror.path().join("sha256").join(&hb[..2]).join(&hb), &b).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut o = opts(cache.path());
    o.mirror = Some(mirror.path().display().to_string());
    let f = Fetcher::new(o).unwrap();
    // upstream is unreachable: the mirror must be the only source
    let ea = entry("a", "http://127.0.0.1:9/a", &a);
    let eb = entry("b", "http://127.0.0.1:9/b", &b);
    let paths = f.ensure_all(&[&ea, &eb]).unwrap();
    assert_eq!(std::fs::read(&paths[0]).unwrap(), a);
    assert_eq!(std::fs::read(&paths[1]).unwrap(), b);

    let ec = entry("c", "http://127.0.0.1:9/c", b"not mirrored");
    let err = f.ensure(&ec).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, FetchError::NotInMirror { .. }), "{msg}");
    assert!(msg.contains("blob c") && msg.contains(&ec.sha256), "{msg}");
}

#[test]
fn mirror_url_is_looked_up_by_sha256() {
    let srv = Server::start();
    let data = body(4096);
    let hex = sha(&data);
    srv.serve_bytes(&format!("/m/sha256/{}/{hex}", &hex[..2]), &data);
    let cache = tempfile::tempdir().unwrap();
    let mut o = opts(cache.path());
    o.mirror = Some(format!("{}/m/", srv.base));
    let f = Fetcher::new(o).unwrap();
    let p = f
        .ensure(&entry("m", "https://go.dev/unreachable", &data))
        .unwrap();
    assert_eq!(std::fs::read(p).unwrap(), data);
    assert_eq!(srv.hits(&format!("/m/sha256/{hex}")), 1);
}

#[test]
fn ensure_all_fetches_in_parallel_and_reports_every_failure() {
    let srv = Server::start();
    let blobs: Vec<Vec<u8>> = (1..=6).map(|i| body(i * 10_000)).collect();
    let entries: Vec<LockEntry> = blobs
        .iter()
        .enumerate()
        .map(|(i, b)| entry(&format!("k{i}"), &srv.serve_bytes(&format!("/{i}"), b), b))
        .collect();
    let cache = tempfile::tempdir().unwrap();
    let f = Fetcher::new(opts(cache.path())).unwrap();
    let refs: Vec<&LockEntry> = entries.iter().collect();
    let paths = f.ensure_all(&refs).unwrap();
    for (p, b) in paths.iter().zip(&blobs) {
        assert_eq!(&std::fs::read(p).unwrap(), b);
    }

    let bad1 = entry("bad1", &format!("{}/nope1", srv.base), b"1");
    let bad2 = entry("bad2", &format!("{}/nope2", srv.base), b"2");
    let err = f.ensure_all(&[&bad1, refs[0], &bad2]).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, FetchError::Many(ref v) if v.len() == 2),
        "{msg}"
    );
    assert!(msg.contains("bad1") && msg.contains("bad2"), "{msg}");
}

#[test]
fn corrupt_cache_entry_is_detected_and_refetched() {
    let srv = Server::start();
    let data = body(2048);
    let url = srv.serve_bytes("/c", &data);
    let cache = tempfile::tempdir().unwrap();
    let f = Fetcher::new(opts(cache.path())).unwrap();
    let e = entry("c", &url, &data);
    let p = f.ensure(&e).unwrap();
    std::fs::write(&p, b"bit rot").unwrap();
    assert_eq!(std::fs::read(f.ensure(&e).unwrap()).unwrap(), data);
    assert_eq!(srv.hits("/c"), 2);
}

#[test]
fn missing_lock_file_is_named() {
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_baker"))
        .args(["fetch", "--lock"])
        .arg(cache.path().join("absent.lock"))
        .env("PIFOUNDRY_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("absent.lock"), "{err}");
}

#[test]
fn cli_lock_add_then_fetch() {
    let srv = Server::start();
    let data = body(10_000);
    let url = srv.serve_bytes("/jq-linux-armel", &data);
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("blobs.lock");
    let cache = dir.path().join("cache");
    let baker = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_baker"))
            .args(args)
            .arg("--lock")
            .arg(&lock)
            .arg("--cache-dir")
            .arg(&cache)
            .env_remove("PIFOUNDRY_MIRROR")
            .output()
            .unwrap()
    };
    let out = baker(&[
        "lock",
        "add",
        "jq-1.7.1-armel",
        &url,
        "--arch",
        "armv6l",
        "--replaces",
        "jq/jq-1.7.1-linux-amd64.tgz in diego cfdot",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let l = BlobsLock::load(&lock).unwrap();
    let e = l.get("jq-1.7.1-armel").unwrap();
    assert_eq!(e.sha256, sha(&data));
    assert_eq!(e.size, Some(10_000));
    assert_eq!(e.arch, Some(Arch::Armv6l));

    let again = baker(&["lock", "add", "jq-1.7.1-armel", &url]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    let out = baker(&["fetch", "jq-1.7.1-armel"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&sha(&data)));

    let out = baker(&["fetch", "no-such-key"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-key") && err.contains("unknown blob key"),
        "{err}"
    );
}

#[test]
fn cli_fetch_uses_the_mirror_from_flag_or_environment() {
    let data = body(3000);
    let hex = sha(&data);
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror");
    std::fs::create_dir_all(mirror.join("sha256")).unwrap();
    std::fs::write(mirror.join("sha256").join(&hex), &data).unwrap();
    let mut lock = BlobsLock::empty("blobs.lock");
    lock.insert(entry(
        "airgapped",
        "https://go.dev/dl/unreachable.tgz",
        &data,
    ))
    .unwrap();
    let lock_path = dir.path().join("blobs.lock");
    lock.save(&lock_path).unwrap();

    // flags; then PIFOUNDRY_MIRROR + PIFOUNDRY_CACHE_DIR; then XDG_CACHE_HOME
    for (i, via_env) in [false, true].into_iter().enumerate() {
        let cache = dir.path().join(format!("cache{i}"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_baker"));
        cmd.arg("fetch").arg("--lock").arg(&lock_path);
        if via_env {
            cmd.env("PIFOUNDRY_MIRROR", &mirror)
                .env("PIFOUNDRY_CACHE_DIR", &cache);
        } else {
            cmd.arg("--mirror")
                .arg(&mirror)
                .arg("--cache-dir")
                .arg(&cache)
                .env_remove("PIFOUNDRY_MIRROR");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.starts_with("airgapped\t") && stdout.contains(&hex),
            "{stdout}"
        );
        assert!(
            cache
                .join("blobs/sha256")
                .join(&hex[..2])
                .join(&hex)
                .is_file()
        );
    }
    let xdg = dir.path().join("xdg");
    let out = Command::new(env!("CARGO_BIN_EXE_baker"))
        .arg("fetch")
        .arg("--lock")
        .arg(&lock_path)
        .env("PIFOUNDRY_MIRROR", &mirror)
        .env_remove("PIFOUNDRY_CACHE_DIR")
        .env("XDG_CACHE_HOME", &xdg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        xdg.join("pifoundry/blobs/sha256")
            .join(&hex[..2])
            .join(&hex)
            .is_file()
    );
}
