//! The control plane's settings, typed and validated when they are made.

use std::{collections::BTreeMap, str::FromStr, time::Duration};

/// How certificates are validated by the CA. Decides which records a
/// customer must create: DNS-01 needs the `_acme-challenge` delegation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Challenge {
    /// HTTP-01, answered by the edge's port 80 (the default).
    #[default]
    Http01,
    /// TLS-ALPN-01, answered by the edge's port 443.
    TlsAlpn01,
    /// DNS-01 through the customer's `_acme-challenge` CNAME delegation.
    Dns01,
}

/// The billing period a plan's connect limit counts in: connections
/// *created* in the current period count, archived or not.
///
/// ```
/// use control_plane::QuotaPeriod;
/// use time::macros::datetime;
/// let (label, end) = QuotaPeriod::Month.of(datetime!(2026-12-02 22:00 UTC));
/// assert_eq!((label.as_str(), end), ("2026-12", datetime!(2027-01-01 00:00 UTC)));
/// let (label, end) = QuotaPeriod::Week.of(datetime!(2026-12-02 22:00 UTC));
/// assert_eq!((label.as_str(), end), ("2026-W49", datetime!(2026-12-07 00:00 UTC)));
/// assert_eq!("day".parse::<QuotaPeriod>(), Ok(QuotaPeriod::Day));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum QuotaPeriod {
    /// Calendar month, UTC (the default).
    #[default]
    Month,
    /// ISO week, Monday to Sunday, UTC.
    Week,
    /// Calendar day, UTC.
    Day,
}

/// A quota period that is not `month`, `week` or `day`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quota period {0:?} is not month, week or day")]
pub struct InvalidQuotaPeriod(pub String);

impl FromStr for QuotaPeriod {
    type Err = InvalidQuotaPeriod;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "month" => Ok(Self::Month),
            "week" => Ok(Self::Week),
            "day" => Ok(Self::Day),
            _ => Err(InvalidQuotaPeriod(s.to_owned())),
        }
    }
}

impl QuotaPeriod {
    /// The period `now` falls in: its label (`2026-12`, `2026-W49`,
    /// `2026-12-02`) and when it ends.
    #[must_use]
    pub fn of(self, now: time::OffsetDateTime) -> (String, time::OffsetDateTime) {
        let now = now.to_offset(time::UtcOffset::UTC);
        let midnight = now.replace_time(time::Time::MIDNIGHT);
        match self {
            Self::Month => {
                let (year, month) = (now.year(), now.month());
                let (next_year, next_month) = if month == time::Month::December {
                    (year + 1, time::Month::January)
                } else {
                    (year, month.next())
                };
                let end = time::Date::from_calendar_date(next_year, next_month, 1)
                    .map_or(midnight, |d| d.midnight().assume_utc());
                (format!("{year:04}-{:02}", u8::from(month)), end)
            }
            Self::Week => {
                let (year, week, _) = now.to_iso_week_date();
                let days_left = 7 - i64::from(now.weekday().number_days_from_monday());
                (format!("{year:04}-W{week:02}"), midnight + time::Duration::days(days_left))
            }
            Self::Day => (
                format!("{:04}-{:02}-{:02}", now.year(), u8::from(now.month()), now.day()),
                midnight + time::Duration::DAY,
            ),
        }
    }
}

/// Connection limits per plan, e.g. parsed from `free=5,pro=1000`.
///
/// ```
/// use control_plane::Quotas;
/// let q: Quotas = "free=5, pro=1000".parse().unwrap();
/// assert_eq!(q.limit("pro"), Some(1000));
/// assert_eq!(q.limit("gold"), None);
/// assert!("free=five".parse::<Quotas>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quotas(BTreeMap<String, usize>);

/// A quota setting that is not `plan=limit`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quota {entry:?} is not `plan=limit` with a whole number limit")]
pub struct InvalidQuota {
    /// The entry as given.
    pub entry: String,
}

impl Quotas {
    /// Quotas from `(plan, limit)` pairs.
    #[must_use]
    pub fn new(plans: impl IntoIterator<Item = (String, usize)>) -> Self {
        Self(plans.into_iter().collect())
    }

    /// The connection limit of `plan`, if the plan exists.
    #[must_use]
    pub fn limit(&self, plan: &str) -> Option<usize> {
        self.0.get(plan).copied()
    }

    /// Parses one `plan=limit` entry each.
    ///
    /// # Errors
    /// [`InvalidQuota`] naming the first bad entry.
    pub fn parse_entries<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, InvalidQuota> {
        let mut plans = BTreeMap::new();
        for entry in entries.into_iter().map(str::trim).filter(|e| !e.is_empty()) {
            let bad = || InvalidQuota { entry: entry.to_owned() };
            let (plan, limit) = entry.split_once('=').ok_or_else(bad)?;
            let plan = plan.trim();
            if plan.is_empty() {
                return Err(bad());
            }
            plans.insert(plan.to_owned(), limit.trim().parse().map_err(|_| bad())?);
        }
        Ok(Self(plans))
    }
}

impl Default for Quotas {
    /// `free=5,pro=1000`.
    fn default() -> Self {
        Self::new([("free".to_owned(), 5), ("pro".to_owned(), 1000)])
    }
}

impl FromStr for Quotas {
    type Err = InvalidQuota;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_entries(s.split(','))
    }
}

/// What the control plane needs to know about its surroundings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Settings {
    /// How certificates are validated.
    pub challenge: Challenge,
    /// Connection limits per plan.
    pub quotas: Quotas,
    /// Where a customer over quota is sent.
    pub upgrade_url: String,
    /// How often live hostnames are re-checked for drift.
    pub drift_interval: Duration,
    /// The period a plan's connect limit counts in.
    pub quota_period: QuotaPeriod,
    /// How long activity records are kept.
    pub activity_retention: Duration,
    /// Connections one worker round advances at once.
    pub worker_concurrency: usize,
    /// How long before expiry issued certificates are renewed (shown as
    /// the SSL view's `renews_at`; the certificate manager's setting).
    pub renew_before: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            challenge: Challenge::default(),
            quotas: Quotas::default(),
            upgrade_url: "https://example.com/upgrade".to_owned(),
            drift_interval: Duration::from_secs(300),
            quota_period: QuotaPeriod::Month,
            activity_retention: crate::DEFAULT_RETENTION,
            worker_concurrency: 8,
            renew_before: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl Settings {
    /// Whether certificates are validated by DNS-01 (the `_acme-challenge`
    /// delegation is then a required record).
    #[must_use]
    pub fn uses_dns01(&self) -> bool {
        self.challenge == Challenge::Dns01
    }
}
