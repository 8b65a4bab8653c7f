//! Provisioning fixtures: a powerd with a `provisioning:` section on loopback, N sim outlets
//! and N registered Pis, and real bootable-looking disk images (MBR, FAT boot partition made
//! by sfdisk, mkfs.vfat and mtools; the rest sparse).

use std::path::{Path, PathBuf};
use std::process::Command;

use powerd_client::provision::{Pi, PiSpec, Vm};
use powerd_client::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Fixture, Server};

/// The Pi serial of Pi number `i`.
pub fn serial(i: usize) -> String {
    format!("{:08x}", 0x1000_0000 + i)
}

pub fn mac(i: usize) -> String {
    format!("dc:a6:32:00:{:02x}:{:02x}", i / 256, i % 256)
}

/// powerd.yml body: `n` sim outlets `o0..`, provisioning under the fixture's dir.
pub fn config_text(fx: &Fixture, n: usize, extra: &str) -> String {
    let mut text = String::from("outlets:\n");
    for i in 0..n {
        text.push_str(&format!("  - {{id: o{i}, backend: sim}}\n"));
    }
    text.push_str(&section(fx));
    text.push_str(extra);
    text
}

/// The `provisioning:` section: Pi network on loopback, data under the fixture's dir.
pub fn section(fx: &Fixture) -> String {
    let d = fx.dir.path().display();
    format!(
        "provisioning:\n  data_dir: {d}/data\n  attach_timeout: 2s\n  pi_network: {{address: 127.0.0.1, netmask: 255.0.0.0, pool: 127.0.1.1-127.0.1.250, tftp_port: 0, http_port: 0, nbd_ports: 20810-20999}}\n  exports: {{supervisor: detached, firewall: none}}\n"
    )
}

pub async fn start(fx: &Fixture, n: usize) -> Server {
    let cfg = fx.config(&config_text(fx, n, ""));
    fx.start(&cfg).await
}

pub fn spec(i: usize) -> PiSpec {
    PiSpec {
        model: "Raspberry Pi Zero W".into(),
        mac: mac(i),
        outlet: format!("o{i}"),
        arch: powerd_client::provision::Arch::Armv6l,
        ram_mib: 512,
        pool: None,
        boot: None,
        labels: None,
    }
}

pub async fn register(srv: &Server, n: usize) {
    for i in 0..n {
        let r = srv
            .call(
                Method::PUT,
                &format!("/v1/pis/{}", serial(i)),
                Some(serde_json::to_value(spec(i)).unwrap()),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", super::text(&r));
    }
}

pub async fn pi(srv: &Server, i: usize) -> Pi {
    pi_by_serial(srv, &serial(i)).await
}

pub async fn pi_by_serial(srv: &Server, serial: &str) -> Pi {
    let r = srv
        .call(Method::GET, &format!("/v1/pis/{serial}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    serde_json::from_slice(&r.body).unwrap()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A sparse raw disk image of `size_mib` with a 16 MiB FAT boot partition holding
/// `config.txt`, `kernel.img`, `bootcode.bin` and `overlays/x.dtbo`; `tag` makes its bytes unique.
pub fn make_image(dir: &Path, size_mib: u64, tag: &str) -> PathBuf {
    let img = dir.join(format!("{tag}.img"));
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(size_mib << 20).unwrap();
    drop(f);
    let mut sfdisk = Command::new("sfdisk");
    sfdisk
        .arg("-q")
        .arg(&img)
        .stdin(std::process::Stdio::piped());
    let mut child = sfdisk.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"label: dos\nstart=2048, size=32768, type=c\nstart=34816, type=83\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    run(Command::new("mkfs.vfat")
        .args(["-F", "16", "--offset", "2048"])
        .arg(&img)
        .arg("16384"));
    let files = dir.join(format!("{tag}-boot"));
    std::fs::create_dir_all(files.join("overlays")).unwrap();
    std::fs::write(
        files.join("config.txt"),
        format!("# {tag}\nkernel=kernel.img\n"),
    )
    .unwrap();
    std::fs::write(files.join("kernel.img"), vec![0x5a; 200_000]).unwrap();
    std::fs::write(files.join("bootcode.bin"), b"bootcode").unwrap();
    std::fs::write(files.join("overlays/x.dtbo"), b"dtbo").unwrap();
    let drive = format!("{}@@{}", img.display(), 2048 * 512);
    run(Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-s", "-i", &drive])
        .arg(files.join("config.txt"))
        .arg(files.join("kernel.img"))
        .arg(files.join("bootcode.bin"))
        .arg(files.join("overlays"))
        .arg("::/"));
    std::fs::remove_dir_all(&files).unwrap();
    img
}

/// Uploads `img` (raw) and returns the image id.
pub async fn upload(srv: &Server, img: &Path) -> String {
    let body = std::fs::read(img).unwrap();
    let r = srv
        .client
        .send(
            Method::POST,
            "/v1/images?arch=armv6l&name=test&version=1",
            &powerd_client::Credentials::Bearer(super::TOKEN.into()),
            Some(body),
        )
        .await
        .unwrap();
    assert!(
        r.status == StatusCode::CREATED || r.status == StatusCode::OK,
        "{}",
        super::text(&r)
    );
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    v["id"].as_str().unwrap().to_string()
}

pub fn create_body(image: &str, agent: &str) -> Value {
    json!({
        "agent_id": agent,
        "image": image,
        "networks": {"default": {"type": "dynamic"}},
        "ephemeral_disk_mib": 64,
        "settings": {"agent_id": agent, "networks": {"default": {"type": "dynamic"}}, "env": {"bosh": {}}}
    })
}

pub async fn create_vm(srv: &Server, image: &str) -> Vm {
    let r = srv
        .call(Method::POST, "/v1/vms", Some(create_body(image, "agent-1")))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", super::text(&r));
    serde_json::from_slice(&r.body).unwrap()
}

pub fn data(fx: &Fixture) -> PathBuf {
    fx.path("data")
}

/// Entries under `data/<sub>` (sorted), to prove nothing was left behind.
pub fn entries(fx: &Fixture, sub: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(data(fx).join(sub))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The reservation lines of dnsmasq's hosts file (its comment header left out).
pub fn hosts(fx: &Fixture) -> String {
    std::fs::read_to_string(data(fx).join("dnsmasq.hosts"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}
