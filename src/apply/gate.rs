//! Whether this process may write to the cluster at this instant.
//!
//! Every write request ([`super::KubeCluster`] checks before each attempt,
//! retries included) passes the gate, so that a replica that stopped
//! leading, or that is shutting down, stops writing at once instead of at
//! the end of its cycle. Leadership is granted *until an instant*: the
//! elector grants it up to its renew deadline after each successful renewal
//! (a retry period before any standby can take the lease over), so a leader
//! whose renewals fail stops writing by itself, whatever the elector task
//! is doing.

use std::sync::{Arc, Mutex, PoisonError};
use tokio::time::Instant;

/// Why a write is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not the leader, or the leadership was not renewed in time.
    NotLeader,
    /// The process is shutting down.
    ShuttingDown,
}

impl Refusal {
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::NotLeader => "this replica is not the leader",
            Refusal::ShuttingDown => "the reconciler is shutting down",
        }
    }
}

#[derive(Debug)]
struct State {
    shutting_down: bool,
    /// `None`: no leadership is needed (leader election off, one-shot
    /// commands). `Some(t)`: writes are allowed until `t`.
    leader_until: Option<Instant>,
}

/// A shared switch for writes; clones share it.
#[derive(Debug, Clone)]
pub struct WriteGate {
    state: Arc<Mutex<State>>,
}

impl WriteGate {
    /// Open until [`WriteGate::shut`]: no leadership needed.
    #[must_use]
    pub fn open() -> Self {
        WriteGate {
            state: Arc::new(Mutex::new(State {
                shutting_down: false,
                leader_until: None,
            })),
        }
    }

    /// Closed until leadership is granted.
    #[must_use]
    pub fn for_leader() -> Self {
        let gate = WriteGate::open();
        gate.revoke();
        gate
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Allows writes until `deadline` (extended by each renewal).
    pub fn grant_until(&self, deadline: Instant) {
        self.with(|state| state.leader_until = Some(deadline));
    }

    /// Refuses writes until the next grant.
    pub fn revoke(&self) {
        let past = Instant::now();
        self.with(|state| state.leader_until = Some(past));
    }

    /// Refuses every write from now on.
    pub fn shut(&self) {
        self.with(|state| state.shutting_down = true);
    }

    /// `Ok` when a write may be sent now.
    pub fn check(&self) -> Result<(), Refusal> {
        self.with(|state| {
            if state.shutting_down {
                Err(Refusal::ShuttingDown)
            } else if state
                .leader_until
                .is_some_and(|until| Instant::now() >= until)
            {
                Err(Refusal::NotLeader)
            } else {
                Ok(())
            }
        })
    }

    /// Whether a write may be sent now.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.check().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn leadership_is_granted_until_an_instant() {
        let gate = WriteGate::for_leader();
        assert_eq!(gate.check(), Err(Refusal::NotLeader));
        gate.grant_until(Instant::now() + Duration::from_secs(60));
        assert_eq!(gate.check(), Ok(()));
        gate.grant_until(Instant::now());
        assert_eq!(gate.check(), Err(Refusal::NotLeader), "expired");
        gate.grant_until(Instant::now() + Duration::from_secs(60));
        gate.revoke();
        assert_eq!(gate.check(), Err(Refusal::NotLeader));
    }

    #[test]
    fn shutting_down_closes_for_good_and_clones_share_it() {
        let gate = WriteGate::open();
        let clone = gate.clone();
        assert!(clone.is_open());
        gate.shut();
        assert_eq!(clone.check(), Err(Refusal::ShuttingDown));
        clone.grant_until(Instant::now() + Duration::from_secs(60));
        assert_eq!(gate.check(), Err(Refusal::ShuttingDown));
    }
}
