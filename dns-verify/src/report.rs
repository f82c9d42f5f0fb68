//! Check results: per record, per server, per SAN — with a fix a person can act on.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Expectation, Hostname};

/// The state of one expected record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    /// Every authoritative server returns the expected value.
    Valid,
    /// NXDOMAIN or no data of that type.
    Missing,
    /// A different value; see the observed values.
    Wrong,
    /// TXT records sit where the CNAME delegation is required.
    Duplicate,
    /// The answer points into a CDN proxy instead of at the edge.
    Proxied,
    /// Timeout, SERVFAIL, REFUSED or a network error: temporary, retried.
    LookupFailed,
}

impl RecordStatus {
    /// Whether a later check may give another answer without anyone acting.
    #[must_use]
    pub fn is_temporary(self) -> bool {
        self == Self::LookupFailed
    }

    /// Upper-case label for tables.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Valid => "VALID",
            Self::Missing => "MISSING",
            Self::Wrong => "WRONG",
            Self::Duplicate => "DUPLICATE",
            Self::Proxied => "PROXIED",
            Self::LookupFailed => "LOOKUP_FAILED",
        }
    }
}

/// What one authoritative server answered for one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerAnswer {
    /// The server asked.
    pub server: SocketAddr,
    /// The status judged from this server's answer alone.
    pub status: RecordStatus,
    /// What it returned (CNAME chain, TXT values, addresses).
    pub observed: Vec<String>,
    /// Extra detail: the failure, `NXDOMAIN` vs `NODATA`, a CNAME loop …
    pub detail: Option<String>,
}

/// The state of one expected record across all authoritative servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordReport {
    /// What was expected.
    pub expectation: Expectation,
    /// The queried name.
    pub name: String,
    /// The record type a person creates.
    pub record_type: String,
    /// The expected value.
    pub expected: String,
    /// The overall status: `Valid` only when every server agrees.
    pub status: RecordStatus,
    /// The values observed (from the first server that disagrees, else the first).
    pub observed: Vec<String>,
    /// Every server's answer.
    pub servers: Vec<ServerAnswer>,
    /// Servers that do not (yet) return the expected value while others do.
    pub lagging: Vec<SocketAddr>,
    /// When the check ran.
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    /// One line a person can act on.
    pub fix: String,
}

/// The DNS state of one certificate name, from its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SanStatus {
    /// Not decided yet (a lookup failed temporarily).
    Pending,
    /// A required record does not exist.
    DnsMissing,
    /// A record has the wrong value or is proxied.
    DnsWrong,
    /// Leftover TXT records block the CNAME delegation.
    DnsDuplicate,
    /// Every record is in place.
    Valid,
}

impl SanStatus {
    /// Aggregates record statuses: duplicate, then wrong/proxied, then
    /// missing, then pending (a failed lookup) — the first that applies.
    #[must_use]
    pub fn from_records<'a>(statuses: impl IntoIterator<Item = &'a RecordStatus>) -> Self {
        let statuses: Vec<RecordStatus> = statuses.into_iter().copied().collect();
        let any = |s: RecordStatus| statuses.contains(&s);
        if any(RecordStatus::Duplicate) {
            Self::DnsDuplicate
        } else if any(RecordStatus::Wrong) || any(RecordStatus::Proxied) {
            Self::DnsWrong
        } else if any(RecordStatus::Missing) {
            Self::DnsMissing
        } else if any(RecordStatus::LookupFailed) || statuses.is_empty() {
            Self::Pending
        } else {
            Self::Valid
        }
    }
}

/// All records of one SAN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SanReport {
    /// The SAN.
    pub host: Hostname,
    /// Aggregated status.
    pub status: SanStatus,
    /// One report per expected record.
    pub records: Vec<RecordReport>,
}

impl SanReport {
    /// Groups record reports by SAN, keeping the order in which SANs appear.
    #[must_use]
    pub fn group(records: Vec<RecordReport>) -> Vec<SanReport> {
        let mut out: Vec<SanReport> = Vec::new();
        let mut position: std::collections::HashMap<Hostname, usize> = std::collections::HashMap::new();
        for record in records {
            let host = record.expectation.host();
            match position.get(host) {
                Some(&i) => out[i].records.push(record),
                None => {
                    position.insert(host.clone(), out.len());
                    out.push(SanReport {
                        host: host.clone(),
                        status: SanStatus::Pending,
                        records: vec![record],
                    });
                }
            }
        }
        for san in &mut out {
            san.status = SanStatus::from_records(san.records.iter().map(|r| &r.status));
        }
        out
    }
}

/// The one-line fix for a record in `status`.
#[must_use]
pub fn fix_for(
    status: RecordStatus,
    expectation: &Expectation,
    observed: &[String],
    lagging: &[SocketAddr],
    detail: Option<&str>,
) -> String {
    let name = expectation.record_name();
    let kind = expectation.record_type();
    let expected = expectation.expected_value();
    let seen = if observed.is_empty() { "nothing".to_owned() } else { observed.join(", ") };
    let mut fix = match status {
        RecordStatus::Valid => "Nothing to do.".to_owned(),
        RecordStatus::Missing => format!("Create a {kind} record at {name} with the value {expected}."),
        RecordStatus::Wrong => format!("Change the {kind} record at {name} from {seen} to {expected}."),
        RecordStatus::Duplicate => format!(
            "Delete the TXT record(s) at {name} ({seen}), then create the CNAME to {expected}: a CNAME cannot sit beside other records."
        ),
        RecordStatus::Proxied => format!(
            "{name} is proxied by a CDN ({seen}): set this record to DNS only (proxy off) so that it points at {expected}."
        ),
        RecordStatus::LookupFailed => format!(
            "The authoritative servers did not answer for {name} ({}); this is temporary and is rechecked automatically.",
            detail.unwrap_or("no answer")
        ),
    };
    if !lagging.is_empty() && status != RecordStatus::LookupFailed {
        let servers: Vec<String> = lagging.iter().map(ToString::to_string).collect();
        fix.push_str(&format!(" Not yet visible on {}; wait for propagation.", servers.join(", ")));
    }
    fix
}
