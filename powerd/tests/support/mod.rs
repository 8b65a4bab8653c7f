//! A real powerd on an ephemeral loopback port, configured from a real YAML file, with the
//! sim backend; a real HTTP client talks to it.

#![allow(dead_code)]

pub mod netns;
pub mod pinet;

use std::path::PathBuf;
use std::time::Duration;

use powerd::config::Config;
use powerd::outlet::sim::Transition;
use powerd::server::{Options, Running};
use powerd_client::{Client, Credentials, Method, Response};
use serde_json::{Value, json};

pub const TOKEN: &str = "test-token-0123456789";

/// Two sim outlets, `a` and `b`.
pub const SIMS: &str = "outlets:\n  - {id: a, backend: sim}\n  - {id: b, backend: sim}\n";

/// Writes a file only its owner can read: powerd refuses a token file others can read.
pub fn write_private(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub opts: Options,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        write_private(&dir.path().join("tokens"), &format!("tester:{TOKEN}\n"));
        Fixture {
            dir,
            opts: Options::default(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes powerd.yml with `body` (YAML for everything but the files) and loads it.
    pub fn config(&self, body: &str) -> Config {
        let d = self.dir.path().display();
        let text = format!(
            "listen: 127.0.0.1:0\nstate_file: {d}/state/state.json\naudit_log: {d}/audit.log\n{body}"
        );
        let text = if body.contains("auth:") {
            text
        } else {
            format!("{text}\nauth:\n  token_file: {d}/tokens\n")
        };
        let path = self.path("powerd.yml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path).unwrap()
    }

    pub async fn start(&self, cfg: &Config) -> Server {
        let running = Running::start(cfg, cfg.listen, self.opts.clone())
            .await
            .unwrap();
        let client = Client::new(&running.url(), Credentials::Bearer(TOKEN.into())).unwrap();
        Server { running, client }
    }
}

pub struct Server {
    pub running: Running,
    pub client: Client,
}

impl Server {
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        self.client.call(method, path, body.as_ref()).await.unwrap()
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        cred: Credentials,
        body: Option<&str>,
    ) -> Response {
        self.client
            .send(method, path, &cred, body.map(|b| b.as_bytes().to_vec()))
            .await
            .unwrap()
    }

    pub async fn power(&self, id: &str, state: &str) -> Response {
        self.call(
            Method::PUT,
            &format!("/v1/outlets/{id}/power"),
            Some(json!({ "state": state })),
        )
        .await
    }

    pub fn transitions(&self, id: &str) -> Vec<Transition> {
        self.running.app.sim.transitions_of(id)
    }

    pub async fn stop(self) {
        self.running.stop().await.unwrap();
    }
}

/// Gaps between consecutive transitions (from the sim's clock, not the test's).
pub fn gaps(t: &[Transition]) -> Vec<Duration> {
    t.windows(2).map(|w| w[1].at - w[0].at).collect()
}

pub fn states(t: &[Transition]) -> Vec<String> {
    t.iter().map(|t| t.state.to_string()).collect()
}

pub mod prov;

/// A response body for assertion messages.
pub fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}
