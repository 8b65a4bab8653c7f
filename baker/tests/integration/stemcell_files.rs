//! The stemcell content under `recipes/stemcells/files/rootfs/` renders with the bake's
//! template context (strict handlebars, as the `files` stage renders), says what the agent
//! needs on a Pi, and the agent stand-in runs on an ARM1176 with it.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use handlebars::Handlebars;
use serde_json::{Value, json};

fn files() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes/stemcells/files/rootfs")
}

/// The fields the bake's `files` stage renders templates with.
fn recipe_context() -> Value {
    json!({
        "name": "bosh-pi-debian-bookworm-armv6l",
        "version": "0.1.0",
        "operating_system": "debian-bookworm-armv6l",
        "arch": "armv6l",
        "debian_arch": "armel",
        "board": "rpi0",
        "source_date_epoch": 1_767_225_600u64,
    })
}

fn render(rel: &str, ctx: &Value) -> Result<String, String> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    let text = fs::read_to_string(files().join(rel)).map_err(|e| format!("{rel}: {e}"))?;
    hb.render_template(&text, ctx)
        .map_err(|e| format!("{rel}: {e}"))
}

#[test]
fn agent_json_renders_with_the_recipe_fields_and_suits_a_pi() {
    let text = render("var/vcap/bosh/agent.json.hbs", &recipe_context()).unwrap();
    let cfg: Value = serde_json::from_str(&text).unwrap();
    let linux = &cfg["Platform"]["Linux"];
    // unset: the ephemeral disk gets the parted partitioner, as on upstream stemcells (the
    // recipe's agent stage carries the 32-bit size fix it needs); util-linux 2.38's
    // `sfdisk -d` header lines make the agent's sfdisk path re-partition a disk in use
    assert!(linux.get("PartitionerType").is_none(), "{linux}");
    assert_eq!(linux["ServiceManager"], "systemd");
    assert_eq!(linux["DevicePathResolutionType"], "");
    assert_eq!(linux["CreatePartitionIfNoEphemeralDisk"], false);
    let sources = cfg["Infrastructure"]["Settings"]["Sources"]
        .as_array()
        .unwrap();
    assert_eq!(sources[0]["Type"], "File");
    assert_eq!(
        sources[0]["SettingsPath"],
        "/var/vcap/bosh/agent-bootstrap-env.json"
    );
    assert_eq!(sources[1]["Type"], "HTTP");
    assert_eq!(sources[1]["URI"], "http://169.254.169.254");

    let mut ctx = recipe_context();
    ctx["settings_uri"] = json!("http://10.244.0.1:8480");
    let text = render("var/vcap/bosh/agent.json.hbs", &ctx).unwrap();
    let cfg: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        cfg["Infrastructure"]["Settings"]["Sources"][1]["URI"],
        "http://10.244.0.1:8480"
    );
}

#[test]
fn bosh_etc_files_name_the_agent_platform_and_the_version() {
    let os = fs::read_to_string(files().join("var/vcap/bosh/etc/operating_system")).unwrap();
    assert_eq!(
        os, "ubuntu\n",
        "the agent's platform name, not the distribution"
    );
    let v = render("var/vcap/bosh/etc/stemcell_version.hbs", &recipe_context()).unwrap();
    assert_eq!(v, "0.1.0\n");
    let unit = fs::read_to_string(files().join("etc/systemd/system/bosh-agent.service")).unwrap();
    assert!(unit.contains(
        "ExecStart=/var/vcap/bosh/bin/bosh-agent -P ubuntu -C /var/vcap/bosh/agent.json"
    ));
}

#[test]
fn boot_templates_render_the_sd_default_and_the_netboot_variant() {
    let mut ctx = recipe_context();
    // config.txt names the kernel: the context must carry its version (strict mode)
    let err = render("boot/firmware/config.txt.hbs", &ctx).unwrap_err();
    assert!(err.contains("kernel_version"), "{err}");
    ctx["kernel_version"] = json!("6.1.0-50-rpi");
    let config = render("boot/firmware/config.txt.hbs", &ctx).unwrap();
    assert!(
        config.contains("\nkernel=vmlinuz-6.1.0-50-rpi\n"),
        "{config}"
    );
    assert!(
        config.contains("\ninitramfs initrd.img-6.1.0-50-rpi\n"),
        "{config}"
    );
    assert!(config.contains("\nenable_uart=1\n"), "{config}");

    let sd = render("boot/firmware/cmdline.txt.hbs", &ctx).unwrap();
    assert_eq!(sd.lines().count(), 1, "cmdline.txt is one line");
    assert!(sd.contains("root=LABEL=rootfs"), "{sd}");
    assert!(sd.contains("console=ttyAMA0,115200"), "{sd}");

    ctx["nbd"] = json!({"server": "10.201.0.1", "port": 10809, "export": "pi0"});
    ctx["ip"] = json!({"address": "10.201.0.2", "gateway": "10.201.0.1",
        "netmask": "255.255.255.0", "hostname": "pi0", "interface": "usb0"});
    let net = render("boot/firmware/cmdline-netboot.txt.hbs", &ctx).unwrap();
    assert_eq!(net.lines().count(), 1);
    assert!(
        net.contains("root=/dev/nbd0 nbdroot=10.201.0.1:10809/pi0 ip=10.201.0.2::10.201.0.1:255.255.255.0:pi0:usb0:off"),
        "{net}"
    );
}

#[test]
fn helper_scripts_are_valid_shell() {
    for rel in [
        "var/vcap/bosh/bin/bosh-agent-rc",
        "var/vcap/bosh/bin/restart_networking",
        "var/vcap/bosh/bin/sync-time",
        "var/vcap/bosh/bin/bosh-start-logging-and-auditing",
        "usr/lib/pifoundry/bootcheck-report",
        "usr/lib/pifoundry/settings-uri",
        "usr/lib/pifoundry/netroot-keep",
    ] {
        let path = files().join(rel);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{rel}: no #!/bin/sh");
        let out = Command::new("sh").arg("-n").arg(&path).output().unwrap();
        assert!(
            out.status.success(),
            "{rel}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn build_stub(dir: &Path) -> PathBuf {
    let out = dir.join("bosh-agent");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/agent-stub");
    let status = Command::new("go")
        .args(["build", "-mod=vendor", "-trimpath", "-buildvcs=false", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(&src)
        .env("CGO_ENABLED", "0")
        .env("GOOS", "linux")
        .env("GOARCH", "arm")
        .env("GOARM", "6")
        .env(
            "GOCACHE",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("gocache"),
        )
        .env("GOFLAGS", "")
        .status()
        .expect("go (scripts/install-prereqs.sh installs golang-go)");
    assert!(status.success());
    out
}

/// The stand-in agent, built like the bake's go-build stage builds the real one, starts on
/// an ARM1176 with the stemcell's agent.json, announces itself and stops on SIGTERM.
#[test]
fn agent_stand_in_runs_on_arm1176_with_the_stemcell_agent_json() {
    let dir = tempfile::tempdir().unwrap();
    let agent = build_stub(dir.path());
    let cfg = dir.path().join("agent.json");
    fs::write(
        &cfg,
        render("var/vcap/bosh/agent.json.hbs", &recipe_context()).unwrap(),
    )
    .unwrap();
    // stands for /dev/console, which exists before anyone writes to it
    let console = dir.path().join("console");
    fs::write(&console, "").unwrap();
    let mut child = Command::new("qemu-arm-static")
        .args(["-cpu", "arm1176"])
        .arg(&agent)
        .args(["-P", "ubuntu", "-C"])
        .arg(&cfg)
        .env("PIFOUNDRY_STUB_CONSOLE", &console)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("PIFOUNDRY-AGENT-STARTED "), "{line}");
    assert!(line.contains(" goarch=arm goarm=6 "), "{line}");
    assert!(line.contains(" sources=File,HTTP "), "{line}");
    assert!(line.contains(" platform=ubuntu "), "{line}");
    // it stays up until told to stop
    std::thread::sleep(Duration::from_millis(300));
    let still_running = child.try_wait().unwrap().is_none();
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < until, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(still_running, "the agent stand-in exited on its own");
    assert!(status.success(), "{status}");
    let on_console = fs::read_to_string(&console).unwrap();
    assert!(
        on_console.contains("PIFOUNDRY-AGENT-STARTED"),
        "{on_console}"
    );
}

#[test]
fn agent_stand_in_names_a_broken_agent_json() {
    let dir = tempfile::tempdir().unwrap();
    let agent = build_stub(dir.path());
    let cfg = dir.path().join("agent.json");
    fs::write(&cfg, "{\"Platform\": ").unwrap();
    let out = Command::new("qemu-arm-static")
        .args(["-cpu", "arm1176"])
        .arg(&agent)
        .args(["-P", "ubuntu", "-C"])
        .arg(&cfg)
        .env("PIFOUNDRY_STUB_CONSOLE", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&*cfg.to_string_lossy()), "{err}");
    assert!(err.starts_with("bosh-agent (stand-in): "), "{err}");
}

/// The stand-in (NOT the BOSH agent) reads the File settings source and answers ping and
/// get_state on the settings' HTTPS mbus URL with their certificate and password, as the
/// agent check expects of the real agent; on an ARM1176, talking to loopback only.
#[test]
fn agent_stand_in_answers_ping_and_get_state_over_https_with_the_settings_cert() {
    use baker::bootcheck::agent::Mbus;
    use baker::bootcheck::settings::{self, MbusCert};

    let dir = tempfile::tempdir().unwrap();
    let agent = build_stub(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cert = MbusCert::generate().unwrap();
    let mut doc = settings::settings("agent-1", "s3cret", &cert, "");
    doc["mbus"] = json!(format!("https://mbus:s3cret@127.0.0.1:{port}"));
    doc["networks"] = json!({});
    doc["disks"]["ephemeral"] = Value::Null;
    let settings_path = dir.path().join("agent-bootstrap-env.json");
    fs::write(&settings_path, doc.to_string()).unwrap();
    let mut cfg: Value =
        serde_json::from_str(&render("var/vcap/bosh/agent.json.hbs", &recipe_context()).unwrap())
            .unwrap();
    cfg["Infrastructure"]["Settings"]["Sources"][0]["SettingsPath"] =
        json!(settings_path.to_str().unwrap());
    let cfg_path = dir.path().join("agent.json");
    fs::write(&cfg_path, cfg.to_string()).unwrap();
    let mut child = Command::new("qemu-arm-static")
        .args(["-cpu", "arm1176"])
        .arg(&agent)
        .args(["-P", "ubuntu", "-C"])
        .arg(&cfg_path)
        .arg("-b")
        .arg(dir.path())
        .env("PIFOUNDRY_STUB_CONSOLE", "")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("https://127.0.0.1:{port}/agent");
    let mbus = Mbus::new(&url, "s3cret", &cert.ca).unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    let pong = loop {
        if let Some(v) = mbus.call("ping", json!([])).unwrap() {
            break v;
        }
        assert!(Instant::now() < until, "no mbus on {url}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(pong, "pong");
    let state = mbus.call("get_state", json!([])).unwrap().unwrap();
    assert_eq!(state["agent_id"], "agent-1");
    assert_eq!(state["job_state"], "running");
    assert_eq!(state["stand_in"]["note"], "not the BOSH agent");
    let wrong = Mbus::new(&url, "guess", &cert.ca).unwrap();
    let err = wrong.call("ping", json!([])).unwrap_err().to_string();
    assert!(err.contains("401"), "{err}");
    let other = MbusCert::generate().unwrap();
    let untrusted = Mbus::new(&url, "s3cret", &other.ca).unwrap();
    assert!(
        untrusted.call("ping", json!([])).unwrap().is_none(),
        "a client that does not trust the settings' CA got an answer"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// Serves `body` as `/latest/user-data` on loopback to every GET, as powerd's Pi network
/// does, until the test ends.
fn serve_user_data(body: String) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            let reply = if head.starts_with("GET /latest/user-data ") {
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into()
            };
            let _ = conn.write_all(reply.as_bytes());
        }
    });
    port
}

/// Runs the stand-in on an ARM1176 until its console shows `until` (or it exits), then
/// stops it; returns the console text.
fn stand_in_console(agent: &Path, cfg: &Path, base: &Path, until: &str) -> String {
    let console = base.join("console");
    fs::write(&console, "").unwrap();
    let mut child = Command::new("qemu-arm-static")
        .args(["-cpu", "arm1176"])
        .arg(agent)
        .args(["-P", "ubuntu", "-C"])
        .arg(cfg)
        .arg("-b")
        .arg(base)
        .env("PIFOUNDRY_STUB_CONSOLE", &console)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = fs::read_to_string(&console).unwrap();
        if text.contains(until) || child.try_wait().unwrap().is_some() {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no {until} on the console: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    text
}

/// The stand-in (NOT the BOSH agent) on a netboot: the File source's file is absent, so it
/// reads the HTTP source as the agent.json lists it, counts boots on the root and checks the
/// root takes writes; a document without agent_id is named as such.
#[test]
fn agent_stand_in_falls_through_to_the_http_source_and_counts_boots() {
    use baker::bootcheck::settings::{self, MbusCert};

    let dir = tempfile::tempdir().unwrap();
    let agent = build_stub(dir.path());
    let mbus_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cert = MbusCert::generate().unwrap();
    let mut doc = settings::settings("agent-net", "s3cret", &cert, "");
    doc["mbus"] = json!(format!("https://mbus:s3cret@127.0.0.1:{mbus_port}"));
    doc["networks"] = json!({});
    doc["disks"]["ephemeral"] = Value::Null;
    let good = serve_user_data(doc.to_string());
    let mut nameless = doc.clone();
    nameless.as_object_mut().unwrap().remove("agent_id");
    let bad = serve_user_data(nameless.to_string());

    let config = |port: u16, name: &str| {
        let mut cfg: Value = serde_json::from_str(
            &render("var/vcap/bosh/agent.json.hbs", &recipe_context()).unwrap(),
        )
        .unwrap();
        cfg["Infrastructure"]["Settings"]["Sources"] = json!([
            {"Type": "File", "SettingsPath": dir.path().join("absent.json")},
            {"Type": "HTTP", "URI": format!("http://127.0.0.1:{port}"), "UserDataPath": "/latest/user-data"},
        ]);
        let path = dir.path().join(name);
        fs::write(&path, cfg.to_string()).unwrap();
        path
    };
    let base = dir.path().join("base");
    fs::create_dir_all(&base).unwrap();
    let cfg = config(good, "agent.json");
    for n in 1..=2 {
        let console = stand_in_console(&agent, &cfg, &base, "PIFOUNDRY-STAND-IN-MBUS");
        assert!(
            console.contains(&format!("PIFOUNDRY-STAND-IN-BOOT n={n}\r")),
            "{console}"
        );
        assert!(
            console.contains("PIFOUNDRY-STAND-IN-SETTINGS source=HTTP agent_id=agent-net "),
            "{console}"
        );
        assert!(
            console.contains("PIFOUNDRY-STAND-IN-ROOT-WRITABLE ok"),
            "{console}"
        );
    }
    let console = stand_in_console(
        &agent,
        &config(bad, "agent-bad.json"),
        &base,
        "PIFOUNDRY-STAND-IN-ERROR",
    );
    assert!(
        console.contains("/latest/user-data: agent_id is missing or empty"),
        "{console}"
    );
    assert!(
        !console.contains("PIFOUNDRY-STAND-IN-SETTINGS"),
        "{console}"
    );
}

/// `usr/lib/pifoundry/SCRIPT` run on a kernel command line (written to `dir/cmdline`) and
/// the path it works on.
fn boot_script(script: &str, dir: &Path, cmdline: &str, target: &Path) -> std::process::Output {
    let path = dir.join("cmdline");
    fs::write(&path, cmdline).unwrap();
    Command::new("sh")
        .arg(files().join("usr/lib/pifoundry").join(script))
        .arg(&path)
        .arg(target)
        .output()
        .unwrap()
}

/// bosh-agent-rc's settings-uri on the rendered agent.json: a netboot's `pifoundry.api=`
/// becomes the HTTP source's URI (the File source stays first: an absent file falls through
/// to HTTP, as bosh-agent's multi-source walks them); an SD boot's command line changes
/// nothing; a value that is no plain http:// URL is refused, naming the command line.
#[test]
fn settings_uri_points_the_http_source_at_pifoundry_api_only_on_a_netboot() {
    let dir = tempfile::tempdir().unwrap();
    let baked = render("var/vcap/bosh/agent.json.hbs", &recipe_context()).unwrap();
    let agent_json = dir.path().join("agent.json");
    let run = |cmdline: &str| boot_script("settings-uri", dir.path(), cmdline, &agent_json);

    fs::write(&agent_json, &baked).unwrap();
    let out = run("console=serial0,115200 root=PARTUUID=abc-02 rootwait\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read_to_string(&agent_json).unwrap(), baked, "SD boot");

    let out = run(
        "console=serial0,115200 root=/dev/nbd0p2 nbd.max_part=8 nbdroot=10.0.0.1:10809/x \
         ip=10.0.0.5::10.0.0.1:255.255.255.0:pi:eth0:off pifoundry.api=http://10.0.0.1:8086\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg: Value = serde_json::from_str(&fs::read_to_string(&agent_json).unwrap()).unwrap();
    let sources = &cfg["Infrastructure"]["Settings"]["Sources"];
    assert_eq!(sources[0]["Type"], "File");
    assert_eq!(sources[1]["Type"], "HTTP");
    assert_eq!(sources[1]["URI"], "http://10.0.0.1:8086");
    assert_eq!(sources[1]["UserDataPath"], "/latest/user-data");
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let before = fs::read_to_string(&agent_json).unwrap();
    let out = run("root=/dev/nbd0p2 pifoundry.api=http://10.0.0.1:8086/\"x\n");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cmdline: pifoundry.api="), "{err}");
    assert_eq!(fs::read_to_string(&agent_json).unwrap(), before);
}

/// netroot-keep: a netboot's `ip=` device gets a networkd drop-in for the agent's network file
/// name keeping its addresses (the NBD root rides on them); an SD boot gets nothing; a device
/// that is no interface name is refused, naming the command line.
#[test]
fn netroot_keep_pins_the_root_link_only_on_a_netboot() {
    let dir = tempfile::tempdir().unwrap();
    let network = dir.path().join("network");
    let run = |cmdline: &str| boot_script("netroot-keep", dir.path(), cmdline, &network);
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        )
    };

    ok(run(
        "console=serial0,115200 root=PARTUUID=abc-02 ip=10.0.0.5::10.0.0.1:255.255.255.0:pi:eth0:off rootwait\n",
    ));
    assert!(!network.exists(), "an SD boot got a drop-in");

    ok(run(
        "console=ttyAMA0,115200 root=/dev/nbd0p2 nbdroot=10.0.0.1:10810/vm-1 \
         ip=10.0.0.5::10.0.0.1:255.255.255.0:pi:usb0:off rw\n",
    ));
    let conf =
        fs::read_to_string(network.join("10_usb0.network.d/pifoundry-netroot.conf")).unwrap();
    let lines: Vec<&str> = conf.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines, ["[Network]", "KeepConfiguration=yes"]);
    let names: Vec<_> = fs::read_dir(network.join("10_usb0.network.d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["pifoundry-netroot.conf"], "no temp file left");

    let out = run(
        "root=/dev/nbd0p2 nbdroot=10.0.0.1:10810/vm-1 ip=10.0.0.5::10.0.0.1:255.255.255.0:pi:../x:off\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cmdline: ip= device ../x"), "{err}");
}
