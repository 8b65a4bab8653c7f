//! Source tarballs pinned by content (the tree hash of docs/blobs.md): the same tree from a
//! GNU tar `.tar.gz`, another gzip stream, a plain tar or `git archive` pins the same; the
//! pin is checked before the tarball is used, and caches and mirrors go by it. The archives
//! are made here from a small source tree, served on loopback.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use baker::blobs_lock::LockEntry;
use baker::fetch::tree::{tree_hash_dir, tree_hash_file};
use baker::fetch::{FetchError, FetchOptions, Fetcher};

use crate::support::busybox_recipe;
use crate::support::http::Server;

fn sh(cmd: &str, dir: &Path) -> Vec<u8> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .env("LC_ALL", "C")
        .env("GIT_AUTHOR_DATE", "2026-08-08T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-08-08T00:00:00Z")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `work/agent-1.0/` holding a small Go-shaped module with a vendor tree.
fn source_tree(work: &Path) -> PathBuf {
    let top = work.join("agent-1.0");
    for (p, body) in [
        ("go.mod", "module example.invalid/agent\n\ngo 1.25.0\n"),
        ("main/main.go", "package main\n\nfunc main() {}\n"),
        ("vendor/modules.txt", "# example.invalid/dep v1.0.0\n"),
        ("vendor/example.invalid/dep/dep.go", "package dep\n"),
        ("README.md", "stand-in source tree for pin tests\n"),
    ] {
        let f = top.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, body).unwrap();
    }
    top
}

/// The pin as coreutils compute the documented algorithm.
fn coreutils_pin(top: &Path) -> String {
    let out = sh(
        "find . -type f -printf '%P\\0' | sort -z | xargs -0 sha256sum | sha256sum",
        top,
    );
    String::from_utf8(out).unwrap()[..64].to_string()
}

fn opts(cache: &Path, mirror: Option<String>) -> FetchOptions {
    FetchOptions {
        cache_dir: Some(cache.to_path_buf()),
        mirror,
        retries: 0,
        backoff: Duration::from_millis(1),
        jobs: 2,
        timeout: Duration::from_secs(20),
        progress: false,
    }
}

fn pinned(url: &str, tree: &str) -> LockEntry {
    LockEntry {
        key: "agent-1.0-src".into(),
        url: url.into(),
        sha256: String::new(),
        tree: Some(tree.into()),
        links: false,
        size: None,
        arch: None,
        replaces: None,
    }
}

#[test]
fn one_tree_one_pin_whatever_the_archive() {
    let work = tempfile::tempdir().unwrap();
    let top = source_tree(work.path());
    let pin = coreutils_pin(&top);
    let w = work.path();
    sh("tar -czf gnu.tar.gz agent-1.0", w);
    sh("tar -cf - agent-1.0 | gzip -9n > best.tar.gz", w);
    sh("tar -cf plain.tar agent-1.0", w);
    sh(
        "cd agent-1.0 && git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm v1 \
         && git archive --format=tar.gz --prefix=agent-1.0/ HEAD > ../git.tar.gz",
        w,
    );
    let mut shas = std::collections::BTreeSet::new();
    for a in ["gnu.tar.gz", "best.tar.gz", "plain.tar", "git.tar.gz"] {
        let t = tree_hash_file(&w.join(a), false).unwrap();
        assert_eq!(t.hash, pin, "{a}");
        assert_eq!((t.files, t.top.as_str()), (5, "agent-1.0"), "{a}");
        shas.insert(std::fs::read(w.join(a)).unwrap());
    }
    assert_eq!(shas.len(), 4, "four different byte streams");
    // git's own files are not in the archive; the unpacked tree (without .git) pins the same
    std::fs::remove_dir_all(top.join(".git")).unwrap();
    assert_eq!(tree_hash_dir(&top, false).unwrap(), pin);
}

#[test]
fn fetch_checks_the_pin_and_caches_by_it() {
    let work = tempfile::tempdir().unwrap();
    let top = source_tree(work.path());
    let pin = coreutils_pin(&top);
    sh(
        "tar -czf a.tgz agent-1.0 && tar -cf - agent-1.0 | gzip -1n > b.tgz",
        work.path(),
    );
    let srv = Server::start();
    let a = srv.serve_bytes("/a.tgz", &std::fs::read(work.path().join("a.tgz")).unwrap());
    let b = srv.serve_bytes("/b.tgz", &std::fs::read(work.path().join("b.tgz")).unwrap());
    let cache = tempfile::tempdir().unwrap();
    let f = Fetcher::new(opts(cache.path(), None)).unwrap();
    let p = f.ensure(&pinned(&a, &pin)).unwrap();
    assert_eq!(
        p,
        cache.path().join(format!("blobs/tree/{}/{pin}", &pin[..2]))
    );
    // the same pin from a re-compressed copy: accepted (fresh cache)
    let cache2 = tempfile::tempdir().unwrap();
    let f2 = Fetcher::new(opts(cache2.path(), None)).unwrap();
    f2.ensure(&pinned(&b, &pin)).unwrap();
    assert_eq!(srv.hits("/b.tgz"), 1);
    // cached: no second download
    f2.ensure(&pinned(&b, &pin)).unwrap();
    assert_eq!(srv.hits("/b.tgz"), 1);

    // one changed byte in one file: refused, nothing cached
    std::fs::write(
        top.join("main/main.go"),
        "package main\n\nfunc main() { }\n",
    )
    .unwrap();
    sh("tar -czf c.tgz agent-1.0", work.path());
    let c = srv.serve_bytes("/c.tgz", &std::fs::read(work.path().join("c.tgz")).unwrap());
    let cache3 = tempfile::tempdir().unwrap();
    let f3 = Fetcher::new(opts(cache3.path(), None)).unwrap();
    let e = f3.ensure(&pinned(&c, &pin)).unwrap_err();
    assert!(matches!(e, FetchError::TreeMismatch { .. }), "{e}");
    assert!(
        e.to_string().contains(&format!("expected tree {pin}")),
        "{e}"
    );
    assert!(!cache3.path().join("blobs/tree").exists());
}

#[test]
fn symlinks_are_refused_unless_the_entry_allows_them() {
    let work = tempfile::tempdir().unwrap();
    let top = source_tree(work.path());
    std::os::unix::fs::symlink("README.md", top.join("README")).unwrap();
    sh("tar -czf l.tgz agent-1.0", work.path());
    let e = tree_hash_file(&work.path().join("l.tgz"), false).unwrap_err();
    assert!(
        e.to_string()
            .contains("agent-1.0/README: a symlink to README.md"),
        "{e}"
    );
    assert!(tree_hash_file(&work.path().join("l.tgz"), true).is_ok());
    assert!(
        tree_hash_dir(&top, false)
            .unwrap_err()
            .to_string()
            .contains("README: a symlink")
    );
}

#[test]
fn a_mirror_directory_or_server_serves_by_the_pin_offline() {
    let work = tempfile::tempdir().unwrap();
    let top = source_tree(work.path());
    let pin = coreutils_pin(&top);
    sh("tar -cf - agent-1.0 | gzip -6n > src.tgz", work.path());
    let bytes = std::fs::read(work.path().join("src.tgz")).unwrap();
    // upstream unreachable (nothing listens on port 9): only the mirror can answer
    let upstream = "http://127.0.0.1:9/agent/archive/refs/tags/v1.0.tar.gz";
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tree")).unwrap();
    std::fs::write(dir.path().join("tree").join(&pin), &bytes).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let f = Fetcher::new(opts(cache.path(), Some(dir.path().display().to_string()))).unwrap();
    f.ensure(&pinned(upstream, &pin)).unwrap();

    let srv = Server::start();
    srv.serve_bytes(&format!("/m/tree/{}/{pin}", &pin[..2]), &bytes);
    let cache = tempfile::tempdir().unwrap();
    let f = Fetcher::new(opts(cache.path(), Some(format!("{}/m", srv.base)))).unwrap();
    f.ensure(&pinned(upstream, &pin)).unwrap();

    let empty = tempfile::tempdir().unwrap();
    let f = Fetcher::new(opts(cache.path(), Some(empty.path().display().to_string()))).unwrap();
    let e = f.ensure(&pinned(upstream, &"0".repeat(64))).unwrap_err();
    assert!(e.to_string().contains("is not in mirror"), "{e}");
}

/// The bake takes a content-pinned source from a mirror on loopback (upstream unreachable),
/// checks the pin, and builds it with fixed ldflags: the default recipe's agent stage, on a
/// small source tree made here. Needs root and Debian's archive (mmdebstrap), like the other
/// bake tests.
#[test]
fn a_bake_builds_a_content_pinned_source_from_a_loopback_mirror() {
    use baker::bake::{self, BakeOptions};
    use baker::blobs::LockedBlobs;
    use baker::recipe::stemcell::StemcellRecipe;

    let work = tempfile::tempdir().unwrap();
    let top = source_tree(work.path());
    std::fs::write(
        top.join("main/main.go"),
        "package main\n\nimport \"fmt\"\n\nvar VersionLabel = \"dev\"\n\nfunc main() { fmt.Println(\"agent\", VersionLabel) }\n",
    )
    .unwrap();
    std::fs::write(
        top.join("go.mod"),
        "module example.invalid/agent\n\ngo 1.19\n",
    )
    .unwrap();
    std::fs::remove_dir_all(top.join("vendor/example.invalid")).unwrap();
    std::fs::write(top.join("vendor/modules.txt"), "").unwrap();
    let pin = coreutils_pin(&top);
    sh("tar -cf - agent-1.0 | gzip -9n > agent.tgz", work.path());
    let srv = Server::start();
    srv.serve_bytes(
        &format!("/m/tree/{pin}"),
        &std::fs::read(work.path().join("agent.tgz")).unwrap(),
    );

    let root = work.path().join("project");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("blobs.lock"),
        format!(
            "blobs:\n  agent-src:\n    url: http://127.0.0.1:9/agent/archive/refs/tags/v1.0.tar.gz\n    tree: {pin}\n    size: null\n    arch: any\n"
        ),
    )
    .unwrap();
    let recipe = busybox_recipe(
        "pin-test",
        r#"  - name: agent
    kind: go-build
    source: {blob: agent-src}
    package: ./main
    install: /var/vcap/bosh/bin/bosh-agent
    ldflags: ['-X main.VersionLabel=1.0-0123abcd-go1.19']
"#,
    );
    std::fs::write(root.join("recipe.yml"), &recipe).unwrap();
    let recipe_path = root.join("recipe.yml");
    let parsed = StemcellRecipe::load(&recipe_path).unwrap();
    let cache = work.path().join("stages");
    let opts = BakeOptions {
        recipe_path,
        project_root: root.clone(),
        cache_dir: cache.clone(),
        out_dir: root.join("out"),
        from: None,
    };
    let blobs = LockedBlobs::load(
        &root.join("blobs.lock"),
        opts_for_bake(work.path(), &format!("{}/m", srv.base)),
    )
    .unwrap();
    let report = bake::bake(&parsed, &opts, &blobs).unwrap();
    assert_eq!(report.ran(), ["base", "agent"]);
    let key = &report
        .stages
        .iter()
        .find(|s| s.name == "agent")
        .unwrap()
        .key;
    let out = work.path().join("restored");
    bake::cache::restore(&cache.join(key).join("rootfs.tar.zst"), &out).unwrap();
    let run = Command::new("qemu-arm-static")
        .args(["-cpu", "arm1176"])
        .arg(out.join("var/vcap/bosh/bin/bosh-agent"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "agent 1.0-0123abcd-go1.19\n"
    );
}

fn opts_for_bake(work: &Path, mirror: &str) -> FetchOptions {
    opts(&work.join("blob-cache"), Some(mirror.to_string()))
}
