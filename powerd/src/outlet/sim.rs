//! The in-memory backend: every transition is recorded with a timestamp from the injected
//! clock, which is what the tests read min_off, stagger and serialisation from.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{BackendError, BackendFuture, PowerBackend, PowerState};
use crate::clock::Clock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub outlet: String,
    pub state: PowerState,
    pub at: Instant,
}

/// Shared by all sim outlets of one daemon.
pub struct SimLog {
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    transitions: Vec<Transition>,
    levels: HashMap<String, PowerState>,
    fail: HashSet<String>,
}

impl SimLog {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        SimLog {
            clock,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn transitions(&self) -> Vec<Transition> {
        self.lock().transitions.clone()
    }

    pub fn transitions_of(&self, outlet: &str) -> Vec<Transition> {
        self.lock()
            .transitions
            .iter()
            .filter(|t| t.outlet == outlet)
            .cloned()
            .collect()
    }

    pub fn level(&self, outlet: &str) -> Option<PowerState> {
        self.lock().levels.get(outlet).copied()
    }

    /// Makes every later switch of `outlet` fail (or succeed again), to exercise error paths.
    pub fn set_failing(&self, outlet: &str, failing: bool) {
        let mut inner = self.lock();
        if failing {
            inner.fail.insert(outlet.to_string());
        } else {
            inner.fail.remove(outlet);
        }
    }
}

pub struct SimOutlet {
    id: String,
    log: Arc<SimLog>,
}

impl SimOutlet {
    pub fn new(id: &str, log: Arc<SimLog>) -> Self {
        SimOutlet {
            id: id.to_string(),
            log,
        }
    }

    /// Takes over a level without recording a transition (a daemon restart).
    pub fn adopt(&self, state: PowerState) {
        self.log.lock().levels.insert(self.id.clone(), state);
    }

    fn switch(&self, state: PowerState) -> Result<(), BackendError> {
        let at = self.log.clock.now();
        let mut inner = self.log.lock();
        if inner.fail.contains(&self.id) {
            return Err(BackendError::SimFailure(self.id.clone()));
        }
        inner.levels.insert(self.id.clone(), state);
        inner.transitions.push(Transition {
            outlet: self.id.clone(),
            state,
            at,
        });
        Ok(())
    }
}

impl PowerBackend for SimOutlet {
    fn kind(&self) -> &'static str {
        "sim"
    }

    fn set(&self, state: PowerState) -> BackendFuture<'_, ()> {
        Box::pin(async move { self.switch(state) })
    }

    fn observe(&self) -> BackendFuture<'_, Option<PowerState>> {
        Box::pin(async move { Ok(self.log.level(&self.id)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::time::Duration;

    #[tokio::test]
    async fn records_transitions_with_clock_timestamps() {
        let clock = Arc::new(ManualClock::default());
        let log = Arc::new(SimLog::new(clock.clone()));
        let a = SimOutlet::new("a", log.clone());
        let t0 = clock.now();
        a.set(PowerState::On).await.unwrap();
        clock.advance(Duration::from_millis(250));
        a.set(PowerState::Off).await.unwrap();
        let t = log.transitions_of("a");
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].state, t[0].at), (PowerState::On, t0));
        assert_eq!(t[1].at - t[0].at, Duration::from_millis(250));
        assert_eq!(a.observe().await.unwrap(), Some(PowerState::Off));
        log.set_failing("a", true);
        assert!(a.set(PowerState::On).await.is_err());
        assert_eq!(log.transitions().len(), 2);
    }
}
