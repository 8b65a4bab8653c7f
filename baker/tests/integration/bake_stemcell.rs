//! End to end: bakes `recipes/stemcells/ci-armv6l.yml` (rootfs → users → system →
//! initramfs → files → go-build → checks → image → stemcell) with real mmdebstrap, real
//! qemu-user (ARM1176) and real Go, then checks the stemcell tarball, the image and the
//! agent binary inside it.
//!
//! **The agent in this stemcell is NOT the BOSH agent.** CI cannot reach GitHub for the
//! pinned cloudfoundry/bosh-agent source, so the CI recipe's `go-build` stage builds the
//! stand-in in `tests/fixtures/agent-stub` instead — the same stage, flags and install path
//! as the real recipe (`bookworm-armv6l.yml`), which needs `baker lock add` for its blobs.
//!
//! Cold, this takes many minutes (the rootfs and the initramfs run emulated); the stage cache
//! lives in `$PIFOUNDRY_STAGE_CACHE`, else `/var/cache/pifoundry/stages` when writable, so
//! later runs on the same machine only redo what changed. Needs root.
//!
//! Last, the proof that it is a stemcell at all: the image boots on QEMU's emulated Pi Zero
//! (ARM1176) from its SD image to userspace, systemd starts the agent, and the guest powers
//! off. `baker boot-check --bake-dir OUT` runs the same check on any bake's output.
//!
//! Then the agent check (`baker agent-check`), **with the stand-in agent, not the BOSH
//! agent**: settings in the File source with a generated mbus certificate, a blank 4 GiB
//! USB ephemeral disk, DHCP on QEMU's restricted user network, the mbus port forwarded to
//! loopback. It proves the network, disk, settings and TLS plumbing of the stemcell; the
//! real agent is checked by hand (recipes/stemcells/README.md).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use baker::bake::cache::StageCache;
use baker::bake::{self, BakeOptions};
use baker::blobs::NoBlobs;
use baker::bootcheck::{AGENT_MARKER, BootSpec, check_stemcell};
use baker::recipe::stemcell::StemcellRecipe;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Byte offset of MBR partition `n` (1-based) in a disk image.
fn partition_offset(img: &Path, n: usize) -> u64 {
    let mbr = &fs::read(img).map(|b| b[..512].to_vec()).unwrap();
    assert_eq!(&mbr[510..512], &[0x55, 0xaa], "no MBR signature");
    let e = 446 + 16 * (n - 1);
    u32::from_le_bytes(mbr[e + 8..e + 12].try_into().unwrap()) as u64 * 512
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ci_recipe_bakes_a_stemcell_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe_path = repo().join("recipes/stemcells/ci-armv6l.yml");
    let recipe = StemcellRecipe::load(&recipe_path).unwrap();
    let out = tmp.path().join("out");
    let opts = BakeOptions {
        recipe_path: recipe_path.clone(),
        project_root: bake::project_root_of(&recipe_path),
        cache_dir: StageCache::machine_dir_or(&tmp.path().join("stages")),
        out_dir: out.clone(),
        from: None,
    };
    let report = bake::bake(&recipe, &opts, &NoBlobs).unwrap();
    assert_eq!(report.stages.len(), recipe.stages.len());

    // the tarball
    let tgz = report.stemcell.clone().expect("a stemcell");
    assert_eq!(
        tgz.file_name().unwrap().to_string_lossy(),
        format!("{}-{}.tgz", recipe.name, recipe.version)
    );
    let i = baker::stemcell::inspect(&tgz).unwrap();
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
    let m = &i.manifest;
    assert_eq!(m.name, "bosh-pi-debian-bookworm-armv6l-ci-stub-agent");
    assert_eq!(m.version, "0.1.0");
    assert_eq!(m.operating_system, "debian-bookworm-armv6l");
    assert_eq!(m.api_version, 3);
    assert_eq!(m.stemcell_formats, ["pi-raw"]);
    assert_eq!(m.cloud_properties["architecture"], "armv6l");
    assert_eq!(m.cloud_properties["board"], "rpi-zero");
    assert_eq!(m.cloud_properties["disk_format"], "raw");
    assert!(i.sha1_matches, "sha1 {} vs {}", i.image_sha1, m.sha1);
    let inner = i.image_content.as_ref().unwrap();
    assert_eq!((inner.name.as_str(), inner.size), ("root.img", 2048 << 20));

    // packages.txt: every Debian package, sorted, armel
    let pkgs = fs::read_to_string(out.join("packages.txt")).unwrap();
    assert!(i.packages > 100, "{} packages", i.packages);
    let lines: Vec<_> = pkgs.lines().collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "not sorted");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("linux-image-6.1") && l.ends_with(" armel"))
    );
    assert!(lines.iter().any(|l| l.starts_with("raspi-firmware ")));

    // outputs the QEMU boot check uses
    let boot = out.join("boot");
    let names: Vec<String> = fs::read_dir(&boot)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().any(|n| n.starts_with("vmlinuz-")), "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("initrd.img-")),
        "{names:?}"
    );
    assert!(boot.join("dtbs/bcm2835-rpi-zero.dtb").is_file());
    assert!(boot.join("firmware/bootcode.bin").is_file());

    // the ELF audit of the root: the agent is a GOARM=6 static binary the target can run
    let audit = fs::read_to_string(out.join("audit.txt")).unwrap();
    let agent_line = audit
        .lines()
        .find(|l| l.contains("var/vcap/bosh/bin/bosh-agent"))
        .expect("agent audited");
    assert!(
        agent_line.starts_with("ok") && agent_line.contains("GOARM=6"),
        "{agent_line}"
    );

    // the agent binary, read back out of the image's ext4 root partition
    let img = out.join("root.img");
    let agent = tmp.path().join("bosh-agent");
    run(Command::new("debugfs")
        .arg("-R")
        .arg(format!(
            "dump -p /var/vcap/bosh/bin/bosh-agent {}",
            agent.display()
        ))
        .arg(format!(
            "{}?offset={}",
            img.display(),
            partition_offset(&img, 2)
        )));
    assert!(agent.is_file(), "debugfs found no agent in the image");
    let info = run(Command::new("go").arg("version").arg("-m").arg(&agent));
    assert!(info.contains("GOARCH=arm"), "{info}");
    assert!(info.contains("GOARM=6"), "{info}");
    assert!(info.contains("CGO_ENABLED=0"), "{info}");
    let v = run(Command::new("qemu-arm-static")
        .args(["-cpu", "arm1176"])
        .arg(&agent)
        .arg("-v"));
    assert!(!v.trim().is_empty());

    boots_and_init_starts_the_agent(&out);
    the_stand_in_agent_answers_its_mbus_with_the_ephemeral_disk_mounted(&out);
}

fn boots_and_init_starts_the_agent(out: &Path) {
    let mut spec = BootSpec::from_bake_dir(out).unwrap();
    spec.serial_log = Some(out.join("boot-check-serial.log"));
    let report = check_stemcell(&spec, &[AGENT_MARKER.into(), "login:".into()])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.report["agent"], "active");
    assert_eq!(report.report["arch"], "armv6l");
    assert_eq!(report.report["root"], "/dev/mmcblk0p2");
    // the FAT32 boot partition the image builder wrote mounts in the guest
    assert_eq!(report.report["boot"], "/dev/mmcblk0p1:vfat");
    assert_eq!(report.report["system"], "running", "{:?}", report.report);
    assert!(
        report.markers[0].contains("goarm=6"),
        "{:?}",
        report.markers
    );
    eprintln!(
        "report after {:.0} s, off after {:.0} s: {:?}",
        report.secs_to_report, report.secs_total, report.report
    );
}

/// **The stand-in agent (NOT the BOSH agent)** on the baked stemcell: ping and get_state over
/// HTTPS, the ephemeral disk partitioned, formatted and mounted at /var/vcap/data, and after
/// a power cut the same disk layout without re-partitioning or re-formatting.
fn the_stand_in_agent_answers_its_mbus_with_the_ephemeral_disk_mounted(out: &Path) {
    use baker::bootcheck::agent::AgentCheck;
    use baker::bootcheck::agent_cli::{AGENT_APPEND, AgentKind, milestones};

    let mut boot = BootSpec::from_bake_dir(out).unwrap();
    boot.append = AGENT_APPEND.into();
    boot.timeout = std::time::Duration::from_secs(900);
    boot.stall = baker::bootcheck::agent::STALL;
    let work = tempfile::tempdir_in(out).unwrap();
    let check = AgentCheck {
        boot,
        work: work.path().to_path_buf(),
        ephemeral_mib: 4096,
        milestones: milestones(AgentKind::StandIn),
    };
    let boots = check.run().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(boots.len(), 2);
    for (i, b) in boots.iter().enumerate() {
        assert_eq!(b.state["job_state"], "running");
        assert_eq!(b.state["stand_in"]["note"], "not the BOSH agent");
        let disk = &b.state["stand_in"]["ephemeral_disk"];
        assert_eq!(disk["device"], "/dev/sda", "{disk}");
        assert_eq!(disk["data_partition"], "/dev/sda2", "{disk}");
        // the first boot laid the disk out; the second found it as it was (a first boot that
        // stalled and was power-cycled may have laid it out before the stall)
        if !(i == 0 && b.stalls > 0) {
            assert_eq!(disk["partitioned_now"], i == 0, "boot {}: {disk}", i + 1);
            assert_eq!(disk["formatted_now"], i == 0, "boot {}: {disk}", i + 1);
        }
        let data = b.layout.data_partition().expect("swap + ext4 data");
        assert!(data.size > 2 << 30, "{}", b.layout.describe());
        eprintln!(
            "stand-in agent, boot {}: ping after {:.0} s ({} stalled attempt(s) power-cycled), {:?}; disk {}",
            i + 1,
            b.secs_to_ping,
            b.stalls,
            b.milestones,
            b.layout.describe()
        );
    }
}
