//! Real ELF fixtures for the audit tests, built with Debian's cross compilers and Go into the
//! target dir (never committed), and archive builders to nest them in a release.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use baker::archive::{Mode, TarGzWriter, TarWriter};

const C_MAIN: &str = "int main(void) { return 0; }\n";
const C_FUNC: &str = "double half(double x) { return x / 2; }\n";
const GO_MAIN: &str = "package main\n\nfunc main() { println(\"hi\") }\n";

/// Real ELF files, built once per fixture version into the target dir (never committed).
pub struct Fixtures {
    dir: PathBuf,
}

impl Fixtures {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    pub fn bytes(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }
}

pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .or_else(|_| Command::new(tool).arg("version").output())
        .is_ok()
}

/// Builds the fixtures, or returns `None` (skip) when a compiler is missing outside CI.
pub fn fixtures() -> Option<Fixtures> {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = root.join("audit-fixtures-v2");
    if dir.join("complete").exists() {
        return Some(Fixtures { dir });
    }
    let missing: Vec<&str> = [
        "gcc",
        "arm-linux-gnueabi-gcc",
        "aarch64-linux-gnu-gcc",
        "go",
    ]
    .into_iter()
    .filter(|t| !have(t))
    .collect();
    if !missing.is_empty() {
        if std::env::var_os("CI").is_some() {
            panic!("audit fixtures need {missing:?} (scripts/install-prereqs.sh test)");
        }
        eprintln!(
            "\n!!! SKIPPING audit fixture test: {missing:?} not installed (run scripts/install-prereqs.sh test) !!!\n"
        );
        return None;
    }
    // Several test processes may race here: each builds privately, the first rename wins.
    let work = tempfile::tempdir_in(&root).unwrap();
    let w = work.path();
    std::fs::write(w.join("main.c"), C_MAIN).unwrap();
    std::fs::write(w.join("func.c"), C_FUNC).unwrap();
    std::fs::write(w.join("main.go"), GO_MAIN).unwrap();
    let cc = |out: &str, compiler: &str, flags: &[&str], src: &str| {
        run(Command::new(compiler)
            .args(flags)
            .arg("-o")
            .arg(w.join(out))
            .arg(w.join(src))
            .current_dir(w));
    };
    cc(
        "armel-v6",
        "arm-linux-gnueabi-gcc",
        &["-march=armv6", "-marm"],
        "main.c",
    );
    cc(
        "armel-v7",
        "arm-linux-gnueabi-gcc",
        &["-march=armv7-a"],
        "main.c",
    );
    // No armhf sysroot is installed, so the hard-float objects stay unlinked (ET_REL).
    let hf = ["-c", "-mfloat-abi=hard", "-mfpu=vfp"];
    cc(
        "armhf-v6.o",
        "arm-linux-gnueabi-gcc",
        &[&hf[..], &["-march=armv6"]].concat(),
        "func.c",
    );
    cc(
        "armhf-v7.o",
        "arm-linux-gnueabi-gcc",
        &[&hf[..], &["-march=armv7-a"]].concat(),
        "func.c",
    );
    // v6 code that still needs more floating point than the ARM1176's VFPv2
    let v6hf = [&hf[..2], &["-march=armv6"]].concat();
    cc(
        "armhf-v6-vfpv3.o",
        "arm-linux-gnueabi-gcc",
        &[&v6hf[..], &["-mfpu=vfpv3"]].concat(),
        "func.c",
    );
    cc(
        "armhf-v6-neon.o",
        "arm-linux-gnueabi-gcc",
        &[&v6hf[..], &["-mfpu=neon"]].concat(),
        "func.c",
    );
    cc("aarch64", "aarch64-linux-gnu-gcc", &[], "main.c");
    cc("x86-64", "gcc", &[], "main.c");
    let gocache = root.join("audit-gocache");
    for (out, arch, goarm) in [
        ("go-goarm6", "arm", Some("6")),
        ("go-goarm7", "arm", Some("7")),
        ("go-arm64", "arm64", None),
    ] {
        let mut cmd = Command::new("go");
        cmd.args(["build", "-o"])
            .arg(w.join(out))
            .arg("main.go")
            .current_dir(w)
            .env("CGO_ENABLED", "0")
            .env("GOOS", "linux")
            .env("GOARCH", arch)
            .env("GOCACHE", &gocache)
            .env("GOPATH", w.join("gopath"))
            .env("GO111MODULE", "off")
            .env_remove("GOFLAGS");
        match goarm {
            Some(v) => cmd.env("GOARM", v),
            None => cmd.env_remove("GOARM"),
        };
        run(&mut cmd);
    }
    std::fs::write(w.join("complete"), "").unwrap();
    let built = work.keep();
    if std::fs::rename(&built, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&built);
    }
    Some(Fixtures { dir })
}

pub fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn tgz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = TarGzWriter::new(Vec::new());
    w.add_dir("./").unwrap();
    for (name, bytes) in files {
        w.add_bytes(&format!("./{name}"), Mode::Executable, bytes)
            .unwrap();
    }
    w.finish().unwrap()
}

pub fn tar_xz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = TarWriter::plain(Vec::new());
    for (name, bytes) in files {
        w.add_bytes(name, Mode::Executable, bytes).unwrap();
    }
    let tar = w.finish_tar().unwrap();
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
    xz.write_all(&tar).unwrap();
    xz.finish().unwrap()
}

pub fn zip(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in files {
        z.start_file(*name, opts).unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap().into_inner()
}

/// A release-like outer tarball (no `./` prefix, like bosh-cli writes it).
pub fn release(dir: &Path, packages: &[(&str, Vec<u8>)]) -> PathBuf {
    let path = dir.join("release.tgz");
    let mut w = TarGzWriter::new(std::fs::File::create(&path).unwrap());
    w.add_bytes("release.MF", Mode::Regular, b"name: pi\nversion: 1\n")
        .unwrap();
    w.add_dir("packages").unwrap();
    for (name, bytes) in packages {
        w.add_bytes(&format!("packages/{name}.tgz"), Mode::Regular, bytes)
            .unwrap();
    }
    w.finish().unwrap();
    path
}
