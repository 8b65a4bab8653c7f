//! GPIO relays through rppal. Pins are claimed as outputs directly at the level they should
//! have (no glitch through the other level) and are not reset when powerd exits, so a
//! restart or crash of the daemon never drops the workers' power.

use super::{BackendError, BackendFuture, PowerBackend, PowerState, Start};

/// Relay boards differ in polarity: with `active_low`, a low pin means power on.
#[cfg_attr(
    not(all(target_os = "linux", any(target_arch = "arm", target_arch = "aarch64"))),
    allow(dead_code)
)]
fn state_to_high(state: PowerState, active_low: bool) -> bool {
    (state == PowerState::On) != active_low
}

#[cfg_attr(
    not(all(target_os = "linux", any(target_arch = "arm", target_arch = "aarch64"))),
    allow(dead_code)
)]
fn high_to_state(high: bool, active_low: bool) -> PowerState {
    if high != active_low {
        PowerState::On
    } else {
        PowerState::Off
    }
}

#[cfg(all(target_os = "linux", any(target_arch = "arm", target_arch = "aarch64")))]
mod imp {
    use std::sync::Mutex;

    use rppal::gpio::{Gpio, Level, OutputPin};

    use super::*;

    pub struct GpioOutlet {
        pin: u8,
        active_low: bool,
        out: Mutex<OutputPin>,
    }

    impl GpioOutlet {
        pub fn open(
            pin: u8,
            active_low: bool,
            start: Start,
        ) -> Result<(Self, PowerState), BackendError> {
            let err = |e: rppal::gpio::Error| BackendError::Gpio {
                pin,
                message: e.to_string(),
            };
            let raw = Gpio::new().map_err(err)?.get(pin).map_err(err)?;
            let state = match start {
                Start::Force(s) | Start::Adopt(Some(s)) => s,
                Start::Adopt(None) => high_to_state(raw.read() == Level::High, active_low),
            };
            let mut out = if state_to_high(state, active_low) {
                raw.into_output_high()
            } else {
                raw.into_output_low()
            };
            out.set_reset_on_drop(false);
            Ok((
                GpioOutlet {
                    pin,
                    active_low,
                    out: Mutex::new(out),
                },
                state,
            ))
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, OutputPin> {
            self.out.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    impl PowerBackend for GpioOutlet {
        fn kind(&self) -> &'static str {
            "gpio"
        }

        fn set(&self, state: PowerState) -> BackendFuture<'_, ()> {
            Box::pin(async move {
                let level = if state_to_high(state, self.active_low) {
                    Level::High
                } else {
                    Level::Low
                };
                self.lock().write(level);
                tracing::debug!(pin = self.pin, ?level, "gpio write");
                Ok(())
            })
        }

        fn observe(&self) -> BackendFuture<'_, Option<PowerState>> {
            Box::pin(async move {
                Ok(Some(high_to_state(
                    self.lock().is_set_high(),
                    self.active_low,
                )))
            })
        }
    }
}

#[cfg(not(all(target_os = "linux", any(target_arch = "arm", target_arch = "aarch64"))))]
mod imp {
    use super::*;

    /// Never constructed: there is no GPIO to drive on this platform.
    pub struct GpioOutlet(());

    impl GpioOutlet {
        pub fn open(
            _pin: u8,
            _active_low: bool,
            _start: Start,
        ) -> Result<(Self, PowerState), BackendError> {
            Err(BackendError::GpioUnsupported(std::env::consts::ARCH))
        }
    }

    impl PowerBackend for GpioOutlet {
        fn kind(&self) -> &'static str {
            "gpio"
        }
        fn set(&self, _state: PowerState) -> BackendFuture<'_, ()> {
            Box::pin(async { Err(BackendError::GpioUnsupported(std::env::consts::ARCH)) })
        }
        fn observe(&self) -> BackendFuture<'_, Option<PowerState>> {
            Box::pin(async { Err(BackendError::GpioUnsupported(std::env::consts::ARCH)) })
        }
    }
}

pub use imp::GpioOutlet;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polarity() {
        assert!(state_to_high(PowerState::On, false));
        assert!(!state_to_high(PowerState::On, true));
        assert_eq!(high_to_state(false, true), PowerState::On);
        assert_eq!(high_to_state(true, false), PowerState::On);
        assert_eq!(high_to_state(true, true), PowerState::Off);
    }

    #[cfg(not(all(target_os = "linux", any(target_arch = "arm", target_arch = "aarch64"))))]
    #[test]
    fn elsewhere_gpio_is_a_clear_error() {
        let err = GpioOutlet::open(17, false, Start::Adopt(None))
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("GPIO is only available on a Raspberry Pi")
        );
    }
}
