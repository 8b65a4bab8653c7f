//! Hot attach: what each Pi's attach helper should have connected, the long poll it waits on,
//! and the confirmations powerd's attach call waits for (contract §3).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use powerd_client::provision::{Confirm, Confirmed, PiAttachment, PiAttachments, Want};
use tokio::sync::watch;
use tokio::time::Instant;

/// The longest a poll is held, whatever the helper asks.
pub const MAX_WAIT: Duration = Duration::from_secs(120);

/// Attachments per Pi serial, with a generation that grows on every change.
pub struct Hub {
    pis: Mutex<HashMap<String, Entry>>,
    /// Generations start from the wall clock (ms), so that a helper still holding the last
    /// generation of a powerd that restarted never mistakes the new state for the old one.
    seed: u64,
}

struct Entry {
    generation: u64,
    attachments: Vec<PiAttachment>,
    /// The helper's last word per disk, since that disk's entry last changed.
    confirmed: HashMap<String, Confirm>,
    /// Bumped on every publish and confirm; pollers and waiters re-check on a change.
    changed: watch::Sender<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    #[error("disk {disk} is not among Pi {serial}'s attachments")]
    NotListed { serial: String, disk: String },
    #[error("Pi {serial} did not confirm disk {disk} as {want:?} within {timeout:?}")]
    Timeout {
        serial: String,
        disk: String,
        want: Want,
        timeout: Duration,
    },
}

impl Default for Hub {
    fn default() -> Hub {
        Hub::new()
    }
}

impl Hub {
    pub fn new() -> Hub {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Hub {
            pis: Mutex::new(HashMap::new()),
            seed: now.as_millis() as u64,
        }
    }

    fn with<T>(&self, serial: &str, f: impl FnOnce(&mut Entry) -> T) -> T {
        let mut pis = self.pis.lock().unwrap_or_else(|e| e.into_inner());
        let entry = pis.entry(serial.to_owned()).or_insert_with(|| Entry {
            generation: self.seed,
            attachments: Vec::new(),
            confirmed: HashMap::new(),
            changed: watch::Sender::new(0),
        });
        f(entry)
    }

    /// Sets what the Pi should have; returns the generation its helper will see. Publishing
    /// the same list again changes nothing. A disk whose entry changed loses its confirmation.
    pub fn publish(&self, serial: &str, attachments: Vec<PiAttachment>) -> u64 {
        self.with(serial, |e| {
            if e.attachments == attachments {
                return e.generation;
            }
            e.confirmed.retain(|disk, _| {
                e.attachments
                    .iter()
                    .any(|a| &a.disk == disk && attachments.contains(a))
            });
            e.attachments = attachments;
            e.generation += 1;
            e.changed.send_modify(|n| *n += 1);
            e.generation
        })
    }

    /// Drops a Pi (its VM is gone); a helper still polling gets an empty list.
    pub fn forget(&self, serial: &str) {
        self.publish(serial, Vec::new());
        let mut pis = self.pis.lock().unwrap_or_else(|e| e.into_inner());
        if pis
            .get(serial)
            .is_some_and(|e| e.changed.receiver_count() == 0)
        {
            pis.remove(serial);
        }
    }

    fn current(&self, serial: &str) -> (PiAttachments, watch::Receiver<u64>) {
        self.with(serial, |e| {
            let now = PiAttachments {
                generation: e.generation,
                attachments: e.attachments.clone(),
            };
            (now, e.changed.subscribe())
        })
    }

    /// The long poll: answers at once when the generation differs from `after` (greater, or
    /// smaller after a restart), else when it changes, else after `wait` (at most
    /// [`MAX_WAIT`]) with the unchanged state.
    pub async fn poll(&self, serial: &str, after: u64, wait: Duration) -> PiAttachments {
        let deadline = Instant::now() + wait.min(MAX_WAIT);
        loop {
            let (now, mut changed) = self.current(serial);
            if now.generation != after {
                return now;
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                return now;
            }
        }
    }

    /// The helper reports what it did with a listed disk.
    pub fn confirm(&self, serial: &str, disk: &str, confirm: Confirm) -> Result<(), HubError> {
        self.with(serial, |e| {
            if !e.attachments.iter().any(|a| a.disk == disk) {
                return Err(HubError::NotListed {
                    serial: serial.to_owned(),
                    disk: disk.to_owned(),
                });
            }
            e.confirmed.insert(disk.to_owned(), confirm);
            e.changed.send_modify(|n| *n += 1);
            Ok(())
        })
    }

    /// Waits until the helper confirms `disk` as `want` (or reports that it failed: then
    /// `Ok(Confirmed::Failed)`, and [`Hub::failure`] has its message), at most `timeout`.
    pub async fn wait_confirmed(
        &self,
        serial: &str,
        disk: &str,
        want: Want,
        timeout: Duration,
    ) -> Result<Confirmed, HubError> {
        let deadline = Instant::now() + timeout;
        loop {
            let (state, mut changed) = self.with(serial, |e| {
                (
                    e.confirmed.get(disk).map(|c| c.state),
                    e.changed.subscribe(),
                )
            });
            match (state, want) {
                (Some(Confirmed::Failed), _) => return Ok(Confirmed::Failed),
                (Some(Confirmed::Connected), Want::Connected) => return Ok(Confirmed::Connected),
                (Some(Confirmed::Disconnected), Want::Disconnected) => {
                    return Ok(Confirmed::Disconnected);
                }
                _ => {}
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                return Err(HubError::Timeout {
                    serial: serial.to_owned(),
                    disk: disk.to_owned(),
                    want,
                    timeout,
                });
            }
        }
    }

    /// The helper's message with its last confirmation of `disk`, if any.
    pub fn failure(&self, serial: &str, disk: &str) -> Option<String> {
        self.with(serial, |e| {
            e.confirmed.get(disk).and_then(|c| c.message.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use powerd_client::provision::NbdTarget;

    use super::*;

    fn att(disk: &str, want: Want) -> PiAttachment {
        PiAttachment {
            disk: disk.into(),
            slot: 2,
            device: "/dev/nbd2".into(),
            nbd: NbdTarget {
                host: "10.77.0.1".into(),
                port: 10811,
                export: "e".repeat(32),
            },
            want,
        }
    }

    fn ok(state: Confirmed) -> Confirm {
        Confirm {
            state,
            message: None,
        }
    }

    #[tokio::test]
    async fn a_poll_returns_at_once_on_a_stale_generation_and_wakes_on_publish() {
        let hub = Arc::new(Hub::new());
        let first = hub.poll("1a2b3c4d", 0, Duration::ZERO).await;
        assert!(first.attachments.is_empty());
        // a generation from before a restart (or from nowhere) is answered at once
        let stale = hub.poll("1a2b3c4d", 7, Duration::from_secs(60)).await;
        assert_eq!(stale.generation, first.generation);

        let poller = {
            let hub = hub.clone();
            tokio::spawn(async move {
                hub.poll("1a2b3c4d", first.generation, Duration::from_secs(60))
                    .await
            })
        };
        tokio::task::yield_now().await;
        let generation = hub.publish("1a2b3c4d", vec![att("disk-1", Want::Connected)]);
        let got = tokio::time::timeout(Duration::from_secs(5), poller)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.generation, generation);
        assert_eq!(got.attachments, vec![att("disk-1", Want::Connected)]);
        assert_eq!(
            hub.publish("1a2b3c4d", vec![att("disk-1", Want::Connected)]),
            generation
        );
    }

    #[tokio::test]
    async fn an_unchanged_poll_ends_after_its_wait() {
        let hub = Hub::new();
        let now = hub.poll("1a2b3c4d", 0, Duration::ZERO).await;
        let again = hub
            .poll("1a2b3c4d", now.generation, Duration::from_millis(50))
            .await;
        assert_eq!(again, now);
    }

    #[tokio::test]
    async fn confirmation_ends_the_wait_and_a_new_publish_clears_it() {
        let hub = Arc::new(Hub::new());
        hub.publish("1a2b3c4d", vec![att("disk-1", Want::Connected)]);
        let waiter = {
            let hub = hub.clone();
            tokio::spawn(async move {
                hub.wait_confirmed(
                    "1a2b3c4d",
                    "disk-1",
                    Want::Connected,
                    Duration::from_secs(30),
                )
                .await
            })
        };
        tokio::task::yield_now().await;
        hub.confirm("1a2b3c4d", "disk-1", ok(Confirmed::Connected))
            .unwrap();
        assert_eq!(waiter.await.unwrap(), Ok(Confirmed::Connected));

        // detaching: the old "connected" must not count, a "disconnected" does
        hub.publish("1a2b3c4d", vec![att("disk-1", Want::Disconnected)]);
        let short = hub
            .wait_confirmed(
                "1a2b3c4d",
                "disk-1",
                Want::Disconnected,
                Duration::from_millis(50),
            )
            .await;
        assert!(matches!(short, Err(HubError::Timeout { .. })), "{short:?}");
        hub.confirm("1a2b3c4d", "disk-1", ok(Confirmed::Disconnected))
            .unwrap();
        let done = hub
            .wait_confirmed(
                "1a2b3c4d",
                "disk-1",
                Want::Disconnected,
                Duration::from_millis(50),
            )
            .await;
        assert_eq!(done, Ok(Confirmed::Disconnected));
    }

    #[tokio::test]
    async fn a_failure_is_reported_with_its_message_and_unknown_disks_are_refused() {
        let hub = Hub::new();
        hub.publish("1a2b3c4d", vec![att("disk-1", Want::Connected)]);
        let failed = Confirm {
            state: Confirmed::Failed,
            message: Some("nbd-client: no such export".into()),
        };
        hub.confirm("1a2b3c4d", "disk-1", failed).unwrap();
        let got = hub
            .wait_confirmed(
                "1a2b3c4d",
                "disk-1",
                Want::Connected,
                Duration::from_secs(1),
            )
            .await;
        assert_eq!(got, Ok(Confirmed::Failed));
        assert_eq!(
            hub.failure("1a2b3c4d", "disk-1").as_deref(),
            Some("nbd-client: no such export")
        );
        let err = hub
            .confirm("1a2b3c4d", "disk-9", ok(Confirmed::Connected))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "disk disk-9 is not among Pi 1a2b3c4d's attachments"
        );
        let err = hub
            .confirm("ffffffff", "disk-1", ok(Confirmed::Connected))
            .unwrap_err();
        assert!(matches!(err, HubError::NotListed { .. }));
    }
}
