//! The Pi inventory: register/adopt/update (`PUT`), free/broken, retire, and the atomic claim
//! of a free Pi for a VM.

use std::net::IpAddr;

use powerd_client::codes;
use powerd_client::provision::{BootMode, Constraints, Image, Pi, PiSpec, PiState};

use super::state::ProvState;
use super::{ProvisionError, Provisioner, now};

/// A Pi's serial as its firmware writes it in TFTP paths: 8 lowercase hex digits.
pub fn check_serial(serial: &str) -> Result<(), ProvisionError> {
    if serial.len() == 8
        && serial
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        Ok(())
    } else {
        Err(ProvisionError::bad(
            codes::INVALID_BODY,
            format!("{serial:?} is not a Pi serial (8 lowercase hex digits)"),
        ))
    }
}

/// `aa:bb:cc:dd:ee:ff`, lowercased; `-` separators are accepted.
pub fn normalize_mac(mac: &str) -> Result<String, ProvisionError> {
    let m = mac.trim().to_ascii_lowercase().replace('-', ":");
    let parts: Vec<&str> = m.split(':').collect();
    if parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        Ok(m)
    } else {
        Err(ProvisionError::bad(
            codes::INVALID_BODY,
            format!("mac: {mac:?} is not a MAC address such as dc:a6:32:01:02:03"),
        ))
    }
}

fn pi_not_found(serial: &str) -> ProvisionError {
    ProvisionError::not_found(codes::PI_NOT_FOUND, "Pi", serial)
}

impl Provisioner {
    pub fn pis(&self) -> Vec<Pi> {
        self.store.read(|s| s.pis.values().cloned().collect())
    }

    pub fn pi(&self, serial: &str) -> Result<Pi, ProvisionError> {
        self.store
            .read(|s| s.pis.get(serial).cloned())
            .ok_or_else(|| pi_not_found(serial))
    }

    /// Registers a Pi, adopts a discovered one (it becomes free) or updates a free/broken one.
    pub fn put_pi(&self, serial: &str, spec: PiSpec) -> Result<(Pi, bool), ProvisionError> {
        check_serial(serial)?;
        let mac = normalize_mac(&spec.mac)?;
        if !self.power.ids().any(|o| o == spec.outlet) {
            return Err(ProvisionError::not_found(
                codes::OUTLET_NOT_FOUND,
                "outlet",
                &spec.outlet,
            ));
        }
        if spec.model.trim().is_empty() || spec.ram_mib == 0 {
            return Err(ProvisionError::bad(
                codes::INVALID_BODY,
                "model must not be empty and ram_mib must be greater than zero",
            ));
        }
        self.store.update(|s| {
            for other in s.pis.values().filter(|p| p.serial != serial) {
                if other.mac.as_deref() == Some(&mac) {
                    return Err(ProvisionError::conflict(
                        codes::PI_BUSY,
                        format!("mac {mac} belongs to Pi {}", other.serial),
                    ));
                }
                if other.outlet.as_deref() == Some(&spec.outlet) {
                    return Err(ProvisionError::conflict(
                        codes::PI_BUSY,
                        format!("outlet {} powers Pi {}", spec.outlet, other.serial),
                    ));
                }
            }
            let old = s.pis.get(serial).cloned();
            let state = match old.as_ref().map(|p| p.state) {
                None | Some(PiState::Discovered) | Some(PiState::Free) => PiState::Free,
                Some(PiState::Broken) => PiState::Broken,
                Some(st @ (PiState::Provisioning | PiState::Running)) => {
                    return Err(ProvisionError::conflict(
                        codes::PI_BUSY,
                        format!("Pi {serial} is {st}: delete its VM first"),
                    ));
                }
            };
            let pi = Pi {
                serial: serial.to_string(),
                model: Some(spec.model.clone()),
                mac: Some(mac.clone()),
                outlet: Some(spec.outlet.clone()),
                arch: Some(spec.arch),
                ram_mib: Some(spec.ram_mib),
                pool: spec
                    .pool
                    .clone()
                    .or_else(|| old.as_ref().map(|p| p.pool.clone()))
                    .unwrap_or_else(|| "default".into()),
                boot: spec
                    .boot
                    .or_else(|| old.as_ref().map(|p| p.boot))
                    .unwrap_or_default(),
                state,
                vm: None,
                labels: spec
                    .labels
                    .clone()
                    .or_else(|| old.as_ref().map(|p| p.labels.clone()))
                    .unwrap_or_default(),
                address: None,
                metadata: Default::default(),
                seen_at: old.as_ref().and_then(|p| p.seen_at.clone()),
                updated_at: now(),
            };
            s.pis.insert(serial.to_string(), pi.clone());
            Ok((pi, old.is_none()))
        })
    }

    pub fn set_pi_state(&self, serial: &str, want: PiState) -> Result<Pi, ProvisionError> {
        if !matches!(want, PiState::Free | PiState::Broken) {
            return Err(ProvisionError::bad(
                codes::INVALID_BODY,
                format!("state: an operator sets free or broken, not {want}"),
            ));
        }
        self.store.update(|s| {
            let pi = s.pis.get_mut(serial).ok_or_else(|| pi_not_found(serial))?;
            match pi.state {
                PiState::Provisioning | PiState::Running => {
                    return Err(ProvisionError::conflict(
                        codes::PI_BUSY,
                        format!("Pi {serial} carries {}", pi.vm.as_deref().unwrap_or("a VM")),
                    ));
                }
                PiState::Discovered => {
                    return Err(ProvisionError::conflict(
                        codes::PI_BUSY,
                        format!(
                            "Pi {serial} was only discovered: adopt it with PUT /v1/pis/{serial}"
                        ),
                    ));
                }
                _ => {}
            }
            if pi.state != want {
                pi.state = want;
                pi.updated_at = now();
            }
            Ok(pi.clone())
        })
    }

    pub fn retire_pi(&self, serial: &str) -> Result<(), ProvisionError> {
        self.store.update(|s| {
            let pi = s.pis.get(serial).ok_or_else(|| pi_not_found(serial))?;
            if let Some(vm) = &pi.vm {
                return Err(ProvisionError::conflict(
                    codes::PI_BUSY,
                    format!("Pi {serial} carries {vm}: delete the VM first"),
                ));
            }
            s.pis.remove(serial);
            Ok(())
        })
    }

    /// An unknown serial asked for boot files: remember it (and from where) as discovered.
    pub fn discovered(&self, serial: &str, from: IpAddr) {
        if check_serial(serial).is_err() {
            return;
        }
        let r = self.store.update(|s| {
            match s.pis.get_mut(serial) {
                Some(pi) if pi.state == PiState::Discovered => {
                    pi.address = Some(from.to_string());
                    pi.seen_at = Some(now());
                }
                Some(_) => {}
                None => {
                    let t = now();
                    s.pis.insert(
                        serial.to_string(),
                        Pi {
                            serial: serial.to_string(),
                            model: None,
                            mac: None,
                            outlet: None,
                            arch: None,
                            ram_mib: None,
                            pool: "default".into(),
                            boot: BootMode::Netboot,
                            state: PiState::Discovered,
                            vm: None,
                            labels: Default::default(),
                            address: Some(from.to_string()),
                            metadata: Default::default(),
                            seen_at: Some(t.clone()),
                            updated_at: t,
                        },
                    );
                }
            }
            Ok(())
        });
        match r {
            Ok(()) => tracing::info!(serial, %from, "a Pi asked for boot files: discovered"),
            Err(e) => tracing::warn!(serial, error = %e, "could not record a discovered Pi"),
        }
    }
}

/// Whether a free Pi can carry a VM of `image` under `c`.
pub fn matches(pi: &Pi, image: &Image, c: &Constraints) -> bool {
    pi.state == PiState::Free
        && pi.vm.is_none()
        && pi.boot == BootMode::Netboot
        && pi.arch == Some(image.arch)
        && c.arch.is_none_or(|a| Some(a) == pi.arch)
        && c.model
            .as_ref()
            .is_none_or(|m| pi.model.as_ref() == Some(m))
        && c.min_ram_mib.is_none_or(|r| pi.ram_mib.unwrap_or(0) >= r)
        && c.pool.as_ref().is_none_or(|p| &pi.pool == p)
        && c.labels.iter().all(|(k, v)| pi.labels.get(k) == Some(v))
}

/// The first matching free Pi (by serial), for [`super::vms`]' claim.
pub fn pick(s: &ProvState, image: &Image, c: &Constraints) -> Option<String> {
    s.pis
        .values()
        .find(|p| matches(p, image, c))
        .map(|p| p.serial.clone())
}
