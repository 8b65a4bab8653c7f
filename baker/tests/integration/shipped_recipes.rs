//! The recipes in recipes/releases/ parse, and do what they say on releases shaped like
//! the upstream ones (notes §9), with stand-in blobs.

use std::path::{Path, PathBuf};

use crate::support::baker;
use crate::support::release::*;
use baker::recipe::release::ReleaseRecipe;
use baker::release;

fn recipes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes/releases")
}

#[test]
fn every_shipped_recipe_is_valid() {
    let mut n = 0;
    for e in std::fs::read_dir(recipes_dir()).unwrap() {
        let p = e.unwrap().path();
        ReleaseRecipe::load(&p).unwrap_or_else(|e| panic!("{e}"));
        n += 1;
    }
    assert_eq!(n, 6);
}

/// Runs a shipped recipe with a stand-in file for every blob key it names.
fn rewrite(dir: &Path, input: &Path, recipe: &str) -> std::process::Output {
    let recipe = recipes_dir().join(recipe);
    let (_, rules) = ReleaseRecipe::load(&recipe).unwrap();
    let mut args: Vec<String> = vec![
        "rewrite-release".into(),
        input.display().to_string(),
        "--recipe".into(),
        recipe.display().to_string(),
        "-o".into(),
        dir.join("out.tgz").display().to_string(),
    ];
    for r in &rules {
        if let baker::recipe::release::Action::Replace(rep) = &r.action {
            let f = dir.join(&rep.blob);
            std::fs::write(&f, format!("arm bits for {}", rep.blob)).unwrap();
            args.push("--blob".into());
            args.push(format!("{}={}", rep.blob, f.display()));
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    baker(&args)
}

fn go_packaging(prefix: &str) -> Vec<u8> {
    format!("set -e\ntar xzf {prefix}go*.linux-amd64.tar.gz\ncp -R go/* ${{BOSH_INSTALL_TARGET}}\n")
        .into_bytes()
}

#[test]
fn golang_release_recipes_swap_the_linux_toolchains() {
    for (recipe, arch) in [
        ("golang-release-armv6l.yml", "armv6l"),
        ("golang-release-arm64.yml", "arm64"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let toolchain = |name: &'static str, version: &'static str| Pkg {
            name,
            deps: &[],
            files: vec![
                ("packaging", go_packaging(""), false),
                ("compile.env.unix", b"export GOROOT=x\n".to_vec(), false),
                (
                    match version {
                        "1.25" => "go1.25.14.linux-amd64.tar.gz",
                        _ => "go1.26.7.linux-amd64.tar.gz",
                    },
                    b"amd64 toolchain".to_vec(),
                    false,
                ),
            ],
        };
        let input = build_release(
            dir.path(),
            "golang-release",
            "0.204.0",
            &[
                toolchain("golang-1-linux", "1.26"),
                toolchain("golang-1.25-linux", "1.25"),
                toolchain("golang-1.26-linux", "1.26"),
                Pkg {
                    name: "golang-1-linux-test",
                    deps: &["golang-1-linux"],
                    files: vec![("packaging", b"go version\n".to_vec(), false)],
                },
            ],
        );
        let out = rewrite(dir.path(), &input, recipe);
        assert!(
            out.status.success(),
            "{recipe}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rel = release::read(&dir.path().join("out.tgz"), None).unwrap();
        release::verify(&rel).unwrap();
        let before = release::read_manifest(&input).unwrap();
        assert_eq!(rel.manifest.version, format!("0.204.0+pi.{arch}"));
        for (old, new) in before.packages.iter().zip(&rel.manifest.packages) {
            let changed = old.name != "golang-1-linux-test";
            assert_eq!(old.fingerprint != new.fingerprint, changed, "{}", old.name);
            if changed {
                let names: Vec<_> = rel.archives[&format!("packages/{}.tgz", new.name)]
                    .files
                    .as_ref()
                    .unwrap()
                    .iter()
                    .map(|f| f.name.clone())
                    .collect();
                assert!(
                    names
                        .iter()
                        .any(|n| n.ends_with(&format!("linux-{arch}.tar.gz"))),
                    "{names:?}"
                );
            }
        }
    }
}

#[test]
fn garden_runc_recipes_swap_toolchain_and_busybox() {
    for recipe in ["garden-runc-armv6l.yml", "garden-runc-arm64.yml"] {
        let dir = tempfile::tempdir().unwrap();
        let input = build_release(
            dir.path(),
            "garden-runc",
            "1.58.0",
            &[
                Pkg {
                    name: "golang-1.23-linux",
                    deps: &[],
                    files: vec![
                        ("packaging", go_packaging("golang/"), false),
                        ("golang/go1.23.12.linux-amd64.tar.gz", b"amd64".to_vec(), false),
                    ],
                },
                Pkg {
                    name: "busybox",
                    deps: &[],
                    files: vec![
                        ("packaging", b"gunzip -c busybox/*.tar.gz > $BOSH_INSTALL_TARGET/busybox-1.36.1.tar\n".to_vec(), false),
                        ("busybox/busybox-1.36.1.tar.gz", b"amd64 layer".to_vec(), false),
                    ],
                },
                Pkg {
                    name: "runc",
                    deps: &["golang-1.23-linux"],
                    files: vec![("packaging", b"go build\n".to_vec(), false)],
                },
            ],
        );
        let out = rewrite(dir.path(), &input, recipe);
        assert!(
            out.status.success(),
            "{recipe}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary = String::from_utf8(out.stdout).unwrap();
        assert!(
            summary.contains("package golang-1.23-linux") && summary.contains("package busybox"),
            "{summary}"
        );
        assert!(summary.contains("2 archives copied unchanged"), "{summary}");
    }
}

#[test]
fn diego_armv6l_stops_on_envoy_and_arm64_swaps_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = build_release(
        dir.path(),
        "diego",
        "2.99.0",
        &[
            Pkg {
                name: "golang-1.23-linux",
                deps: &[],
                files: vec![
                    ("packaging", go_packaging("golang/"), false),
                    (
                        "golang/go1.23.12.linux-amd64.tar.gz",
                        b"amd64".to_vec(),
                        false,
                    ),
                ],
            },
            Pkg {
                name: "cfdot",
                deps: &["golang-1.23-linux"],
                files: vec![
                    ("packaging", b"tar xzf jq/jq-*.tgz\n".to_vec(), false),
                    ("jq/jq-1.7.1-linux-amd64.tgz", b"amd64 jq".to_vec(), false),
                ],
            },
            Pkg {
                name: "proxy",
                deps: &[],
                files: vec![
                    (
                        "packaging",
                        b"tar xzf proxy/envoy-abc-1.28.7.tgz\n".to_vec(),
                        false,
                    ),
                    ("proxy/envoy-abc-1.28.7.tgz", b"amd64 envoy".to_vec(), false),
                ],
            },
        ],
    );
    let out = rewrite(dir.path(), &input, "diego-armv6l.yml");
    assert!(!out.status.success());
    let e = String::from_utf8(out.stderr).unwrap();
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("package proxy: Envoy has no 32-bit ARM build"),
        "{e}"
    );
    assert!(!dir.path().join("out.tgz").exists());

    let out = rewrite(dir.path(), &input, "diego-arm64.yml");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rel = release::read(&dir.path().join("out.tgz"), None).unwrap();
    release::verify(&rel).unwrap();
    let cfdot = rel.archives["packages/cfdot.tgz"].files.as_ref().unwrap();
    assert!(
        cfdot
            .iter()
            .any(|f| f.name == "jq/jq-1.7.1-linux-arm64.tgz")
    );
}
