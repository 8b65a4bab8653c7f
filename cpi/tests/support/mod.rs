//! Runs the real CPI executable as the director does (request on stdin, the director's bare
//! environment, the config path as argument) against a real powerd on a loopback port.

#![allow(dead_code)]

pub mod prov;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const TOKEN: &str = "cpi-test-token-0123456789";

/// What one CPI call gave: the parsed response, stderr and the wall time.
pub struct Answer {
    pub json: Value,
    pub stderr: String,
    pub took: Duration,
}

impl Answer {
    pub fn result(&self) -> &Value {
        assert_eq!(self.json["error"], Value::Null, "CPI error: {}", self.json);
        &self.json["result"]
    }

    pub fn error(&self) -> &Value {
        assert_ne!(
            self.json["error"],
            Value::Null,
            "CPI succeeded: {}",
            self.json
        );
        assert_eq!(self.json["result"], Value::Null);
        &self.json["error"]
    }
}

/// One CPI call; checks the response shape the director insists on.
pub fn cpi(config: Option<&Path>, request: &str) -> Answer {
    let tmp = std::env::temp_dir();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pifoundry-cpi"));
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("TMPDIR", &tmp)
        .env("HOME", &tmp)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(c) = config {
        cmd.arg(c);
    }
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let took = start.elapsed();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.lines().count(),
        1,
        "stdout must hold exactly one JSON line: {text:?}"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    for key in ["result", "error", "log"] {
        assert!(v.get(key).is_some(), "response lacks {key}: {v}");
    }
    assert!(v["log"].is_string(), "{v}");
    if let Some(e) = v["error"].as_object() {
        assert!(e["type"].is_string() && e["message"].is_string() && e["ok_to_retry"].is_boolean());
    }
    Answer {
        json: v,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took,
    }
}

/// A request as bosh-cli sends it (`api_version` 2, a context without request_id).
pub fn request(method: &str, arguments: Value) -> String {
    json!({
        "method": method,
        "arguments": arguments,
        "context": {"director_uuid": "6e0a5b2c-0d8b-4e1f-9a57-1a2b3c4d5e6f", "vm": {"stemcell": {"api_version": 3}}},
        "api_version": 2,
    })
    .to_string()
}

/// Writes a CPI config naming `url` as the default controller.
pub fn write_config(dir: &Path, url: &str, token: &str) -> PathBuf {
    let path = dir.join("cpi.json");
    let cfg = json!({
        "powerd": {"url": url, "token": token},
        "request_timeout": 30,
        "agent": {
            "mbus": "https://mbus:mbus-password@0.0.0.0:6868",
            "ntp": ["10.77.0.1"],
            "blobstore": {"provider": "local", "options": {"blobstore_path": "/var/vcap/micro_bosh/data/cache"}}
        }
    });
    std::fs::write(&path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    path
}

/// A real powerd (power API, sim outlets) on an ephemeral loopback port, on its own runtime.
pub struct Powerd {
    pub rt: tokio::runtime::Runtime,
    pub running: Option<powerd::server::Running>,
    pub dir: tempfile::TempDir,
}

impl Powerd {
    /// `body` is the YAML after listen/state/auth (outlets, provisioning, …).
    pub fn start(body: &str) -> Powerd {
        Powerd::start_with(|_| body.to_string())
    }

    /// As [`Powerd::start`], with a body made from powerd's own directory.
    pub fn start_with(body: impl FnOnce(&Path) -> String) -> Powerd {
        let dir = tempfile::tempdir().unwrap();
        let body = body(dir.path());
        let d = dir.path().display();
        let tokens = dir.path().join("tokens");
        std::fs::write(&tokens, format!("cpi:{TOKEN}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
        let yml = dir.path().join("powerd.yml");
        std::fs::write(
            &yml,
            format!(
                "listen: 127.0.0.1:0\nstate_file: {d}/state/state.json\naudit_log: {d}/audit.log\nauth:\n  token_file: {d}/tokens\n{body}"
            ),
        )
        .unwrap();
        let cfg = powerd::config::Config::load(&yml).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let running = rt
            .block_on(powerd::server::Running::start(
                &cfg,
                cfg.listen,
                powerd::server::Options::default(),
            ))
            .unwrap();
        Powerd {
            rt,
            running: Some(running),
            dir,
        }
    }

    pub fn url(&self) -> String {
        self.running.as_ref().unwrap().url()
    }

    pub fn config(&self) -> PathBuf {
        write_config(self.dir.path(), &self.url(), TOKEN)
    }
}

impl Drop for Powerd {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = self.rt.block_on(r.stop());
        }
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Median of the durations.
pub fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}
