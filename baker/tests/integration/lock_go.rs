//! `baker lock go` against a copy of the Go project's download index served on loopback.

use crate::support::baker;
use crate::support::http::{Route, Server};
use baker::blobs_lock::BlobsLock;

/// The shape of `https://go.dev/dl/?mode=json&include=all` (an excerpt, with the published
/// sha256 and sizes of go1.25.14): sources, other OSes and installers around the archives.
const INDEX: &str = r#"[
 {"version": "go1.26.0", "stable": true, "files": []},
 {"version": "go1.25.14", "stable": true, "files": [
  {"filename": "go1.25.14.src.tar.gz", "os": "", "arch": "", "version": "go1.25.14",
   "sha256": "1111111111111111111111111111111111111111111111111111111111111111", "size": 31000000, "kind": "source"},
  {"filename": "go1.25.14.darwin-arm64.tar.gz", "os": "darwin", "arch": "arm64", "version": "go1.25.14",
   "sha256": "2222222222222222222222222222222222222222222222222222222222222222", "size": 58000000, "kind": "archive"},
  {"filename": "go1.25.14.linux-amd64.tar.gz", "os": "linux", "arch": "amd64", "version": "go1.25.14",
   "sha256": "a21ae5633a269bcd7e90cf767e48225633795e99d831742cbf3397064fee7712", "size": 59909419, "kind": "archive"},
  {"filename": "go1.25.14.linux-arm64.tar.gz", "os": "linux", "arch": "arm64", "version": "go1.25.14",
   "sha256": "9bf234ea70ffec9347fdf6b22ce4add51717d3386a38a441e8c8743fceb5eaee", "size": 57360344, "kind": "archive"},
  {"filename": "go1.25.14.windows-amd64.msi", "os": "windows", "arch": "amd64", "version": "go1.25.14",
   "sha256": "3333333333333333333333333333333333333333333333333333333333333333", "size": 60000000, "kind": "installer"}
 ]}
]"#;

fn run(args: &[&str]) -> std::process::Output {
    baker(args)
}

#[test]
fn go_entries_come_from_the_index_with_published_sums_and_official_urls() {
    let server = Server::start();
    let index = server.route(
        "/dl/index.json",
        Route {
            body: INDEX.as_bytes().to_vec(),
            fail_first: 1, // one transient 503 first: retried
            ..Route::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("blobs.lock");
    let cache = dir.path().join("cache");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "lock",
            "--lock",
            lock.to_str().unwrap(),
            "go",
            "1.25.14",
            "--index",
            &index,
            "--cache-dir",
            cache.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let a = args(&["--arch", "amd64", "--arch", "arm64"]);
    let out = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let l = BlobsLock::load(&lock).unwrap();
    let arm = l.get("go-1.25.14-linux-arm64").unwrap();
    assert_eq!(arm.url, "https://go.dev/dl/go1.25.14.linux-arm64.tar.gz");
    assert_eq!(
        arm.sha256,
        "9bf234ea70ffec9347fdf6b22ce4add51717d3386a38a441e8c8743fceb5eaee"
    );
    assert_eq!(arm.size, Some(57360344));
    assert_eq!(arm.arch, Some(pifoundry_util::Arch::Arm64));
    let amd = l.get("go-1.25.14-linux-amd64").unwrap();
    assert_eq!(amd.size, Some(59909419));
    // the same pins again: nothing changes; the index was read, nothing else was downloaded
    let before = std::fs::read(&lock).unwrap();
    let out = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("already pinned"));
    assert_eq!(std::fs::read(&lock).unwrap(), before);

    // armv6l 1.25.14 is not published: one clear error, the lock untouched
    let a = args(&["--arch", "armv6l"]);
    let e = crate::support::stderr_line(&run(&a.iter().map(String::as_str).collect::<Vec<_>>()));
    assert!(
        e.contains("go1.25.14 has no linux-armv6l archive (the Go project does not publish it)"),
        "{e}"
    );
    assert_eq!(std::fs::read(&lock).unwrap(), before);
}

#[test]
fn a_changed_pin_needs_force_and_a_bad_index_is_named() {
    let server = Server::start();
    let index = server.serve_bytes("/dl/index.json", INDEX.as_bytes());
    let broken = server.serve_bytes("/dl/broken.json", b"<html>moved</html>");
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("blobs.lock");
    std::fs::write(
        &lock,
        format!(
            "blobs:\n  go-1.25.14-linux-arm64:\n    url: https://go.dev/dl/go1.25.14.linux-arm64.tar.gz\n    sha256: {}\n    size: null\n    arch: arm64\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    let l = lock.to_str().unwrap();
    let e = crate::support::stderr_line(&run(&[
        "lock", "--lock", l, "go", "1.25.14", "--arch", "arm64", "--index", &index,
    ]));
    assert!(e.contains("pass --force"), "{e}");
    let out = run(&[
        "lock", "--lock", l, "go", "1.25.14", "--arch", "arm64", "--index", &index, "--force",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        BlobsLock::load(&lock)
            .unwrap()
            .get("go-1.25.14-linux-arm64")
            .unwrap()
            .size,
        Some(57360344)
    );
    let e = crate::support::stderr_line(&run(&[
        "lock", "--lock", l, "go", "1.25.14", "--index", &broken,
    ]));
    assert!(e.contains("broken.json: not a Go download index"), "{e}");
}
