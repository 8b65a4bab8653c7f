//! powerd's YAML configuration: the raw file shape (serde, unknown keys refused) and the
//! validated [`Config`] the daemon runs from. Every error names the file and the key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pifoundry_util::name::NameRule;
use serde::Deserialize;

pub const DEFAULT_PATH: &str = "/etc/pifoundry/powerd.yml";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9750";
pub const DEFAULT_TOKEN_FILE: &str = "/etc/pifoundry/powerd.tokens";
pub const DEFAULT_STATE_FILE: &str = "/var/lib/pifoundry/powerd/state.json";
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {error}")]
    Read {
        file: PathBuf,
        error: std::io::Error,
    },
    /// Syntax, type and unknown-key errors; serde_yaml's message carries the key path.
    #[error("{file}: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("{file}: {key}: {message}")]
    Invalid {
        file: PathBuf,
        key: String,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartPolicy {
    /// Return to the last commanded state (for GPIO without a state file: keep the pin's level).
    Restore,
    Off,
    On,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BackendConfig {
    Gpio {
        pin: u8,
        active_low: bool,
    },
    Command {
        on: String,
        off: String,
        status: Option<String>,
        timeout: Duration,
    },
    Sim,
}

impl BackendConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::Gpio { .. } => "gpio",
            BackendConfig::Command { .. } => "command",
            BackendConfig::Sim => "sim",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutletConfig {
    pub id: String,
    pub description: Option<String>,
    pub backend: BackendConfig,
    pub min_off: Duration,
    pub on_at_start: StartPolicy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    pub token_file: PathBuf,
    pub open_reads: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub state_file: PathBuf,
    pub audit_log: PathBuf,
    pub auth: AuthConfig,
    pub power_on_stagger: Duration,
    pub outlets: Vec<OutletConfig>,
    /// Absent: power only.
    pub provisioning: Option<ProvisioningConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    state_file: Option<PathBuf>,
    audit_log: Option<PathBuf>,
    #[serde(default)]
    auth: RawAuth,
    power_on_stagger: Option<String>,
    outlets: Vec<RawOutlet>,
    provisioning: Option<RawProvisioning>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    token_file: Option<PathBuf>,
    #[serde(default)]
    open_reads: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutlet {
    id: String,
    description: Option<String>,
    backend: String,
    min_off: Option<String>,
    on_at_start: Option<StartPolicy>,
    pin: Option<u8>,
    active_low: Option<bool>,
    on: Option<String>,
    off: Option<String>,
    status: Option<String>,
    timeout: Option<String>,
}

pub use crate::provision::config::{ProvisioningConfig, RawProvisioning};

/// Durations are written the human way: `500ms`, `5s`, `1m 30s`.
pub(crate) fn duration(text: Option<&str>) -> Result<Option<Duration>, String> {
    text.map(|t| {
        humantime::parse_duration(t)
            .map_err(|e| format!("bad duration {t:?} ({e}); write e.g. 500ms, 5s, 2m"))
    })
    .transpose()
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            file: path.to_path_buf(),
            error,
        })?;
        Config::parse(path, &text)
    }

    /// Parses `text` as if read from `file` (the name only appears in errors).
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = serde_yaml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_path_buf(),
            message: e.to_string(),
        })?;
        raw.validate(file)
    }
}

impl RawConfig {
    fn validate(self, file: &Path) -> Result<Config, ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid {
            file: file.to_path_buf(),
            key,
            message,
        };
        let listen_text = self.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid(
                "listen".into(),
                format!("{listen_text:?} is not an address:port such as 127.0.0.1:9750"),
            )
        })?;
        // Mutations always need a token; with open reads, anyone who reaches the port sees the
        // inventory, so that is only allowed where nobody else can reach it.
        if self.auth.open_reads && !listen.ip().is_loopback() {
            return Err(invalid(
                "auth.open_reads".into(),
                format!(
                    "reads without a token are only allowed on a loopback address; listen is {listen}"
                ),
            ));
        }
        let state_file = self
            .state_file
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_FILE));
        let audit_log = self
            .audit_log
            .unwrap_or_else(|| state_file.with_file_name("audit.log"));
        let power_on_stagger = duration(self.power_on_stagger.as_deref())
            .map_err(|m| invalid("power_on_stagger".into(), m))?;
        let provisioning = self
            .provisioning
            .map(|p| p.validate())
            .transpose()
            .map_err(|(key, m)| invalid(format!("provisioning.{key}"), m))?;
        if self.outlets.is_empty() {
            return Err(invalid("outlets".into(), "no outlets configured".into()));
        }

        let mut ids: HashMap<String, usize> = HashMap::new();
        let mut pins: HashMap<u8, usize> = HashMap::new();
        let mut outlets = Vec::with_capacity(self.outlets.len());
        for (i, raw) in self.outlets.into_iter().enumerate() {
            let at = |key: &str| format!("outlets[{i}].{key}");
            OUTLET_ID
                .check(&raw.id)
                .map_err(|m| invalid(at("id"), m.to_string()))?;
            if let Some(first) = ids.insert(raw.id.clone(), i) {
                return Err(invalid(
                    at("id"),
                    format!("duplicate outlet id {:?} (also outlets[{first}])", raw.id),
                ));
            }
            let min_off =
                duration(raw.min_off.as_deref()).map_err(|m| invalid(at("min_off"), m))?;
            let timeout =
                duration(raw.timeout.as_deref()).map_err(|m| invalid(at("timeout"), m))?;
            let forbid = |present: bool, key: &str| -> Result<(), ConfigError> {
                if present {
                    Err(invalid(
                        at(key),
                        format!("not allowed for backend {:?}", raw.backend),
                    ))
                } else {
                    Ok(())
                }
            };
            let backend = match raw.backend.as_str() {
                "gpio" => {
                    forbid(raw.on.is_some(), "on")?;
                    forbid(raw.off.is_some(), "off")?;
                    forbid(raw.status.is_some(), "status")?;
                    forbid(timeout.is_some(), "timeout")?;
                    let pin = raw.pin.ok_or_else(|| {
                        invalid(at("pin"), "required for backend \"gpio\"".into())
                    })?;
                    if pin > 53 {
                        return Err(invalid(
                            at("pin"),
                            format!("{pin} is not a BCM GPIO number (0-53)"),
                        ));
                    }
                    if let Some(first) = pins.insert(pin, i) {
                        return Err(invalid(
                            at("pin"),
                            format!("GPIO {pin} is already used by outlets[{first}]"),
                        ));
                    }
                    BackendConfig::Gpio {
                        pin,
                        active_low: raw.active_low.unwrap_or(false),
                    }
                }
                "command" => {
                    forbid(raw.pin.is_some(), "pin")?;
                    forbid(raw.active_low.is_some(), "active_low")?;
                    let need = |v: Option<String>, key: &str| {
                        v.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
                            invalid(at(key), "required for backend \"command\"".into())
                        })
                    };
                    let timeout = timeout.unwrap_or(DEFAULT_COMMAND_TIMEOUT);
                    if timeout.is_zero() {
                        return Err(invalid(at("timeout"), "must be greater than zero".into()));
                    }
                    BackendConfig::Command {
                        on: need(raw.on, "on")?,
                        off: need(raw.off, "off")?,
                        status: raw.status,
                        timeout,
                    }
                }
                "sim" => {
                    for (present, key) in [
                        (raw.pin.is_some(), "pin"),
                        (raw.active_low.is_some(), "active_low"),
                        (raw.on.is_some(), "on"),
                        (raw.off.is_some(), "off"),
                        (raw.status.is_some(), "status"),
                        (timeout.is_some(), "timeout"),
                    ] {
                        forbid(present, key)?;
                    }
                    BackendConfig::Sim
                }
                other => {
                    return Err(invalid(
                        at("backend"),
                        format!("unknown backend {other:?}; expected gpio, command or sim"),
                    ));
                }
            };
            outlets.push(OutletConfig {
                id: raw.id,
                description: raw.description,
                backend,
                min_off: min_off.unwrap_or(Duration::ZERO),
                on_at_start: raw.on_at_start.unwrap_or(StartPolicy::Restore),
            });
        }
        Ok(Config {
            listen,
            state_file,
            audit_log,
            auth: AuthConfig {
                token_file: self
                    .auth
                    .token_file
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_TOKEN_FILE)),
                open_reads: self.auth.open_reads,
            },
            power_on_stagger: power_on_stagger.unwrap_or(Duration::ZERO),
            outlets,
            provisioning,
        })
    }
}

/// Ids appear in URLs, file names and (as `{{id}}`) in shell commands: keep them plain.
pub const OUTLET_ID: NameRule = NameRule {
    what: "outlet id",
    max: 64,
    punct: "._-",
    alnum_first: true,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("powerd.yml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn full_config_parses_with_defaults() {
        let c = parse(
            "power_on_stagger: 500ms\noutlets:\n  - {id: n1, backend: gpio, pin: 17, active_low: true, min_off: 5s}\n  - {id: n2, backend: command, on: 'true', off: 'true'}\n  - {id: n3, backend: sim, on_at_start: off}\n",
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.power_on_stagger, Duration::from_millis(500));
        assert_eq!(
            c.outlets[0].backend,
            BackendConfig::Gpio {
                pin: 17,
                active_low: true
            }
        );
        assert_eq!(c.outlets[0].min_off, Duration::from_secs(5));
        assert_eq!(c.outlets[0].on_at_start, StartPolicy::Restore);
        assert_eq!(c.outlets[2].on_at_start, StartPolicy::Off);
        assert_eq!(
            c.audit_log,
            Path::new("/var/lib/pifoundry/powerd/audit.log")
        );
    }

    #[test]
    fn bad_configs_name_the_key() {
        let cases = [
            (
                "outlets:\n  - {id: a, backend: sim}\n  - {id: a, backend: sim}\n",
                "outlets[1].id: duplicate outlet id \"a\"",
            ),
            (
                "outlets:\n  - {id: a, backend: gpio, pin: 4}\n  - {id: b, backend: gpio, pin: 4}\n",
                "outlets[1].pin: GPIO 4 is already used by outlets[0]",
            ),
            (
                "outlets:\n  - {id: a, backend: sim, pinn: 4}\n",
                "unknown field `pinn`",
            ),
            ("listne: x\noutlets: []\n", "unknown field `listne`"),
            (
                "outlets:\n  - {id: a, backend: sim, min_off: 5 parsecs}\n",
                "outlets[0].min_off: bad duration",
            ),
            (
                "power_on_stagger: soon\noutlets:\n  - {id: a, backend: sim}\n",
                "power_on_stagger: bad duration",
            ),
            (
                "outlets:\n  - {id: a, backend: sim, min_off: 5}\n",
                "min_off",
            ),
            (
                "outlets:\n  - {id: a, backend: command, on: x, off: y, timeout: 0s}\n",
                "outlets[0].timeout: must be greater",
            ),
            (
                "outlets:\n  - {id: a, backend: gpio}\n",
                "outlets[0].pin: required",
            ),
            (
                "outlets:\n  - {id: a, backend: sim, pin: 3}\n",
                "outlets[0].pin: not allowed",
            ),
            (
                "outlets:\n  - {id: a, backend: relay}\n",
                "outlets[0].backend: unknown backend",
            ),
            (
                "outlets:\n  - {id: 'a b', backend: sim}\n",
                "outlets[0].id:",
            ),
            (
                "listen: nowhere\noutlets:\n  - {id: a, backend: sim}\n",
                "listen:",
            ),
            ("outlets: []\n", "outlets: no outlets configured"),
            (
                "listen: 0.0.0.0:9750\nauth: {open_reads: true}\noutlets:\n  - {id: a, backend: sim}\n",
                "auth.open_reads: reads without a token are only allowed on a loopback address; listen is 0.0.0.0:9750",
            ),
            (
                "listen: '[::]:9750'\nauth: {open_reads: true}\noutlets:\n  - {id: a, backend: sim}\n",
                "auth.open_reads: reads without a token are only allowed on a loopback address",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.starts_with("powerd.yml: "), "{err}");
            assert!(err.contains(want), "error {err:?} should contain {want:?}");
        }
    }

    #[test]
    fn open_reads_on_loopback_and_tokens_on_any_address_are_accepted() {
        for text in [
            "listen: 127.0.0.1:9750\nauth: {open_reads: true}\noutlets:\n  - {id: a, backend: sim}\n",
            "listen: '[::1]:9750'\nauth: {open_reads: true}\noutlets:\n  - {id: a, backend: sim}\n",
            "listen: 0.0.0.0:9750\noutlets:\n  - {id: a, backend: sim}\n",
        ] {
            parse(text).unwrap();
        }
    }

    #[test]
    fn the_example_config_is_valid() {
        let c = parse(include_str!("../powerd.example.yml")).unwrap();
        assert_eq!(c.outlets.len(), 3);
        assert_eq!(c.outlets[1].backend.kind(), "command");
    }

    #[test]
    fn bad_duration_error_names_the_key_path() {
        let err = parse("outlets:\n  - {id: a, backend: sim, min_off: 5 parsecs}\n").unwrap_err();
        assert!(err.contains("outlets[0].min_off"), "{err}");
        assert!(err.contains("bad duration"), "{err}");
    }
}
