//! A release directory → tarball gives the fingerprints bosh-cli 7.10 computed with
//! `bosh create-release --tarball` for the same directory (values recorded from that run).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use pifoundry_bosh::release;

fn write(root: &Path, rel: &str, text: &str, exec: bool) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    let mode = if exec { 0o755 } else { 0o644 };
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Two packages (globs, an excluded file, a symlink, an executable, a dependency), a job with
/// an executable template, and LICENSE + NOTICE.
fn fixture(root: &Path) {
    write(root, "config/final.yml", "name: fixture\n", false);
    write(root, "config/blobs.yml", "--- {}\n", false);
    write(
        root,
        "packages/hello/spec",
        "---\nname: hello\ndependencies: [base]\nfiles:\n- hello/**/*\nexcluded_files:\n- hello/lib/skip.txt\n",
        false,
    );
    write(
        root,
        "packages/hello/packaging",
        "set -e\ncp -a hello/* ${BOSH_INSTALL_TARGET}/\n",
        false,
    );
    write(
        root,
        "packages/base/spec",
        "---\nname: base\nfiles:\n- base/*.bin\n",
        false,
    );
    write(
        root,
        "packages/base/packaging",
        "cp base/b.bin ${BOSH_INSTALL_TARGET}/\n",
        false,
    );
    write(root, "src/hello/run.sh", "#!/bin/sh\necho hi\n", true);
    write(root, "src/hello/lib/a.txt", "a\n", false);
    write(root, "src/hello/lib/skip.txt", "skip\n", false);
    std::os::unix::fs::symlink("a.txt", root.join("src/hello/lib/link")).unwrap();
    write(root, "src/base/b.bin", "blob-bytes\n", false);
    write(
        root,
        "jobs/web/spec",
        "---\nname: web\ntemplates:\n  ctl.erb: bin/ctl\n  config.yml.erb: config/config.yml\npackages:\n- hello\nproperties: {}\n",
        false,
    );
    write(root, "jobs/web/monit", "check process web\n", false);
    write(
        root,
        "jobs/web/templates/ctl.erb",
        "#!/bin/bash\nexec true\n",
        true,
    );
    write(
        root,
        "jobs/web/templates/config.yml.erb",
        "port: 1\n",
        false,
    );
    write(root, "LICENSE", "Fixture license\n", false);
    write(root, "NOTICE", "Fixture notice\n", false);
}

#[test]
fn fingerprints_match_bosh_create_release_and_the_tarball_verifies() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("rel");
    fixture(&dir);
    let out = work.path().join("fixture-1.0.0.tgz");
    let m = release::dir::create(&dir, "1.0.0", &out).unwrap();
    let fp = |name: &str| {
        m.packages
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.fingerprint.as_str())
            .unwrap()
    };
    assert_eq!(
        m.jobs[0].fingerprint,
        "0aa6807824a9ce95e820e5e42bab4eba37ece7521e201a9ee22034284066e69e"
    );
    assert_eq!(
        fp("base"),
        "a9c41084c9d7154c3b436adb40c725c90dfe82591aef00368c403b0594cb4638"
    );
    assert_eq!(
        fp("hello"),
        "3af7a8529360b1322017473716424d356cdb0bf400f97b70bf0c139405ebca01"
    );
    assert_eq!(
        m.license.as_ref().unwrap().fingerprint,
        "df79231dcd70e564409a06bb672e0742a9c5c7ece9c7010bec77d5a8f96a4ab8"
    );
    assert_eq!(
        m.packages
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["base", "hello"]
    );
    assert_eq!(m.commit_hash, "non-git");
    let rel = release::read(&out, None).unwrap();
    let checked = release::verify(&rel).unwrap();
    assert_eq!(checked.fingerprints, 4);
}

#[test]
fn a_glob_that_matches_nothing_names_the_spec_and_pattern() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("rel");
    fixture(&dir);
    write(
        &dir,
        "packages/base/spec",
        "---\nname: base\nfiles:\n- base/*.tar.gz\n",
        false,
    );
    let e = release::dir::create(&dir, "1", &work.path().join("x.tgz")).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: missing files for pattern 'base/*.tar.gz'",
            dir.join("packages/base/spec").display()
        )
    );
    assert!(!work.path().join("x.tgz").exists());
}
