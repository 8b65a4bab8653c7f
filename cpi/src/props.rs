//! cloud_properties of stemcells, VM types and disk types. Operators write the VM and disk
//! ones, so an unknown key or a wrong type is a `CloudError` naming it, not silently ignored.

use serde_json::{Map, Value};

use crate::call::describe;
use crate::protocol::CpiError;
use powerd_client::provision::{Arch, Constraints, DiskFormat, Labels};

/// The stemcell.MF cloud_properties this CPI reads (baker writes `architecture`, `board`,
/// `disk_format`); the rest is the stemcell builder's business and ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StemcellProps {
    pub arch: Option<Arch>,
    pub name: Option<String>,
    pub version: Option<String>,
}

impl StemcellProps {
    pub fn parse(m: &Map<String, Value>) -> Result<StemcellProps, CpiError> {
        let arch = match m.get("architecture") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(Arch::parse_pi(s).map_err(|e| {
                CpiError::cloud(
                    format!("stemcell cloud_properties.architecture: {e}"),
                    false,
                )
            })?),
            Some(v) => {
                return Err(CpiError::cloud(
                    format!(
                        "stemcell cloud_properties.architecture must be a string, got {}",
                        describe(v)
                    ),
                    false,
                ));
            }
        };
        if let Some(Value::String(f)) = m.get("disk_format")
            && f != "raw"
        {
            return Err(CpiError::cloud(
                format!("stemcell cloud_properties.disk_format is {f:?}: Pis boot raw images"),
                false,
            ));
        }
        let text = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(StemcellProps {
            arch,
            name: text("name"),
            version: text("version"),
        })
    }
}

/// A vm_type's cloud_properties: which Pi, and how big an ephemeral disk.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VmProps {
    pub constraints: Constraints,
    pub ephemeral_disk_mib: Option<u64>,
}

const VM_KEYS: &str = "model, arch, min_ram_mib, pool, labels, ephemeral_disk_size";

impl VmProps {
    pub fn parse(m: &Map<String, Value>) -> Result<VmProps, CpiError> {
        let mut p = VmProps::default();
        for (k, v) in m {
            let bad = |want: &str| {
                CpiError::cloud(
                    format!(
                        "vm cloud_properties.{k} must be {want}, got {}",
                        describe(v)
                    ),
                    false,
                )
            };
            if v.is_null() {
                continue;
            }
            match k.as_str() {
                "model" => {
                    p.constraints.model = Some(v.as_str().ok_or_else(|| bad("a string"))?.into())
                }
                "pool" => {
                    p.constraints.pool = Some(v.as_str().ok_or_else(|| bad("a string"))?.into())
                }
                "arch" => {
                    let s = v.as_str().ok_or_else(|| bad("a string"))?;
                    p.constraints.arch = Some(Arch::parse_pi(s).map_err(|e| {
                        CpiError::cloud(format!("vm cloud_properties.arch: {e}"), false)
                    })?);
                }
                "min_ram_mib" => {
                    p.constraints.min_ram_mib =
                        Some(v.as_u64().ok_or_else(|| bad("an integer (MiB)"))?)
                }
                "ephemeral_disk_size" => {
                    let n = v.as_u64().ok_or_else(|| bad("an integer (MiB)"))?;
                    p.ephemeral_disk_mib = (n > 0).then_some(n);
                }
                "labels" => {
                    p.constraints.labels = labels(v).ok_or_else(|| bad("an object of strings"))?
                }
                _ => {
                    return Err(CpiError::cloud(
                        format!("vm cloud_properties: unknown key {k:?} (known: {VM_KEYS})"),
                        false,
                    ));
                }
            }
        }
        Ok(p)
    }
}

fn labels(v: &Value) -> Option<Labels> {
    v.as_object()?
        .iter()
        .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

/// A disk_type's cloud_properties.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiskProps {
    pub format: DiskFormat,
}

impl DiskProps {
    pub fn parse(m: &Map<String, Value>) -> Result<DiskProps, CpiError> {
        let mut p = DiskProps::default();
        for (k, v) in m {
            match (k.as_str(), v) {
                (_, Value::Null) => {}
                ("format", Value::String(s)) if s == "raw" => p.format = DiskFormat::Raw,
                ("format", Value::String(s)) if s == "qcow2" => p.format = DiskFormat::Qcow2,
                ("format", _) => {
                    return Err(CpiError::cloud(
                        "disk cloud_properties.format must be \"raw\" or \"qcow2\"",
                        false,
                    ));
                }
                _ => {
                    return Err(CpiError::cloud(
                        format!("disk cloud_properties: unknown key {k:?} (known: format)"),
                        false,
                    ));
                }
            }
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn vm_properties_become_constraints() {
        let p = VmProps::parse(&obj(json!({
            "model": "pi4b", "arch": "aarch64", "min_ram_mib": 2048, "pool": "rack-a",
            "labels": {"poe": "yes"}, "ephemeral_disk_size": 8192
        })))
        .unwrap();
        assert_eq!(p.constraints.arch, Some(Arch::Arm64));
        assert_eq!(p.constraints.min_ram_mib, Some(2048));
        assert_eq!(p.constraints.labels["poe"], "yes");
        assert_eq!(p.ephemeral_disk_mib, Some(8192));
        assert_eq!(VmProps::parse(&Map::new()).unwrap(), VmProps::default());
    }

    #[test]
    fn bad_vm_properties_name_the_key() {
        let e = VmProps::parse(&obj(json!({"instance_type": "m5.large"}))).unwrap_err();
        assert_eq!(
            e.message,
            format!("vm cloud_properties: unknown key \"instance_type\" (known: {VM_KEYS})")
        );
        assert_eq!(e.kind, "Bosh::Clouds::CloudError");
        let e = VmProps::parse(&obj(json!({"min_ram_mib": "lots"}))).unwrap_err();
        assert_eq!(
            e.message,
            "vm cloud_properties.min_ram_mib must be an integer (MiB), got a string"
        );
        let e = VmProps::parse(&obj(json!({"arch": "amd64"}))).unwrap_err();
        assert!(
            e.message.starts_with("vm cloud_properties.arch: "),
            "{}",
            e.message
        );
    }

    #[test]
    fn stemcell_and_disk_properties() {
        let s = StemcellProps::parse(&obj(
            json!({"architecture": "armv6l", "board": "rpi1", "disk_format": "raw"}),
        ))
        .unwrap();
        assert_eq!(s.arch, Some(Arch::Armv6l));
        assert!(StemcellProps::parse(&obj(json!({"disk_format": "qcow2"}))).is_err());
        assert_eq!(
            DiskProps::parse(&obj(json!({"format": "qcow2"})))
                .unwrap()
                .format,
            DiskFormat::Qcow2
        );
        assert!(DiskProps::parse(&obj(json!({"type": "gp3"}))).is_err());
    }
}
