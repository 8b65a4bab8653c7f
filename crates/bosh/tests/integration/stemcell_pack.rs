//! Packing a stemcell tarball and reading it back.

use std::collections::BTreeMap;
use std::fs;

use pifoundry_bosh::stemcell::{Manifest, PackInput, inspect, pack};

fn manifest() -> Manifest {
    Manifest {
        name: "bosh-pi-debian-bookworm-armv6l".into(),
        version: "0.1.0".into(),
        bosh_protocol: 1,
        api_version: 3,
        operating_system: "debian-bookworm-armv6l".into(),
        stemcell_formats: vec!["pi-raw".into()],
        sha1: String::new(),
        cloud_properties: BTreeMap::from([("architecture".into(), "armv6l".into())]),
    }
}

fn pack_into(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, Manifest) {
    let img = dir.join("root.img");
    if !img.exists() {
        let data: Vec<u8> = (0..3 << 20)
            .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        fs::write(&img, data).unwrap();
    }
    let dest = dir.join(name);
    let m = pack(
        PackInput {
            manifest: manifest(),
            root_img: &img,
            packages_txt: b"bash 5.2.15-2+b7 armel\n",
            dev_tools_file_list: b"",
            scratch: dir,
        },
        &dest,
    )
    .unwrap();
    (dest, m)
}

#[test]
fn packed_stemcell_reads_back_with_matching_sha1() {
    let dir = tempfile::tempdir().unwrap();
    let (tgz, m) = pack_into(dir.path(), "s.tgz");
    assert_eq!(m.sha1.len(), 40);
    let i = inspect(&tgz).unwrap();
    let names: Vec<_> = i.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "stemcell.MF",
            "packages.txt",
            "dev_tools_file_list.txt",
            "image"
        ]
    );
    assert!(i.sha1_matches);
    assert_eq!(i.manifest, m);
    assert_eq!(i.manifest.api_version, 3);
    assert_eq!(i.packages, 1);
    let inner = i.image_content.unwrap();
    assert_eq!((inner.name.as_str(), inner.size), ("root.img", 3 << 20));
    // no scratch `image` or temporary file left behind
    let mut left: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["root.img", "s.tgz"]);
}

#[test]
fn packing_twice_gives_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = pack_into(dir.path(), "a.tgz");
    let (b, _) = pack_into(dir.path(), "b.tgz");
    assert_eq!(fs::read(a).unwrap(), fs::read(b).unwrap());
}

#[test]
fn a_tarball_without_a_manifest_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.tgz");
    let mut w = pifoundry_bosh::archive::TarGzWriter::new(fs::File::create(&p).unwrap());
    w.add_bytes("image", pifoundry_bosh::archive::Mode::Regular, b"x")
        .unwrap();
    w.finish().unwrap();
    let e = inspect(&p).unwrap_err().to_string();
    assert!(e.contains("bad.tgz") && e.contains("stemcell.MF"), "{e}");
}
