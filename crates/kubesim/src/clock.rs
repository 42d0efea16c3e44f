//! The cluster clock: real time plus an offset that tests move forward.
//!
//! Owns: `now()` for everything in kubesim that needs time (timestamps, controllers,
//! progress deadlines) and the wake-up signal for the controller driver when time jumps.
//! Must not: sleep or schedule anything itself.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

/// Real time plus an offset tests can advance. Cloning shares the same clock.
#[derive(Clone)]
pub struct Clock {
    inner: Arc<Inner>,
}

struct Inner {
    offset: Mutex<SignedDuration>,
    /// Bumped on every `advance`, so the driver re-evaluates its deadlines.
    ticks: watch::Sender<u64>,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock").field("now", &self.now()).finish()
    }
}

impl Clock {
    /// A clock at real time.
    pub fn new() -> Self {
        let (ticks, _) = watch::channel(0);
        Self {
            inner: Arc::new(Inner {
                offset: Mutex::new(SignedDuration::ZERO),
                ticks,
            }),
        }
    }

    /// The cluster's current time.
    pub fn now(&self) -> Timestamp {
        let offset = *self.inner.offset.lock().unwrap_or_else(|e| e.into_inner());
        Timestamp::now()
            .checked_add(offset)
            .unwrap_or(Timestamp::MAX)
    }

    /// Moves the clock forward and wakes the controllers.
    pub fn advance(&self, by: Duration) {
        {
            let mut offset = self.inner.offset.lock().unwrap_or_else(|e| e.into_inner());
            let by = SignedDuration::try_from(by).unwrap_or(SignedDuration::MAX);
            *offset = offset.saturating_add(by);
        }
        self.inner.ticks.send_modify(|t| *t += 1);
    }

    /// A receiver that changes whenever the clock is advanced.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.ticks.subscribe()
    }
}

/// RFC 3339 with second precision, as Kubernetes writes timestamps.
pub(crate) fn rfc3339(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_now_and_notifies() {
        let clock = Clock::new();
        let rx = clock.subscribe();
        let before = clock.now();
        clock.advance(Duration::from_secs(3600));
        let after = clock.now();
        assert!(after.duration_since(before) >= SignedDuration::from_secs(3600));
        assert!(rx.has_changed().unwrap());
    }

    #[test]
    fn rfc3339_has_second_precision() {
        let ts: Timestamp = "2026-11-21T22:12:28.123Z".parse().unwrap();
        assert_eq!(rfc3339(ts), "2026-11-21T22:12:28Z");
    }
}
