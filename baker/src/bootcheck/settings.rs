//! What a director (here `bosh create-env`) hands an agent at first boot, generated for the
//! agent check: an mbus certificate from a throw-away CA, a random mbus password, and the
//! settings document, written into the `File` settings source of the image's root file
//! system (`debugfs`, no mount).

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use pifoundry_util::BadInput;
use pifoundry_util::error::at;
use pifoundry_util::tool;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use serde_json::{Value, json};

use super::BootError;

/// Where the stemcell's agent.json reads settings first.
pub const SETTINGS_PATH: &str = "/var/vcap/bosh/agent-bootstrap-env.json";
/// The agent's HTTPS mbus port, as in create-env.
pub const MBUS_PORT: u16 = 6868;

/// The mbus certificate (signed by `ca`) and its key, PEM.
pub struct MbusCert {
    pub ca: String,
    pub certificate: String,
    pub private_key: String,
}

impl MbusCert {
    /// A fresh CA and a server certificate for the names a client may dial: `mbus`,
    /// `localhost` and 127.0.0.1 (the forwarded port).
    pub fn generate() -> Result<Self, BootError> {
        let err =
            |e: rcgen::Error| BootError::Check(format!("generating the mbus certificate: {e}"));
        let ca_key = KeyPair::generate().map_err(err)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "pifoundry agent-check mbus CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().map_err(err)?;
        let mut leaf = CertificateParams::new(vec!["mbus".to_string(), "localhost".to_string()])
            .map_err(err)?;
        leaf.subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        leaf.distinguished_name.push(DnType::CommonName, "mbus");
        let cert = leaf.signed_by(&key, &issuer).map_err(err)?;
        Ok(Self {
            ca: ca_cert.pem(),
            certificate: cert.pem(),
            private_key: key.serialize_pem(),
        })
    }
}

/// 32 hex digits from the kernel's random source.
pub fn random_hex() -> Result<String, BootError> {
    let mut bytes = [0u8; 16];
    let path = Path::new("/dev/urandom");
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(at(path))?;
    Ok(hex::encode(bytes))
}

/// The settings a create-env director writes: a dynamic network (DHCP), the ephemeral disk
/// as a device path, the HTTPS mbus on every address with basic auth, its certificate in
/// `env.bosh.mbus.cert`, and a local blobstore.
pub fn settings(agent_id: &str, password: &str, cert: &MbusCert, ephemeral: &str) -> Value {
    json!({
        "agent_id": agent_id,
        "vm": {"name": agent_id, "id": agent_id},
        "mbus": format!("https://mbus:{password}@0.0.0.0:{MBUS_PORT}"),
        "ntp": [],
        "blobstore": {"provider": "local", "options": {"blobstore_path": "/var/vcap/micro_bosh/data/cache"}},
        "networks": {"default": {"type": "dynamic", "default": ["dns", "gateway"], "dns": [], "cloud_properties": {}}},
        "disks": {"system": "/dev/mmcblk0", "ephemeral": ephemeral, "persistent": {}},
        "env": {"bosh": {"mbus": {"cert": {
            "ca": cert.ca,
            "certificate": cert.certificate,
            "private_key": cert.private_key,
        }}}},
    })
}

/// Byte offset of MBR partition `n` (1-based) of a whole-disk image.
pub fn mbr_partition_offset(img: &Path, n: usize) -> Result<u64, BootError> {
    let mut mbr = [0u8; 512];
    fs::File::open(img)
        .and_then(|mut f| f.read_exact(&mut mbr))
        .map_err(at(img))?;
    if mbr[510..512] != [0x55, 0xaa] || !(1..=4).contains(&n) {
        return Err(BootError::Input(BadInput::new(
            img,
            "no MBR partition table",
        )));
    }
    let e = 446 + 16 * (n - 1);
    let lba = u32::from_le_bytes(mbr[e + 8..e + 12].try_into().expect("4 bytes"));
    if lba == 0 {
        return Err(BootError::Input(BadInput::new(
            img,
            format!("no partition {n}"),
        )));
    }
    Ok(u64::from(lba) * 512)
}

/// Writes `content` as root-only `dest` into the ext4 file system at `offset` of `img`
/// and reads it back.
pub fn write_into_ext4(
    img: &Path,
    offset: u64,
    dest: &str,
    content: &[u8],
) -> Result<(), BootError> {
    let (dir, name) = dest.rsplit_once('/').expect("an absolute path");
    let scratch = tempfile::tempdir().map_err(at(&std::env::temp_dir()))?;
    let local = scratch.path().join("content");
    fs::write(&local, content).map_err(at(&local))?;
    let cmds = scratch.path().join("cmds");
    let script = format!(
        "cd {dir}\nrm {name}\nwrite {} {name}\nsif {name} mode 0100600\nsif {name} uid 0\nsif {name} gid 0\n",
        local.display()
    );
    fs::write(&cmds, script).map_err(at(&cmds))?;
    let fs_arg = format!("{}?offset={offset}", img.display());
    tool::run(
        Command::new("debugfs")
            .arg("-w")
            .arg("-f")
            .arg(&cmds)
            .arg(&fs_arg),
        None,
    )?;
    let back = scratch.path().join("back");
    tool::run(
        Command::new("debugfs")
            .arg("-R")
            .arg(format!("dump {dest} {}", back.display()))
            .arg(&fs_arg),
        None,
    )?;
    if fs::read(&back).ok().as_deref() != Some(content) {
        return Err(BootError::Input(BadInput::new(
            img,
            format!("could not write {dest} into its root file system (debugfs)"),
        )));
    }
    Ok(())
}
