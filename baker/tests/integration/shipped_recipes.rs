//! The recipes in recipes/releases/ parse, and do what they say on releases with the real
//! upstream structure (names, package layout, blob names and packaging lines as bosh-cli
//! shows them on the current sources), with stand-in blob bytes.

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// Lists the files of `archive` in the rewritten release.
fn files_of(rel: &release::ReleaseTarball, archive: &str) -> Vec<String> {
    rel.archives[archive]
        .files
        .as_ref()
        .unwrap()
        .iter()
        .map(|f| f.name.clone())
        .collect()
}

fn ok_summary(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn golang_release_recipes_swap_the_linux_toolchains() {
    for (recipe, arch) in [
        ("golang-release-armv6l.yml", "armv6l"),
        ("golang-release-arm64.yml", "arm64"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let toolchain = |name: &'static str, blob: &'static str| Pkg {
            name,
            deps: &[],
            files: vec![
                ("packaging", go_packaging(""), false),
                ("compile.env.unix", b"export GOROOT=x\n".to_vec(), false),
                (blob, b"amd64 toolchain".to_vec(), false),
            ],
        };
        // golang-release's name in config/final.yml is `golang`
        let input = build_release(
            dir.path(),
            "golang",
            "0.204.0",
            &[
                toolchain("golang-1-linux", "go1.26.7.linux-amd64.tar.gz"),
                toolchain("golang-1.25-linux", "go1.25.14.linux-amd64.tar.gz"),
                toolchain("golang-1.26-linux", "go1.26.7.linux-amd64.tar.gz"),
                Pkg {
                    name: "golang-1-linux-test",
                    deps: &["golang-1-linux"],
                    files: vec![("packaging", b"go version\n".to_vec(), false)],
                },
            ],
        );
        let summary = ok_summary(rewrite(dir.path(), &input, recipe), recipe);
        let rel = release::read(&dir.path().join("out.tgz"), None).unwrap();
        release::verify(&rel).unwrap();
        let before = release::read_manifest(&input).unwrap();
        assert_eq!(rel.manifest.version, format!("0.204.0+pi.{arch}"));
        for (old, new) in before.packages.iter().zip(&rel.manifest.packages) {
            let changed = old.name != "golang-1-linux-test";
            assert_eq!(old.fingerprint != new.fingerprint, changed, "{}", old.name);
        }
        let go125 = if arch == "armv6l" {
            "1.25.9"
        } else {
            "1.25.14"
        };
        let names = files_of(&rel, "packages/golang-1.25-linux.tgz");
        assert!(
            names.contains(&format!("go{go125}.linux-{arch}.tar.gz")),
            "{names:?}"
        );
        let names = files_of(&rel, "packages/golang-1-linux.tgz");
        assert!(
            names.contains(&format!("go1.26.7.linux-{arch}.tar.gz")),
            "{names:?}"
        );
        // go.dev has no armv6l 1.25.14: the recipe declares the change and the summary says it
        assert_eq!(
            summary.contains("version change 1.25.14 -> 1.25.9: go.dev publishes no linux-armv6l"),
            arch == "armv6l",
            "{summary}"
        );
        assert!(!summary.contains("kept name"), "{summary}");
    }
}

#[test]
fn a_release_named_golang_release_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let input = build_release(
        dir.path(),
        "golang-release",
        "0.204.0",
        &[Pkg {
            name: "golang-1-linux",
            deps: &[],
            files: vec![("packaging", go_packaging(""), false)],
        }],
    );
    let out = rewrite(dir.path(), &input, "golang-release-arm64.yml");
    let e = crate::support::stderr_line(&out);
    assert!(
        e.contains("the recipe is for release golang, the input is golang-release"),
        "{e}"
    );
}

/// golang-release's golang-1.23-linux as garden-runc 1.58.0 and diego vendor it.
fn vendored_go(blob: &'static str) -> Pkg<'static> {
    Pkg {
        name: "golang-1.23-linux",
        deps: &[],
        files: vec![
            ("packaging", go_packaging(""), false),
            ("compile.env.unix", b"export GOROOT=x\n".to_vec(), false),
            (blob, b"amd64 toolchain".to_vec(), false),
        ],
    }
}

/// A real bzip2-compressed source tarball, as garden-runc's iptables package carries.
fn libmnl_tar_bz2() -> Vec<u8> {
    use std::io::Write;
    let mut t = baker::archive::TarWriter::plain(Vec::new());
    t.add_bytes(
        "libmnl-1.0.5/README",
        baker::archive::Mode::Regular,
        b"libmnl\n",
    )
    .unwrap();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    bz.write_all(&t.finish_tar().unwrap()).unwrap();
    bz.finish().unwrap()
}

fn garden_runc(dir: &Path, go: &'static str) -> PathBuf {
    build_release(
        dir,
        "garden-runc",
        "1.58.0",
        &[
            vendored_go(go),
            Pkg {
                name: "busybox",
                deps: &[],
                files: vec![
                    (
                        "packaging",
                        b"gunzip -c busybox/*.tar.gz > $BOSH_INSTALL_TARGET/busybox-1.36.1.tar\n"
                            .to_vec(),
                        false,
                    ),
                    (
                        "busybox/busybox-1.36.1.tar.gz",
                        b"amd64 layer".to_vec(),
                        false,
                    ),
                ],
            },
            Pkg {
                name: "iptables",
                deps: &[],
                files: vec![
                    (
                        "packaging",
                        b"tar xjf iptables/libmnl-1.0.5.tar.bz2\n".to_vec(),
                        false,
                    ),
                    ("iptables/libmnl-1.0.5.tar.bz2", libmnl_tar_bz2(), false),
                ],
            },
            Pkg {
                name: "runc",
                deps: &["golang-1.23-linux"],
                files: vec![("packaging", b"go build\n".to_vec(), false)],
            },
        ],
    )
}

#[test]
fn garden_runc_recipes_swap_the_same_go_and_say_which_names_they_keep() {
    for (recipe, arch) in [
        ("garden-runc-armv6l.yml", "armv6l"),
        ("garden-runc-arm64.yml", "arm64"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let input = garden_runc(dir.path(), "go1.23.2.linux-amd64.tar.gz");
        let summary = ok_summary(rewrite(dir.path(), &input, recipe), recipe);
        assert!(
            summary.contains("package golang-1.23-linux") && summary.contains("package busybox"),
            "{summary}"
        );
        assert!(summary.contains("3 archives copied unchanged"), "{summary}");
        assert!(summary.contains("patched packaging"), "{summary}");
        assert!(
            summary.contains(
                "kept name busybox/busybox-1.36.1.tar.gz no longer describes its content"
            ),
            "{summary}"
        );
        assert!(!summary.contains("version change"), "{summary}");
        let rel = release::read(&dir.path().join("out.tgz"), None).unwrap();
        release::verify(&rel).unwrap();
        let names = files_of(&rel, "packages/golang-1.23-linux.tgz");
        assert!(
            names.contains(&format!("go1.23.2.linux-{arch}.tar.gz")),
            "{names:?}"
        );

        // the old recipes' go-1.23.12 under the kept amd64 name changed the version silently
        let dir = tempfile::tempdir().unwrap();
        let input = garden_runc(dir.path(), "go1.23.12.linux-amd64.tar.gz");
        let e = crate::support::stderr_line(&rewrite(dir.path(), &input, recipe));
        assert!(
            e.contains("go1.23.12.linux-amd64.tar.gz is version 1.23.12 but blob go-1.23.2-linux-")
                && e.contains("declare the change with `version_change`"),
            "{e}"
        );
        assert!(!dir.path().join("out.tgz").exists());
    }
}

fn diego(dir: &Path, go: &'static str) -> PathBuf {
    build_release(
        dir,
        "diego",
        "2.105.0",
        &[
            vendored_go(go),
            Pkg {
                name: "cfdot",
                deps: &["golang-1.23-linux"],
                files: vec![
                    (
                        "packaging",
                        b"tar -xzf src/jq/jq-*.tgz -C ${GOBIN} jq\n".to_vec(),
                        false,
                    ),
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
    )
}

fn tar(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new("tar")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn diego_armv6l_stops_on_envoy_and_arm64_swaps_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = diego(dir.path(), "go1.23.2.linux-amd64.tar.gz");
    let e = crate::support::stderr_line(&rewrite(dir.path(), &input, "diego-armv6l.yml"));
    assert!(
        e.contains("package proxy: Envoy has no 32-bit ARM build"),
        "{e}"
    );
    assert!(!dir.path().join("out.tgz").exists());

    let summary = ok_summary(rewrite(dir.path(), &input, "diego-arm64.yml"), "diego");
    assert!(!summary.contains("version change"), "{summary}");
    assert!(
        summary.contains("kept name proxy/envoy-abc-1.28.7.tgz no longer describes"),
        "{summary}"
    );
    assert!(summary.contains("as member jq"), "{summary}");
    let out = dir.path().join("out.tgz");
    let rel = release::read(&out, None).unwrap();
    release::verify(&rel).unwrap();
    assert!(files_of(&rel, "packages/cfdot.tgz").contains(&"jq/jq-1.7.1-linux-arm64.tgz".into()));

    // cfdot's packaging line, with GNU tar: the .tgz must hold a member named exactly `jq`
    let x = dir.path().join("x");
    std::fs::create_dir_all(x.join("src")).unwrap();
    std::fs::create_dir_all(x.join("bin")).unwrap();
    let o = tar(&["-xzf", out.to_str().unwrap(), "packages/cfdot.tgz"], &x);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = tar(&["-xzf", "packages/cfdot.tgz", "-C", "src"], &x);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = tar(
        &["-xzf", "src/jq/jq-1.7.1-linux-arm64.tgz", "-C", "bin", "jq"],
        &x,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read(x.join("bin/jq")).unwrap(),
        b"arm bits for jq-1.7.1-linux-arm64"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(x.join("bin/jq"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "{mode:o}");
}

#[test]
fn diego_as_published_changes_go_1_23_1_to_1_23_2_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let input = diego(dir.path(), "go1.23.1.linux-amd64.tar.gz");
    let summary = ok_summary(rewrite(dir.path(), &input, "diego-arm64.yml"), "diego");
    assert!(
        summary.contains("blob    go1.23.1.linux-amd64.tar.gz -> go1.23.2.linux-arm64.tar.gz"),
        "{summary}"
    );
    assert!(
        summary.contains("version change 1.23.1 -> 1.23.2: go1.23.1 is not pinned"),
        "{summary}"
    );
}

#[test]
fn shipped_recipes_name_pinned_go_toolchains_and_say_how_to_add_the_rest() {
    let lock = baker::blobs_lock::BlobsLock::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../blobs.lock"),
    )
    .unwrap();
    for e in std::fs::read_dir(recipes_dir()).unwrap() {
        let p = e.unwrap().path();
        let (_, rules) = ReleaseRecipe::load(&p).unwrap();
        for key in ReleaseRecipe::blob_keys(&rules) {
            if key.starts_with("go-") {
                assert!(lock.contains(key), "{}: {key} is not pinned", p.display());
            } else if !lock.contains(key) {
                let e = lock.get(key).unwrap_err().to_string();
                assert!(e.contains(&format!("baker lock add {key} URL")), "{e}");
            }
        }
    }
    let e = lock.get("go-1.25.14-linux-armv6l").unwrap_err().to_string();
    assert!(e.contains("`baker lock go 1.25.14 --arch armv6l`"), "{e}");
}
