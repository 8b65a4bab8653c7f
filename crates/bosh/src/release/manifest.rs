//! `release.MF`: typed, with versions kept as the exact strings of the file, unknown keys
//! carried through, and written back in bosh-cli's yaml.v2 style byte for byte.

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_yaml::Value;

use super::yaml::Node;

/// Keys this code does not know, in file order.
pub type Extra = Vec<(String, Value)>;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub commit_hash: String,
    pub uncommitted_changes: bool,
    pub jobs: Vec<Job>,
    pub packages: Vec<Package>,
    pub compiled_packages: Vec<Package>,
    pub license: Option<License>,
    /// Written only if the input had it (bosh-cli ≥ v7.9.14 always writes it).
    pub no_compression: Option<bool>,
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Job {
    pub name: String,
    pub version: String,
    pub fingerprint: String,
    pub sha1: String,
    pub packages: Vec<String>,
    pub extra: Extra,
}

/// A source package, or a compiled one (then `stemcell` is set).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub fingerprint: String,
    pub sha1: String,
    pub dependencies: Vec<String>,
    pub stemcell: Option<String>,
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct License {
    pub version: String,
    pub fingerprint: String,
    pub sha1: String,
    pub extra: Extra,
}

#[derive(Debug, thiserror::Error)]
#[error("release.MF: {0}")]
pub struct ManifestError(String);

impl Manifest {
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| ManifestError("not UTF-8".into()))?
            .replace("!binary |-", "!!binary |-");
        let m: Manifest = serde_yaml::from_str(&text).map_err(|e| ManifestError(e.to_string()))?;
        if m.name.is_empty() {
            return Err(ManifestError("missing key `name`".into()));
        }
        if m.version.is_empty() {
            return Err(ManifestError("missing key `version`".into()));
        }
        Ok(m)
    }

    /// The file as bosh-cli would write it.
    pub fn to_yaml(&self) -> String {
        let mut top = vec![
            ("name".into(), Node::str(&self.name)),
            ("version".into(), Node::str(&self.version)),
            ("commit_hash".into(), Node::str(&self.commit_hash)),
            (
                "uncommitted_changes".into(),
                Node::bool(self.uncommitted_changes),
            ),
        ];
        if !self.jobs.is_empty() {
            let jobs = self.jobs.iter().map(Job::node).collect();
            top.push(("jobs".into(), Node::Seq(jobs)));
        }
        if !self.packages.is_empty() {
            let pkgs = self.packages.iter().map(Package::node).collect();
            top.push(("packages".into(), Node::Seq(pkgs)));
        }
        if !self.compiled_packages.is_empty() {
            let pkgs = self.compiled_packages.iter().map(Package::node).collect();
            top.push(("compiled_packages".into(), Node::Seq(pkgs)));
        }
        if let Some(l) = &self.license {
            top.push(("license".into(), l.node()));
        }
        if let Some(nc) = self.no_compression {
            top.push(("no_compression".into(), Node::bool(nc)));
        }
        push_extra(&mut top, &self.extra);
        Node::Map(top).emit()
    }

    pub fn is_compiled(&self) -> bool {
        !self.compiled_packages.is_empty()
    }
}

fn push_extra(entries: &mut Vec<(String, Node)>, extra: &Extra) {
    for (k, v) in extra {
        entries.push((super::yaml::quote(k), Node::value(v)));
    }
}

impl Job {
    fn node(&self) -> Node {
        let mut m = vec![
            ("name".into(), Node::str(&self.name)),
            ("version".into(), Node::str(&self.version)),
            ("fingerprint".into(), Node::str(&self.fingerprint)),
            ("sha1".into(), Node::str(&self.sha1)),
            ("packages".into(), Node::strs(&self.packages)),
        ];
        push_extra(&mut m, &self.extra);
        Node::Map(m)
    }
}

impl Package {
    fn node(&self) -> Node {
        let mut m = vec![
            ("name".into(), Node::str(&self.name)),
            ("version".into(), Node::str(&self.version)),
            ("fingerprint".into(), Node::str(&self.fingerprint)),
            ("sha1".into(), Node::str(&self.sha1)),
        ];
        if let Some(s) = &self.stemcell {
            m.push(("stemcell".into(), Node::str(s)));
        }
        m.push(("dependencies".into(), Node::strs(&self.dependencies)));
        push_extra(&mut m, &self.extra);
        Node::Map(m)
    }
}

impl License {
    fn node(&self) -> Node {
        let mut m = vec![
            ("version".into(), Node::str(&self.version)),
            ("fingerprint".into(), Node::str(&self.fingerprint)),
            ("sha1".into(), Node::str(&self.sha1)),
        ];
        push_extra(&mut m, &self.extra);
        Node::Map(m)
    }
}

/// Reads a mapping field by field so that known string fields go straight to the
/// deserializer (a plain `1.10` stays "1.10") while unknown keys land in `extra`.
macro_rules! map_visitor {
    ($ty:ident, $what:literal, |$map:ident, $out:ident, $key:ident| $body:block) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut $map: A) -> Result<$ty, A::Error> {
                        let mut $out = $ty::default();
                        while let Some($key) = $map.next_key::<String>()? {
                            $body
                        }
                        Ok($out)
                    }
                }
                d.deserialize_map(V)
            }
        }
    };
}

/// `null` reads as an empty list, as in Go.
fn list<'de, A: MapAccess<'de>, T: serde::Deserialize<'de>>(
    map: &mut A,
) -> Result<Vec<T>, A::Error> {
    Ok(map.next_value::<Option<Vec<T>>>()?.unwrap_or_default())
}

map_visitor!(Manifest, "a release manifest mapping", |map, m, key| {
    match key.as_str() {
        "name" => m.name = map.next_value()?,
        "version" => m.version = map.next_value()?,
        "commit_hash" => m.commit_hash = map.next_value()?,
        "uncommitted_changes" => m.uncommitted_changes = map.next_value()?,
        "jobs" => m.jobs = list(&mut map)?,
        "packages" => m.packages = list(&mut map)?,
        "compiled_packages" => m.compiled_packages = list(&mut map)?,
        "license" => m.license = map.next_value()?,
        "no_compression" => m.no_compression = Some(map.next_value()?),
        _ => m.extra.push((key, map.next_value()?)),
    }
});

map_visitor!(Job, "a job entry", |map, j, key| {
    match key.as_str() {
        "name" => j.name = map.next_value()?,
        "version" => j.version = map.next_value()?,
        "fingerprint" => j.fingerprint = map.next_value()?,
        "sha1" => j.sha1 = map.next_value()?,
        "packages" => j.packages = list(&mut map)?,
        _ => j.extra.push((key, map.next_value()?)),
    }
});

map_visitor!(Package, "a package entry", |map, p, key| {
    match key.as_str() {
        "name" => p.name = map.next_value()?,
        "version" => p.version = map.next_value()?,
        "fingerprint" => p.fingerprint = map.next_value()?,
        "sha1" => p.sha1 = map.next_value()?,
        "dependencies" => p.dependencies = list(&mut map)?,
        "stemcell" => p.stemcell = Some(map.next_value()?),
        _ => p.extra.push((key, map.next_value()?)),
    }
});

map_visitor!(License, "a license entry", |map, l, key| {
    match key.as_str() {
        "version" => l.version = map.next_value()?,
        "fingerprint" => l.fingerprint = map.next_value()?,
        "sha1" => l.sha1 = map.next_value()?,
        _ => l.extra.push((key, map.next_value()?)),
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "name: pi-sample
version: 0+dev.1
commit_hash: non-git
uncommitted_changes: false
jobs:
- name: hello-job
  version: 4323306e760b28ebcac7eaa2322f77cac8a990b006caad1b5160d8a8ea6ac90e
  fingerprint: 4323306e760b28ebcac7eaa2322f77cac8a990b006caad1b5160d8a8ea6ac90e
  sha1: sha256:24c217a79477d2d6e8bd22850ac752592b0975ae0cff871d0e4a9e174a39f229
  packages:
  - hello
packages:
- name: golang-1-linux
  version: 0ece9e64fd7816c0aa13c7832bfe385ccbb6510db2f9a092a4b4d36c66ea1ec9
  fingerprint: 0ece9e64fd7816c0aa13c7832bfe385ccbb6510db2f9a092a4b4d36c66ea1ec9
  sha1: sha256:4f4fa48556af247c857dd53517174bc71dbf76ca7f75527732f13ca8a2c83315
  dependencies: []
license:
  version: 5946176fad2c7f2444c53c51fbecfeb091e8f71e5cf66bc4d5ce1f0b033ad3dd
  fingerprint: 5946176fad2c7f2444c53c51fbecfeb091e8f71e5cf66bc4d5ce1f0b033ad3dd
  sha1: sha256:b35f8a04258ce843464850d877bc554073c7ca3767a7407c865617c3057d3b60
no_compression: false
";

    #[test]
    fn round_trips_byte_for_byte() {
        let m = Manifest::parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(m.jobs[0].packages, ["hello"]);
        assert!(m.packages[0].dependencies.is_empty());
        assert_eq!(m.to_yaml(), SAMPLE);
    }

    #[test]
    fn versions_stay_strings_and_unknown_keys_survive() {
        let m = Manifest::parse(
            b"name: r\nversion: 1.10\ncommit_hash: abc\nuncommitted_changes: false\nfuture_key:\n  nested: [a, b]\npackages:\n- name: p\n  version: 1.10\n  fingerprint: f\n  sha1: s\n  dependencies: []\n  note: kept\n",
        )
        .unwrap();
        assert_eq!(m.version, "1.10");
        assert_eq!(m.packages[0].version, "1.10");
        let out = m.to_yaml();
        assert_eq!(
            out,
            "name: r\nversion: \"1.10\"\ncommit_hash: abc\nuncommitted_changes: false\npackages:\n- name: p\n  version: \"1.10\"\n  fingerprint: f\n  sha1: s\n  dependencies: []\n  note: kept\nfuture_key:\n  nested:\n  - a\n  - b\n"
        );
        assert_eq!(Manifest::parse(out.as_bytes()).unwrap(), m);
    }

    #[test]
    fn bad_manifests_are_named() {
        let e = Manifest::parse(b"name: [unclosed").unwrap_err().to_string();
        assert!(e.starts_with("release.MF: "), "{e}");
        let e = Manifest::parse(b"version: '1'\n").unwrap_err().to_string();
        assert_eq!(e, "release.MF: missing key `name`");
    }
}
