//! [`OrderLimit`]: a token bucket in front of the CA's new-order endpoint,
//! shaped like the CA's own published limit, so that bursts the CA accepts
//! go through at once and the CA's limit is never what stops us.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// At most `burst` new orders at once, refilled evenly at `burst` per
/// `period` — Let's Encrypt's "300 new orders per account per 3 hours" by
/// default. Unlike a fixed rate (one order every N seconds), 100 customers
/// arriving together are all served immediately.
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
#[derive(Debug)]
pub struct OrderLimit {
    bucket: Mutex<TokenBucket>,
}

impl Default for OrderLimit {
    /// Let's Encrypt: 300 new orders per account per 3 hours.
    fn default() -> Self {
        Self::new(300, Duration::from_secs(3 * 3600))
    }
}

impl OrderLimit {
    /// `burst` orders per `period`, starting full.
    #[must_use]
    pub fn new(burst: u32, period: Duration) -> Self {
        let burst = burst.max(1);
        let per_second = f64::from(burst) / period.as_secs_f64().max(f64::MIN_POSITIVE);
        Self { bucket: Mutex::new(TokenBucket::full(burst, per_second, Instant::now())) }
    }

    /// Takes one order's token, or says how long until one is available.
    ///
    /// # Errors
    /// The wait until the next token.
    pub fn try_take(&self) -> Result<(), Duration> {
        self.bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take(Instant::now())
    }
}

/// A token bucket: up to `capacity` tokens, refilled continuously at
/// `per_second`. The one rate limiter of the workspace (CA orders here,
/// on-demand asks in sni-proxy).
///
/// ```
/// use std::time::{Duration, Instant};
/// use acme_core::TokenBucket;
/// let start = Instant::now();
/// let mut bucket = TokenBucket::full(1, 0.5, start);
/// assert!(bucket.take(start).is_ok());
/// assert_eq!(bucket.take(start), Err(Duration::from_secs(2)));
/// assert!(bucket.take(start + Duration::from_secs(2)).is_ok());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    #[must_use]
    pub fn full(capacity: u32, per_second: f64, now: Instant) -> Self {
        let capacity = f64::from(capacity);
        Self { capacity, per_second: per_second.max(0.0), tokens: capacity, at: now }
    }

    /// Takes a token at `now`, or says how long until one is there
    /// (`Duration::MAX` when the bucket never refills).
    ///
    /// # Errors
    /// The wait until the next token.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.capacity);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - self.tokens;
        if self.per_second > 0.0 {
            Err(Duration::try_from_secs_f64(missing / self.per_second).unwrap_or(Duration::MAX))
        } else {
            Err(Duration::MAX)
        }
    }
}
