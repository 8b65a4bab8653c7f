//! Seed corpora: the real inputs the tests already use (bosh-cli's vectors, synthetic releases,
//! the shipped recipes, blobs.lock, powerd's example config, cross-compiled ARM objects), plus
//! small archives of every format `baker audit` opens, made here with the same crates.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where seeds come from.
pub struct Sources {
    /// The repository root.
    pub repo: PathBuf,
    /// bosh-cli's reference releases (`../shared/bosh-vectors` or `$PIFOUNDRY_VECTORS`).
    pub vectors: Option<PathBuf>,
}

impl Sources {
    /// This checkout, and the vectors at `$PIFOUNDRY_VECTORS` or in `shared/bosh-vectors`
    /// beside the checkout or one of its ancestors (where CI puts shared/).
    pub fn discover() -> Sources {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("fuzz/ is inside the checkout")
            .to_path_buf();
        let vectors = std::env::var_os("PIFOUNDRY_VECTORS")
            .map(PathBuf::from)
            .or_else(|| {
                repo.ancestors()
                    .map(|a| a.join("shared/bosh-vectors"))
                    .find(|p| p.is_dir())
            });
        Sources { repo, vectors }
    }
}

/// Seeds bigger than this slow every execution down; libFuzzer grows inputs itself.
const MAX_SEED: u64 = 256 << 10;

/// Writes the seeds of `target` into `out`; returns how many.
pub fn write(target: &str, src: &Sources, out: &Path) -> io::Result<usize> {
    std::fs::create_dir_all(out)?;
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    let add_file = |seeds: &mut Vec<(String, Vec<u8>)>, path: &Path| {
        if let Ok(meta) = std::fs::metadata(path)
            && meta.is_file()
            && meta.len() <= MAX_SEED
            && let Ok(bytes) = std::fs::read(path)
        {
            let name = path.to_string_lossy().replace('/', "_");
            seeds.push((name, bytes));
        }
    };
    let vectors: Vec<PathBuf> = src
        .vectors
        .as_deref()
        .map(|d| files_in(d, "tgz"))
        .unwrap_or_default();
    match target {
        "release_tarball" => {
            for v in &vectors {
                add_file(&mut seeds, v);
            }
            seeds.push(("synthetic.tgz".into(), synthetic_release()?));
        }
        "audit_walk" | "archive_walk" => {
            for v in &vectors {
                add_file(&mut seeds, v);
            }
            seeds.push(("synthetic.tgz".into(), synthetic_release()?));
            seeds.extend(archives()?);
            if target == "audit_walk" {
                for elf in elf_objects() {
                    add_file(&mut seeds, &elf);
                }
            }
        }
        "release_manifest" => {
            add_file(
                &mut seeds,
                &src.repo.join("baker/tests/data/sample-release.MF"),
            );
            for v in vectors.iter().cloned().chain(Some(synthetic_path()?)) {
                if let Ok(m) = baker::release::read_manifest(&v) {
                    seeds.push((format!("{}.MF", m.name), m.to_yaml().into_bytes()));
                }
            }
        }
        "stemcell_manifest" => seeds.push(("stemcell.MF".into(), stemcell_mf().into_bytes())),
        "stemcell_tarball" => seeds.push(("stemcell.tgz".into(), stemcell_tarball()?)),
        "release_recipe" => {
            for f in files_in(&src.repo.join("recipes/releases"), "yml") {
                add_file(&mut seeds, &f);
            }
        }
        "stemcell_recipe" => {
            for f in files_in(&src.repo.join("recipes/stemcells"), "yml") {
                add_file(&mut seeds, &f);
            }
        }
        "blobs_lock" => {
            add_file(&mut seeds, &src.repo.join("blobs.lock"));
            seeds.push((
                "one-entry.lock".into(),
                format!(
                    "blobs:\n  go-1.25-armv6l:\n    url: https://example.invalid/go.tgz\n    sha256: {}\n    size: 1024\n    arch: armv6l\n    replaces: golang/go1.25.linux-amd64.tar.gz\n",
                    "ab".repeat(32)
                )
                .into_bytes(),
            ));
        }
        "elf" => {
            for elf in elf_objects() {
                add_file(&mut seeds, &elf);
            }
        }
        "powerd_config" => {
            add_file(&mut seeds, &src.repo.join("powerd/powerd.example.yml"));
            seeds.push((
                "all-backends.yml".into(),
                b"listen: 127.0.0.1:0\npower_on_stagger: 500ms\nauth: {token_file: /t, open_reads: true}\noutlets:\n  - {id: n1, backend: gpio, pin: 17, active_low: true, min_off: 5s}\n  - {id: n2, backend: command, on: 'true', off: 'true', status: 'echo on', timeout: 2s}\n  - {id: n3, backend: sim, on_at_start: off}\n".to_vec(),
            ));
        }
        "cpi_request" => {
            for (name, body) in [
                (
                    "info",
                    r#"{"method":"info","arguments":[],"context":{"director_uuid":"d"}}"#,
                ),
                (
                    "create_vm",
                    r#"{"method":"create_vm","arguments":["agent-1","stemcell-1",{"pi":"cell-1"},{"default":{"type":"manual","ip":"10.0.0.5","netmask":"255.255.255.0","gateway":"10.0.0.1"}},[],{}],"context":{"director_uuid":"d","request_id":"r"},"api_version":2}"#,
                ),
                (
                    "unknown",
                    r#"{"method":"make_coffee","arguments":[],"context":{}}"#,
                ),
            ] {
                seeds.push((name.into(), body.as_bytes().to_vec()));
            }
        }
        "tftp_packet" => {
            // what the Pi bootloaders and tftp-hpa send, and each other opcode once
            let rrq = |name: &str, opts: &[(&str, &str)]| {
                let mut v = vec![0, 1];
                for f in [name, "octet"] {
                    v.extend_from_slice(f.as_bytes());
                    v.push(0);
                }
                for (k, val) in opts {
                    for f in [k, val] {
                        v.extend_from_slice(f.as_bytes());
                        v.push(0);
                    }
                }
                v
            };
            seeds.push(("rrq-bootcode".into(), rrq("bootcode.bin", &[])));
            seeds.push((
                "rrq-options".into(),
                rrq(
                    "1a2b3c4d/start.elf",
                    &[("blksize", "1468"), ("tsize", "0"), ("timeout", "1")],
                ),
            ));
            seeds.push(("rrq-escape".into(), rrq("1a2b3c4d/../../etc/passwd", &[])));
            seeds.push(("ack".into(), vec![0, 4, 0, 1]));
            seeds.push(("data".into(), [&[0u8, 3, 0, 1][..], b"hello"].concat()));
            seeds.push(("error".into(), b"\0\x05\0\x01File not found\0".to_vec()));
            seeds.push((
                "oack".into(),
                b"\0\x06blksize\x001468\0tsize\x001024\0".to_vec(),
            ));
        }
        other => {
            return Err(io::Error::other(format!(
                "no seeds for unknown target {other:?}"
            )));
        }
    }
    for (name, bytes) in &seeds {
        std::fs::write(out.join(format!("seed-{name}")), bytes)?;
    }
    Ok(seeds.len())
}

fn files_in(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// Small real ELF objects for every architecture the audit judges (installed with the cross
/// compilers `make test` needs).
fn elf_objects() -> Vec<PathBuf> {
    [
        "/usr/arm-linux-gnueabi/lib/crt1.o",
        "/usr/arm-linux-gnueabi/lib/libdl.so.2",
        "/usr/aarch64-linux-gnu/lib/crt1.o",
        "/usr/aarch64-linux-gnu/lib/libdl.so.2",
        "/usr/lib/x86_64-linux-gnu/crt1.o",
    ]
    .iter()
    .map(PathBuf::from)
    .filter(|p| p.exists())
    .collect()
}

fn synthetic_path() -> io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("pifoundry-fuzz-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("synthetic.tgz");
    if !path.exists() {
        let spec = baker::release::synth::Spec {
            packages: 2,
            jobs: 1,
            blob_bytes: 2048,
            golang_bytes: 1024,
        };
        baker::release::synth::synthesize(&path, &spec)?;
    }
    Ok(path)
}

fn synthetic_release() -> io::Result<Vec<u8>> {
    let path = synthetic_path()?;
    let bytes = std::fs::read(&path);
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    bytes
}

fn tar_of(files: &[(&str, &[u8])]) -> io::Result<Vec<u8>> {
    let mut t = baker::archive::TarWriter::plain(Vec::new());
    for (name, bytes) in files {
        t.add_bytes(name, baker::archive::Mode::Regular, bytes)?;
    }
    t.finish_tar()
}

fn gzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes)?;
    gz.finish()
}

fn xz(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut x = liblzma::write::XzEncoder::new(Vec::new(), 1);
    x.write_all(bytes)?;
    x.finish()
}

fn zip_of(files: &[(&str, &[u8])]) -> io::Result<Vec<u8>> {
    let mut z = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
    for (name, bytes) in files {
        z.start_file(*name, zip::write::SimpleFileOptions::default())
            .map_err(io::Error::other)?;
        z.write_all(bytes)?;
    }
    Ok(z.finish().map_err(io::Error::other)?.into_inner())
}

/// A Unix `ar` archive (what a .deb is).
fn ar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, bytes) in files {
        let header = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            format!("{name}/"),
            0,
            0,
            0,
            "100644",
            bytes.len()
        );
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(bytes);
        if bytes.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

/// One small archive of each format the audit opens, each holding an ARM object if present.
fn archives() -> io::Result<Vec<(String, Vec<u8>)>> {
    let elf = elf_objects()
        .first()
        .and_then(|p| std::fs::read(p).ok())
        .unwrap_or_else(|| b"\x7fELF\x01\x01\x01".to_vec());
    let files: [(&str, &[u8]); 2] = [("bin/tool", &elf), ("README", b"not an ELF\n")];
    let tar = tar_of(&files)?;
    let data_tar_xz = xz(&tar)?;
    let control = gzip(&tar_of(&[("control", b"Package: x\n")])?)?;
    let deb = ar_of(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar.gz", &control),
        ("data.tar.xz", &data_tar_xz),
    ]);
    let nested = gzip(&tar_of(&[("inner.tgz", &gzip(&tar)?)])?)?;
    Ok(vec![
        ("plain.tar".into(), tar.clone()),
        ("blob.tgz".into(), gzip(&tar)?),
        ("blob.tar.xz".into(), data_tar_xz.clone()),
        ("blob.zip".into(), zip_of(&files)?),
        ("pkg.deb".into(), deb.clone()),
        ("lib.a".into(), ar_of(&files)),
        ("nested.tgz".into(), nested),
        ("tool.gz".into(), gzip(&elf)?),
    ])
}

fn stemcell_mf() -> String {
    baker::stemcell::Manifest {
        name: "bosh-pi-debian-bookworm-armv6l".into(),
        version: "1.5".into(),
        bosh_protocol: 1,
        api_version: baker::stemcell::manifest::API_VERSION,
        operating_system: "debian-bookworm-armv6l".into(),
        stemcell_formats: vec!["pi-raw".into()],
        sha1: "0".repeat(40),
        cloud_properties: Default::default(),
    }
    .to_yaml()
}

fn stemcell_tarball() -> io::Result<Vec<u8>> {
    let image = gzip(&tar_of(&[("root.img", &[0u8; 1024])])?)?;
    gzip(&tar_of(&[
        ("stemcell.MF", stemcell_mf().as_bytes()),
        ("packages.txt", b"ii  bash  5.2.15-2  armel\n"),
        ("image", &image),
    ])?)
}
