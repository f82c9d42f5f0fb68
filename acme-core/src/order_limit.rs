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
    burst: f64,
    per_token: Duration,
    state: Mutex<(f64, Instant)>,
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
        let burst = f64::from(burst.max(1));
        Self { burst, per_token: period.div_f64(burst), state: Mutex::new((burst, Instant::now())) }
    }

    /// Takes one order's token, or says how long until one is available.
    ///
    /// # Errors
    /// The wait until the next token.
    pub fn try_take(&self) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let refilled = now.duration_since(state.1).as_secs_f64() / self.per_token.as_secs_f64();
        let tokens = (state.0 + refilled).min(self.burst);
        if tokens >= 1.0 {
            *state = (tokens - 1.0, now);
            Ok(())
        } else {
            *state = (tokens, now);
            Err(self.per_token.mul_f64(1.0 - tokens))
        }
    }
}
