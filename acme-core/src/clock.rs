//! Wall-clock time, injectable so that schedules are tested without waiting.

use std::sync::{Mutex, PoisonError};

use time::OffsetDateTime;

/// The current time.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that moves only when told (tests).
///
/// ```
/// use acme_core::{Clock, ManualClock};
/// let clock = ManualClock::starting_now();
/// let t0 = clock.now();
/// clock.advance(time::Duration::days(61));
/// assert_eq!(clock.now() - t0, time::Duration::days(61));
/// ```
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    /// A clock showing the current system time.
    #[must_use]
    pub fn starting_now() -> Self {
        Self(Mutex::new(OffsetDateTime::now_utc()))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: time::Duration) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
