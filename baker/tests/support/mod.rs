//! Helpers shared by baker's integration tests: the `baker` executable, bosh-cli's reference
//! releases and releases built from them (`release`), ELF fixtures built with Debian's cross
//! compilers (`elf_fixtures`), a loopback HTTP server (`http`), and the small real stemcell
//! recipe the bake tests share (`busybox_recipe`).

#![allow(dead_code)] // each test module uses a different subset

pub mod elf_fixtures;
pub mod http;
pub mod release;

use std::process::{Command, Output};

/// Runs the `baker` executable.
pub fn baker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baker"))
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap()
}

/// The one line a failing command wrote to stderr (asserting there is exactly one).
pub fn stderr_line(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected failure: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let e = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(e.lines().count(), 1, "{e}");
    e.trim_end().to_string()
}

/// A stemcell recipe whose root is Debian's busybox-static unpacked by mmdebstrap's `extract`
/// variant (seconds to build), followed by `later_stages` (YAML list items, indented by two).
pub fn busybox_recipe(name: &str, later_stages: &str) -> String {
    let head = [
        format!("name: {name}"),
        "version: '0.0.1'".into(),
        "operating_system: debian-bookworm-armv6l".into(),
        "arch: armv6l".into(),
        "board: rpi-zero".into(),
        "stages:".into(),
        "  - name: base".into(),
        "    kind: rootfs".into(),
        "    suite: bookworm".into(),
        "    variant: extract".into(),
        "    packages: [busybox-static]".into(),
    ];
    format!("{}\n{later_stages}", head.join("\n"))
}
