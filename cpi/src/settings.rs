//! The bosh-agent settings for a new VM (API v2: the whole document is handed over at create
//! time, no registry), and the network specs powerd reserves addresses for.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::call::describe;
use crate::config::AgentDefaults;
use crate::protocol::CpiError;
use powerd_client::provision::NetworkSpec;

/// Devices on the Pi (powerd's netboot layout: nbd0 the root overlay, nbd1 the ephemeral
/// disk, nbd2.. persistent disks; powerd fills in the persistent ones and the network's MAC).
pub const SYSTEM_DEVICE: &str = "/dev/nbd0";
pub const EPHEMERAL_DEVICE: &str = "/dev/nbd1";

/// A Pi has one wired interface, the one it netboots on.
pub const INTERFACES: usize = 1;

/// Checks the director's networks and reads the fields powerd needs.
pub fn networks(nets: &Map<String, Value>) -> Result<BTreeMap<String, NetworkSpec>, CpiError> {
    if nets.is_empty() {
        return Err(CpiError::cloud(
            "create_vm: no network given; a Pi needs one to boot",
            false,
        ));
    }
    if nets.len() > INTERFACES {
        let names: Vec<&str> = nets.keys().map(String::as_str).collect();
        return Err(CpiError::cloud(
            format!(
                "create_vm: {} networks ({}) but a Pi has {INTERFACES} network interface",
                nets.len(),
                names.join(", ")
            ),
            false,
        ));
    }
    let mut out = BTreeMap::new();
    for (name, spec) in nets {
        let Value::Object(obj) = spec else {
            return Err(CpiError::cpi(format!(
                "create_vm: network {name:?} must be an object, got {}",
                describe(spec)
            )));
        };
        // the director sends nulls for absent fields (dns of a dynamic network)
        let fields: Map<String, Value> = obj
            .iter()
            .filter(|(k, v)| !v.is_null() && KNOWN.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let net: NetworkSpec = serde_json::from_value(Value::Object(fields))
            .map_err(|e| CpiError::cpi(format!("create_vm: network {name:?}: {e}")))?;
        match net.kind.as_str() {
            "manual" if net.ip.is_none() => {
                return Err(CpiError::cloud(
                    format!("create_vm: manual network {name:?} has no ip"),
                    false,
                ));
            }
            "manual" | "dynamic" => {}
            "vip" => {
                return Err(CpiError::cloud(
                    format!(
                        "create_vm: network {name:?} is a vip network; Pis have no floating addresses"
                    ),
                    false,
                ));
            }
            other => {
                return Err(CpiError::cloud(
                    format!("create_vm: network {name:?} has type {other:?} (manual or dynamic)"),
                    false,
                ));
            }
        }
        out.insert(name.clone(), net);
    }
    Ok(out)
}

const KNOWN: &[&str] = &["type", "ip", "netmask", "gateway", "dns", "default"];

/// The full settings document. `env` goes to the agent unchanged (it carries the NATS client
/// certificate and the VM password hash).
pub fn agent_settings(
    agent_id: &str,
    agent: &AgentDefaults,
    networks: &Map<String, Value>,
    ephemeral: bool,
    env: &Value,
) -> Value {
    let nets: Map<String, Value> = networks
        .iter()
        .map(|(name, spec)| {
            let mut spec = spec.as_object().cloned().unwrap_or_default();
            spec.entry("preconfigured").or_insert(Value::Bool(false));
            (name.clone(), Value::Object(spec))
        })
        .collect();
    let mut disks = json!({"system": SYSTEM_DEVICE, "persistent": {}});
    if ephemeral {
        disks["ephemeral"] = json!({ "path": EPHEMERAL_DEVICE });
    }
    let mut s = json!({
        "agent_id": agent_id,
        // powerd names the VM; the agent only logs this
        "vm": {"name": agent_id},
        "mbus": agent.mbus,
        "ntp": agent.ntp,
        "networks": nets,
        "disks": disks,
        "env": env,
    });
    if let Some(b) = &agent.blobstore {
        s["blobstore"] = b.clone();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn settings_carry_config_request_and_env_unchanged() {
        let agent = AgentDefaults {
            mbus: "https://mbus:p@0.0.0.0:6868".into(),
            ntp: vec!["10.77.0.1".into()],
            blobstore: Some(
                json!({"provider": "local", "options": {"blobstore_path": "/var/vcap/micro_bosh/data/cache"}}),
            ),
        };
        let nets = obj(
            json!({"default": {"type": "manual", "ip": "10.77.0.20", "netmask": "255.255.255.0",
            "gateway": "10.77.0.1", "dns": ["10.77.0.1"], "default": ["dns", "gateway"], "cloud_properties": {}}}),
        );
        let env = json!({"bosh": {"mbus": {"cert": {"ca": "C"}}, "password": "$6$h", "tags": {"a": "b"}}, "persistent_disk_fs": "ext4"});
        let s = agent_settings("agent-7", &agent, &nets, true, &env);
        assert_eq!(s["agent_id"], "agent-7");
        assert_eq!(s["mbus"], "https://mbus:p@0.0.0.0:6868");
        assert_eq!(s["ntp"], json!(["10.77.0.1"]));
        assert_eq!(s["blobstore"]["provider"], "local");
        assert_eq!(s["env"], env);
        assert_eq!(s["networks"]["default"]["ip"], "10.77.0.20");
        assert_eq!(s["networks"]["default"]["preconfigured"], false);
        assert_eq!(
            s["disks"],
            json!({"system": "/dev/nbd0", "ephemeral": {"path": "/dev/nbd1"}, "persistent": {}})
        );
        let none = agent_settings("a", &agent, &nets, false, &env);
        assert!(none["disks"].get("ephemeral").is_none());
    }

    #[test]
    fn networks_are_checked() {
        let ok = networks(&obj(
            json!({"d": {"type": "dynamic", "dns": null, "cloud_properties": {}}}),
        ))
        .unwrap();
        assert_eq!(ok["d"].kind, "dynamic");
        let e = networks(&obj(
            json!({"a": {"type": "manual", "ip": "10.0.0.2"}, "b": {"type": "dynamic"}}),
        ))
        .unwrap_err();
        assert_eq!(
            e.message,
            "create_vm: 2 networks (a, b) but a Pi has 1 network interface"
        );
        assert!(!e.ok_to_retry);
        let e = networks(&obj(json!({"v": {"type": "vip", "ip": "1.2.3.4"}}))).unwrap_err();
        assert!(e.message.contains("vip network"));
        let e = networks(&obj(json!({"m": {"type": "manual"}}))).unwrap_err();
        assert_eq!(e.message, "create_vm: manual network \"m\" has no ip");
        let e = networks(&obj(json!({"m": {"type": "manual", "ip": 7}}))).unwrap_err();
        assert_eq!(e.kind, "Bosh::Clouds::CpiError");
    }
}
