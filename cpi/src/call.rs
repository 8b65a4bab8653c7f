//! A request's method and positional arguments, checked into a typed [`Call`] before anything
//! talks to powerd: a wrong shape is one `CpiError` naming the argument.

use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::props::{DiskProps, StemcellProps, VmProps};
use crate::protocol::{CpiError, Request};
use powerd_client::provision::Labels;

#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Info,
    CreateStemcell {
        image_path: PathBuf,
        props: StemcellProps,
    },
    DeleteStemcell {
        cid: String,
    },
    CreateVm {
        agent_id: String,
        stemcell_cid: String,
        props: VmProps,
        networks: Map<String, Value>,
        disk_cids: Vec<String>,
        env: Value,
    },
    DeleteVm {
        vm: String,
    },
    HasVm {
        vm: String,
    },
    RebootVm {
        vm: String,
    },
    SetVmMetadata {
        vm: String,
        metadata: Labels,
    },
    CalculateVmCloudProperties {
        ram_mib: u64,
        ephemeral_disk_mib: u64,
    },
    GetDisks {
        vm: String,
    },
    CreateDisk {
        size_mib: u64,
        props: DiskProps,
    },
    DeleteDisk {
        disk: String,
    },
    AttachDisk {
        vm: String,
        disk: String,
    },
    DetachDisk {
        vm: String,
        disk: String,
    },
    HasDisk {
        disk: String,
    },
    SetDiskMetadata {
        disk: String,
        metadata: Labels,
    },
    ResizeDisk {
        disk: String,
        size_mib: u64,
    },
    UpdateDisk {
        disk: String,
    },
    /// snapshot_disk, delete_snapshot: NotImplemented, which the director tolerates.
    Unimplemented(&'static str),
}

/// The methods of CPI API v2.
pub const METHODS: &[&str] = &[
    "info",
    "create_stemcell",
    "delete_stemcell",
    "create_vm",
    "delete_vm",
    "has_vm",
    "reboot_vm",
    "set_vm_metadata",
    "calculate_vm_cloud_properties",
    "get_disks",
    "create_disk",
    "delete_disk",
    "attach_disk",
    "detach_disk",
    "has_disk",
    "set_disk_metadata",
    "resize_disk",
    "update_disk",
    "snapshot_disk",
    "delete_snapshot",
];

/// The positional arguments of one method, read with errors that name the argument.
struct Args<'a> {
    method: &'a str,
    args: &'a [Value],
}

impl<'a> Args<'a> {
    fn need(&self, n: usize, names: &str) -> Result<(), CpiError> {
        if self.args.len() < n {
            return Err(CpiError::cpi(format!(
                "{}: expected {n} arguments ({names}), got {}",
                self.method,
                self.args.len()
            )));
        }
        Ok(())
    }

    fn bad(&self, i: usize, name: &str, want: &str) -> CpiError {
        CpiError::cpi(format!(
            "{}: argument {} ({name}) must be {want}, got {}",
            self.method,
            i + 1,
            describe(&self.args[i])
        ))
    }

    fn string(&self, i: usize, name: &str) -> Result<String, CpiError> {
        match &self.args[i] {
            Value::String(s) if !s.is_empty() => Ok(s.clone()),
            _ => Err(self.bad(i, name, "a non-empty string")),
        }
    }

    fn size(&self, i: usize, name: &str) -> Result<u64, CpiError> {
        match self.args[i].as_u64() {
            Some(n) if n > 0 => Ok(n),
            _ => Err(self.bad(i, name, "a positive integer (MiB)")),
        }
    }

    /// An object; `null` reads as `{}` (bosh-cli sends null for empty cloud_properties).
    fn object(&self, i: usize, name: &str) -> Result<Map<String, Value>, CpiError> {
        match &self.args[i] {
            Value::Object(m) => Ok(m.clone()),
            Value::Null => Ok(Map::new()),
            _ => Err(self.bad(i, name, "an object")),
        }
    }

    fn labels(&self, i: usize, name: &str) -> Result<Labels, CpiError> {
        let m = match &self.args[i] {
            Value::Object(m) => m,
            _ => return Err(self.bad(i, name, "an object of strings")),
        };
        let mut out = Labels::new();
        for (k, v) in m {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => v.to_string(),
                Value::Null => String::new(),
                _ => {
                    return Err(CpiError::cpi(format!(
                        "{}: argument {} ({name}): {k:?} must be a string, got {}",
                        self.method,
                        i + 1,
                        describe(v)
                    )));
                }
            };
            out.insert(k.clone(), v);
        }
        Ok(out)
    }

    fn strings(&self, i: usize, name: &str) -> Result<Vec<String>, CpiError> {
        match &self.args[i] {
            Value::Null => Ok(Vec::new()),
            Value::Array(a) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) if !s.is_empty() => Ok(s.clone()),
                    _ => Err(self.bad(i, name, "an array of strings")),
                })
                .collect(),
            _ => Err(self.bad(i, name, "an array of strings")),
        }
    }
}

/// A value's JSON kind, for messages (never its content: arguments can hold secrets).
pub fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(s) if s.is_empty() => "an empty string",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Call {
    /// Checks the method and its arguments; surplus arguments are ignored, as bosh-cpi-go
    /// does (the v3 director's third `create_stemcell` argument).
    pub fn parse(req: &Request) -> Result<Call, CpiError> {
        let a = Args {
            method: &req.method,
            args: &req.arguments,
        };
        let call = match req.method.as_str() {
            "info" => Call::Info,
            "create_stemcell" => {
                a.need(2, "image_path, cloud_properties")?;
                Call::CreateStemcell {
                    image_path: PathBuf::from(a.string(0, "image_path")?),
                    props: StemcellProps::parse(&a.object(1, "cloud_properties")?)?,
                }
            }
            "delete_stemcell" => {
                a.need(1, "stemcell_cid")?;
                Call::DeleteStemcell {
                    cid: a.string(0, "stemcell_cid")?,
                }
            }
            "create_vm" => {
                a.need(
                    6,
                    "agent_id, stemcell_cid, cloud_properties, networks, disk_cids, env",
                )?;
                Call::CreateVm {
                    agent_id: a.string(0, "agent_id")?,
                    stemcell_cid: a.string(1, "stemcell_cid")?,
                    props: VmProps::parse(&a.object(2, "cloud_properties")?)?,
                    networks: a.object(3, "networks")?,
                    disk_cids: a.strings(4, "disk_cids")?,
                    env: Value::Object(a.object(5, "env")?),
                }
            }
            "delete_vm" | "has_vm" | "reboot_vm" | "get_disks" => {
                a.need(1, "vm_cid")?;
                let vm = a.string(0, "vm_cid")?;
                match req.method.as_str() {
                    "delete_vm" => Call::DeleteVm { vm },
                    "has_vm" => Call::HasVm { vm },
                    "reboot_vm" => Call::RebootVm { vm },
                    _ => Call::GetDisks { vm },
                }
            }
            "set_vm_metadata" => {
                a.need(2, "vm_cid, metadata")?;
                Call::SetVmMetadata {
                    vm: a.string(0, "vm_cid")?,
                    metadata: a.labels(1, "metadata")?,
                }
            }
            "calculate_vm_cloud_properties" => {
                a.need(1, "vm_resources")?;
                let r = a.object(0, "vm_resources")?;
                let field = |k: &str| -> Result<u64, CpiError> {
                    r.get(k).and_then(Value::as_u64).ok_or_else(|| {
                        CpiError::cpi(format!(
                            "calculate_vm_cloud_properties: vm_resources.{k} must be a non-negative integer"
                        ))
                    })
                };
                Call::CalculateVmCloudProperties {
                    ram_mib: field("ram")?,
                    ephemeral_disk_mib: field("ephemeral_disk_size")?,
                }
            }
            "create_disk" => {
                a.need(2, "size, cloud_properties, vm_cid")?;
                Call::CreateDisk {
                    size_mib: a.size(0, "size")?,
                    props: DiskProps::parse(&a.object(1, "cloud_properties")?)?,
                }
            }
            "delete_disk" | "has_disk" => {
                a.need(1, "disk_cid")?;
                let disk = a.string(0, "disk_cid")?;
                if req.method == "delete_disk" {
                    Call::DeleteDisk { disk }
                } else {
                    Call::HasDisk { disk }
                }
            }
            "attach_disk" | "detach_disk" => {
                a.need(2, "vm_cid, disk_cid")?;
                let (vm, disk) = (a.string(0, "vm_cid")?, a.string(1, "disk_cid")?);
                if req.method == "attach_disk" {
                    Call::AttachDisk { vm, disk }
                } else {
                    Call::DetachDisk { vm, disk }
                }
            }
            "set_disk_metadata" => {
                a.need(2, "disk_cid, metadata")?;
                Call::SetDiskMetadata {
                    disk: a.string(0, "disk_cid")?,
                    metadata: a.labels(1, "metadata")?,
                }
            }
            "resize_disk" => {
                a.need(2, "disk_cid, new_size")?;
                Call::ResizeDisk {
                    disk: a.string(0, "disk_cid")?,
                    size_mib: a.size(1, "new_size")?,
                }
            }
            "update_disk" => {
                a.need(3, "disk_cid, new_size, cloud_properties")?;
                Call::UpdateDisk {
                    disk: a.string(0, "disk_cid")?,
                }
            }
            "snapshot_disk" => Call::Unimplemented("snapshot_disk"),
            "delete_snapshot" => Call::Unimplemented("delete_snapshot"),
            other => return Err(CpiError::not_implemented(other, false)),
        };
        Ok(call)
    }

    /// Whether the call needs powerd (and so the configuration).
    pub fn needs_powerd(&self) -> bool {
        !matches!(
            self,
            Call::Info
                | Call::CalculateVmCloudProperties { .. }
                | Call::UpdateDisk { .. }
                | Call::Unimplemented(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Call, CpiError> {
        Call::parse(&serde_json::from_value::<Request>(v).unwrap())
    }

    #[test]
    fn create_env_shapes_parse() {
        let c = parse(json!({"method": "create_vm", "arguments": [
            "agent-1", "img-0123456789abcdef", {"ephemeral_disk_size": 4096},
            {"default": {"type": "manual", "ip": "10.77.0.10"}}, [], {"bosh": {"password": "x"}}
        ], "context": {"director_uuid": "d", "vm": {"stemcell": {"api_version": 3}}}, "api_version": 2}))
        .unwrap();
        match c {
            Call::CreateVm {
                props, disk_cids, ..
            } => {
                assert_eq!(props.ephemeral_disk_mib, Some(4096));
                assert!(disk_cids.is_empty());
            }
            other => panic!("{other:?}"),
        }
        let s = parse(json!({"method": "create_stemcell", "arguments": ["/tmp/image", {"architecture": "arm64"}, {"tags": {}}]})).unwrap();
        assert!(matches!(s, Call::CreateStemcell { .. }));
    }

    #[test]
    fn wrong_shapes_name_the_argument_not_its_content() {
        let e = parse(
            json!({"method": "create_vm", "arguments": ["a", "s", {}, "secret-net", [], {}]}),
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "create_vm: argument 4 (networks) must be an object, got a string"
        );
        assert_eq!(e.kind, "Bosh::Clouds::CpiError");
        let e = parse(json!({"method": "attach_disk", "arguments": ["vm-1"]})).unwrap_err();
        assert_eq!(
            e.message,
            "attach_disk: expected 2 arguments (vm_cid, disk_cid), got 1"
        );
        let e = parse(json!({"method": "create_disk", "arguments": [0, {}, null]})).unwrap_err();
        assert!(e.message.contains("(size) must be a positive integer"));
        let e = parse(json!({"method": "set_vm_metadata", "arguments": ["vm-1", {"a": {"b": 1}}]}))
            .unwrap_err();
        assert!(e.message.contains("\"a\" must be a string, got an object"));
    }

    #[test]
    fn every_v2_method_is_known() {
        for m in METHODS {
            let e = parse(json!({"method": m, "arguments": []}));
            if let Err(e) = e {
                assert!(
                    !e.message.starts_with("Method is not known"),
                    "{m}: {}",
                    e.message
                );
            }
        }
    }
}
