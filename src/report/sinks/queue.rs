//! One endpoint's bounded queue: a non-blocking `offer` that drops the event
//! when the queue is full and warns once per burst of drops.

use crate::report::events::{DeploymentEvent, EventKind};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc;

/// The sending half of an endpoint's queue, with its event filter.
#[derive(Debug)]
pub struct EndpointQueue {
    label: String,
    kinds: Vec<EventKind>,
    tx: mpsc::Sender<DeploymentEvent>,
    /// Set by the first drop of a burst, cleared by the next accepted event.
    dropping: AtomicBool,
}

impl EndpointQueue {
    /// A queue of `capacity` (at least 1) events of `kinds` for the endpoint
    /// named `label` (no secret in it), and the worker's receiving half.
    #[must_use]
    pub fn new(
        label: String,
        kinds: &[EventKind],
        capacity: usize,
    ) -> (EndpointQueue, mpsc::Receiver<DeploymentEvent>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let queue = EndpointQueue {
            label,
            kinds: kinds.to_vec(),
            tx,
            dropping: AtomicBool::new(false),
        };
        (queue, rx)
    }

    #[must_use]
    pub fn accepts(&self, kind: EventKind) -> bool {
        self.kinds.contains(&kind)
    }

    /// Queues the event without waiting; false when it was dropped (queue
    /// full, or the worker gone).
    pub fn offer(&self, event: DeploymentEvent) -> bool {
        match self.tx.try_send(event) {
            Ok(()) => {
                if self.dropping.swap(false, Ordering::Relaxed) {
                    tracing::info!(endpoint = %self.label, "notification queue accepts events again");
                }
                true
            }
            Err(error) => {
                if !self.dropping.swap(true, Ordering::Relaxed) {
                    let why = match error {
                        mpsc::error::TrySendError::Full(_) => "the queue is full",
                        mpsc::error::TrySendError::Closed(_) => "the endpoint's worker stopped",
                    };
                    tracing::warn!(
                        endpoint = %self.label,
                        kind = error.into_inner().kind.as_str(),
                        "dropping notification events: {why}"
                    );
                }
                false
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn full_queue_drops_and_recovers() {
        let (queue, mut rx) = EndpointQueue::new("test".into(), &[EventKind::Applied], 2);
        let event = || DeploymentEvent::new(EventKind::Applied, "c", "r");
        assert!(queue.offer(event()));
        assert!(queue.offer(event()));
        assert!(!queue.offer(event()));
        assert!(!queue.offer(event()));
        assert!(queue.dropping.load(Ordering::Relaxed));
        rx.try_recv().unwrap();
        assert!(queue.offer(event()));
        assert!(!queue.dropping.load(Ordering::Relaxed));
        assert!(queue.accepts(EventKind::Applied));
        assert!(!queue.accepts(EventKind::Ready));
        drop(rx);
        assert!(!queue.offer(event()));
    }
}
