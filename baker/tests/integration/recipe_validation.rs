//! A stemcell recipe with a bad field fails `baker bake` when it is loaded, naming the file,
//! the stage and the field — before any stage runs (no output directory, no stage cache, no
//! log) — for every stage kind.

use std::fs;
use std::path::Path;

use crate::support::{baker, stderr_line};

/// Every stage kind once, each valid.
const RECIPE: &str = r#"name: validation-test
version: '0.0.1'
operating_system: debian-bookworm-armv6l
arch: armv6l
board: rpi-zero
stages:
  - {name: base, kind: rootfs, suite: bookworm, variant: minbase}
  - {name: users, kind: users, groups: [{name: admin}], users: [{name: vcap, uid: 1000, groups: [admin]}]}
  - {name: system, kind: chroot, commands: ['true']}
  - {name: initramfs, kind: initramfs, modules: [ext4, nbd]}
  - {name: files, kind: files, files: [{src: files/motd, dest: /etc/motd, mode: '0644'}]}
  - {name: agent, kind: go-build, source: {path: agent}, install: /var/vcap/bosh/bin/bosh-agent}
  - {name: image, kind: image, size_mib: 2048, boot_mib: 256, root_uuid: 5049464f-756e-4472-b900-000000000002, boot_volume_id: '50490001', disk_id: '50494630'}
  - {name: stemcell, kind: stemcell, stemcell_formats: [pi-raw]}
"#;

/// Bakes `recipe` (the valid one with `from` replaced by `to`) and returns its stderr line,
/// after checking that the bake stopped before doing anything.
fn bake_fails(from: &str, to: &str) -> (String, String) {
    assert!(RECIPE.contains(from), "{from}");
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("files")).unwrap();
    fs::write(dir.path().join("files/motd"), "hi\n").unwrap();
    fs::create_dir_all(dir.path().join("agent")).unwrap();
    let recipe = dir.path().join("recipe.yml");
    fs::write(&recipe, RECIPE.replace(from, to)).unwrap();
    let (out, cache) = (dir.path().join("out"), dir.path().join("cache"));
    let run = baker(&[
        "bake",
        "--recipe",
        recipe.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    let line = stderr_line(&run);
    assert!(!out.exists(), "a bad recipe made {}", out.display());
    assert!(!cache.exists(), "a bad recipe opened the stage cache");
    (line, recipe.display().to_string())
}

fn check(from: &str, to: &str, want: &str) {
    let (line, recipe) = bake_fails(from, to);
    assert_eq!(line, format!("baker: {recipe}: {want}"));
}

#[test]
fn the_valid_recipe_loads() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("recipe.yml");
    fs::write(&p, RECIPE).unwrap();
    let r = baker::recipe::stemcell::StemcellRecipe::load(Path::new(&p)).unwrap();
    let kinds: Vec<_> = r.stages.iter().map(|s| s.kind()).collect();
    assert_eq!(
        kinds,
        [
            "rootfs",
            "users",
            "chroot",
            "initramfs",
            "files",
            "go-build",
            "image",
            "stemcell"
        ]
    );
}

#[test]
fn rootfs_fields() {
    check(
        "variant: minbase",
        "variant: minbse",
        "stages[0] (base): variant `minbse` is not an mmdebstrap variant (extract, custom, essential, apt, required, minbase, buildd, important, debootstrap, standard)",
    );
    check(
        "variant: minbase",
        "snapshot: '2026-01-01'",
        "stages[0] (base): snapshot `2026-01-01` must look like 20260101T000000Z",
    );
}

#[test]
fn users_fields() {
    check(
        "{name: vcap, uid: 1000",
        "{name: Vcap, uid: 1000",
        "stages[1] (users): users[0].name `Vcap` is not a user or group name (1-32 of a-z 0-9 _ -, starting with a letter or _)",
    );
}

#[test]
fn chroot_fields() {
    check(
        "commands: ['true']",
        "commands: []",
        "stages[2] (system): commands must list at least one command",
    );
}

#[test]
fn initramfs_fields() {
    check(
        "modules: [ext4, nbd]",
        "modules: [ext4, 'nbd max_part=8']",
        "stages[3] (initramfs): modules[1] `nbd max_part=8` is not a valid kernel module name (1-64 of A-Z a-z 0-9 _ -)",
    );
}

#[test]
fn files_fields() {
    check(
        "mode: '0644'",
        "mode: '0999'",
        "stages[4] (files): files[0].mode `0999` is not an octal file mode",
    );
    check(
        "dest: /etc/motd",
        "dest: etc/motd",
        "stages[4] (files): files[0].dest `etc/motd` must be an absolute path without `..`",
    );
}

#[test]
fn go_build_fields() {
    check(
        "install: /var/vcap/bosh/bin/bosh-agent",
        "install: var/vcap/bosh/bin/bosh-agent",
        "stages[5] (agent): install `var/vcap/bosh/bin/bosh-agent` must be an absolute path without `..`",
    );
    check(
        "install: /var/vcap/bosh/bin/bosh-agent}",
        "install: /var/vcap/bosh/bin/bosh-agent, substitutions: [{file: a.go, replace: x, with: y, why: ' '}]}",
        "stages[5] (agent): substitutions[0].why must not be empty",
    );
    check(
        "install: /var/vcap/bosh/bin/bosh-agent}",
        "install: /var/vcap/bosh/bin/bosh-agent, substitutions: [{file: ../a.go, replace: x, with: y, why: z}]}",
        "stages[5] (agent): substitutions[0].file `../a.go` must be a path inside the source without `..`",
    );
}

#[test]
fn image_fields_are_checked_by_the_image_builder_rules() {
    check(
        "root_uuid: 5049464f-756e-4472-b900-000000000002,",
        "root_uuid: 5049464f-756e-4472-b900-000000000002, hash_seed: 5049464f-seed,",
        "stages[6] (image): hash_seed `5049464f-seed` is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
    );
    check(
        "boot_mib: 256",
        "boot_mib: 32",
        "stages[6] (image): boot_mib 32 must be a whole number of MiB and at least 64 MiB",
    );
    check(
        "size_mib: 2048, boot_mib: 256",
        "size_mib: 256, boot_mib: 256",
        "stages[6] (image): size_mib 256 leaves less than 64 MiB for the root after a 256 MiB boot partition",
    );
    check(
        "disk_id: '50494630'",
        "disk_id: '5049463'",
        "stages[6] (image): disk_id `5049463` is not 8 hex digits",
    );
}

#[test]
fn stemcell_fields() {
    check(
        "stemcell_formats: [pi-raw]",
        "stemcell_formats: []",
        "stages[7] (stemcell): stemcell_formats must name at least one format (the CPI's, e.g. pi-raw)",
    );
}

#[test]
fn recipe_fields() {
    check(
        "arch: armv6l",
        "arch: amd64",
        "arch: amd64 is not a Raspberry Pi architecture (armv6l or arm64)",
    );
    check(
        "{name: system, kind: chroot",
        "{name: 'sys tem', kind: chroot",
        "stages[2].name: \"sys tem\" is not a valid stage name (1-64 of A-Z a-z 0-9 . _ -)",
    );
}
