//! Fault injection and request counting for the HTTP layer.
//!
//! Owns: the run-time switchable fault rule (error rates per verb, 429 + Retry-After,
//! latency, dropped watches, refused connections) with a seeded RNG so a test run is
//! deterministic, and the per-verb request counters benchmarks read.
//! Must not: touch the store; faults are decided before a request reaches it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The API verbs kubesim distinguishes (for faults and counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
}

impl Verb {
    const ALL: [Verb; 7] = [
        Verb::Get,
        Verb::List,
        Verb::Watch,
        Verb::Create,
        Verb::Update,
        Verb::Patch,
        Verb::Delete,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// One fault configuration. `Default` injects nothing.
#[derive(Debug, Clone, Default)]
pub struct FaultRule {
    /// Verbs the error rate and latency apply to; empty = all verbs.
    pub verbs: Vec<Verb>,
    /// Probability in [0, 1] that a matching request fails with `status`.
    pub error_rate: f64,
    /// HTTP status of injected failures (e.g. 500, 503, 429).
    pub status: u16,
    /// With status 429 (or any): the `Retry-After` header value in seconds.
    pub retry_after: Option<u32>,
    /// Added to every matching request before it is served.
    pub latency: Duration,
    /// Watch streams are closed after this long (clients must re-watch).
    pub drop_watches_after: Option<Duration>,
    /// New TCP connections are accepted and closed at once.
    pub refuse_connections: bool,
    /// Seed of the RNG deciding which requests fail.
    pub seed: u64,
}

/// What the HTTP layer must do for one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Decision {
    pub latency: Duration,
    pub fail: Option<(u16, Option<u32>)>,
    pub drop_watch_after: Option<Duration>,
}

/// Switchable at run time; cloning shares the same rule.
#[derive(Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<Option<(FaultRule, StdRng)>>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("Faults")
            .field("rule", &guard.as_ref().map(|(r, _)| r))
            .finish()
    }
}

impl Faults {
    /// Installs `rule` (replacing any previous one) and reseeds the RNG.
    pub fn set(&self, rule: FaultRule) {
        let rng = StdRng::seed_from_u64(rule.seed);
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = Some((rule, rng));
    }

    /// Removes every fault.
    pub fn clear(&self) {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub(crate) fn refuse_connections(&self) -> bool {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().is_some_and(|(r, _)| r.refuse_connections)
    }

    pub(crate) fn decide(&self, verb: Verb) -> Decision {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some((rule, rng)) = guard.as_mut() else {
            return Decision::default();
        };
        let mut decision = Decision::default();
        if verb == Verb::Watch {
            decision.drop_watch_after = rule.drop_watches_after;
        }
        if !rule.verbs.is_empty() && !rule.verbs.contains(&verb) {
            return decision;
        }
        decision.latency = rule.latency;
        if rule.error_rate > 0.0 && rng.random::<f64>() < rule.error_rate {
            let status = if rule.status == 0 { 500 } else { rule.status };
            decision.fail = Some((status, rule.retry_after));
        }
        decision
    }
}

/// Requests served, per verb (a snapshot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub get: u64,
    pub list: u64,
    pub watch: u64,
    pub create: u64,
    pub update: u64,
    pub patch: u64,
    pub delete: u64,
}

impl RequestCounts {
    /// get + list + watch.
    pub fn reads(&self) -> u64 {
        self.get + self.list + self.watch
    }

    /// create + update + patch + delete.
    pub fn writes(&self) -> u64 {
        self.create + self.update + self.patch + self.delete
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    counts: [AtomicU64; 7],
}

impl Counters {
    pub fn record(&self, verb: Verb) {
        self.counts[verb.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> RequestCounts {
        let c = |v: Verb| self.counts[v.index()].load(Ordering::Relaxed);
        let _ = Verb::ALL;
        RequestCounts {
            get: c(Verb::Get),
            list: c(Verb::List),
            watch: c(Verb::Watch),
            create: c(Verb::Create),
            update: c(Verb::Update),
            patch: c(Verb::Patch),
            delete: c(Verb::Delete),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_decisions() {
        let rule = FaultRule {
            error_rate: 0.5,
            status: 503,
            seed: 7,
            ..FaultRule::default()
        };
        let run = || {
            let f = Faults::default();
            f.set(rule.clone());
            (0..32)
                .map(|_| f.decide(Verb::Get).fail.is_some())
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        assert!(a.iter().any(|x| *x) && a.iter().any(|x| !*x));
    }

    #[test]
    fn verbs_filter_and_clear() {
        let f = Faults::default();
        f.set(FaultRule {
            verbs: vec![Verb::Patch],
            error_rate: 1.0,
            status: 429,
            retry_after: Some(2),
            ..Default::default()
        });
        assert_eq!(f.decide(Verb::Get).fail, None);
        assert_eq!(f.decide(Verb::Patch).fail, Some((429, Some(2))));
        f.clear();
        assert_eq!(f.decide(Verb::Patch).fail, None);
    }

    #[test]
    fn counters_split_reads_and_writes() {
        let c = Counters::default();
        c.record(Verb::Get);
        c.record(Verb::List);
        c.record(Verb::Patch);
        let s = c.snapshot();
        assert_eq!((s.reads(), s.writes()), (2, 1));
    }
}
