//! Retries of API calls: 429 (honouring the server's `retryAfterSeconds`, capped at
//! [`MAX_RETRY_AFTER`]), 5xx, timeouts and connection errors are retried with exponential
//! backoff, a bounded number of times and never past the caller's deadline. Everything else
//! (4xx: invalid, forbidden, conflict) fails at once. Each attempt is also cut at the deadline
//! (with at least [`MIN_ATTEMPT`] per attempt): kube's client has its own retry layer for 429,
//! 503 and 504 that sleeps for whatever `Retry-After` header the server sends, uncapped and
//! unaware of our deadline.
//!
//! Must not retry non-transient errors, and must not sleep or wait past the deadline.
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Attempts per call, the first included.
pub const MAX_ATTEMPTS: u32 = 6;
/// The longest wait a server's `retryAfterSeconds` can ask for.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// The time every attempt gets, even one started at or after the deadline (so a last write
/// after a timed-out wait is still tried once).
pub const MIN_ATTEMPT: Duration = Duration::from_secs(5);

/// How long to wait before retrying `error`, or `None` if it must not be retried.
pub fn retry_delay(error: &kube::Error, attempt: u32) -> Option<Duration> {
    let backoff = Duration::from_millis(100u64.saturating_mul(1 << attempt.min(6)));
    match error {
        kube::Error::Api(status) => match status.code {
            429 => {
                let hinted = status
                    .details
                    .as_ref()
                    .map(|d| d.retry_after_seconds)
                    .unwrap_or(0);
                Some(if hinted > 0 {
                    Duration::from_secs(u64::from(hinted)).min(MAX_RETRY_AFTER)
                } else {
                    backoff
                })
            }
            500..=599 => Some(backoff),
            _ => None,
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
            Some(backoff)
        }
        _ => None,
    }
}

/// The error of an attempt cut at the deadline.
fn deadline_error(what: &str) -> kube::Error {
    kube::Error::Api(Box::new(
        kube::core::Status::failure(
            &format!(
                "{what}: no answer from the API server before the sync deadline (it may be \
                 throttling requests with a long Retry-After, or unavailable)"
            ),
            "Timeout",
        )
        .with_code(504),
    ))
}

/// Runs `call` until it succeeds, fails with a non-transient error, runs out of attempts, or
/// the next wait would end after `deadline`. An attempt still running at the deadline (or
/// [`MIN_ATTEMPT`] after it started, if later) is abandoned with a 504 `Timeout` error.
pub async fn with_retry<T, F, Fut>(
    deadline: Instant,
    what: &str,
    mut call: F,
) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 0;
    loop {
        let cut = deadline.max(Instant::now() + MIN_ATTEMPT);
        let error = match tokio::time::timeout_at(cut, call()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e,
            Err(_) => return Err(deadline_error(what)),
        };
        attempt += 1;
        let Some(delay) = retry_delay(&error, attempt) else {
            return Err(error);
        };
        if attempt >= MAX_ATTEMPTS || Instant::now() + delay > deadline {
            return Err(error);
        }
        tracing::debug!(what, attempt, delay_ms = delay.as_millis() as u64, error = %error, "retrying");
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(Status {
            code,
            ..Status::failure("x", "y")
        }))
    }

    #[test]
    fn which_errors_retry() {
        assert!(retry_delay(&api_error(503), 1).is_some());
        assert!(retry_delay(&api_error(429), 1).is_some());
        assert!(retry_delay(&api_error(409), 1).is_none());
        assert!(retry_delay(&api_error(422), 1).is_none());
        let mut status = Status {
            code: 429,
            ..Status::failure("slow down", "TooManyRequests")
        };
        status.details = Some(kube::core::response::StatusDetails {
            name: String::new(),
            group: String::new(),
            kind: String::new(),
            uid: String::new(),
            causes: Vec::new(),
            retry_after_seconds: 3,
        });
        assert_eq!(
            retry_delay(&kube::Error::Api(Box::new(status.clone())), 1),
            Some(Duration::from_secs(3))
        );
        // A long hint is capped.
        if let Some(d) = status.details.as_mut() {
            d.retry_after_seconds = 3600;
        }
        assert_eq!(
            retry_delay(&kube::Error::Api(Box::new(status)), 1),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_past_the_deadline_fails_at_once() {
        let throttled = |seconds: u32| {
            let mut status = Status {
                code: 429,
                ..Status::failure("slow down", "TooManyRequests")
            };
            status.details = Some(kube::core::response::StatusDetails {
                name: String::new(),
                group: String::new(),
                kind: String::new(),
                uid: String::new(),
                causes: Vec::new(),
                retry_after_seconds: seconds,
            });
            kube::Error::Api(Box::new(status))
        };
        let start = Instant::now();
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = with_retry(start + Duration::from_secs(4), "t", || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(throttled(3600)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(
            (calls.load(Ordering::SeqCst), start.elapsed()),
            (1, Duration::ZERO)
        );
        // Within the deadline the hint is waited for, exactly.
        let calls = AtomicU32::new(0);
        let result = with_retry(start + Duration::from_secs(60), "t", || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move { if n == 0 { Err(throttled(2)) } else { Ok(n) } }
        })
        .await;
        assert_eq!(result.ok(), Some(1));
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_hangs_is_cut_at_the_deadline() {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(20);
        let result: Result<(), _> = with_retry(deadline, "hang", || async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        })
        .await;
        let err = result.expect_err("cut");
        assert!(err.to_string().contains("sync deadline"), "{err}");
        assert_eq!(start.elapsed(), Duration::from_secs(20));
        // Past the deadline, an attempt still gets MIN_ATTEMPT.
        let start = Instant::now();
        let result: Result<(), _> = with_retry(start, "late", || async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        })
        .await;
        assert!(result.is_err());
        assert_eq!(start.elapsed(), MIN_ATTEMPT);
        let result = with_retry(start, "late but quick", || async {
            Ok::<_, kube::Error>(7)
        })
        .await;
        assert_eq!(result.ok(), Some(7));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_then_succeeds() {
        let calls = AtomicU32::new(0);
        let deadline = Instant::now() + Duration::from_secs(60);
        let result = with_retry(deadline, "test", || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move { if n < 2 { Err(api_error(500)) } else { Ok(n) } }
        })
        .await;
        assert_eq!(result.ok(), Some(2));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_the_deadline_and_on_permanent_errors() {
        let calls = AtomicU32::new(0);
        let deadline = Instant::now() + Duration::from_millis(250);
        let result: Result<(), _> = with_retry(deadline, "test", || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(api_error(503)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let calls = AtomicU32::new(0);
        let result: Result<(), _> =
            with_retry(Instant::now() + Duration::from_secs(60), "test", || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(api_error(404)) }
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
