//! The release library and CLI against bosh-cli's own tarballs.

use crate::support::baker;
use crate::support::release::*;
use baker::release::fingerprint::{self, Era};
use baker::release::{self, entries};

const MF_SHA256_ERA: &str = include_str!("../data/sample-release.MF");

#[test]
fn verify_release_accepts_both_vectors() {
    for path in [sample(), sample_sha1()] {
        let out = baker(&["verify-release", path.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("4 archive digests and 4 fingerprints verified (sha256 era)"),
            "{stdout}"
        );
    }
}

#[test]
fn inspect_release_json_lists_everything() {
    let out = baker(&["inspect-release", sample().to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "pi-sample");
    assert_eq!(v["version"], "0+dev.1");
    assert_eq!(v["commit_hash"], "non-git");
    assert_eq!(v["fingerprint_era"], "sha256");
    assert_eq!(v["compiled"], false);
    assert_eq!(v["jobs"][0]["packages"][0], "hello");
    assert_eq!(v["packages"][1]["name"], "hello");
    assert_eq!(v["packages"][1]["dependencies"][0], "golang-1-linux");
    assert_eq!(
        v["license"]["digest"],
        "sha256:b35f8a04258ce843464850d877bc554073c7ca3767a7407c865617c3057d3b60"
    );
    let out = baker(&["inspect-release", sample_sha1().to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("release      pi-sample 0+dev.1"), "{text}");
    assert!(
        text.contains("digest      ba1de0bb6a9253a6fb6d2753f1e6059763e54962"),
        "{text}"
    );
}

#[test]
fn release_mf_is_reserialised_byte_for_byte() {
    let rel = release::read(&sample(), None).unwrap();
    assert_eq!(rel.manifest_bytes.len(), 1203);
    assert_eq!(
        String::from_utf8(rel.manifest_bytes.clone()).unwrap(),
        MF_SHA256_ERA
    );
    assert_eq!(rel.manifest.to_yaml().as_bytes(), rel.manifest_bytes);

    let rel = release::read(&sample_sha1(), None).unwrap();
    assert_eq!(rel.manifest_bytes.len(), 1079);
    assert_eq!(rel.manifest.to_yaml().as_bytes(), rel.manifest_bytes);
}

#[test]
fn fingerprint_input_strings_match_the_notes() {
    let want = [
        (
            "packages/golang-1-linux.tgz",
            "v2golang/go1.22.5.linux-amd64.tar.gzsha256:0121b99fd6b1391644be848a7ad42bdc51f5b615287ae6f6ee1a2fb6cc47f5b2100644packagingsha256:9ced0d79690c9822b1301daa2eb8de218710c2eb56cdec9470a948b158daace4",
        ),
        (
            "packages/hello.tgz",
            "v2hello/main.gosha256:a31a01d6376b75860c82186cce82840187a1228678518c4061674a31ce5a03f4100644hello/run.shsha256:1a27f2fac2b8dbf9da8135560661a276343bff5e8ea88c1661a11e74ac7fdbad100755packagingsha256:b339221462a87f12fa74499f46268a2497f5edbb5b8ea8a43d24057ec12da8a3golang-1-linux",
        ),
        (
            "jobs/hello-job.tgz",
            "v2job.MFsha256:da5ad48d4ca898db793b470acab9292354fab96b776d5febdd21bf5de212f6cb100644monitsha256:c36978f338c62807f53ce3d76434525f851703c0b5ecac4b5bc207f450a54827100644templates/ctl.erbsha256:995e069a484038c689862fa80284f25e5b117a9a2fe9d7393adddd424e43fb29100644",
        ),
        (
            "license.tgz",
            "v2LICENSEsha256:faa463e7aea873f56c61431a329515284ac10e0d97acd3e7fe0c2a26e9bc039bNOTICEsha256:0f99cf828b586f8694f8782a9579343c57eef35917c121340f5b37a9a8b377dc",
        ),
    ];
    for path in [sample(), sample_sha1()] {
        let rel = release::read(&path, None).unwrap();
        let entries = entries(&rel.manifest);
        assert_eq!(entries.len(), 4);
        for (archive, string) in want {
            let e = entries.iter().find(|e| e.archive == archive).unwrap();
            let files = rel.archives[archive].files.as_ref().unwrap();
            let r = e.resource.as_ref().unwrap();
            assert_eq!(
                fingerprint::input_string(Era::Sha256, r, files).unwrap(),
                string
            );
            assert_eq!(
                fingerprint::fingerprint(Era::Sha256, r, files).unwrap(),
                e.fingerprint
            );
        }
    }
}

#[test]
fn sha1_era_fingerprints_are_computed_with_bare_sha1_digests() {
    // An old release: same files, 40-hex fingerprints; the reader and verifier switch era
    // per fingerprint length.
    let u = unpack(&sample());
    let old = sha1_era_release(&u);
    let m = release::read_manifest(&old).unwrap();
    assert!(m.packages.iter().all(|p| p.fingerprint.len() == 40));
    let out = baker(&["verify-release", old.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("(sha1 era)"));
}

#[test]
fn writer_copies_inner_archives_byte_for_byte_and_is_deterministic() {
    let u = unpack(&sample());
    let a = u.write("a.tgz");
    let b = u.write("b.tgz");
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let original = release::read(&sample(), None).unwrap();
    let copy = release::read(&a, None).unwrap();
    for (name, info) in &original.archives {
        assert_eq!(copy.archives[name].digests, info.digests, "{name}");
    }
    assert_eq!(copy.manifest_bytes, original.manifest_bytes);
    assert_eq!(copy.top_files, original.top_files);
    release::verify(&copy).unwrap();

    let listing = std::process::Command::new("tar")
        .arg("tzvf")
        .arg(&a)
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    let names: Vec<&str> = listing
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "release.MF",
            "jobs/",
            "jobs/hello-job.tgz",
            "packages/",
            "packages/golang-1-linux.tgz",
            "packages/hello.tgz",
            "license.tgz",
            "LICENSE",
            "NOTICE"
        ]
    );
}

#[test]
fn manifest_after_the_archives_is_handled() {
    let u = unpack(&sample());
    let out = u.dir.path().join("late.tgz");
    let mut w = baker::archive::TarGzWriter::new(std::fs::File::create(&out).unwrap());
    for (name, path) in &u.archives {
        w.add_path(name, path).unwrap();
    }
    w.add_bytes(
        "./release.MF",
        baker::archive::Mode::Regular,
        u.manifest.to_yaml().as_bytes(),
    )
    .unwrap();
    w.finish().unwrap();
    let out = baker(&["verify-release", out.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn synthetic_release_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let rel = dir.path().join("synth.tgz");
    let out = baker(&[
        "synth-release",
        rel.to_str().unwrap(),
        "--packages",
        "12",
        "--jobs",
        "5",
        "--mib",
        "3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = baker(&["verify-release", rel.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("18 archive digests and 18 fingerprints")
    );
}
