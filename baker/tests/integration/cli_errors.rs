//! Representative failures of every `baker` command: the whole stderr line — one line,
//! naming the file, entry or field, each cause once — and exit status 2.

use std::fs;
use std::path::Path;

use baker::archive::{Mode, TarGzWriter};

use crate::support::{baker, stderr_line};

/// Runs baker with `args` and returns its stderr line, checking exit status 2.
fn fails(args: &[&str]) -> String {
    let out = baker(args);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    stderr_line(&out)
}

const ENOENT: &str = "No such file or directory (os error 2)";

#[test]
fn a_missing_input_is_named_with_its_os_error_once() {
    assert_eq!(
        fails(&["audit", "/nonexistent/x", "--arch", "armv6l"]),
        format!("baker: audit /nonexistent/x: {ENOENT}")
    );
    assert_eq!(
        fails(&["verify-release", "/nonexistent/release.tgz"]),
        format!("baker: /nonexistent/release.tgz: {ENOENT}")
    );
    assert_eq!(
        fails(&["inspect-stemcell", "/nonexistent/stemcell.tgz"]),
        format!("baker: /nonexistent/stemcell.tgz: {ENOENT}")
    );
    assert_eq!(
        fails(&["bake", "--recipe", "/nonexistent/recipe.yml"]),
        format!("baker: /nonexistent/recipe.yml: {ENOENT}")
    );
    assert_eq!(
        fails(&["fetch", "--lock", "/nonexistent/blobs.lock"]),
        format!("baker: /nonexistent/blobs.lock: {ENOENT}")
    );
    assert_eq!(
        fails(&["boot-check", "--bake-dir", "/nonexistent/out"]),
        format!("baker: /nonexistent/out/boot: {ENOENT}")
    );
}

#[test]
fn bad_input_names_the_entry_or_field() {
    let dir = tempfile::tempdir().unwrap();
    let stemcell = dir.path().join("bad.tgz");
    let mut w = TarGzWriter::new(fs::File::create(&stemcell).unwrap());
    w.add_bytes("image", Mode::Regular, b"x").unwrap();
    w.finish().unwrap();
    let s = stemcell.display();
    assert_eq!(
        fails(&["inspect-stemcell", &s.to_string()]),
        format!("baker: {s}: no stemcell.MF entry")
    );

    let text = dir.path().join("notes.tgz");
    fs::write(&text, vec![b'x'; 3000]).unwrap();
    let t = text.display();
    assert_eq!(
        fails(&["inspect-release", &t.to_string()]),
        format!("baker: {t}: not a tar archive: the first 512 bytes are not a valid tar header")
    );

    assert_eq!(
        fails(&[
            "lock",
            "add",
            "bad key",
            "file:///x",
            "--lock",
            &lock_in(dir.path())
        ]),
        "baker: \"bad key\" is not a valid blob key (1-128 of A-Z a-z 0-9 . _ + -, starting with a letter or digit)"
    );

    let lock = lock_in(dir.path());
    fs::write(
        &lock,
        "blobs:\n  go:\n    url: https://go.dev/x\n    sha256: abc\n    size: 1\n    arch: arm64\n",
    )
    .unwrap();
    assert_eq!(
        fails(&["fetch", "--lock", &lock]),
        format!("baker: {lock}: blob \"go\": sha256 \"abc\" is not 64 hexadecimal digits")
    );
}

#[test]
fn a_release_recipe_error_names_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("recipe.yml");
    fs::write(
        &recipe,
        "release: pi-sample\ntarget: armv6l\nversion_suffix: '+pi'\nrules:\n- packages: 'golang-['\n  remove: true\n  files: '*'\n",
    )
    .unwrap();
    let r = recipe.display();
    let line = fails(&[
        "rewrite-release",
        "/nonexistent/release.tgz",
        "--recipe",
        &r.to_string(),
    ]);
    assert_eq!(
        line,
        format!(
            "baker: {r}: rules[0] (packages \"golang-[\").packages: bad glob \"golang-[\": error parsing glob 'golang-[': unclosed character class; missing ']'"
        )
    );
}

fn lock_in(dir: &Path) -> String {
    dir.join("blobs.lock").display().to_string()
}
