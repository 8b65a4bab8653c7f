//! The power scheduler: every action on one outlet runs under that outlet's lock; an outlet
//! that went off stays off for its `min_off`; two power-ons anywhere start at least the global
//! stagger apart (a hanging backend holds up only its own outlet); a cycle is off → wait
//! min_off → on. Everything is enforced here, whatever
//! the client asks.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::config::{Config, OutletConfig, StartPolicy};
use crate::metrics::{Metrics, OutletLabels, TransitionLabels};
use crate::outlet::sim::SimLog;
use crate::outlet::{self, BackendError, PowerBackend, PowerState, Start};
use crate::state::{OutletRecord, StateError, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    On,
    Off,
    Cycle,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::On => "on",
            Action::Off => "off",
            Action::Cycle => "cycle",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PowerError {
    #[error("no outlet {0:?}")]
    UnknownOutlet(String),
    #[error("outlet {outlet}: {error}")]
    Backend { outlet: String, error: BackendError },
    #[error("outlet {outlet}: switched, but the state was not saved: {error}")]
    State { outlet: String, error: StateError },
}

/// What the API shows of an outlet: the wire type its clients read.
pub use powerd_client::Outlet as OutletView;

struct Outlet {
    cfg: OutletConfig,
    backend: Arc<dyn PowerBackend>,
    /// Serialises actions; holds when the outlet last went off.
    serial: tokio::sync::Mutex<Option<Instant>>,
    /// Readable without waiting for a running action.
    status: RwLock<(PowerState, Option<OutletRecord>)>,
}

impl Outlet {
    fn commanded(&self) -> PowerState {
        self.status.read().unwrap_or_else(|e| e.into_inner()).0
    }

    fn view(&self) -> OutletView {
        let (state, record) = self
            .status
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        OutletView {
            id: self.cfg.id.clone(),
            description: self.cfg.description.clone(),
            backend: self.backend.kind().to_string(),
            state,
            changed_at: record.as_ref().map(|r| r.changed_at.clone()),
            changed_by: record.map(|r| r.changed_by),
            min_off_ms: self.cfg.min_off.as_millis() as u64,
        }
    }
}

pub struct Power {
    outlets: Vec<Arc<Outlet>>,
    index: HashMap<String, usize>,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    stagger: Duration,
    /// When the last power-on started. A power-on claims its start once the stagger has passed
    /// since then, and switches without holding the lock: a backend that hangs delays no other
    /// outlet's power-on.
    next_on: std::sync::Mutex<Option<Instant>>,
    metrics: Arc<Metrics>,
}

/// Who the audit log names for what powerd does by itself.
pub const SELF: &str = "powerd";

impl Power {
    /// Opens every outlet per its `on_at_start` policy. Outlets that must come on do so through
    /// the normal, staggered path, so that a controller reboot does not switch every Pi on at once.
    pub async fn start(
        cfg: &Config,
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        sim: &Arc<SimLog>,
        metrics: Arc<Metrics>,
    ) -> Result<Power, PowerError> {
        let mut power = Power {
            outlets: Vec::new(),
            index: HashMap::new(),
            store,
            clock,
            stagger: cfg.power_on_stagger,
            next_on: std::sync::Mutex::new(None),
            metrics,
        };
        let mut to_switch_on = Vec::new();
        for oc in &cfg.outlets {
            let record = power.store.get(&oc.id);
            let remembered = record.as_ref().map(|r| r.state);
            let desired = match oc.on_at_start {
                StartPolicy::On => Some(PowerState::On),
                StartPolicy::Off => Some(PowerState::Off),
                StartPolicy::Restore => remembered,
            };
            let start = match (oc.on_at_start, desired) {
                (StartPolicy::Off, _) => Start::Force(PowerState::Off),
                (_, Some(PowerState::Off)) => Start::Adopt(Some(PowerState::Off)),
                // Power-ons happen below, staggered; an outlet already on stays on untouched.
                _ => Start::Adopt(None),
            };
            let (backend, state) =
                outlet::open(oc, start, sim)
                    .await
                    .map_err(|error| PowerError::Backend {
                        outlet: oc.id.clone(),
                        error,
                    })?;
            if desired == Some(PowerState::On) && state == PowerState::Off {
                to_switch_on.push(power.outlets.len());
            }
            let record = record.filter(|r| r.state == state);
            let off_since = (state == PowerState::Off).then(|| power.clock.now());
            power.index.insert(oc.id.clone(), power.outlets.len());
            power.set_gauge(&oc.id, state);
            power.outlets.push(Arc::new(Outlet {
                cfg: oc.clone(),
                backend,
                serial: tokio::sync::Mutex::new(off_since),
                status: RwLock::new((state, record)),
            }));
            tracing::info!(outlet = %oc.id, backend = oc.backend.kind(), %state, "outlet ready");
        }
        for i in to_switch_on {
            let o = power.outlets[i].clone();
            let mut off_since = o.serial.lock().await;
            power
                .switch_on(&o, &mut off_since, SELF, "on_at_start")
                .await?;
        }
        Ok(power)
    }

    pub fn list(&self) -> Vec<OutletView> {
        self.outlets.iter().map(|o| o.view()).collect()
    }

    pub fn get(&self, id: &str) -> Option<OutletView> {
        self.outlet(id).ok().map(|o| o.view())
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.outlets.iter().map(|o| o.cfg.id.as_str())
    }

    fn outlet(&self, id: &str) -> Result<&Arc<Outlet>, PowerError> {
        self.index
            .get(id)
            .map(|&i| &self.outlets[i])
            .ok_or_else(|| PowerError::UnknownOutlet(id.to_string()))
    }

    /// Runs `action` on outlet `id` for `who`; returns the outlet afterwards. Asking for the
    /// state an outlet is already in changes nothing.
    pub async fn apply(
        &self,
        id: &str,
        action: Action,
        who: &str,
    ) -> Result<OutletView, PowerError> {
        let o = self.outlet(id)?.clone();
        let mut off_since = o.serial.lock().await;
        match action {
            Action::On => {
                if o.commanded() == PowerState::Off {
                    self.switch_on(&o, &mut off_since, who, "on").await?;
                }
            }
            Action::Off => {
                if o.commanded() == PowerState::On {
                    self.switch_off(&o, &mut off_since, who, "off").await?;
                }
            }
            Action::Cycle => {
                if o.commanded() == PowerState::On {
                    self.switch_off(&o, &mut off_since, who, "cycle").await?;
                }
                self.switch_on(&o, &mut off_since, who, "cycle").await?;
            }
        }
        Ok(o.view())
    }

    async fn switch_off(
        &self,
        o: &Outlet,
        off_since: &mut Option<Instant>,
        who: &str,
        action: &str,
    ) -> Result<(), PowerError> {
        self.switch(o, PowerState::Off).await?;
        *off_since = Some(self.clock.now());
        self.commit(o, PowerState::Off, who, action).await
    }

    async fn switch_on(
        &self,
        o: &Outlet,
        off_since: &mut Option<Instant>,
        who: &str,
        action: &str,
    ) -> Result<(), PowerError> {
        if let Some(since) = *off_since {
            self.sleep_until(since + o.cfg.min_off).await;
        }
        // Claim the power-on when it is due (a stagger after the last one started), then
        // switch without holding anything: a backend that hangs delays nobody else.
        loop {
            let due = {
                let mut last = self.next_on.lock().unwrap_or_else(|e| e.into_inner());
                let now = self.clock.now();
                match *last {
                    Some(l) if now < l + self.stagger => Some(l + self.stagger),
                    _ => {
                        *last = Some(now);
                        None
                    }
                }
            };
            match due {
                Some(deadline) => self.sleep_until(deadline).await,
                None => break,
            }
        }
        self.switch(o, PowerState::On).await?;
        *off_since = None;
        self.commit(o, PowerState::On, who, action).await
    }

    async fn switch(&self, o: &Outlet, state: PowerState) -> Result<(), PowerError> {
        o.backend.set(state).await.map_err(|error| {
            self.metrics.error("backend_failed");
            tracing::error!(outlet = %o.cfg.id, %state, error = %error, "switch failed");
            PowerError::Backend {
                outlet: o.cfg.id.clone(),
                error,
            }
        })
    }

    /// The switch happened: remember it, count it, persist it.
    async fn commit(
        &self,
        o: &Outlet,
        state: PowerState,
        who: &str,
        action: &str,
    ) -> Result<(), PowerError> {
        *o.status.write().unwrap_or_else(|e| e.into_inner()) = (state, None);
        self.set_gauge(&o.cfg.id, state);
        self.metrics
            .transitions
            .get_or_create(&TransitionLabels {
                outlet: o.cfg.id.clone(),
                state: state.to_string(),
            })
            .inc();
        let record = self
            .store
            .record(&o.cfg.id, state, who, action)
            .await
            .map_err(|error| {
                self.metrics.error("state_not_saved");
                PowerError::State {
                    outlet: o.cfg.id.clone(),
                    error,
                }
            })?;
        o.status.write().unwrap_or_else(|e| e.into_inner()).1 = Some(record);
        Ok(())
    }

    fn set_gauge(&self, id: &str, state: PowerState) {
        self.metrics
            .outlet_on
            .get_or_create(&OutletLabels { outlet: id.into() })
            .set(i64::from(state == PowerState::On));
    }

    /// Sleeps until the injected clock reaches `deadline` (re-checking, so timer rounding can
    /// never make a wait short).
    async fn sleep_until(&self, deadline: Instant) {
        loop {
            let now = self.clock.now();
            if now >= deadline {
                return;
            }
            tokio::time::sleep(deadline - now).await;
        }
    }
}
