//! PiFoundry's fuzz targets, as plain functions over arbitrary bytes.
//!
//! Each [`Target`] is run by libFuzzer (`fuzz/libfuzzer`, one instrumented binary that picks
//! the target from `PIFOUNDRY_FUZZ_TARGET`), by the regression test on every input saved under
//! `fuzz/regressions/<target>/`, and over its seeds. A target must never panic, hang or
//! allocate without bound, whatever the input: errors are fine, they are what bad input gets.
//! Where an output can be read back (release.MF, stemcell.MF, blobs.lock) the target also
//! checks the round trip.
//!
//! Adding a target (a settings request, say) is a function here, one line in
//! [`TARGETS`] and, for seeds, one arm in [`seeds`] — see fuzz/README.md.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

pub mod seeds;

/// One fuzz target: a name (also its corpus and regression directory) and its body.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the order `make fuzz` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "release_tarball",
        run: release_tarball,
    },
    Target {
        name: "audit_walk",
        run: audit_walk,
    },
    Target {
        name: "archive_walk",
        run: archive_walk,
    },
    Target {
        name: "release_manifest",
        run: release_manifest,
    },
    Target {
        name: "stemcell_manifest",
        run: stemcell_manifest,
    },
    Target {
        name: "stemcell_tarball",
        run: stemcell_tarball,
    },
    Target {
        name: "release_recipe",
        run: release_recipe,
    },
    Target {
        name: "stemcell_recipe",
        run: stemcell_recipe,
    },
    Target {
        name: "blobs_lock",
        run: blobs_lock,
    },
    Target {
        name: "elf",
        run: elf,
    },
    Target {
        name: "powerd_config",
        run: powerd_config,
    },
    Target {
        name: "cpi_request",
        run: cpi_request,
    },
    Target {
        name: "tftp_packet",
        run: tftp_packet,
    },
];

pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

thread_local! {
    /// One scratch directory per thread (libFuzzer runs one; the regression test several).
    static SCRATCH: RefCell<Option<tempfile::TempDir>> = const { RefCell::new(None) };
}

/// Writes `data` to a scratch file named `name` and runs `f` on its path, for the APIs that
/// read files (they stream, so that is what they must be fuzzed as).
pub fn with_file<T>(name: &str, data: &[u8], f: impl FnOnce(&Path) -> T) -> T {
    let path: PathBuf = SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let dir = s.get_or_insert_with(|| {
            tempfile::Builder::new()
                .prefix("pifoundry-fuzz-")
                .tempdir()
                .expect("scratch dir")
        });
        dir.path().join(name)
    });
    std::fs::write(&path, data).expect("write scratch file");
    f(&path)
}

/// The release reader and verifier: the outer tarball, release.MF, every inner archive and
/// every fingerprint.
pub fn release_tarball(data: &[u8]) {
    with_file("release.tgz", data, |path| {
        if let Ok(rel) = baker::release::read(path, None) {
            let _ = baker::release::verify(&rel);
        }
    });
}

/// `baker audit` on one file: tar, gzip, xz, zip, ar and deb, nested, and every ELF inside.
pub fn audit_walk(data: &[u8]) {
    with_file("blob", data, |path| {
        for target in [pifoundry_util::Arch::Armv6l, pifoundry_util::Arch::Arm64] {
            if let Ok(report) = baker::audit::audit_path_with_cap(path, target, 1 << 20) {
                let _ = report.render_table();
                let _ = report.summary();
            }
        }
    });
}

/// The tar (+ gzip) walker every reader is built on, reading every entry to its end.
pub fn archive_walk(data: &[u8]) {
    use std::io::Read;
    let _ = baker::archive::walk(
        data,
        "fuzz",
        |e| -> Result<(), baker::archive::ArchiveError> {
            let mut sink = [0u8; 4096];
            loop {
                match e.read(&mut sink) {
                    Ok(0) | Err(_) => return Ok(()),
                    Ok(_) => {}
                }
            }
        },
    );
}

/// release.MF: parse, and what we would write parses back to the same manifest.
pub fn release_manifest(data: &[u8]) {
    use baker::release::Manifest;
    let Ok(m) = Manifest::parse(data) else {
        return;
    };
    let yaml = m.to_yaml();
    let back = Manifest::parse(yaml.as_bytes())
        .unwrap_or_else(|e| panic!("our own release.MF does not parse: {e}\n{yaml}"));
    assert_eq!(
        back, m,
        "release.MF round trip changed the manifest:\n{yaml}"
    );
}

/// stemcell.MF: parse, and what we would write parses back to the same manifest.
pub fn stemcell_manifest(data: &[u8]) {
    use baker::stemcell::Manifest;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(m) = Manifest::parse(text) else {
        return;
    };
    let yaml = m.to_yaml();
    let back = Manifest::parse(&yaml)
        .unwrap_or_else(|e| panic!("our own stemcell.MF does not parse: {e}\n{yaml}"));
    assert_eq!(
        back, m,
        "stemcell.MF round trip changed the manifest:\n{yaml}"
    );
}

/// `baker inspect-stemcell`: the outer tarball, stemcell.MF, the image's first entry.
pub fn stemcell_tarball(data: &[u8]) {
    with_file("stemcell.tgz", data, |path| {
        let _ = baker::stemcell::inspect(path);
    });
}

/// A release recipe: YAML, rules, globs and templates for every target.
pub fn release_recipe(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ =
            baker::recipe::release::ReleaseRecipe::parse(std::path::Path::new("recipe.yml"), text);
    }
}

/// A stemcell recipe loaded from a file, as `baker bake` does (`extends:` resolved beside it).
pub fn stemcell_recipe(data: &[u8]) {
    with_file("recipe.yml", data, |path| {
        let _ = baker::recipe::stemcell::StemcellRecipe::load(path);
    });
}

/// blobs.lock: parse, and what we would save parses back to the same entries.
pub fn blobs_lock(data: &[u8]) {
    use baker::blobs_lock::BlobsLock as Lock;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(lock) = Lock::parse(text, "blobs.lock") else {
        return;
    };
    let yaml = lock.to_yaml();
    let back = Lock::parse(&yaml, "blobs.lock")
        .unwrap_or_else(|e| panic!("our own blobs.lock does not parse: {e}\n{yaml}"));
    assert!(
        back.entries().eq(lock.entries()),
        "blobs.lock round trip changed the entries:\n{yaml}"
    );
}

/// The ELF audit on arbitrary bytes: header, sections, ARM attributes, Go build info, verdict.
pub fn elf(data: &[u8]) {
    use baker::audit::elf;
    for big_endian in [false, true] {
        let _ = elf::parse_arm_attributes(data, big_endian);
    }
    let _ = elf::parse_go_buildinfo(data);
    let _ = elf::classify_header(data);
    if let Some(info) = elf::classify(data) {
        for target in [pifoundry_util::Arch::Armv6l, pifoundry_util::Arch::Arm64] {
            for header_only in [false, true] {
                let _ = baker::audit::judge(&info, target, header_only);
            }
        }
    }
}

/// powerd's configuration file.
pub fn powerd_config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = powerd::config::Config::parse(Path::new("powerd.yml"), text);
    }
}

/// The CPI's request handler: any bytes on stdin give one JSON response with all three keys.
pub fn cpi_request(data: &[u8]) {
    let response = cpi::handle_raw(data);
    let json = serde_json::to_value(&response).expect("a CPI response serialises");
    for key in ["result", "error", "log"] {
        assert!(
            json.get(key).is_some(),
            "CPI response without {key}: {json}"
        );
    }
}

/// A datagram as powerd's TFTP server reads it: whatever parses re-encodes to the same packet,
/// and a request's file name never normalises to a path outside the served tree.
pub fn tftp_packet(data: &[u8]) {
    let Ok(packet) = pifoundry_tftp::parse(data) else {
        return;
    };
    let again = packet.to_bytes();
    assert_eq!(
        pifoundry_tftp::parse(&again).as_ref(),
        Ok(&packet),
        "re-encoded packet parses differently"
    );
    if let pifoundry_tftp::packet::Packet::Rrq(req) | pifoundry_tftp::packet::Packet::Wrq(req) =
        &packet
        && let Ok(path) = pifoundry_tftp::RequestPath::parse(req.filename)
    {
        let p = path.as_str();
        assert!(
            !p.starts_with('/') && p.split('/').all(|c| !c.is_empty() && c != "." && c != ".."),
            "path {p:?} escapes"
        );
    }
}
