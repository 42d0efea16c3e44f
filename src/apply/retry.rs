//! Retries of API calls: 429 (honouring the server's `retryAfterSeconds`), 5xx, timeouts and
//! connection errors are retried with exponential backoff, a bounded number of times and never
//! past the caller's deadline. Everything else (4xx: invalid, forbidden, conflict) fails at once.
//!
//! Must not retry non-transient errors, and must not sleep past the deadline.
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Attempts per call, the first included.
pub const MAX_ATTEMPTS: u32 = 6;

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
                    Duration::from_secs(u64::from(hinted))
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

/// Runs `call` until it succeeds, fails with a non-transient error, runs out of attempts, or
/// the next wait would end after `deadline`.
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
        let error = match call().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
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
            retry_delay(&kube::Error::Api(Box::new(status)), 1),
            Some(Duration::from_secs(3))
        );
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
