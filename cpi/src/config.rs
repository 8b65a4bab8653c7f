//! The CPI's configuration file (JSON, rendered by the `pi_cpi` job from its properties or
//! a create-env manifest's `cloud_provider.properties`) and the cpi-config `context` that
//! picks a controller and a pool for one call.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::protocol::CpiError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The controller used when the context names none.
    #[serde(default)]
    pub powerd: Option<Endpoint>,
    /// Controllers a cpi-config can select with `controller: NAME`.
    #[serde(default)]
    pub controllers: BTreeMap<String, Endpoint>,
    /// Seconds one powerd call may take (a create_vm waits for the power-on).
    #[serde(default = "default_request_timeout")]
    pub request_timeout: u64,
    /// Seconds an image upload may take.
    #[serde(default = "default_upload_timeout")]
    pub upload_timeout: u64,
    pub agent: AgentDefaults,
}

fn default_request_timeout() -> u64 {
    300
}
fn default_upload_timeout() -> u64 {
    3600
}

/// One powerd controller.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// `http://HOST:PORT` of powerd's admin API.
    pub url: String,
    /// A token of powerd's token file.
    pub token: String,
    /// The pool VMs go to unless their cloud_properties name one.
    #[serde(default)]
    pub pool: Option<String>,
}

/// What the agent needs that the director does not send in `create_vm`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentDefaults {
    /// The message bus URL: `nats://...` under a director, `https://mbus:PASS@0.0.0.0:6868`
    /// for create-env.
    pub mbus: String,
    #[serde(default)]
    pub ntp: Vec<String>,
    /// `{provider, options}`; the director usually sends its own in `env.bosh.blobstores`.
    #[serde(default)]
    pub blobstore: Option<Value>,
}

impl Config {
    /// Reads and checks the file; every error names it.
    pub fn load(path: &Path) -> Result<Config, CpiError> {
        let text = std::fs::read(path)
            .map_err(|e| CpiError::cpi(format!("CPI config {}: {e}", path.display())))?;
        Config::parse(&text)
            .map_err(|e| CpiError::cpi(format!("CPI config {}: {e}", path.display())))
    }

    /// The file's bytes, checked; the error does not name the file.
    pub fn parse(text: &[u8]) -> Result<Config, String> {
        let cfg: Config = serde_json::from_slice(text).map_err(|e| e.to_string())?;
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), String> {
        if self.powerd.is_none() && self.controllers.is_empty() {
            return Err("names no controller (`powerd` or `controllers`)".into());
        }
        let all = self.powerd.iter().map(|e| ("powerd".to_string(), e));
        let named = self
            .controllers
            .iter()
            .map(|(n, e)| (format!("controllers.{n}"), e));
        for (what, e) in all.chain(named) {
            if !e.url.starts_with("http://") {
                return Err(format!("{what}.url {:?} is not an http:// URL", e.url));
            }
            if e.token.is_empty() {
                return Err(format!("{what}.token is empty"));
            }
        }
        if self.agent.mbus.is_empty() {
            return Err("agent.mbus is empty".into());
        }
        Ok(())
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout.max(1))
    }

    pub fn upload_timeout(&self) -> Duration {
        Duration::from_secs(self.upload_timeout.max(1))
    }

    /// The controller and default pool for this call. A cpi-config's properties arrive at
    /// the top of `context`: `controller: NAME` selects one of `controllers`, `powerd:
    /// {url, token}` gives one outright, `pool: NAME` overrides the controller's pool.
    pub fn select(&self, context: &Map<String, Value>) -> Result<Endpoint, CpiError> {
        let mut endpoint =
            if let Some(v) = context.get("powerd") {
                serde_json::from_value::<Endpoint>(v.clone())
                    .map_err(|e| CpiError::cpi(format!("context.powerd: {e}")))?
            } else if let Some(v) = context.get("controller") {
                let name = v
                    .as_str()
                    .ok_or_else(|| CpiError::cpi("context.controller must be a string"))?;
                self.controllers.get(name).cloned().ok_or_else(|| {
                let known: Vec<&str> = self.controllers.keys().map(String::as_str).collect();
                CpiError::cloud(
                    format!(
                        "context.controller {name:?} is not in the CPI config's controllers ({})",
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    ),
                    false,
                )
            })?
            } else {
                self.powerd.clone().ok_or_else(|| {
                CpiError::cloud(
                    "the CPI config has no default `powerd` and the context names no controller",
                    false,
                )
            })?
            };
        if let Some(v) = context.get("pool") {
            let pool = v
                .as_str()
                .ok_or_else(|| CpiError::cpi("context.pool must be a string"))?;
            endpoint.pool = Some(pool.to_string());
        }
        Ok(endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg() -> Config {
        serde_json::from_value(json!({
            "powerd": {"url": "http://127.0.0.1:9750", "token": "t-default"},
            "controllers": {"rack-b": {"url": "http://127.0.0.1:9751", "token": "t-b", "pool": "b"}},
            "agent": {"mbus": "nats://127.0.0.1:4222"}
        }))
        .unwrap()
    }

    fn ctx(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_context_selects_the_controller_and_pool() {
        let c = cfg();
        let d = c.select(&ctx(json!({"director_uuid": "d"}))).unwrap();
        assert_eq!(d.url, "http://127.0.0.1:9750");
        assert_eq!(d.pool, None);
        let b = c.select(&ctx(json!({"controller": "rack-b"}))).unwrap();
        assert_eq!((b.token.as_str(), b.pool.as_deref()), ("t-b", Some("b")));
        let p = c
            .select(&ctx(json!({"controller": "rack-b", "pool": "gpu"})))
            .unwrap();
        assert_eq!(p.pool.as_deref(), Some("gpu"));
        let inline = c
            .select(&ctx(
                json!({"powerd": {"url": "http://127.0.0.1:1", "token": "x"}}),
            ))
            .unwrap();
        assert_eq!(inline.url, "http://127.0.0.1:1");
        let e = c.select(&ctx(json!({"controller": "nope"}))).unwrap_err();
        assert_eq!(
            e.message,
            "context.controller \"nope\" is not in the CPI config's controllers (rack-b)"
        );
        assert!(!e.ok_to_retry);
    }

    #[test]
    fn a_bad_file_is_one_error_naming_it_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cpi.json");
        std::fs::write(
            &p,
            r#"{"powerd": {"url": "https://x", "token": "t"}, "agent": {"mbus": "m"}}"#,
        )
        .unwrap();
        let e = Config::load(&p).unwrap_err();
        assert_eq!(
            e.message,
            format!(
                "CPI config {}: powerd.url \"https://x\" is not an http:// URL",
                p.display()
            )
        );
        std::fs::write(&p, r#"{"agent": {"mbus": "m", "ntpp": []}}"#).unwrap();
        let e = Config::load(&p).unwrap_err();
        assert!(e.message.contains("unknown field `ntpp`"), "{}", e.message);
    }
}
