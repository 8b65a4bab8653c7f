//! `pifoundry-lab up`: the namespace, its bridge and taps, dnsmasq, powerd with provisioning
//! and one `command` outlet per virtual Pi, the Pis registered in powerd's inventory, and
//! the image uploaded. Each step is recorded in `lab.json` before it is taken; a step that
//! fails takes the lab down again, so a failed `up` leaves nothing behind.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use powerd_client::provision::{Arch, ImageUpload, PiSpec};
use powerd_client::{Credentials, blocking::Client};

use crate::layout::*;
use crate::{down, netns};

/// Tools the lab runs, with the package that has each (scripts/install-prereqs.sh installs them).
const TOOLS: [(&str, &str); 7] = [
    ("ip", "iproute2"),
    ("dnsmasq", "dnsmasq-base"),
    ("nft", "nftables"),
    ("curl", "curl"),
    ("qemu-system-arm", "qemu-system-arm"),
    ("qemu-nbd", "qemu-utils"),
    ("fdtput", "device-tree-compiler"),
];

pub fn up(spec: &LabSpec) -> Result<Lab> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the lab needs root: it makes a network namespace, taps and nftables rules");
    }
    for (tool, package) in TOOLS {
        if !on_path(tool) {
            bail!(
                "`{tool}` not found (Debian package {package}): run scripts/install-prereqs.sh test"
            );
        }
    }
    for (what, exe) in [("powerd", &spec.powerd), ("pifoundry-lab", &spec.lab_exe)] {
        if !exe.is_file() {
            bail!(
                "{}: no {what} binary here (cargo build -p powerd -p pifoundry-lab)",
                exe.display()
            );
        }
    }
    if spec.pis == 0 || spec.pis > 99 {
        bail!("--pis {}: a lab has 1 to 99 Pis", spec.pis);
    }
    fs::create_dir_all(&spec.dir).with_context(|| format!("{}", spec.dir.display()))?;
    let dir = spec
        .dir
        .canonicalize()
        .with_context(|| format!("{}", spec.dir.display()))?;
    if dir.join(STATE_FILE).exists() {
        bail!(
            "{}: a lab is already up here (pifoundry-lab down --dir {})",
            dir.join(STATE_FILE).display(),
            dir.display()
        );
    }
    if fs::read_dir(&dir)?.next().is_some() {
        bail!(
            "{}: not empty; a lab needs a directory of its own",
            dir.display()
        );
    }
    let netns = Lab::netns_name(&spec.name);
    if netns::exists(&netns) {
        bail!(
            "network namespace {netns} exists already: another lab named {:?} is up (pifoundry-lab down)",
            spec.name
        );
    }
    let mut lab = Lab {
        name: spec.name.clone(),
        netns,
        dir,
        pis: (0..spec.pis).map(PiRecord::numbered).collect(),
        vm_life_secs: spec.vm_life.map(|d| d.as_secs().max(1)),
        image: None,
        made: Vec::new(),
    };
    lab.save()?;
    match build(&mut lab, spec) {
        Ok(()) => Ok(lab),
        Err(e) => {
            if let Err(d) = down::down(&lab.dir) {
                return Err(e.context(format!(
                    "and taking the half-made lab down failed too: {d:#}"
                )));
            }
            Err(e)
        }
    }
}

fn step(lab: &mut Lab, what: &str) -> Result<()> {
    lab.made.push(what.to_owned());
    lab.save()
}

fn build(lab: &mut Lab, spec: &LabSpec) -> Result<()> {
    step(lab, "netns")?;
    network(lab).context("making the lab network")?;
    fs::create_dir_all(lab.powerd_dir().join("data"))?;
    let token = baker::bootcheck::settings::random_hex()?;
    write_private(&lab.token_file(), format!("lab:{token}\n").as_bytes())?;
    let hosts = lab.powerd_dir().join("data/dnsmasq.hosts");
    fs::write(&hosts, b"").with_context(|| format!("{}", hosts.display()))?;
    step(lab, "dnsmasq")?;
    dnsmasq(lab, &hosts).context("starting dnsmasq")?;
    let config = lab.dir.join("powerd.yml");
    fs::write(&config, powerd_config(lab, spec, &hosts))
        .with_context(|| format!("{}", config.display()))?;
    step(lab, "powerd")?;
    powerd(lab, spec, &config).context("starting powerd")?;
    let pis = lab.pis.clone();
    let image = spec.image.clone();
    let id = with_client(lab, move |c| {
        for pi in &pis {
            c.put_pi(
                &pi.serial,
                &PiSpec {
                    model: "Raspberry Pi Zero (QEMU raspi0)".into(),
                    mac: pi.mac.clone(),
                    outlet: pi.outlet.clone(),
                    arch: Arch::Armv6l,
                    ram_mib: 512,
                    pool: None,
                    boot: None,
                    labels: None,
                },
            )
            .with_context(|| format!("registering Pi {}", pi.serial))?;
        }
        image.map(|img| upload(c, &img)).transpose()
    })?;
    lab.image = id;
    lab.save()
}

fn upload(c: &Client, img: &Path) -> Result<String> {
    let upload = ImageUpload {
        arch: Some(Arch::Armv6l),
        name: img.file_name().map(|n| n.to_string_lossy().into_owned()),
        ..Default::default()
    };
    let image = c
        .upload_image(img, &upload, Duration::from_secs(1800))
        .with_context(|| format!("uploading {}", img.display()))?;
    Ok(image.id)
}

/// A blocking powerd client used on a thread inside the lab's namespace.
pub fn with_client<T: Send>(lab: &Lab, f: impl FnOnce(&Client) -> Result<T> + Send) -> Result<T> {
    let token = lab.token()?;
    netns::within(&lab.netns, move || {
        let c = Client::new(&format!("http://{API}"), Credentials::Bearer(token))?
            .with_timeout(Duration::from_secs(300));
        f(&c)
    })
}

fn network(lab: &Lab) -> Result<()> {
    netns::create(&lab.netns)?;
    let ns = lab.netns.as_str();
    netns::ip_in(ns, &["link", "add", BRIDGE, "type", "bridge"])?;
    netns::ip_in(
        ns,
        &["addr", "add", &format!("{CONTROLLER}/24"), "dev", BRIDGE],
    )?;
    netns::ip_in(ns, &["link", "set", BRIDGE, "up"])?;
    for pi in &lab.pis {
        netns::ip_in(ns, &["tuntap", "add", "dev", &pi.tap, "mode", "tap"])?;
        netns::ip_in(ns, &["link", "set", &pi.tap, "master", BRIDGE])?;
        netns::ip_in(ns, &["link", "set", &pi.tap, "up"])?;
    }
    Ok(())
}

/// The Pi network's DHCP server, configured as `powerd/dnsmasq/controller-dhcp.conf` is for a
/// site, with the lab's values.
fn dnsmasq(lab: &Lab, hosts: &Path) -> Result<()> {
    let d = &lab.dir;
    let out = pifoundry_util::tool::run(
        netns::command(&lab.netns, "dnsmasq")
            .arg("--conf-file=/dev/null")
            .args([
                &format!("--interface={BRIDGE}"),
                "--bind-interfaces",
                "--port=0",
                "--no-resolv",
                "--no-hosts",
            ])
            .args(["--user=root", "--dhcp-authoritative", "--log-dhcp"])
            .arg(format!("--pid-file={}", d.join("dnsmasq.pid").display()))
            .arg(format!("--dhcp-hostsfile={}", hosts.display()))
            .arg(format!(
                "--dhcp-leasefile={}",
                d.join("dnsmasq.leases").display()
            ))
            .arg(format!(
                "--log-facility={}",
                d.join("dnsmasq.log").display()
            ))
            .arg(format!(
                "--dhcp-range={},{},{NETMASK},10m",
                DHCP_RANGE.0, DHCP_RANGE.1
            ))
            .arg(format!("--dhcp-option=option:router,{CONTROLLER}")),
        None,
    );
    out.map(|_| ()).map_err(Into::into)
}

fn powerd_config(lab: &Lab, spec: &LabSpec, hosts: &Path) -> String {
    let d = lab.dir.display();
    let exe = quote(&spec.lab_exe.display().to_string());
    let dir = quote(&d.to_string());
    let mut text = format!(
        "# the virtual Pi lab's powerd (pifoundry-lab up)\nlisten: {API}\nstate_file: {d}/powerd/state.json\nauth: {{token_file: {d}/powerd.tokens}}\npower_on_stagger: 0s\noutlets:\n"
    );
    for pi in &lab.pis {
        text.push_str(&format!(
            "  - id: {o}\n    description: virtual Pi {s} (QEMU raspi0 on {t})\n    backend: command\n    on: \"{exe} pi-power --dir {dir} on {{{{id}}}}\"\n    off: \"{exe} pi-power --dir {dir} off {{{{id}}}}\"\n    status: \"{exe} pi-power --dir {dir} status {{{{id}}}}\"\n    timeout: 180s\n    min_off: 1s\n    on_at_start: off\n",
            o = pi.outlet,
            s = pi.serial,
            t = pi.tap,
        ));
    }
    text.push_str(&format!(
        "provisioning:\n  data_dir: {d}/powerd/data\n  attach_timeout: 120s\n  pi_network:\n    address: {CONTROLLER}\n    netmask: {NETMASK}\n    gateway: {CONTROLLER}\n    pool: {}-{}\n    tftp_port: {TFTP_PORT}\n    http_port: {HTTP_PORT}\n    nbd_ports: {}-{}\n  exports: {{supervisor: detached, firewall: nftables}}\n  dhcp: {{hosts_file: {}, pid_file: {d}/dnsmasq.pid}}\n",
        POOL.0,
        POOL.1,
        NBD_PORTS.0,
        NBD_PORTS.1,
        hosts.display(),
    ));
    text
}

/// A shell word; YAML double quotes around it need no escapes for the paths the lab uses.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn powerd(lab: &Lab, spec: &LabSpec, config: &Path) -> Result<()> {
    let log_path = lab.dir.join("powerd.log");
    let log = fs::File::create(&log_path).with_context(|| format!("{}", log_path.display()))?;
    let mut child = netns::command(&lab.netns, &spec.powerd)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("{}", spec.powerd.display()))?;
    fs::write(lab.dir.join("powerd.pid"), format!("{}\n", child.id()))?;
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            let said = fs::read_to_string(&log_path).unwrap_or_default();
            bail!("powerd exited with {status}: {}", said.trim());
        }
        if with_client(lab, |c| Ok(c.outlets()?)).is_ok() {
            return Ok(());
        }
        if Instant::now() > until {
            bail!(
                "powerd did not answer on {API} within 60 s (log: {})",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).with_context(|| format!("{}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("{}", path.display()))
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}
