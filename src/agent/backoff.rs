//! Capped exponential backoff with jitter for retrying a failing source.
//!
//! Pure: computes delays, never sleeps; the caller waits with `tokio::time`.
use std::time::Duration;

/// Delay before the next attempt: `initial · 2^(failures-1)`, capped at `max`, with up to
/// 10% jitter subtracted so replicas and sources do not retry in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            failures: 0,
        }
    }

    /// Number of failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Record a failure and return how long to wait before retrying (no jitter).
    pub fn fail(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.current()
    }

    /// The delay for the current failure count (zero when not failing).
    pub fn current(&self) -> Duration {
        if self.failures == 0 {
            return Duration::ZERO;
        }
        let shift = (self.failures - 1).min(31);
        let factor = 1u32 << shift;
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// `current()` minus `jitter` (a fraction in `[0, 1)`) × 10%.
    pub fn current_with_jitter(&self, jitter: f64) -> Duration {
        let base = self.current();
        base.mul_f64(1.0 - 0.1 * jitter.clamp(0.0, 1.0))
    }

    /// A success resets the sequence.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps_then_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        assert_eq!(b.current(), Duration::ZERO);
        let delays: Vec<u64> = (0..6).map(|_| b.fail().as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 10, 10]);
        assert_eq!(b.failures(), 6);
        b.reset();
        assert_eq!(b.fail(), Duration::from_secs(1));
    }

    #[test]
    fn never_overflows() {
        let mut b = Backoff::new(Duration::from_secs(5), Duration::from_secs(300));
        for _ in 0..1000 {
            b.fail();
        }
        assert_eq!(b.current(), Duration::from_secs(300));
    }

    #[test]
    fn jitter_only_shortens_by_at_most_ten_percent() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(10));
        b.fail();
        assert_eq!(b.current_with_jitter(0.0), Duration::from_secs(10));
        assert_eq!(b.current_with_jitter(1.0), Duration::from_secs(9));
        assert_eq!(b.current_with_jitter(7.0), Duration::from_secs(9));
    }
}
