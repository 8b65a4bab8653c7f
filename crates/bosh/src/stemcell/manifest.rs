//! `stemcell.MF`, the YAML the director and bosh-cli read from a stemcell tarball.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The stemcell `api_version` the upstream builder writes: registry-less agent, signed
/// blobstore URLs allowed.
pub const API_VERSION: u32 = 3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    /// A string even when it looks like a number (`'1.5'`).
    pub version: String,
    pub bosh_protocol: u32,
    pub api_version: u32,
    /// Distinct per architecture: the director reuses compiled packages per OS name.
    pub operating_system: String,
    pub stemcell_formats: Vec<String>,
    /// SHA-1 of the `image` file.
    pub sha1: String,
    pub cloud_properties: BTreeMap<String, serde_yaml::Value>,
}

impl Manifest {
    /// Parses `stemcell.MF` as the director reads it.
    pub fn parse(text: &str) -> Result<Manifest, serde_yaml::Error> {
        serde_yaml::from_str(text)
    }

    /// The version is single-quoted, as bosh-cli and the upstream builder write it — unless it
    /// holds a control character (a line break would be folded inside single quotes): then it
    /// keeps the serializer's escaped double quotes.
    pub fn to_yaml(&self) -> String {
        let yaml = serde_yaml::to_string(self).expect("manifest serializes");
        if self.version.chars().any(char::is_control) {
            return yaml;
        }
        let quoted = format!("version: '{}'", self.version.replace('\'', "''"));
        yaml.lines()
            .map(|l| {
                if l.starts_with("version: ") {
                    quoted.as_str()
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_looking_version_stays_a_string() {
        let m = Manifest {
            name: "bosh-pi-debian-bookworm-armv6l".into(),
            version: "1.5".into(),
            bosh_protocol: 1,
            api_version: API_VERSION,
            operating_system: "debian-bookworm-armv6l".into(),
            stemcell_formats: vec!["pi-raw".into()],
            sha1: "0".repeat(40),
            cloud_properties: BTreeMap::new(),
        };
        let yaml = m.to_yaml();
        assert!(yaml.contains("\nversion: '1.5'\n"), "{yaml}");
        let v: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(
            v["version"],
            serde_yaml::Value::String("1.5".into()),
            "{yaml}"
        );
        assert_eq!(serde_yaml::from_str::<Manifest>(&yaml).unwrap(), m);
    }
}
