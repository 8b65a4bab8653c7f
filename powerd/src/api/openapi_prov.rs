//! The provisioning part of `/openapi.json`: pis, images, VMs and disks.

use serde_json::{Map, Value, json};

fn schema(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn ok(status: &str, description: &str, name: &str) -> (String, Value) {
    (
        status.into(),
        json!({"description": description, "content": {"application/json": {"schema": schema(name)}}}),
    )
}

fn err(status: &str, description: &str) -> (String, Value) {
    (
        status.into(),
        json!({"description": description, "content": {"application/json": {"schema": schema("Error")}}}),
    )
}

fn no_content() -> (String, Value) {
    ("204".into(), json!({"description": "Done"}))
}

struct Op {
    id: &'static str,
    summary: &'static str,
    read: bool,
    params: Vec<Value>,
    body: Option<Value>,
    responses: Vec<(String, Value)>,
}

fn op(o: Op, read_security: &Value) -> Value {
    let mut responses: Map<String, Value> = o.responses.into_iter().collect();
    let (k, v) = err("401", "Missing or invalid credentials");
    responses.insert(k, v);
    let (k, v) = err(
        "404",
        "Not found (code names what), or provisioning is not configured (code provisioning_disabled)",
    );
    responses.entry(k).or_insert(v);
    let mut out = json!({"operationId": o.id, "summary": o.summary, "responses": responses});
    if o.read {
        out["security"] = read_security.clone();
    }
    if !o.params.is_empty() {
        out["parameters"] = Value::Array(o.params);
    }
    if let Some(b) = o.body {
        out["requestBody"] = b;
    }
    out
}

fn json_body(name: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema(name)}}})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": {"type": "string"}})
}

fn query(name: &str, description: &str, s: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": s})
}

/// `(paths, schemas)` to merge into the document.
pub fn paths(read_security: &Value) -> (Map<String, Value>, Map<String, Value>) {
    let serial = || {
        let mut p = path_param("serial", "The Pi's 8-hex-digit board serial");
        p["schema"]["pattern"] = json!("^[0-9a-f]{8}$");
        p
    };
    let id = || path_param("id", "The resource's id");
    let bad = || err("400", "Bad body or query (code invalid_body and others)");
    let conflict = |d: &str| err("409", d);
    let failed = || {
        err(
            "503",
            "A step failed and was rolled back (code provision_failed); retryable",
        )
    };
    let saved = || {
        err(
            "500",
            "The state file could not be written (code state_not_saved)",
        )
    };
    let r = read_security;
    let mut p = Map::new();
    let mut add = |path: &str, method: &str, o: Op| {
        let entry = p.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[method] = op(o, r);
    };
    add(
        "/v1/pis",
        "get",
        Op {
            id: "listPis",
            summary: "The Pi inventory",
            read: true,
            params: vec![],
            body: None,
            responses: vec![ok("200", "The Pis", "PiList")],
        },
    );
    add(
        "/v1/pis/{serial}",
        "get",
        Op {
            id: "getPi",
            summary: "One Pi",
            read: true,
            params: vec![serial()],
            body: None,
            responses: vec![ok("200", "The Pi", "Pi")],
        },
    );
    add(
        "/v1/pis/{serial}",
        "put",
        Op {
            id: "putPi",
            summary: "Register a Pi, adopt a discovered one (it becomes free) or update one",
            read: false,
            params: vec![serial()],
            body: Some(json_body("PiSpec")),
            responses: vec![
                ok("200", "Updated or adopted", "Pi"),
                ok("201", "Registered", "Pi"),
                bad(),
                conflict("Carries a VM, or its MAC or outlet belongs to another Pi (code pi_busy)"),
                saved(),
            ],
        },
    );
    add(
        "/v1/pis/{serial}",
        "delete",
        Op {
            id: "retirePi",
            summary: "Retire a Pi",
            read: false,
            params: vec![serial()],
            body: None,
            responses: vec![
                no_content(),
                conflict("It carries a VM (code pi_busy)"),
                saved(),
            ],
        },
    );
    add(
        "/v1/pis/{serial}/state",
        "post",
        Op {
            id: "setPiState",
            summary: "Put a Pi back (free) or take it out (broken)",
            read: false,
            params: vec![serial()],
            body: Some(json_body("PiStateRequest")),
            responses: vec![
                ok("200", "The Pi", "Pi"),
                bad(),
                conflict("It carries a VM or was only discovered (code pi_busy)"),
                saved(),
            ],
        },
    );
    add(
        "/v1/images",
        "get",
        Op {
            id: "listImages",
            summary: "Stored images",
            read: true,
            params: vec![],
            body: None,
            responses: vec![ok("200", "The images", "ImageList")],
        },
    );
    add(
        "/v1/images",
        "post",
        Op {
            id: "uploadImage",
            summary: "Store a raw disk image or a stemcell's image member (gzip'd tar), streamed",
            read: false,
            params: vec![
                {
                    let mut q = query(
                        "arch",
                        "armv6l or arm64",
                        json!({"type": "string", "enum": ["armv6l", "arm64"]}),
                    );
                    q["required"] = json!(true);
                    q
                },
                query(
                    "sha256",
                    "sha256 of the body as sent; checked",
                    json!({"type": "string", "pattern": "^([0-9a-fA-F]{64})?$"}),
                ),
                query("name", "stemcell name", printable()),
                query("version", "stemcell version", printable()),
            ],
            body: Some(
                json!({"required": true, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}),
            ),
            responses: vec![
                ok("200", "These bytes were stored before", "Image"),
                ok("201", "Stored", "Image"),
                err(
                    "400",
                    "Bad query, digest mismatch (upload_digest_mismatch) or not a bootable image (bad_image)",
                ),
                failed(),
                saved(),
            ],
        },
    );
    add(
        "/v1/images/{id}",
        "get",
        Op {
            id: "getImage",
            summary: "One image",
            read: true,
            params: vec![id()],
            body: None,
            responses: vec![ok("200", "The image", "Image")],
        },
    );
    add(
        "/v1/images/{id}",
        "delete",
        Op {
            id: "deleteImage",
            summary: "Delete an image no VM uses",
            read: false,
            params: vec![id()],
            body: None,
            responses: vec![
                no_content(),
                conflict("A VM uses it (code image_in_use)"),
                saved(),
            ],
        },
    );
    add(
        "/v1/vms",
        "get",
        Op {
            id: "listVms",
            summary: "VMs",
            read: true,
            params: vec![],
            body: None,
            responses: vec![ok("200", "The VMs", "VmList")],
        },
    );
    add(
        "/v1/vms",
        "post",
        Op {
            id: "createVm",
            summary: "Claim a Pi, make its root, disks, exports, reservation and settings, power it on; all or nothing",
            read: false,
            params: vec![],
            body: Some(json_body("CreateVm")),
            responses: vec![
                ok("201", "Running", "Vm"),
                bad(),
                conflict(
                    "No free Pi matches (no_free_pi), a disk is attached (disk_attached), the address is taken (no_free_address)",
                ),
                failed(),
                saved(),
            ],
        },
    );
    add(
        "/v1/vms/{id}",
        "get",
        Op {
            id: "getVm",
            summary: "One VM",
            read: true,
            params: vec![id()],
            body: None,
            responses: vec![ok("200", "The VM", "Vm")],
        },
    );
    add(
        "/v1/vms/{id}",
        "delete",
        Op {
            id: "deleteVm",
            summary: "Power off, drop exports, root, ephemeral disk, reservation and settings; free the Pi",
            read: false,
            params: vec![id()],
            body: None,
            responses: vec![no_content(), failed(), saved()],
        },
    );
    add(
        "/v1/vms/{id}/reboot",
        "post",
        Op {
            id: "rebootVm",
            summary: "Power-cycle the VM's Pi",
            read: false,
            params: vec![id()],
            body: None,
            responses: vec![
                ok("200", "The VM", "Vm"),
                conflict("Not running (code pi_busy)"),
                failed(),
            ],
        },
    );
    add(
        "/v1/vms/{id}/metadata",
        "put",
        Op {
            id: "setVmMetadata",
            summary: "Replace the VM's metadata (shown on its Pi too)",
            read: false,
            params: vec![id()],
            body: Some(json_body("Labels")),
            responses: vec![ok("200", "The VM", "Vm"), bad(), saved()],
        },
    );
    add(
        "/v1/disks",
        "get",
        Op {
            id: "listDisks",
            summary: "Persistent disks",
            read: true,
            params: vec![query(
                "vm",
                "only those attached to this VM",
                json!({"type": "string"}),
            )],
            body: None,
            responses: vec![ok("200", "The disks", "DiskList"), bad()],
        },
    );
    add(
        "/v1/disks",
        "post",
        Op {
            id: "createDisk",
            summary: "Create a sparse persistent disk",
            read: false,
            params: vec![],
            body: Some(json_body("CreateDisk")),
            responses: vec![ok("201", "Created", "Disk"), bad(), failed(), saved()],
        },
    );
    add(
        "/v1/disks/{id}",
        "get",
        Op {
            id: "getDisk",
            summary: "One disk",
            read: true,
            params: vec![id()],
            body: None,
            responses: vec![ok("200", "The disk", "Disk")],
        },
    );
    add(
        "/v1/disks/{id}",
        "delete",
        Op {
            id: "deleteDisk",
            summary: "Delete a detached disk",
            read: false,
            params: vec![id()],
            body: None,
            responses: vec![
                no_content(),
                conflict("Attached (code disk_attached)"),
                saved(),
            ],
        },
    );
    add(
        "/v1/disks/{id}/attach",
        "post",
        Op {
            id: "attachDisk",
            summary: "Attach to a running VM; answers once its Pi confirmed the device",
            read: false,
            params: vec![id()],
            body: Some(json_body("AttachRequest")),
            responses: vec![
                ok("200", "Attached", "Attachment"),
                bad(),
                conflict(
                    "Attached elsewhere (disk_attached), no slot (no_slot), VM not running (pi_busy)",
                ),
                failed(),
                err(
                    "504",
                    "The Pi did not confirm in time; rolled back (code attach_timeout)",
                ),
                saved(),
            ],
        },
    );
    add(
        "/v1/disks/{id}/detach",
        "post",
        Op {
            id: "detachDisk",
            summary: "Detach (a detached disk stays so)",
            read: false,
            params: vec![id()],
            body: None,
            responses: vec![ok("200", "The disk", "Disk"), failed(), saved()],
        },
    );
    add(
        "/v1/disks/{id}/resize",
        "post",
        Op {
            id: "resizeDisk",
            summary: "Grow a detached disk",
            read: false,
            params: vec![id()],
            body: Some(json_body("ResizeDisk")),
            responses: vec![
                ok("200", "The disk", "Disk"),
                bad(),
                conflict("Attached (code disk_attached)"),
                failed(),
                saved(),
            ],
        },
    );
    add(
        "/v1/disks/{id}/metadata",
        "put",
        Op {
            id: "setDiskMetadata",
            summary: "Replace the disk's metadata",
            read: false,
            params: vec![id()],
            body: Some(json_body("Labels")),
            responses: vec![ok("200", "The disk", "Disk"), bad(), saved()],
        },
    );
    (p, schemas())
}

fn printable() -> Value {
    json!({"type": "string", "maxLength": 128, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"})
}

fn mib() -> Value {
    json!({"type": "integer", "minimum": 1, "maximum": crate::provision::disks::MAX_MIB})
}

fn schemas() -> Map<String, Value> {
    let s = |v: Value| v;
    let str_ = || json!({"type": "string"});
    let arch = json!({"type": "string", "enum": ["armv6l", "arm64"]});
    let labels = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let attachment = json!({"type": "object", "required": ["disk", "slot", "device"],
        "properties": {"disk": str_(), "slot": {"type": "integer", "minimum": 1, "maximum": 15}, "device": str_()}});
    let pi = json!({"type": "object", "required": ["serial", "pool", "boot", "state", "labels", "updated_at"],
        "properties": {"serial": str_(), "model": str_(), "mac": str_(), "outlet": str_(), "arch": arch,
            "ram_mib": {"type": "integer", "minimum": 0}, "pool": str_(),
            "boot": {"type": "string", "enum": ["netboot", "sd-only"]},
            "state": {"type": "string", "enum": ["discovered", "free", "provisioning", "running", "broken"]},
            "vm": str_(), "labels": labels, "address": str_(), "metadata": labels, "seen_at": str_(), "updated_at": str_()}});
    let image = json!({"type": "object", "required": ["id", "sha256", "size", "arch", "boot_files", "vms", "created_at"],
        "properties": {"id": str_(), "sha256": str_(), "size": {"type": "integer", "minimum": 0}, "arch": arch,
            "name": str_(), "version": str_(), "boot_files": {"type": "array", "items": str_()},
            "vms": {"type": "array", "items": str_()}, "created_at": str_()}});
    let vm = json!({"type": "object", "required": ["id", "agent_id", "pi", "image", "address", "state", "disks", "metadata", "created_at"],
        "properties": {"id": str_(), "agent_id": str_(), "pi": str_(), "image": str_(), "address": str_(),
            "state": {"type": "string", "enum": ["creating", "running", "deleting"]},
            "ephemeral_disk": schema("Attachment"), "disks": {"type": "array", "items": schema("Attachment")},
            "metadata": labels, "created_at": str_()}});
    let format = json!({"type": "string", "enum": ["raw", "qcow2"]});
    let disk = json!({"type": "object", "required": ["id", "size_mib", "format", "metadata", "created_at"],
        "properties": {"id": str_(), "size_mib": {"type": "integer", "minimum": 1}, "format": format,
            "vm": str_(), "slot": {"type": "integer"}, "metadata": labels, "created_at": str_()}});
    let ipv4 = json!({"type": "string", "format": "ipv4"});
    let rest = json!({"netmask": str_(), "gateway": str_(), "dns": {"type": "array", "items": str_()},
        "default": {"type": "array", "items": str_()}});
    let mut manual = rest.clone();
    manual["type"] = json!({"type": "string", "enum": ["manual"]});
    manual["ip"] = ipv4;
    let mut dynamic = rest;
    dynamic["type"] = json!({"type": "string", "enum": ["dynamic"]});
    dynamic["ip"] = str_();
    let network = json!({"oneOf": [
        {"type": "object", "required": ["ip"], "properties": manual},
        {"type": "object", "required": ["type"], "properties": dynamic}
    ]});
    let list = |key: &str, item: &str| {
        json!({"type": "object", "required": [key],
        "properties": {key: {"type": "array", "items": schema(item)}}})
    };
    let mut m = Map::new();
    for (k, v) in [
        ("Labels", labels.clone()),
        ("Pi", pi),
        ("PiList", list("pis", "Pi")),
        (
            "PiSpec",
            s(
                json!({"type": "object", "additionalProperties": false, "required": ["model", "mac", "outlet", "arch", "ram_mib"],
            "properties": {"model": {"type": "string", "minLength": 1, "pattern": "\\S"},
                "mac": {"type": "string", "pattern": "^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$"},
                "outlet": str_(), "arch": arch, "ram_mib": {"type": "integer", "minimum": 1, "maximum": 1_u64 << 40},
                "pool": str_(), "boot": {"type": "string", "enum": ["netboot", "sd-only"]}, "labels": labels}}),
            ),
        ),
        (
            "PiStateRequest",
            json!({"type": "object", "additionalProperties": false, "required": ["state"],
            "properties": {"state": {"type": "string", "enum": ["free", "broken"]}}}),
        ),
        ("Image", image),
        ("ImageList", list("images", "Image")),
        ("Attachment", attachment),
        ("Vm", vm),
        ("VmList", list("vms", "Vm")),
        (
            "CreateVm",
            json!({"type": "object", "additionalProperties": false, "required": ["agent_id", "image", "networks", "settings"],
            "properties": {"agent_id": str_(), "image": str_(),
                "constraints": {"type": "object", "additionalProperties": false, "properties": {"arch": arch, "model": str_(),
                    "min_ram_mib": {"type": "integer", "minimum": 0, "maximum": 1_u64 << 40}, "pool": str_(), "labels": labels}},
                "networks": {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": network},
                "ephemeral_disk_mib": mib(), "disks": {"type": "array", "items": str_()},
                "settings": {"type": "object"}, "metadata": labels}}),
        ),
        ("Disk", disk),
        ("DiskList", list("disks", "Disk")),
        (
            "CreateDisk",
            json!({"type": "object", "additionalProperties": false, "required": ["size_mib"],
            "properties": {"size_mib": mib(), "format": format, "metadata": labels}}),
        ),
        (
            "ResizeDisk",
            json!({"type": "object", "additionalProperties": false, "required": ["size_mib"],
            "properties": {"size_mib": mib()}}),
        ),
        (
            "AttachRequest",
            json!({"type": "object", "additionalProperties": false, "required": ["vm"], "properties": {"vm": str_()}}),
        ),
    ] {
        m.insert(k.to_string(), v);
    }
    m
}

/// Error codes of the provisioning routes.
pub const CODES: &[&str] = &[
    "pi_not_found",
    "image_not_found",
    "vm_not_found",
    "disk_not_found",
    "no_free_pi",
    "image_in_use",
    "disk_attached",
    "pi_busy",
    "too_many_networks",
    "invalid_constraints",
    "attach_timeout",
    "provision_failed",
    "upload_digest_mismatch",
    "bad_image",
    "no_slot",
    "no_free_address",
    "provisioning_disabled",
];
