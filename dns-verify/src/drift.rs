//! Drift: what changed between the last good report and a fresh one.

use serde::{Deserialize, Serialize};

use crate::{RecordReport, RecordStatus};

/// One record whose state changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftChange {
    /// The record name.
    pub name: String,
    /// The expectation kind (`acme_delegation`, `ownership_txt`, `routing`).
    pub kind: String,
    /// Status before.
    pub before: RecordStatus,
    /// Status now.
    pub after: RecordStatus,
    /// Values before.
    pub observed_before: Vec<String>,
    /// Values now.
    pub observed_after: Vec<String>,
}

/// Records whose status or observed values differ between `last_good` and
/// `fresh`. A record that failed to look up now (`LookupFailed`) is not
/// drift: failures are temporary and say nothing about the records.
///
/// ```
/// use dns_verify::drift;
/// assert!(drift(&[], &[]).is_empty());
/// ```
#[must_use]
pub fn drift(last_good: &[RecordReport], fresh: &[RecordReport]) -> Vec<DriftChange> {
    fresh
        .iter()
        .filter(|now| now.status != RecordStatus::LookupFailed)
        .filter_map(|now| {
            let before = last_good.iter().find(|b| b.expectation == now.expectation)?;
            let mut a = before.observed.clone();
            let mut b = now.observed.clone();
            a.sort();
            b.sort();
            (before.status != now.status || a != b).then(|| DriftChange {
                name: now.name.clone(),
                kind: now.expectation.kind().to_owned(),
                before: before.status,
                after: now.status,
                observed_before: before.observed.clone(),
                observed_after: now.observed.clone(),
            })
        })
        .collect()
}
