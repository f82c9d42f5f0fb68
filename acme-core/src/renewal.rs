//! When to renew, and when to warn about certificates we do not renew.

use cert_store::{CertMeta, Provenance};
use time::{Duration, OffsetDateTime};

/// What a certificate needs at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewalAction {
    /// Nothing until `next_check`.
    Wait {
        /// When to look again.
        next_check: OffsetDateTime,
    },
    /// Renew now.
    Renew,
    /// A self-managed certificate is within `days_left` of expiry: warn
    /// (30, 14, 7, 1 days) — never renewed.
    Warn {
        /// Whole days until expiry (0 = expires today).
        days_left: i64,
    },
    /// It has expired.
    Expired,
}

/// Renewal timing: renew when a third of the lifetime remains or 30 days
/// before expiry, whichever comes first (never before half the lifetime has
/// passed); inside the CA's ARI window when it offers one. Self-managed
/// certificates are never renewed, only warned about.
///
/// ```
/// use acme_core::RenewalPolicy;
/// let policy = RenewalPolicy::default();
/// assert_eq!(policy.warning_days, [30, 14, 7, 1]);
/// ```
#[derive(Debug, Clone)]
pub struct RenewalPolicy {
    /// Renew this long before expiry at the latest.
    pub before_expiry: Duration,
    /// Warning thresholds for self-managed certificates, in days.
    pub warning_days: Vec<i64>,
}

impl Default for RenewalPolicy {
    fn default() -> Self {
        Self { before_expiry: Duration::days(30), warning_days: vec![30, 14, 7, 1] }
    }
}

impl RenewalPolicy {
    /// When `meta` should be renewed, given the CA's ARI window start if any.
    #[must_use]
    pub fn renew_at(&self, meta: &CertMeta, ari_window_start: Option<OffsetDateTime>) -> OffsetDateTime {
        if let Some(start) = ari_window_start {
            return start;
        }
        meta.renewal_time(self.before_expiry)
    }

    /// What to do with `meta` at `now`.
    #[must_use]
    pub fn action(
        &self,
        meta: &CertMeta,
        now: OffsetDateTime,
        ari_window_start: Option<OffsetDateTime>,
    ) -> RenewalAction {
        if meta.not_after <= now {
            return if meta.provenance == Provenance::SelfManaged {
                RenewalAction::Expired
            } else {
                RenewalAction::Renew
            };
        }
        if meta.provenance == Provenance::SelfManaged {
            let days_left = (meta.not_after - now).whole_days();
            if self.warning_threshold(days_left).is_some() {
                return RenewalAction::Warn { days_left };
            }
            let first_warning = self.warning_days.iter().copied().max().unwrap_or(30);
            return RenewalAction::Wait { next_check: meta.not_after - Duration::days(first_warning) };
        }
        let at = self.renew_at(meta, ari_window_start);
        if at <= now { RenewalAction::Renew } else { RenewalAction::Wait { next_check: at } }
    }

    /// The warning threshold (30, 14, 7, 1) that `days_left` has crossed, if any:
    /// each threshold is announced once.
    #[must_use]
    pub fn warning_threshold(&self, days_left: i64) -> Option<i64> {
        self.warning_days.iter().copied().filter(|d| days_left < *d).min()
    }
}
