//! What a failed attempt leads to: a retry after backoff, waiting for another attempt still in
//! flight, or failing the job.

use rand::Rng;
use shoal_protocol::FailureKind;
use std::time::Duration;

/// The fate of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// Another attempt of the task is still running: let it finish.
    AwaitOther,
    /// Run the task again after this delay.
    Retry(Duration),
    /// The task fails for good.
    Fail,
}

/// Decides for an attempt that failed with `kind`, the task having had `attempts` attempts of
/// at most `max_attempts`, with `inflight` others still running; `job_failing`: another task has
/// already failed the job (nothing new is launched).
pub(super) fn decide(
    kind: FailureKind,
    attempt: u32,
    attempts: u32,
    inflight: u32,
    max_attempts: u32,
    job_failing: bool,
    base_backoff: Duration,
) -> Decision {
    match kind {
        FailureKind::Retryable if inflight > 0 => Decision::AwaitOther,
        FailureKind::Retryable if attempts < max_attempts && !job_failing => {
            Decision::Retry(backoff(base_backoff, attempt))
        }
        _ => Decision::Fail,
    }
}

/// Exponential backoff: `base` doubled per attempt, capped at 10 s, with ±50% jitter.
pub(super) fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(Duration::from_secs(10));
    let jitter: f64 = rand::rng().random_range(0.5..1.5);
    capped.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(100);
        let first = backoff(base, 1);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(150));
        let fourth = backoff(base, 4);
        assert!(fourth >= Duration::from_millis(400) && fourth <= Duration::from_millis(1200));
        assert!(backoff(base, 40) <= Duration::from_secs(15));
    }

    #[test]
    fn fatal_fails_retryable_retries_until_the_limit() {
        let ms = Duration::from_millis(1);
        assert_eq!(decide(FailureKind::Fatal, 1, 1, 0, 5, false, ms), Decision::Fail);
        assert!(matches!(decide(FailureKind::Retryable, 1, 1, 0, 3, false, ms), Decision::Retry(_)));
        assert_eq!(decide(FailureKind::Retryable, 3, 3, 0, 3, false, ms), Decision::Fail);
        assert_eq!(decide(FailureKind::Retryable, 1, 2, 1, 3, false, ms), Decision::AwaitOther);
        assert_eq!(decide(FailureKind::Retryable, 1, 1, 0, 3, true, ms), Decision::Fail);
    }
}
