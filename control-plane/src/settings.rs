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
    /// How often the worker re-reads every connection (to see what other
    /// edges sharing the store changed).
    pub rescan_interval: Duration,
    /// Connections one worker round advances at once.
    pub worker_concurrency: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            challenge: Challenge::default(),
            quotas: Quotas::default(),
            upgrade_url: "https://example.com/upgrade".to_owned(),
            drift_interval: Duration::from_secs(300),
            rescan_interval: Duration::from_secs(30),
            worker_concurrency: 8,
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
