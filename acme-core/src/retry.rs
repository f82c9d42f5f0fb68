//! When to try again.

use std::time::Duration;

use crate::{ErrorClass, IssueError, RetryDecision};

/// Backoff for failed issuance, modelled on certmagic's schedule.
///
/// - Temporary failures (CA unavailable, DNS lookup, storage): the
///   [`schedule`](Self::schedule) (1 m, 2 m, 2 m, 5 m, 10 m, 10 m, 20 m, 20 m,
///   30 m, 1 h, 3 h, then 6 h), each with ±10 % jitter, giving up after
///   [`give_up_after`](Self::give_up_after) (30 days).
/// - Rate limited: the CA's `Retry-After`, or 1 h.
/// - Missing or conflicting DNS: recheck every [`dns_recheck`](Self::dns_recheck)
///   (1 h) and issue by itself once the records verify.
/// - Validation failures: retried on the schedule too (the usual cause is a
///   record that is fixed later), but never faster than it.
/// - Internal failures (key generation, CSR, challenge certificate): retried
///   on the schedule too — a resource that was short (entropy, memory) may
///   be back — and given up after the same bound, with a `Failed` event of
///   class `internal` each time so that a person looks.
/// - No SAN, account errors: a person must act.
///
/// ```
/// use std::time::Duration;
/// use acme_core::{IssueError, RetryDecision, RetryPolicy};
/// let policy = RetryPolicy::default().without_jitter();
/// let err = IssueError::ca_unavailable("503");
/// assert_eq!(policy.decide(&err, 0, Duration::ZERO), RetryDecision::RetryAfter(Duration::from_secs(60)));
/// ```
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Delays for successive temporary failures; the last repeats.
    pub schedule: Vec<Duration>,
    /// Stop retrying temporary failures after this long.
    pub give_up_after: Duration,
    /// Recheck interval while DNS records are missing.
    pub dns_recheck: Duration,
    /// Wait when rate limited without a `Retry-After`.
    pub rate_limit_default: Duration,
    /// Relative jitter (0.1 = ±10 %).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let m = |n: u64| Duration::from_secs(60 * n);
        Self {
            schedule: vec![m(1), m(2), m(2), m(5), m(10), m(10), m(20), m(20), m(30), m(60), m(180), m(360)],
            give_up_after: Duration::from_secs(30 * 24 * 3600),
            dns_recheck: m(60),
            rate_limit_default: m(60),
            jitter: 0.1,
        }
    }
}

impl RetryPolicy {
    /// The same policy with no jitter (tests, reproducible schedules).
    #[must_use]
    pub fn without_jitter(mut self) -> Self {
        self.jitter = 0.0;
        self
    }

    /// The decision after the `attempt`-th consecutive failure (0-based),
    /// `failing_for` after the first one.
    #[must_use]
    pub fn decide(&self, error: &IssueError, attempt: usize, failing_for: Duration) -> RetryDecision {
        match error.class() {
            ErrorClass::NoSan | ErrorClass::Account => RetryDecision::GiveUp,
            ErrorClass::CnameNotFound | ErrorClass::TxtConflict => {
                RetryDecision::WaitForDns(self.dns_recheck)
            }
            ErrorClass::RateLimited => {
                let wait = match error {
                    IssueError::RateLimited { retry_after: Some(d) } => *d,
                    _ => self.rate_limit_default,
                };
                RetryDecision::RetryAfter(wait)
            }
            _ if failing_for >= self.give_up_after => RetryDecision::GiveUp,
            // Not the CA's doing, but a person is told through the event and
            // the schedule's growing delays keep retries cheap.
            ErrorClass::Internal => RetryDecision::RetryAfter(self.jittered(self.backoff(attempt))),
            _ => RetryDecision::RetryAfter(self.jittered(self.backoff(attempt))),
        }
    }

    /// The un-jittered delay after the `attempt`-th failure.
    #[must_use]
    pub fn backoff(&self, attempt: usize) -> Duration {
        self.schedule.get(attempt).or(self.schedule.last()).copied().unwrap_or(Duration::from_secs(60))
    }

    fn jittered(&self, d: Duration) -> Duration {
        if self.jitter <= 0.0 {
            return d;
        }
        let factor = 1.0 + rand::random_range(-self.jitter..=self.jitter);
        d.mul_f64(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_grows_then_caps_and_gives_up() {
        let p = RetryPolicy::default().without_jitter();
        let err = IssueError::ca_unavailable("x");
        let secs = |a| match p.decide(&err, a, Duration::ZERO) {
            RetryDecision::RetryAfter(d) => d.as_secs(),
            other => panic!("{other:?}"),
        };
        assert_eq!([secs(0), secs(1), secs(3), secs(11), secs(50)], [60, 120, 300, 21_600, 21_600]);
        assert_eq!(p.decide(&err, 99, Duration::from_secs(31 * 24 * 3600)), RetryDecision::GiveUp);
    }

    #[test]
    fn classes_decide() {
        let p = RetryPolicy::default().without_jitter();
        let d = |e: IssueError| p.decide(&e, 0, Duration::ZERO);
        assert_eq!(
            d(IssueError::RateLimited { retry_after: Some(Duration::from_secs(42)) }),
            RetryDecision::RetryAfter(Duration::from_secs(42))
        );
        assert_eq!(
            d(IssueError::RateLimited { retry_after: None }),
            RetryDecision::RetryAfter(Duration::from_secs(3600))
        );
        assert_eq!(
            d(IssueError::CnameNotFound { name: "a".into() }),
            RetryDecision::WaitForDns(Duration::from_secs(3600))
        );
        assert_eq!(d(IssueError::NoSan), RetryDecision::GiveUp);
        assert_eq!(d(IssueError::account("x")), RetryDecision::GiveUp);
        assert_eq!(
            d(IssueError::internal("key generation", rcgen::Error::KeyGenerationUnavailable)),
            RetryDecision::RetryAfter(Duration::from_secs(60))
        );
        assert_eq!(
            p.decide(
                &IssueError::internal("csr", rcgen::Error::KeyGenerationUnavailable),
                3,
                Duration::from_secs(31 * 24 * 3600)
            ),
            RetryDecision::GiveUp
        );
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let p = RetryPolicy::default();
        for _ in 0..200 {
            let RetryDecision::RetryAfter(d) = p.decide(&IssueError::dns_fetch("t"), 0, Duration::ZERO)
            else {
                panic!()
            };
            assert!((54.0..=66.0).contains(&d.as_secs_f64()), "{d:?}");
        }
    }
}
