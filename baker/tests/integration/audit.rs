//! `baker audit` on real ELF files built here with Debian's cross compilers and Go, packed into
//! nested .tgz / .tar.xz / .zip archives inside a release-like tarball.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use baker::archive::{Mode, TarWriter};
use baker::audit::{self, AllowEntry, AuditPolicy, AuditReport, Finding, GateError, Severity};
use pifoundry_util::Arch;

use crate::support::elf_fixtures::{self, fixtures, have, release, run, tar_xz, tgz, zip};

fn finding<'a>(r: &'a AuditReport, path: &str) -> &'a Finding {
    r.findings
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no finding for {path}: {:#?}", r.findings))
}

fn baker_audit(path: &Path, arch: &str, json: bool) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_baker"));
    cmd.arg("audit").arg(path).args(["--arch", arch]);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn classifies_each_kind_of_elf() {
    let Some(fx) = fixtures() else { return };
    let classify = |name: &str| {
        let r = audit::audit_path(&fx.path(name), Arch::Armv6l).unwrap();
        assert_eq!(r.elf_files, 1, "{name}");
        r.findings[0].clone()
    };
    let v6 = classify("armel-v6");
    let e = v6.elf.as_ref().unwrap();
    assert_eq!(
        (e.machine.as_str(), e.class, e.big_endian),
        ("arm", 32, false)
    );
    assert_eq!(e.abi.as_deref(), Some("armel"));
    assert_eq!(e.cpu_arch_name(), Some("v6"));
    assert_eq!(v6.severity, Severity::Ok, "{v6:?}");

    let v7 = classify("armel-v7");
    assert_eq!(v7.elf.as_ref().unwrap().cpu_arch_name(), Some("v7"));
    assert_eq!(v7.severity, Severity::Error);
    assert!(v7.message.contains("v7"), "{}", v7.message);

    let hf6 = classify("armhf-v6.o");
    assert_eq!(hf6.elf.as_ref().unwrap().abi.as_deref(), Some("armhf"));
    assert_eq!(hf6.severity, Severity::Ok, "{hf6:?}");
    let hf7 = classify("armhf-v7.o");
    assert_eq!(hf7.elf.as_ref().unwrap().abi.as_deref(), Some("armhf"));
    assert_eq!(hf7.severity, Severity::Error);

    for (name, needs) in [("armhf-v6-vfpv3.o", "VFPv3"), ("armhf-v6-neon.o", "NEON")] {
        let f = classify(name);
        assert_eq!(f.elf.as_ref().unwrap().cpu_arch_name(), Some("v6"));
        assert_eq!(f.severity, Severity::Error, "{f:?}");
        assert!(f.message.contains(needs), "{name}: {}", f.message);
    }

    let x = classify("x86-64");
    assert_eq!(x.elf.as_ref().unwrap().machine, "x86-64");
    assert_eq!(x.elf.as_ref().unwrap().class, 64);
    assert_eq!(x.severity, Severity::Error);
    assert_eq!(classify("aarch64").severity, Severity::Error);

    let g6 = classify("go-goarm6");
    let go = g6.elf.as_ref().unwrap().go.as_ref().unwrap();
    assert_eq!((go.goarch.as_deref(), go.goarm), (Some("arm"), Some(6)));
    assert!(go.version.as_deref().unwrap().starts_with("go1."));
    assert_eq!(g6.severity, Severity::Ok, "{g6:?}");
    let g7 = classify("go-goarm7");
    assert_eq!(g7.elf.as_ref().unwrap().go.as_ref().unwrap().goarm, Some(7));
    assert_eq!(g7.severity, Severity::Error);
    assert!(g7.message.contains("GOARM=7"), "{}", g7.message);
}

#[test]
fn arm64_target_accepts_only_aarch64() {
    let Some(fx) = fixtures() else { return };
    for (name, ok) in [
        ("aarch64", true),
        ("go-arm64", true),
        ("armel-v6", false),
        ("go-goarm6", false),
        ("x86-64", false),
    ] {
        let r = audit::audit_path(&fx.path(name), Arch::Arm64).unwrap();
        let want = if ok { Severity::Ok } else { Severity::Error };
        assert_eq!(r.findings[0].severity, want, "{name}: {:?}", r.findings[0]);
    }
    let go = audit::audit_path(&fx.path("go-arm64"), Arch::Arm64).unwrap();
    let info = go.findings[0].elf.as_ref().unwrap().go.clone().unwrap();
    assert_eq!(info.goarch.as_deref(), Some("arm64"));
}

#[test]
fn clean_armv6l_release_passes_through_nested_archives() {
    let Some(fx) = fixtures() else { return };
    let dir = tempfile::tempdir().unwrap();
    let toolchain = tar_xz(&[("go/bin/go", &fx.bytes("go-goarm6"))]);
    let tools = zip(&[("tools/hello", &fx.bytes("armel-v6")), ("README", b"text")]);
    let golang = tgz(&[
        ("packaging", b"#!/bin/sh\n"),
        ("golang/go1.25.4.linux-armv6l.tar.xz", &toolchain),
        ("tools.zip", &tools),
    ]);
    let native = tgz(&[
        ("bin/hello", &fx.bytes("armel-v6")),
        ("lib/m.o", &fx.bytes("armhf-v6.o")),
    ]);
    let rel = release(dir.path(), &[("golang", golang), ("native", native)]);

    let r = audit::audit_path(&rel, Arch::Armv6l).unwrap();
    assert_eq!(r.errors(), 0, "{}", r.render_table());
    assert_eq!(r.elf_files, 4);
    assert_eq!(r.archives, 4);
    for p in [
        "packages/golang.tgz!/golang/go1.25.4.linux-armv6l.tar.xz!/go/bin/go",
        "packages/golang.tgz!/tools.zip!/tools/hello",
        "packages/native.tgz!/bin/hello",
        "packages/native.tgz!/lib/m.o",
    ] {
        assert_eq!(finding(&r, p).severity, Severity::Ok);
    }
    let (code, out) = baker_audit(&rel, "armv6l", false);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 error(s)"), "{out}");
}

#[test]
fn amd64_and_v7_code_in_a_release_fail_with_nested_paths() {
    let Some(fx) = fixtures() else { return };
    let dir = tempfile::tempdir().unwrap();
    let toolchain = tar_xz(&[("go/bin/go", &fx.bytes("go-goarm7"))]);
    let win = zip(&[("x/amd64", &fx.bytes("x86-64"))]);
    let golang = tgz(&[
        ("go1.25.4.linux-arm.tar.xz", &toolchain),
        ("w.zip", &win),
        (
            "go/src/debug/elf/testdata/gcc-amd64-linux-exec",
            &fx.bytes("x86-64"),
        ),
    ]);
    let native = tgz(&[
        ("bin/v7", &fx.bytes("armel-v7")),
        ("bin/a64", &fx.bytes("aarch64")),
        ("lib/hf7.o", &fx.bytes("armhf-v7.o")),
        ("bin/ok", &fx.bytes("armel-v6")),
    ]);
    let rel = release(dir.path(), &[("golang", golang), ("native", native)]);

    let r = audit::audit_path(&rel, Arch::Armv6l).unwrap();
    assert_eq!(r.errors(), 5, "{}", r.render_table());
    let td = finding(
        &r,
        "packages/golang.tgz!/go/src/debug/elf/testdata/gcc-amd64-linux-exec",
    );
    assert_eq!(td.severity, Severity::Warning, "{td:?}");
    assert!(td.message.contains("test data"), "{}", td.message);
    let x = finding(&r, "packages/golang.tgz!/w.zip!/x/amd64");
    assert!(x.message.contains("x86-64"), "{}", x.message);
    assert_eq!(
        finding(&r, "packages/native.tgz!/bin/ok").severity,
        Severity::Ok
    );
    assert_eq!(
        finding(
            &r,
            "packages/golang.tgz!/go1.25.4.linux-arm.tar.xz!/go/bin/go"
        )
        .severity,
        Severity::Error
    );

    let (code, out) = baker_audit(&rel, "armv6l", false);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("packages/native.tgz!/bin/v7"), "{out}");
    assert!(out.contains("5 error(s)"), "{out}");
    let (code, json) = baker_audit(&rel, "armv6l", true);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["target"], "armv6l");
    let errors = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .count();
    assert_eq!(errors, 5);
}

#[test]
fn directory_trees_are_audited() {
    let Some(fx) = fixtures() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::copy(fx.path("aarch64"), root.join("usr/bin/true")).unwrap();
    std::fs::write(root.join("usr/bin/script"), "#!/bin/sh\n").unwrap();
    std::fs::write(
        root.join("blob.tgz"),
        tgz(&[("bin/x", &fx.bytes("x86-64"))]),
    )
    .unwrap();
    let r = audit::audit_path(&root, Arch::Arm64).unwrap();
    assert_eq!(r.files, 3);
    assert_eq!(finding(&r, "usr/bin/true").severity, Severity::Ok);
    assert_eq!(finding(&r, "blob.tgz!/bin/x").severity, Severity::Error);
}

#[test]
fn oversized_elf_is_judged_by_its_header() {
    let Some(fx) = fixtures() else { return };
    let r = audit::audit_path_with_cap(&fx.path("armel-v7"), Arch::Armv6l, 64).unwrap();
    let f = &r.findings[0];
    assert_eq!(f.severity, Severity::Warning, "{f:?}");
    assert!(f.message.contains("cap"), "{}", f.message);
    let r = audit::audit_path_with_cap(&fx.path("x86-64"), Arch::Armv6l, 64).unwrap();
    assert_eq!(r.findings[0].severity, Severity::Error);
}

#[test]
fn bzip2_sources_are_inspected() {
    let Some(fx) = fixtures() else { return };
    let dir = tempfile::tempdir().unwrap();
    // garden-runc's iptables package carries libmnl-1.0.5.tar.bz2: make one with GNU tar.
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("libmnl-1.0.5/examples")).unwrap();
    std::fs::write(src.join("libmnl-1.0.5/examples/a.out"), fx.bytes("x86-64")).unwrap();
    std::fs::write(src.join("libmnl-1.0.5/README"), b"libmnl\n").unwrap();
    let bz2 = dir.path().join("libmnl-1.0.5.tar.bz2");
    let ok = Command::new("tar")
        .arg("-cjf")
        .arg(&bz2)
        .arg("-C")
        .arg(&src)
        .arg("libmnl-1.0.5")
        .status()
        .unwrap();
    assert!(ok.success(), "tar -cjf (needs bzip2)");
    let pkg = tgz(&[(
        "iptables/libmnl-1.0.5.tar.bz2",
        &std::fs::read(&bz2).unwrap(),
    )]);
    let rel = release(dir.path(), &[("iptables", pkg)]);
    let r = audit::audit_path(&rel, Arch::Armv6l).unwrap();
    let f = finding(
        &r,
        "packages/iptables.tgz!/iptables/libmnl-1.0.5.tar.bz2!/libmnl-1.0.5/examples/a.out",
    );
    assert_eq!(f.severity, Severity::Error, "{}", r.render_table());
    assert_eq!(r.archives, 2, "{}", r.render_table());
}

/// A zip as streaming writers (Go's archive/zip) make it: sizes in a data descriptor.
fn streamed_zip() -> Vec<u8> {
    let mut z = zip::ZipWriter::new_stream(Vec::new());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    z.start_file("go/bin/go.exe", opts).unwrap();
    z.write_all(b"MZ not an elf").unwrap();
    z.finish().unwrap().into_inner()
}

#[test]
fn skipped_archives_warn_and_broken_ones_fail() {
    let dir = tempfile::tempdir().unwrap();
    let good = tgz(&[("x", b"y")]);
    let skipped = release(
        dir.path(),
        &[(
            "p",
            tgz(&[
                ("src/lib.tar.zst", b"(\xb5/\xfd"),
                ("go1.26.7.windows-amd64.zip", &streamed_zip()),
                ("ok.tgz", &good),
            ]),
        )],
    );
    let r = audit::audit_path(&skipped, Arch::Armv6l).unwrap();
    assert_eq!((r.errors(), r.warnings()), (0, 2), "{}", r.render_table());
    assert!(
        finding(&r, "packages/p.tgz!/src/lib.tar.zst")
            .message
            .contains("zstd")
    );
    assert!(
        finding(&r, "packages/p.tgz!/go1.26.7.windows-amd64.zip")
            .message
            .contains("not inspected")
    );
    assert_eq!(baker_audit(&skipped, "armv6l", false).0, 0);

    let broken = release(
        dir.path(),
        &[(
            "p",
            tgz(&[
                ("bad.tgz", &good[..good.len() / 2]),
                ("bad.zip", b"PK\x03\x04garbage"),
                (
                    "libbad.a",
                    b"!<arch>\nlibfoo.o/       0           0     0     644     9999      `\nELF",
                ),
            ]),
        )],
    );
    let r = audit::audit_path(&broken, Arch::Armv6l).unwrap();
    assert_eq!(r.errors(), 3, "{}", r.render_table());
    let bad_ar = finding(&r, "packages/p.tgz!/libbad.a");
    assert!(bad_ar.message.contains("ar:"), "{}", bad_ar.message);
    assert!(
        finding(&r, "packages/p.tgz!/bad.tgz")
            .message
            .contains("not inspected")
    );
    assert_eq!(baker_audit(&broken, "armv6l", false).0, 1);
}

#[test]
fn missing_path_and_bad_arch_are_clear_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_baker"))
        .args(["audit", "/nonexistent/rel.tgz", "--arch", "armv6l"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/rel.tgz"));
    let out = Command::new(env!("CARGO_BIN_EXE_baker"))
        .args(["audit", ".", "--arch", "mips"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("mips"));
}

/// The armv6l verdicts are the truth on an ARM1176: what passes runs under
/// `qemu-arm -cpu arm1176`, and the GOARM=7 binary the audit rejects dies there.
#[test]
fn armv6l_verdicts_match_qemu_arm1176() {
    let Some(fx) = fixtures() else { return };
    if !have("qemu-arm-static") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs qemu-user-static"
        );
        eprintln!("\n!!! SKIPPING qemu cross-check: qemu-arm-static not installed !!!\n");
        return;
    }
    let runs = |name: &str| {
        Command::new("qemu-arm-static")
            .args(["-cpu", "arm1176", "-L", "/usr/arm-linux-gnueabi"])
            .arg(fx.path(name))
            .output()
            .unwrap()
            .status
            .success()
    };
    for (name, ok) in [
        ("go-goarm6", true),
        ("armel-v6", true),
        ("go-goarm7", false),
    ] {
        let r = audit::audit_path(&fx.path(name), Arch::Armv6l).unwrap();
        let verdict = r.findings[0].severity == Severity::Ok;
        assert_eq!(verdict, ok, "{name}: audit says {:?}", r.findings[0]);
        assert_eq!(runs(name), ok, "{name} under qemu-arm -cpu arm1176");
    }
}

#[test]
fn static_libraries_and_debs_are_opened() {
    let Some(fx) = fixtures() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let long = "an-x86-64-object-with-a-long-name.o";
    std::fs::copy(fx.path("armhf-v6.o"), d.join("armhf-v6.o")).unwrap();
    std::fs::copy(fx.path("x86-64"), d.join(long)).unwrap();
    std::fs::write(d.join("debian-binary"), "2.0\n").unwrap();
    std::fs::write(
        d.join("data.tar.xz"),
        tar_xz(&[("./usr/bin/tool", &fx.bytes("x86-64"))]),
    )
    .unwrap();
    // binutils' ar (installed with gcc) writes the GNU long-name table
    run(Command::new("ar")
        .args(["rc", "libmix.a", "armhf-v6.o", long])
        .current_dir(d));
    run(Command::new("ar")
        .args(["rc", "tool.deb", "debian-binary", "data.tar.xz"])
        .current_dir(d));
    let rel = release(
        d,
        &[(
            "p",
            tgz(&[
                ("lib/libmix.a", &std::fs::read(d.join("libmix.a")).unwrap()),
                ("tool.deb", &std::fs::read(d.join("tool.deb")).unwrap()),
            ]),
        )],
    );
    let r = audit::audit_path(&rel, Arch::Armv6l).unwrap();
    assert_eq!(
        finding(&r, "packages/p.tgz!/lib/libmix.a!/armhf-v6.o").severity,
        Severity::Ok
    );
    assert_eq!(
        finding(&r, &format!("packages/p.tgz!/lib/libmix.a!/{long}")).severity,
        Severity::Error
    );
    assert_eq!(
        finding(&r, "packages/p.tgz!/tool.deb!/data.tar.xz!/usr/bin/tool").severity,
        Severity::Error
    );
    assert_eq!(r.errors(), 2, "{}", r.render_table());
}

/// Root-file-system layers (garden-runc's busybox blob) hold absolute symlinks and hard
/// links that an extractor would refuse; the audit, which writes nothing, reads through them.
#[test]
fn rootfs_layers_with_absolute_links_are_read_through() {
    let Some(fx) = fixtures() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut layer = TarWriter::plain(Vec::new());
    layer.add_symlink("etc/mtab", "/proc/self/mounts").unwrap();
    layer.add_symlink("lib", "/usr/lib").unwrap();
    layer
        .add_bytes("bin/busybox", Mode::Executable, &fx.bytes("x86-64"))
        .unwrap();
    let layer = layer.finish_tar().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&layer).unwrap();
    let layer = gz.finish().unwrap();
    let rel = release(
        dir.path(),
        &[("busybox", tgz(&[("busybox/busybox-1.36.1.tar.gz", &layer)]))],
    );
    let r = audit::audit_path(&rel, Arch::Armv6l).unwrap();
    let f = finding(
        &r,
        "packages/busybox.tgz!/busybox/busybox-1.36.1.tar.gz!/bin/busybox",
    );
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(r.errors(), 1, "{}", r.render_table());
}

#[test]
fn single_compressed_files_are_looked_into() {
    let Some(fx) = fixtures() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&fx.bytes("x86-64")).unwrap();
    let gz = gz.finish().unwrap();
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
    xz.write_all(&fx.bytes("armel-v6")).unwrap();
    let xz = xz.finish().unwrap();
    let rel = release(
        dir.path(),
        &[("p", tgz(&[("bin/tool.gz", &gz), ("bin/ok.xz", &xz)]))],
    );
    let r = audit::audit_path(&rel, Arch::Armv6l).unwrap();
    assert_eq!(
        finding(&r, "packages/p.tgz!/bin/tool.gz!/tool").severity,
        Severity::Error
    );
    assert_eq!(
        finding(&r, "packages/p.tgz!/bin/ok.xz!/ok").severity,
        Severity::Ok
    );
}

/// Go source trees (the armv6l toolchain included) carry `.syso` objects for every platform;
/// the file-name build constraint keeps foreign ones out of every link on the target.
#[test]
fn go_objects_for_other_platforms_warn() {
    let Some(fx) = fixtures() else { return };
    let dir = tempfile::tempdir().unwrap();
    let x86 = fx.bytes("x86-64");
    let toolchain = tgz(&[
        ("go/src/runtime/race/race_linux_amd64.syso", &x86),
        ("go/src/runtime/race/race_freebsd_arm.syso", &x86),
        ("go/src/crypto/boring_linux_arm.syso", &x86),
    ]);
    let rel = release(dir.path(), &[("golang", tgz(&[("go.tar.gz", &toolchain)]))]);
    let r = audit::audit_path(&rel, Arch::Armv6l).unwrap();
    let p = "packages/golang.tgz!/go.tar.gz!/go/src";
    let amd64 = finding(&r, &format!("{p}/runtime/race/race_linux_amd64.syso"));
    assert_eq!(amd64.severity, Severity::Warning, "{amd64:?}");
    assert!(amd64.message.contains("linux/amd64"), "{}", amd64.message);
    let bsd = finding(&r, &format!("{p}/runtime/race/race_freebsd_arm.syso"));
    assert_eq!(bsd.severity, Severity::Warning, "{bsd:?}");
    // named for the target, so it would be linked: the x86 code inside is an error
    let own = finding(&r, &format!("{p}/crypto/boring_linux_arm.syso"));
    assert_eq!(own.severity, Severity::Error, "{own:?}");
}

// The bake's audit gate: errors fail it unless the recipe's `audit.allow` accepts them with a
// reason, and stale allow entries fail it too.

fn policy(entries: &[(&str, &str)]) -> AuditPolicy {
    AuditPolicy {
        allow: entries
            .iter()
            .map(|(p, r)| AllowEntry {
                path: p.to_string(),
                reason: r.to_string(),
            })
            .collect(),
    }
}

/// `usr/bin/ok` (ARMv6), `usr/lib/firmware/start.elf` (x86-64 standing in for foreign code)
/// and a text file named like gzip, as dpkg's alternatives are.
fn gate_root(dir: &Path, fx: &elf_fixtures::Fixtures) -> std::path::PathBuf {
    let root = dir.join("rootfs");
    for d in ["usr/bin", "usr/lib/firmware", "var/lib/dpkg/alternatives"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(fx.path("armel-v6"), root.join("usr/bin/ok")).unwrap();
    std::fs::copy(fx.path("x86-64"), root.join("usr/lib/firmware/start.elf")).unwrap();
    std::fs::write(
        root.join("var/lib/dpkg/alternatives/builtins.7.gz"),
        "auto\n/usr/share/man/man7/builtins.7.gz\n",
    )
    .unwrap();
    root
}

#[test]
fn unaccepted_error_fails_and_names_the_path_and_report() {
    let Some(fx) = fixtures() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = gate_root(dir.path(), &fx);
    let out = dir.path().join("audit.txt");
    let e = audit::gate(&root, Arch::Armv6l, &policy(&[]), &out).unwrap_err();
    assert!(matches!(e, GateError::Findings { count: 1, .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("first usr/lib/firmware/start.elf"), "{msg}");
    assert!(msg.contains(&out.display().to_string()), "{msg}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("1 error(s)"), "{text}");
}

#[test]
fn allowed_error_passes_with_its_reason_in_the_report() {
    let Some(fx) = fixtures() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = gate_root(dir.path(), &fx);
    let out = dir.path().join("audit.txt");
    let p = policy(&[("usr/lib/firmware/*.elf", "GPU code, never run by the CPU")]);
    let r = audit::gate(&root, Arch::Armv6l, &p, &out).unwrap();
    assert_eq!(r.errors(), 0, "{}", r.render_table());
    let f = r
        .findings
        .iter()
        .find(|f| f.path == "usr/lib/firmware/start.elf")
        .unwrap();
    assert_eq!(f.severity, Severity::Allowed);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains("allowed (GPU code, never run by the CPU)"),
        "{text}"
    );
    assert!(
        text.contains("0 error(s)") && text.contains("1 allowed"),
        "{text}"
    );
    // the text file named `.gz` is neither an error nor skipped
    assert!(!text.contains("builtins"), "{text}");
}

#[test]
fn stale_allow_entry_fails() {
    let Some(fx) = fixtures() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = gate_root(dir.path(), &fx);
    let out = dir.path().join("audit.txt");
    let p = policy(&[
        ("usr/lib/firmware/*.elf", "GPU code"),
        ("usr/bin/ok", "it was v7 once"),
    ]);
    let e = audit::gate(&root, Arch::Armv6l, &p, &out).unwrap_err();
    assert!(matches!(e, GateError::Stale { index: 1, .. }), "{e}");
    assert!(e.to_string().contains("audit.allow[1] `usr/bin/ok`"), "{e}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("stale: audit.allow[1]"), "{text}");
}
