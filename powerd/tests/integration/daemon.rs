//! The real `powerd` binary: serve, ctl, check-config, graceful stop on SIGTERM.

use crate::support::write_private;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_powerd");
const TOKEN: &str = "daemon-token-0123456789";

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    write_private(&dir.path().join("tokens"), &format!("ops:{TOKEN}\n"));
    let cfg = dir.path().join("powerd.yml");
    std::fs::write(
        &cfg,
        format!(
            "listen: 127.0.0.1:0\nstate_file: {d}/state.json\nauth: {{token_file: {d}/tokens}}\noutlets:\n  - {{id: n1, backend: sim}}\n  - {{id: n2, backend: sim}}\n"
        ),
    )
    .unwrap();
    (dir, cfg)
}

fn ctl(url: &str, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(["ctl", "--url", url, "--token-file"])
        .arg(dir.join("tokens"))
        .args(args)
        .env_remove("POWERD_TOKEN")
        .output()
        .unwrap()
}

#[test]
fn serve_ctl_and_graceful_sigterm() {
    let (dir, cfg) = setup();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let mut line = String::new();
    while addr.is_none() && log.read_line(&mut line).unwrap() > 0 {
        addr = line
            .split("addr=")
            .nth(1)
            .map(|a| a.split_whitespace().next().unwrap().to_string());
        line.clear();
    }
    let url = format!("http://{}", addr.expect("powerd logged its address"));

    let out = ctl(&url, dir.path(), &["on", "n2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ctl(&url, dir.path(), &["list"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("n2  on") && l.ends_with("ops")),
        "{text}"
    );
    let out = ctl(&url, dir.path(), &["off", "n9"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("404 outlet_not_found: no outlet \"n9\""),
        "{err}"
    );
    assert_eq!(
        err,
        format!("powerd: {url}: 404 outlet_not_found: no outlet \"n9\"\n"),
        "the whole stderr line"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "powerd exited with {status} on SIGTERM");
    let state = std::fs::read_to_string(dir.path().join("state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["outlets"]["n2"]["state"], "on");
    assert_eq!(state["outlets"]["n2"]["changed_by"], "ops");
}

#[test]
fn check_config_names_the_problem() {
    let (dir, cfg) = setup();
    let ok = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    write_private(&dir.path().join("tokens"), "ops:short\n");
    let bad = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8(bad.stderr).unwrap();
    assert!(
        err.starts_with("powerd: ") && err.contains("tokens:1: token \"ops\" is shorter"),
        "{err}"
    );

    // A token file other users can read is refused by check-config and by serve alike.
    {
        use std::os::unix::fs::PermissionsExt;
        let tokens = dir.path().join("tokens");
        write_private(&tokens, &format!("ops:{TOKEN}\n"));
        std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o644)).unwrap();
        let want = format!(
            "powerd: {}: mode 0644 lets other users read or change the tokens; chmod 600 it (640 for a group of operators)\n",
            tokens.display()
        );
        for cmd in ["check-config", "serve"] {
            let out = Command::new(BIN)
                .args([cmd, "--config"])
                .arg(&cfg)
                .output()
                .unwrap();
            assert!(!out.status.success(), "{cmd} accepted a 0644 token file");
            let err = String::from_utf8(out.stderr).unwrap();
            assert!(err.ends_with(&want), "{cmd}: {err:?}");
        }
    }

    let exposed = dir.path().join("exposed.yml");
    std::fs::write(
        &exposed,
        "listen: 0.0.0.0:0\nauth: {open_reads: true}\noutlets:\n  - {id: a, backend: sim}\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&exposed)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!(
            "powerd: {}: auth.open_reads: reads without a token are only allowed on a loopback address; listen is 0.0.0.0:0\n",
            exposed.display()
        )
    );

    let gpio = dir.path().join("gpio.yml");
    std::fs::write(
        &gpio,
        "outlets:\n  - {id: a, backend: gpio, pin: 4}\n  - {id: b, backend: gpio, pin: 4}\n",
    )
    .unwrap();
    let bad = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&gpio)
        .output()
        .unwrap();
    let err = String::from_utf8(bad.stderr).unwrap();
    assert!(
        err.contains("gpio.yml: outlets[1].pin: GPIO 4 is already used by outlets[0]"),
        "{err}"
    );
}
