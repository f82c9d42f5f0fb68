//! [`OrderLimit`]: a token bucket in front of the CA's new-order endpoint,
//! shaped like the CA's own published limit, so that bursts the CA accepts
//! go through at once and the CA's limit is never what stops us.

use std::{num::NonZeroU32, time::Duration};

use governor::{Quota, RateLimiter, clock::Clock as _};

/// At most `burst` new orders at once, refilled evenly at `burst` per
/// `period` — Let's Encrypt's "300 new orders per account per 3 hours" by
/// default. Unlike a fixed rate (one order every N seconds), 100 customers
/// arriving together are all served immediately. A GCRA token bucket from
/// the `governor` crate.
///
/// ```
/// use std::time::Duration;
/// use acme_core::OrderLimit;
/// let limit = OrderLimit::new(2, Duration::from_secs(3600));
/// assert!(limit.try_take().is_ok());
/// assert!(limit.try_take().is_ok());
/// let wait = limit.try_take().unwrap_err();
/// assert!(wait > Duration::from_secs(1700) && wait <= Duration::from_secs(1800));
/// ```
pub struct OrderLimit {
    quota: Quota,
    limiter: governor::DefaultDirectRateLimiter,
}

impl std::fmt::Debug for OrderLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderLimit").field("quota", &self.quota).finish_non_exhaustive()
    }
}

impl Default for OrderLimit {
    /// Let's Encrypt: 300 new orders per account per 3 hours.
    fn default() -> Self {
        Self::new(300, Duration::from_secs(3 * 3600))
    }
}

/// The longest `period` honoured: governor counts time in `u64` nanoseconds.
const LONGEST_PERIOD: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl OrderLimit {
    /// `burst` orders per `period`, starting full (a zero burst counts as 1,
    /// a zero period as 1 ns, a period over 100 years as 100 years).
    #[must_use]
    pub fn new(burst: u32, period: Duration) -> Self {
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let per_order = (period.min(LONGEST_PERIOD) / burst.get()).max(Duration::from_nanos(1));
        let quota =
            Quota::with_period(per_order).unwrap_or_else(|| Quota::per_second(burst)).allow_burst(burst);
        Self { quota, limiter: RateLimiter::direct(quota) }
    }

    /// Takes one order's token, or says how long until one is available.
    ///
    /// # Errors
    /// The wait until the next token.
    pub fn try_take(&self) -> Result<(), Duration> {
        self.limiter.check().map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_even_refill() {
        let limit = OrderLimit::new(3, Duration::from_secs(3));
        for _ in 0..3 {
            assert!(limit.try_take().is_ok());
        }
        let wait = limit.try_take().unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::from_millis(900), "{wait:?}");
        // Degenerate settings do not panic.
        assert!(OrderLimit::new(0, Duration::ZERO).try_take().is_ok());
        assert!(OrderLimit::new(u32::MAX, Duration::MAX).try_take().is_ok());
    }
}
