//! Is the API server answering? [`ApiHealth`] is what `/readyz` and `/status` read; [`probe`]
//! keeps it current for as long as the agent runs (not only at start), so an API outage makes
//! the agent not-ready with the reason, and its end wakes every source at once instead of
//! leaving them in their failure backoff.
//!
//! Must not: write to the cluster, or decide anything about syncing (workers still sync, fail
//! and retry on their own; this only reports and wakes them).
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Shared;
use super::backoff::Backoff;

/// How often a healthy API server is asked (`GET /version`).
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// One probe's deadline (an API server that accepts connections but hangs is down, too).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Consecutive failed probes after which an API server that had answered counts as down
/// (one lost request is not an outage).
pub const FAILURES_TO_UNREADY: u32 = 2;

#[derive(Debug, Default)]
struct State {
    /// The API server has answered at least once.
    answered: bool,
    /// Consecutive failed probes.
    failures: u32,
    /// The last probe error, and since when probes have been failing.
    error: Option<(String, Instant)>,
}

/// What the agent knows about the API server's reachability.
#[derive(Debug, Default)]
pub struct ApiHealth {
    ok: AtomicBool,
    state: Mutex<State>,
}

impl ApiHealth {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The API server answers (it has answered, and has not failed repeatedly since).
    pub fn ok(&self) -> bool {
        self.ok.load(Ordering::SeqCst)
    }

    /// Record an answer. Returns true when this ends an outage (not-ready → ready).
    pub fn record_ok(&self) -> bool {
        let mut s = self.state();
        s.answered = true;
        s.failures = 0;
        s.error = None;
        !self.ok.swap(true, Ordering::SeqCst)
    }

    /// Record a failed probe at `now`. Returns true when this starts an outage.
    pub fn record_failure(&self, error: &str, now: Instant) -> bool {
        let mut s = self.state();
        s.failures = s.failures.saturating_add(1);
        let since = s.error.as_ref().map_or(now, |(_, at)| *at);
        s.error = Some((error.to_owned(), since));
        let down = !s.answered || s.failures >= FAILURES_TO_UNREADY;
        down && self.ok.swap(false, Ordering::SeqCst)
    }

    /// Why the API server does not count as reachable (`None` while it does).
    pub fn reason(&self, now: Instant) -> Option<String> {
        if self.ok() {
            return None;
        }
        let s = self.state();
        Some(match (&s.error, s.answered) {
            (None, _) => "API server has not answered yet".to_owned(),
            (Some((e, _)), false) => format!("API server has not answered yet: {e}"),
            (Some((e, since)), true) => format!(
                "API server unreachable for {}s: {e}",
                now.saturating_duration_since(*since).as_secs()
            ),
        })
    }
}

/// Ask the API server for its version every [`PROBE_INTERVAL`] (failures: sooner, with
/// backoff) until `stop`; record the outcome in `shared.api`, and when an outage ends poke
/// every source so it catches up at once.
pub async fn probe(client: kube::Client, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut backoff = Backoff::new(Duration::from_millis(500), PROBE_INTERVAL);
    loop {
        let answer = tokio::select! {
            r = tokio::time::timeout(PROBE_TIMEOUT, client.apiserver_version()) => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        let error = match answer {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {}s", PROBE_TIMEOUT.as_secs())),
        };
        let wait = match error {
            None => {
                backoff.reset();
                if shared.api.record_ok() {
                    tracing::info!("API server answers: ready");
                    for (_, trigger) in &shared.triggers {
                        trigger.poke();
                    }
                }
                PROBE_INTERVAL
            }
            Some(e) => {
                if shared.api.record_failure(&e, Instant::now()) {
                    shared.metrics.error("api");
                }
                if shared.api.ok() {
                    tracing::debug!(error = %e, "API server probe failed");
                } else {
                    tracing::warn!(error = %e, "API server unreachable: not ready");
                }
                backoff.fail()
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_ready_until_the_first_answer() {
        let h = ApiHealth::default();
        let now = Instant::now();
        assert!(!h.ok());
        assert_eq!(
            h.reason(now).as_deref(),
            Some("API server has not answered yet")
        );
        assert!(!h.record_failure("connection refused", now));
        assert_eq!(
            h.reason(now).as_deref(),
            Some("API server has not answered yet: connection refused")
        );
        assert!(h.record_ok());
        assert!(h.ok() && h.reason(now).is_none());
    }

    #[test]
    fn an_outage_needs_repeated_failures_and_ends_with_an_answer() {
        let h = ApiHealth::default();
        let t0 = Instant::now();
        h.record_ok();
        assert!(
            !h.record_failure("timeout", t0),
            "one failure is not an outage"
        );
        assert!(h.ok());
        assert!(h.record_failure("connection refused", t0 + Duration::from_secs(1)));
        assert!(!h.ok());
        assert!(!h.record_failure("connection refused", t0 + Duration::from_secs(2)));
        assert_eq!(
            h.reason(t0 + Duration::from_secs(12)).as_deref(),
            Some("API server unreachable for 12s: connection refused")
        );
        assert!(h.record_ok(), "the answer ends the outage");
        assert!(!h.record_ok());
        assert!(h.ok());
    }
}
