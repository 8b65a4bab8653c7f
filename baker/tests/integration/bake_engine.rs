//! The bake engine and its stage cache, on a small but real recipe: an mmdebstrap `extract`
//! root (busybox-static, seconds to build) followed by `files` stages. Which stages ran is
//! read from the engine's report, never inferred from timings. Needs root (mmdebstrap root
//! mode) and Debian's archive.

use std::fs;
use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use crate::support::busybox_recipe;
use baker::bake::{self, BakeError, BakeOptions, Outcome};
use baker::blobs::{LocalBlobs, NoBlobs};
use baker::recipe::stemcell::StemcellRecipe;

struct Project {
    _dir: tempfile::TempDir,
    root: PathBuf,
    cache: PathBuf,
}

fn recipe() -> String {
    busybox_recipe(
        "engine-test",
        r#"  - name: early
    kind: files
    files:
      - {src: files/early.txt, dest: /etc/early.txt}
  - name: late
    kind: files
    files:
      - {src: files/late.hbs, dest: /etc/late.txt, mode: '0600', template: true}
"#,
    )
}

fn project() -> Project {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("project");
    fs::create_dir_all(root.join("files")).unwrap();
    fs::write(root.join("files/early.txt"), "early\n").unwrap();
    fs::write(root.join("files/late.hbs"), "{{name}} {{arch}} v1\n").unwrap();
    fs::write(root.join("recipe.yml"), recipe()).unwrap();
    let cache = dir.path().join("cache");
    Project {
        _dir: dir,
        root,
        cache,
    }
}

fn bake(p: &Project, from: Option<&str>) -> Result<bake::BakeReport, BakeError> {
    let recipe_path = p.root.join("recipe.yml");
    let recipe = StemcellRecipe::load(&recipe_path).unwrap();
    let opts = BakeOptions {
        recipe_path,
        project_root: p.root.clone(),
        cache_dir: p.cache.clone(),
        out_dir: p.root.join("out"),
        from: from.map(str::to_string),
    };
    bake::bake(&recipe, &opts, &NoBlobs)
}

fn entry_of(p: &Project, report: &bake::BakeReport, stage: &str) -> PathBuf {
    let key = &report.stages.iter().find(|s| s.name == stage).unwrap().key;
    p.cache.join(key)
}

fn restored_file(p: &Project, key_dir: &Path, name: &str) -> String {
    let out = p.root.join("restored");
    let _ = fs::remove_dir_all(&out);
    bake::cache::restore(&key_dir.join("rootfs.tar.zst"), &out).unwrap();
    fs::read_to_string(out.join(name)).unwrap()
}

#[test]
fn unchanged_stages_come_from_the_cache() {
    let p = project();
    let first = bake(&p, None).unwrap();
    assert_eq!(first.ran(), ["base", "early", "late"]);

    let again = bake(&p, None).unwrap();
    assert_eq!(again.ran(), Vec::<&str>::new(), "nothing changed");
    assert!(again.stages.iter().all(|s| s.outcome == Outcome::Cached));

    // a late template changes: only the late stage runs, on the restored earlier result
    fs::write(p.root.join("files/late.hbs"), "{{name}} {{arch}} v2\n").unwrap();
    let warm = bake(&p, None).unwrap();
    assert_eq!(warm.ran(), ["late"]);
    assert_eq!(warm.stages[0].key, first.stages[0].key);
    assert_ne!(warm.stages[2].key, first.stages[2].key);
    let late = restored_file(&p, &entry_of(&p, &warm, "late"), "etc/late.txt");
    assert_eq!(late, "engine-test armv6l v2\n");
    let mode = fs::metadata(p.root.join("restored/etc/late.txt")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o7777,
        0o600
    );
    assert_eq!(
        restored_file(&p, &entry_of(&p, &warm, "late"), "etc/early.txt"),
        "early\n"
    );

    // --from forces that stage and every later one
    let forced = bake(&p, Some("early")).unwrap();
    assert_eq!(forced.ran(), ["early", "late"]);

    // an early input changes: everything after it runs again
    fs::write(p.root.join("files/early.txt"), "early 2\n").unwrap();
    assert_eq!(bake(&p, None).unwrap().ran(), ["early", "late"]);
}

#[test]
fn a_corrupt_cache_entry_is_never_restored() {
    let p = project();
    let first = bake(&p, None).unwrap();
    let late = entry_of(&p, &first, "late");
    // flip bytes in the middle of the snapshot, keeping its size
    let snap = late.join("rootfs.tar.zst");
    let mut bytes = fs::read(&snap).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&snap, &bytes).unwrap();
    assert_eq!(bake(&p, None).unwrap().ran(), ["late"]);
    // a half-written entry (no meta.json) is ignored too
    fs::remove_file(late.join("meta.json")).unwrap();
    assert_eq!(bake(&p, None).unwrap().ran(), ["late"]);
    // and no temporary store or work directories are left behind
    let leftovers: Vec<_> = fs::read_dir(&p.cache)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn unknown_from_stage_is_an_error_naming_the_stages() {
    let p = project();
    let e = bake(&p, Some("lat")).unwrap_err().to_string();
    assert!(e.contains("--from lat"), "{e}");
    assert!(e.contains("base, early, late"), "{e}");
}

#[test]
fn a_missing_blob_fails_before_any_stage_runs() {
    let p = project();
    let text = recipe()
        + r#"
  - name: agent
    kind: go-build
    source: {blob: bosh-agent-src}
    install: /var/vcap/bosh/bin/bosh-agent
"#;
    fs::write(p.root.join("recipe.yml"), text).unwrap();
    let e = bake(&p, None).unwrap_err().to_string();
    assert!(e.contains("stage `agent`"), "{e}");
    assert!(e.contains("blob `bosh-agent-src`"), "{e}");
    assert!(e.contains("baker lock add"), "{e}");
    assert!(e.contains("PIFOUNDRY_MIRROR"), "{e}");
    assert!(!p.cache.exists() || fs::read_dir(&p.cache).unwrap().next().is_none());
    assert!(!p.root.join("out/logs").exists(), "a stage ran");
}

#[test]
fn go_build_from_a_source_tarball_with_a_patch_and_a_substitution_targets_armv6() {
    let p = project();
    // a GitHub-style tag tarball: one top directory, a module with a vendor/ directory
    let src_tgz = p.root.join("hello-1.0.tar.gz");
    let mut w = baker::archive::TarGzWriter::new(fs::File::create(&src_tgz).unwrap());
    let m = baker::archive::Mode::Regular;
    w.add_dir("hello-1.0/").unwrap();
    w.add_bytes(
        "hello-1.0/go.mod",
        m,
        b"module example.invalid/hello\n\ngo 1.19\n",
    )
    .unwrap();
    w.add_dir("hello-1.0/vendor/").unwrap();
    w.add_bytes("hello-1.0/vendor/modules.txt", m, b"").unwrap();
    w.add_dir("hello-1.0/main/").unwrap();
    w.add_bytes(
        "hello-1.0/main/main.go",
        m,
        b"package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n",
    )
    .unwrap();
    w.finish().unwrap();
    fs::write(
        p.root.join("files/greeting.patch"),
        "--- a/main/main.go\n+++ b/main/main.go\n@@ -2,4 +2,4 @@\n \n import \"fmt\"\n \n-func main() { fmt.Println(\"hello\") }\n+func main() { fmt.Println(\"patched hello\") }\n",
    )
    .unwrap();
    let text = recipe()
        + r#"
  - name: hello
    kind: go-build
    source: {blob: hello-src}
    package: ./main
    patches: [files/greeting.patch]
    substitutions:
      - file: main/main.go
        replace: '"patched hello"'
        with: '"patched and substituted hello"'
        why: the test's reason
    install: /usr/local/bin/hello
"#;
    fs::write(p.root.join("recipe.yml"), text).unwrap();
    let recipe_path = p.root.join("recipe.yml");
    let recipe = StemcellRecipe::load(&recipe_path).unwrap();
    let opts = BakeOptions {
        recipe_path,
        project_root: p.root.clone(),
        cache_dir: p.cache.clone(),
        out_dir: p.root.join("out"),
        from: None,
    };
    // blobs from local files, as a lock plus a warm blob cache would give them
    let blobs = LocalBlobs(BTreeMap::from([("hello-src".into(), src_tgz)]));
    let report = bake::bake(&recipe, &opts, &blobs).unwrap();
    assert_eq!(report.ran(), ["base", "early", "late", "hello"]);
    let out = p.root.join("restored");
    bake::cache::restore(&entry_of(&p, &report, "hello").join("rootfs.tar.zst"), &out).unwrap();
    let bin = out.join("usr/local/bin/hello");
    let info = std::process::Command::new("go")
        .args(["version", "-m"])
        .arg(&bin)
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.contains("GOARM=6") && info.contains("CGO_ENABLED=0"),
        "{info}"
    );
    let run = std::process::Command::new("qemu-arm-static")
        .args(["-cpu", "arm1176"])
        .arg(&bin)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "patched and substituted hello\n"
    );
}

#[test]
fn a_substitution_that_matches_nothing_fails_the_bake_with_its_reason() {
    let p = project();
    fs::create_dir_all(p.root.join("hello/main")).unwrap();
    fs::write(
        p.root.join("hello/go.mod"),
        "module example.invalid/hello\n\ngo 1.19\n",
    )
    .unwrap();
    fs::write(
        p.root.join("hello/main/main.go"),
        "package main\n\nfunc main() {}\n",
    )
    .unwrap();
    let text = recipe()
        + r#"
  - name: hello
    kind: go-build
    source: {path: hello}
    package: ./main
    substitutions:
      - file: main/main.go
        replace: strconv.Atoi(x)
        with: strconv.ParseUint(x, 10, 64)
        why: sizes above 2 GiB overflow a 32-bit int
    install: /usr/local/bin/hello
"#;
    fs::write(p.root.join("recipe.yml"), text).unwrap();
    let e = bake(&p, None).unwrap_err().to_string();
    assert!(e.contains("stage `hello`"), "{e}");
    assert!(e.contains("main/main.go"), "{e}");
    assert!(e.contains("`strconv.Atoi(x)` matches nothing"), "{e}");
    assert!(e.contains("sizes above 2 GiB overflow a 32-bit int"), "{e}");
}
