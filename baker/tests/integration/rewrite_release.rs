//! `baker rewrite-release` on the sample release: the rewritten package gets exactly the
//! fingerprint bosh-cli computes for the same change made in a release directory.

use std::path::{Path, PathBuf};

use crate::support::release::*;
use crate::support::{baker, stderr_line};
use baker::blobs::{BlobError, Blobs, LockedBlob};
use baker::recipe::release::ReleaseRecipe;
use baker::release::digest::Algo::Sha256 as Sha256Algo;
use baker::release::{self, Manifest};
use baker::rewrite::{self, RewriteError};
use sha2::{Digest, Sha256};

const RECIPE: &str = r#"
release: pi-sample
target: armv6l
version_suffix: "+pi.armv6l"
rules:
- packages: golang-1-linux
  files: "golang/go*.linux-amd64.tar.gz"
  replace: { blob: go1.22.5.linux-armv6l, path: "golang/go1.22.5.linux-{{arch}}.tar.gz" }
- packages: "golang-*"
  patch: { literal: linux-amd64, with: "linux-{{arch}}" }
"#;

/// A stand-in ARM toolchain tarball (the real one is 60 MB and off-line here).
fn fake_toolchain(dir: &Path) -> PathBuf {
    let p = dir.join("go1.22.5.linux-armv6l.tar.gz");
    let mut w = baker::archive::TarGzWriter::new(std::fs::File::create(&p).unwrap());
    w.add_bytes(
        "go/VERSION",
        baker::archive::Mode::Regular,
        b"go1.22.5 armv6l\n",
    )
    .unwrap();
    w.finish().unwrap();
    p
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

struct Setup {
    dir: tempfile::TempDir,
    recipe: PathBuf,
    blob: PathBuf,
}

fn setup(recipe: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let blob = fake_toolchain(dir.path());
    let path = dir.path().join("recipe.yml");
    std::fs::write(&path, recipe).unwrap();
    Setup {
        dir,
        recipe: path,
        blob,
    }
}

fn run(s: &Setup, input: &Path, extra: &[&str]) -> std::process::Output {
    let out = s.dir.path().join("out.tgz");
    let blob = format!("go1.22.5.linux-armv6l={}", s.blob.display());
    let mut args = vec![
        "rewrite-release",
        input.to_str().unwrap(),
        "--recipe",
        s.recipe.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--blob",
        &blob,
    ];
    args.extend_from_slice(extra);
    baker(&args)
}

/// `run` that must succeed; its stderr is the failure message.
fn run_ok(s: &Setup, input: &Path, extra: &[&str]) -> std::process::Output {
    let out = run(s, input, extra);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `baker verify-release` accepts `path`.
fn verify_ok(path: &Path) {
    let v = baker(&["verify-release", path.to_str().unwrap()]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
}

#[test]
fn golang_package_gets_the_fingerprint_bosh_cli_would_compute() {
    let s = setup(RECIPE);
    run_ok(&s, &sample(), &[]);
    let rewritten = s.dir.path().join("out.tgz");

    // What `bosh create-release` computes after swapping the blob and editing packaging by
    // hand in a release directory (notes §4): v2 + NAME + sha256:DIGEST + MODE for the blob,
    // then packaging without MODE; no dependencies.
    let packaging =
        "set -e\ntar xzf golang/go1.22.5.linux-armv6l.tar.gz\ncp -R go/* ${BOSH_INSTALL_TARGET}\n";
    let blob = std::fs::read(&s.blob).unwrap();
    let input = format!(
        "v2golang/go1.22.5.linux-armv6l.tar.gzsha256:{}100644packagingsha256:{}",
        sha256_hex(&blob),
        sha256_hex(packaging.as_bytes())
    );
    let expected = sha256_hex(input.as_bytes());

    let rel = release::read(&rewritten, None).unwrap();
    release::verify(&rel).unwrap();
    let m: &Manifest = &rel.manifest;
    let original = release::read_manifest(&sample()).unwrap();
    assert_eq!(m.version, "0+dev.1+pi.armv6l");
    let golang = &m.packages[0];
    assert_eq!(golang.name, "golang-1-linux");
    assert_eq!(golang.fingerprint, expected);
    assert_eq!(golang.version, expected);
    assert!(golang.sha1.starts_with("sha256:"));
    // Everything else is untouched: same fingerprints, same archive bytes.
    assert_eq!(m.packages[1], original.packages[1]);
    assert_eq!(m.jobs, original.jobs);
    assert_eq!(m.license, original.license);
    let before = release::read(&sample(), None).unwrap();
    for name in ["packages/hello.tgz", "jobs/hello-job.tgz", "license.tgz"] {
        // (the output lists release.MF last, so its reader digests with every algorithm)
        assert_eq!(
            rel.archives[name].digests.get(Sha256Algo),
            before.archives[name].digests.get(Sha256Algo),
            "{name}"
        );
    }
    assert_eq!(rel.top_files, before.top_files);

    verify_ok(&rewritten);

    // Deterministic: the same inputs give the same bytes.
    let first = std::fs::read(&rewritten).unwrap();
    run_ok(&s, &sample(), &[]);
    assert_eq!(std::fs::read(&rewritten).unwrap(), first);
}

#[test]
fn a_compressed_blob_goes_in_stored_and_gnu_tar_reads_the_package() {
    use std::io::Read;
    let mut s = setup(RECIPE);
    // A toolchain tarball as incompressible as a real one, and big enough to be sampled.
    let mut blob = Vec::new();
    baker::release::synth::Noise::new(3, 300_000)
        .read_to_end(&mut blob)
        .unwrap();
    s.blob = s.dir.path().join("go1.22.5.linux-armv6l.tar.gz");
    std::fs::write(&s.blob, &blob).unwrap();
    run_ok(&s, &sample(), &[]);
    let rewritten = s.dir.path().join("out.tgz");
    verify_ok(&rewritten);

    let x = s.dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    let tar = |args: &[&str]| {
        let o = std::process::Command::new("tar")
            .args(args)
            .current_dir(&x)
            .output()
            .unwrap();
        assert!(o.status.success(), "tar {args:?}: {o:?}");
    };
    tar(&["xzf", rewritten.to_str().unwrap()]);
    let package = x.join("packages/golang-1-linux.tgz");
    // Stored: five bytes a 64 KiB block, where deflating would have added 6%.
    let size = std::fs::metadata(&package).unwrap().len();
    assert!(size < blob.len() as u64 + 2048, "{size}");
    tar(&["xzf", "packages/golang-1-linux.tgz"]);
    assert!(std::fs::read(x.join("golang/go1.22.5.linux-armv6l.tar.gz")).unwrap() == blob);
}

#[test]
fn json_summary_names_the_changes() {
    let s = setup(RECIPE);
    let out = run_ok(&s, &sample_sha1(), &["--json"]);
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(all["audit"]["target"], "armv6l");
    let v = &all["rewrite"];
    assert_eq!(v["new_version"], "0+dev.1+pi.armv6l");
    assert_eq!(v["target"], "armv6l");
    assert_eq!(v["copied_archives"], 3);
    let c = &v["changed"][0];
    assert_eq!(c["package"], "golang-1-linux");
    assert_eq!(
        c["old_fingerprint"],
        "0ece9e64fd7816c0aa13c7832bfe385ccbb6510db2f9a092a4b4d36c66ea1ec9"
    );
    assert_eq!(
        c["blobs"][0]["old_path"],
        "golang/go1.22.5.linux-amd64.tar.gz"
    );
    assert_eq!(
        c["blobs"][0]["new_path"],
        "golang/go1.22.5.linux-armv6l.tar.gz"
    );
    assert_eq!(c["patched"][0], "packaging");
}

#[test]
fn a_rule_matching_nothing_fails_unless_optional() {
    let recipe = format!("{RECIPE}- packages: envoy*\n  files: \"*\"\n  remove: true\n");
    let s = setup(&recipe);
    let e = stderr_line(&run(&s, &sample(), &[]));
    assert!(
        e.contains("rules[2] (packages \"envoy*\"): matched nothing"),
        "{e}"
    );
    assert!(!s.dir.path().join("out.tgz").exists());

    let s = setup(&format!("{recipe}  optional: true\n"));
    run_ok(&s, &sample(), &[]);

    // A patch whose text is absent counts as matching nothing too.
    let s = setup(&RECIPE.replace("literal: linux-amd64", "literal: linux-386"));
    let e = stderr_line(&run(&s, &sample(), &[]));
    assert!(
        e.contains("rules[1]") && e.contains("matched nothing"),
        "{e}"
    );
}

#[test]
fn unsupported_packages_fail_with_the_recipe_message() {
    let recipe =
        format!("{RECIPE}- packages: hello\n  unsupported: \"envoy has no 32-bit ARM build\"\n");
    let s = setup(&recipe);
    let e = stderr_line(&run(&s, &sample(), &[]));
    assert!(
        e.ends_with("package hello: envoy has no 32-bit ARM build"),
        "{e}"
    );
}

#[test]
fn bad_recipes_and_missing_blobs_are_named() {
    let s = setup(&RECIPE.replace("target: armv6l", "target: armv6l\ntypo_key: 1"));
    let e = stderr_line(&run(&s, &sample(), &[]));
    assert!(
        e.contains("recipe.yml") && e.contains("unknown field `typo_key`"),
        "{e}"
    );

    let s = setup(&RECIPE.replace("blob: go1.22.5.linux-armv6l", "blob: not-in-lock"));
    let e = stderr_line(&run(&s, &sample(), &[]));
    assert!(e.contains("blob not-in-lock: "), "{e}");
    let lock = lock_file(&s, "armv6l", &"ab".repeat(32));
    let e = stderr_line(&run_with_lock(&s, &lock));
    assert!(
        e.contains("blob not-in-lock: unknown blob key \"not-in-lock\""),
        "{e}"
    );

    let s = setup(&RECIPE.replace("release: pi-sample", "release: diego"));
    let e = stderr_line(&run(&s, &sample(), &[]));
    assert!(
        e.ends_with("the recipe is for release diego, the input is pi-sample"),
        "{e}"
    );
}

struct WrongSum(PathBuf);

impl Blobs for WrongSum {
    fn sha256(&self, _key: &str) -> Result<String, BlobError> {
        Ok("0".repeat(64))
    }
    fn get(&self, _key: &str) -> Result<LockedBlob, BlobError> {
        Ok(LockedBlob {
            path: self.0.clone(),
            sha256: "0".repeat(64),
            size: 1,
            name: "go1.22.5.linux-armv6l.tar.gz".into(),
        })
    }
}

#[test]
fn a_blob_with_the_wrong_checksum_is_refused() {
    let s = setup(RECIPE);
    let (recipe, rules) = ReleaseRecipe::parse(&s.recipe, RECIPE).unwrap();
    let out = s.dir.path().join("x.tgz");
    let e =
        rewrite::rewrite(&sample(), &recipe, &rules, &WrongSum(s.blob.clone()), &out).unwrap_err();
    assert!(matches!(e, RewriteError::BlobMismatch { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.starts_with("blob go1.22.5.linux-armv6l: sha256 mismatch: blobs.lock says 0000"),
        "{msg}"
    );
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(s.dir.path()).unwrap().count(),
        2,
        "temp files left behind"
    );
}

#[test]
fn compiled_releases_are_refused() {
    let mut u = unpack(&sample());
    let mut pkgs = std::mem::take(&mut u.manifest.packages);
    for p in &mut pkgs {
        p.stemcell = Some("ubuntu-jammy/1.500".into());
        let from = u
            .archives
            .remove(&format!("packages/{}.tgz", p.name))
            .unwrap();
        u.archives
            .insert(format!("compiled_packages/{}.tgz", p.name), from);
    }
    u.manifest.compiled_packages = pkgs;
    let compiled = u.write("compiled.tgz");
    verify_ok(&compiled);
    let s = setup(RECIPE);
    let e = stderr_line(&run(&s, &compiled, &[]));
    assert!(
        e.ends_with("pi-sample 0+dev.1 is a compiled release; its binaries cannot be swapped"),
        "{e}"
    );
}

fn lock_file(s: &Setup, arch: &str, sha256: &str) -> PathBuf {
    let size = std::fs::metadata(&s.blob).unwrap().len();
    let lock = s.dir.path().join("blobs.lock");
    std::fs::write(
        &lock,
        format!(
            "blobs:\n  go1.22.5.linux-armv6l:\n    url: file://{}\n    sha256: {sha256}\n    size: {size}\n    arch: {arch}\n    replaces: golang-1-linux toolchain\n",
            s.blob.display()
        ),
    )
    .unwrap();
    lock
}

fn run_with_lock(s: &Setup, lock: &Path) -> std::process::Output {
    let out = s.dir.path().join("out.tgz");
    let cache = s.dir.path().join("cache");
    baker(&[
        "rewrite-release",
        sample().to_str().unwrap(),
        "--recipe",
        s.recipe.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--lock",
        lock.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ])
}

#[test]
fn blobs_come_from_the_lock_through_the_cache() {
    let s = setup(RECIPE);
    let sha = sha256_hex(&std::fs::read(&s.blob).unwrap());
    let out = run_with_lock(&s, &lock_file(&s, "armv6l", &sha));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = release::read_manifest(&s.dir.path().join("out.tgz")).unwrap();
    assert_ne!(
        m.packages[0].fingerprint,
        "0ece9e64fd7816c0aa13c7832bfe385ccbb6510db2f9a092a4b4d36c66ea1ec9"
    );

    let e = stderr_line(&run_with_lock(&s, &lock_file(&s, "arm64", &sha)));
    assert!(
        e.contains("blob go1.22.5.linux-armv6l:")
            && e.contains("says it is for arm64, the recipe targets armv6l"),
        "{e}"
    );

    std::fs::remove_dir_all(s.dir.path().join("cache")).unwrap();
    let e = stderr_line(&run_with_lock(
        &s,
        &lock_file(&s, "armv6l", &"ab".repeat(32)),
    ));
    assert!(e.contains("go1.22.5.linux-armv6l"), "{e}");
}

#[test]
fn the_output_is_audited_and_strict_refuses_leftover_x86_binaries() {
    let s = setup(RECIPE);
    let out = run_ok(&s, &sample(), &[]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("audit for armv6l:") && text.contains("0 error(s)"),
        "{text}"
    );

    // A "toolchain" that is really an x86-64 binary (this machine's /bin/true).
    let mut w = baker::archive::TarGzWriter::new(std::fs::File::create(&s.blob).unwrap());
    w.add_path("go/bin/go", Path::new("/bin/true")).unwrap();
    w.finish().unwrap();
    let out = run(&s, &sample(), &[]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("audit error: packages/golang-1-linux.tgz!/"),
        "{text}"
    );

    let e = stderr_line(&run(&s, &sample(), &["--strict"]));
    assert!(
        e.contains("--strict: the audit of") && e.contains("output removed"),
        "{e}"
    );
    assert!(!s.dir.path().join("out.tgz").exists());
}

#[test]
fn sha1_era_packages_get_sha1_era_fingerprints() {
    use sha1::Sha1;
    let u = unpack(&sample());
    let old = sha1_era_release(&u);
    let s = setup(RECIPE);
    run_ok(&s, &old, &["--no-audit"]);
    let packaging =
        "set -e\ntar xzf golang/go1.22.5.linux-armv6l.tar.gz\ncp -R go/* ${BOSH_INSTALL_TARGET}\n";
    let input = format!(
        "v2golang/go1.22.5.linux-armv6l.tar.gz{}100644packaging{}",
        hex::encode(Sha1::digest(std::fs::read(&s.blob).unwrap())),
        hex::encode(Sha1::digest(packaging.as_bytes()))
    );
    let m = release::read_manifest(&s.dir.path().join("out.tgz")).unwrap();
    assert_eq!(
        m.packages[0].fingerprint,
        hex::encode(Sha1::digest(input.as_bytes()))
    );
    let v = baker(&[
        "verify-release",
        s.dir.path().join("out.tgz").to_str().unwrap(),
    ]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
}

/// Outer entry names in order, as GNU tar lists them.
fn tar_names(path: &Path) -> Vec<String> {
    let out = std::process::Command::new("tar")
        .arg("-tzf")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn one_pass_keeps_the_input_order_rebuilt_packages_and_release_mf_last() {
    // a rule that may touch `hello` but does not: that package is copied as it was
    let recipe = format!(
        "{RECIPE}- packages: hello\n  optional: true\n  patch: {{ literal: no-such-text, with: x }}\n"
    );
    let s = setup(&recipe);
    let out = run_ok(&s, &sample(), &["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rewrite"]["copied_archives"], 3);
    let rewritten = s.dir.path().join("out.tgz");
    let names = tar_names(&rewritten);
    assert_eq!(
        names.last().map(String::as_str),
        Some("release.MF"),
        "{names:?}"
    );
    // input order, but the rebuilt package comes after the last input entry
    let rebuilt = "packages/golang-1-linux.tgz".to_string();
    let mut input: Vec<String> = tar_names(&sample())
        .into_iter()
        .map(|n| n.trim_start_matches("./").trim_end_matches('/').to_string())
        .filter(|n| n != "release.MF" && !n.is_empty() && *n != rebuilt)
        .collect();
    input.push(rebuilt);
    let output: Vec<String> = names
        .iter()
        .map(|n| n.trim_end_matches('/').to_string())
        .filter(|n| n != "release.MF")
        .collect();
    assert_eq!(output, input);
    let rel = release::read(&rewritten, None).unwrap();
    let before = release::read(&sample(), None).unwrap();
    assert_eq!(
        rel.archives["packages/hello.tgz"].digests.get(Sha256Algo),
        before.archives["packages/hello.tgz"]
            .digests
            .get(Sha256Algo)
    );
    release::verify(&rel).unwrap();
}

#[test]
fn a_corrupt_archive_in_the_input_leaves_no_output() {
    let s = setup(RECIPE);
    let u = unpack(&sample());
    // flip one byte inside hello's archive: its digest no longer matches release.MF
    let hello = &u.archives["packages/hello.tgz"];
    let mut bytes = std::fs::read(hello).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(hello, bytes).unwrap();
    let bad = u.write("corrupt.tgz");
    let out = run(&s, &bad, &[]);
    let e = stderr_line(&out);
    assert!(e.contains("packages/hello.tgz"), "{e}");
    assert!(!s.dir.path().join("out.tgz").exists());
    let leftovers: Vec<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') || n.starts_with("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
