//! A lab in a temp dir, taken down when dropped (also after a failed assertion), a disk
//! image that looks like a stemcell's to powerd and to the power-on script, and the baked CI
//! stemcell the boot tests share.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use baker::bake::cache::StageCache;
use baker::bake::{self, BakeOptions};
use baker::blobs::NoBlobs;
use baker::recipe::stemcell::StemcellRecipe;
use pifoundry_lab::layout::{Lab, LabSpec};
use powerd_client::provision::{CreateVm, NetworkSpec};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct TestLab {
    pub lab: Lab,
    /// The lab's directory's parent, removed after `down`.
    _tmp: tempfile::TempDir,
}

impl TestLab {
    pub fn up(pis: usize, image: Option<&Path>) -> TestLab {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the lab tests need root (CI runs as root)"
        );
        let tmp = tempfile::tempdir().unwrap();
        let mut spec = LabSpec::new(&unique_name(), tmp.path().join("lab"), pis).unwrap();
        spec.image = image.map(Path::to_path_buf);
        spec.vm_life = Some(std::time::Duration::from_secs(1800));
        let lab = pifoundry_lab::up::up(&spec).unwrap_or_else(|e| panic!("lab up: {e:#}"));
        TestLab { lab, _tmp: tmp }
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        if let Err(e) = pifoundry_lab::down::down(&self.lab.dir) {
            eprintln!("lab down: {e:#}");
        }
    }
}

pub fn unique_name() -> String {
    format!(
        "t{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A 64 MiB sparse image: a FAT boot partition with `config.txt`, a kernel that is not one,
/// an initramfs and a device tree that passes the QEMU patch (a BCM2835 watchdog node).
pub fn boot_image(dir: &Path) -> PathBuf {
    let img = dir.join("stand-in.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let mut sfdisk = Command::new("sfdisk")
        .arg("-q")
        .arg(&img)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    sfdisk
        .stdin
        .take()
        .unwrap()
        .write_all(b"label: dos\nstart=2048, size=32768, type=c\nstart=34816, type=83\n")
        .unwrap();
    assert!(sfdisk.wait().unwrap().success());
    run(Command::new("mkfs.vfat")
        .args(["-F", "16", "--offset", "2048"])
        .arg(&img)
        .arg("16384"));
    let files = dir.join("boot");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(
        files.join("config.txt"),
        "enable_uart=1\nupstream_kernel=1\nkernel=vmlinuz-test\ninitramfs initrd.img-test\n[pi4]\nkernel=kernel8.img\n",
    )
    .unwrap();
    std::fs::write(
        files.join("vmlinuz-test"),
        (0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    std::fs::write(files.join("initrd.img-test"), vec![0x5a; 100_000]).unwrap();
    let dts = files.join("zero.dts");
    std::fs::write(
        &dts,
        "/dts-v1/;\n/ { #address-cells = <1>; #size-cells = <1>; chosen { }; memory@0 { device_type = \"memory\"; reg = <0 0x20000000>; };\n soc { #address-cells = <1>; #size-cells = <1>; watchdog@7e100000 { compatible = \"brcm,bcm2835-pm\", \"brcm,bcm2835-pm-wdt\"; reg = <0x7e100000 0x114 0x7e00a000 0x24>; reg-names = \"pm\", \"asb\"; }; }; };\n",
    )
    .unwrap();
    run(Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb", "-o"])
        .arg(files.join("bcm2835-rpi-zero.dtb"))
        .arg(&dts));
    let drive = format!("{}@@{}", img.display(), 2048 * 512);
    let mut mcopy = Command::new("mcopy");
    mcopy.env("MTOOLS_SKIP_CHECK", "1").args(["-i", &drive]);
    for f in [
        "config.txt",
        "vmlinuz-test",
        "initrd.img-test",
        "bcm2835-rpi-zero.dtb",
    ] {
        mcopy.arg(files.join(f));
    }
    run(mcopy.arg("::/"));
    img
}

/// A VM on one dynamic network (what a director sends for a Pi) with these settings.
pub fn create_body(
    image: &str,
    agent: &str,
    ephemeral_mib: u64,
    settings: serde_json::Value,
) -> CreateVm {
    let net = NetworkSpec {
        kind: "dynamic".into(),
        ip: None,
        netmask: None,
        gateway: None,
        dns: vec![],
        default: vec![],
    };
    CreateVm {
        agent_id: agent.into(),
        image: image.into(),
        constraints: Default::default(),
        networks: std::collections::BTreeMap::from([("default".to_string(), net)]),
        ephemeral_disk_mib: Some(ephemeral_mib),
        disks: vec![],
        settings,
        metadata: Default::default(),
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The CI stemcell (`ci-armv6l.yml`, whose agent is the stand-in) baked into `tmp/out`.
pub fn bake_ci_stemcell(tmp: &Path) -> PathBuf {
    let recipe_path = repo().join("recipes/stemcells/ci-armv6l.yml");
    let recipe = StemcellRecipe::load(&recipe_path).unwrap();
    let out = tmp.join("out");
    let opts = BakeOptions {
        recipe_path: recipe_path.clone(),
        project_root: bake::project_root_of(&recipe_path),
        cache_dir: StageCache::machine_dir_or(&tmp.join("stages")),
        out_dir: out.clone(),
        from: None,
    };
    bake::bake(&recipe, &opts, &NoBlobs).unwrap_or_else(|e| panic!("bake: {e:#}"));
    out
}
