//! The CPU architectures PiFoundry builds for and runs on, with every name the outside world
//! gives each one. `armv6l` is the ARM1176 of the Pi Zero and Pi 1 (Debian `armel`, Go
//! `GOARCH=arm GOARM=6`); `arm64` the 64-bit Pis; `amd64` the build host, whose toolchains some
//! recipes pin.
//!
//! Where an architecture-neutral value makes sense (a source tarball in `blobs.lock`) it is
//! `Option<Arch>` spelled `any`: see [`parse_or_any`] and [`or_any`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Armv6l,
    Arm64,
    Amd64,
}

/// A name that is not one of the architectures a place accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown arch {name:?} (expected {expected})")]
pub struct UnknownArch {
    pub name: String,
    pub expected: &'static str,
}

impl Arch {
    /// The architectures a Raspberry Pi has: what stemcells, release rewrites and audits target.
    pub const PI: [Arch; 2] = [Arch::Armv6l, Arch::Arm64];

    pub fn name(self) -> &'static str {
        match self {
            Arch::Armv6l => "armv6l",
            Arch::Arm64 => "arm64",
            Arch::Amd64 => "amd64",
        }
    }

    pub fn is_pi(self) -> bool {
        Self::PI.contains(&self)
    }

    /// `GOARCH`.
    pub fn goarch(self) -> &'static str {
        match self {
            Arch::Armv6l => "arm",
            Arch::Arm64 => "arm64",
            Arch::Amd64 => "amd64",
        }
    }

    /// `GOARM`, always explicit for 32-bit ARM: Go's default, 7, dies on a Pi Zero.
    pub fn goarm(self) -> Option<&'static str> {
        match self {
            Arch::Armv6l => Some("6"),
            Arch::Arm64 | Arch::Amd64 => None,
        }
    }

    /// Debian's architecture name.
    pub fn debian(self) -> &'static str {
        match self {
            Arch::Armv6l => "armel",
            Arch::Arm64 => "arm64",
            Arch::Amd64 => "amd64",
        }
    }

    /// The ELF `e_machine` value of its code.
    pub fn e_machine(self) -> u16 {
        match self {
            Arch::Armv6l => 40,
            Arch::Arm64 => 183,
            Arch::Amd64 => 62,
        }
    }

    /// ELF class: 32 or 64 bits.
    pub fn elf_class(self) -> u8 {
        match self {
            Arch::Armv6l => 32,
            Arch::Arm64 | Arch::Amd64 => 64,
        }
    }

    /// The qemu-user emulator that runs its binaries.
    pub fn qemu_user(self) -> &'static str {
        match self {
            Arch::Armv6l => "qemu-arm",
            Arch::Arm64 => "qemu-aarch64",
            Arch::Amd64 => "qemu-x86_64",
        }
    }

    /// `QEMU_CPU` for emulated commands: an ARM1176 proves every binary runs on a Pi Zero.
    pub fn qemu_cpu(self) -> Option<&'static str> {
        match self {
            Arch::Armv6l => Some("arm1176"),
            Arch::Arm64 | Arch::Amd64 => None,
        }
    }

    /// Parses a Pi architecture (`aarch64` is accepted for `arm64`).
    pub fn parse_pi(s: &str) -> Result<Arch, UnknownArch> {
        match s.parse::<Arch>() {
            Ok(a) if a.is_pi() => Ok(a),
            _ => Err(UnknownArch {
                name: s.to_string(),
                expected: "armv6l or arm64",
            }),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = UnknownArch;
    fn from_str(s: &str) -> Result<Arch, UnknownArch> {
        match s {
            "armv6l" => Ok(Arch::Armv6l),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            "amd64" => Ok(Arch::Amd64),
            _ => Err(UnknownArch {
                name: s.to_string(),
                expected: "armv6l, arm64 or amd64",
            }),
        }
    }
}

/// `any` (no particular architecture) or an architecture.
pub fn parse_or_any(s: &str) -> Result<Option<Arch>, UnknownArch> {
    if s == "any" {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|e: UnknownArch| UnknownArch {
        expected: "armv6l, arm64, amd64 or any",
        ..e
    })
}

/// `any` for `None`, else the architecture's name.
pub fn name_or_any(arch: Option<Arch>) -> &'static str {
    arch.map_or("any", Arch::name)
}

/// Serde for an `Option<Arch>` field spelled `any` when it is `None`:
/// `#[serde(with = "pifoundry_util::arch::or_any")]`.
pub mod or_any {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Arch;

    pub fn serialize<S: Serializer>(arch: &Option<Arch>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(super::name_or_any(*arch))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Arch>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_or_any(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_the_facts_agree_with_the_field() {
        for a in [Arch::Armv6l, Arch::Arm64, Arch::Amd64] {
            assert_eq!(a.name().parse::<Arch>().unwrap(), a);
            assert_eq!(parse_or_any(a.name()).unwrap(), Some(a));
        }
        assert_eq!(parse_or_any("any").unwrap(), None);
        assert_eq!(
            (Arch::Armv6l.goarch(), Arch::Armv6l.goarm()),
            ("arm", Some("6"))
        );
        assert_eq!(Arch::Armv6l.debian(), "armel");
        assert_eq!(Arch::parse_pi("aarch64").unwrap(), Arch::Arm64);
        assert_eq!(
            Arch::parse_pi("amd64").unwrap_err().to_string(),
            "unknown arch \"amd64\" (expected armv6l or arm64)"
        );
        assert_eq!(
            parse_or_any("x").unwrap_err().to_string(),
            "unknown arch \"x\" (expected armv6l, arm64, amd64 or any)"
        );
    }
}
