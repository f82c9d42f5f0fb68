//! DNS record checks against a zone's authoritative servers, for custom domains.
//!
//! A customer's hostname needs a few records: a CNAME delegating
//! `_acme-challenge.<host>` into a zone the platform controls, an ownership
//! TXT at `_customdomain-challenge.<host>`, and routing to the edge. This
//! crate tells, per record and per server, whether they are right — and if
//! not, what to do, in words a customer understands:
//!
//! - [`Requirements`] turns a [`Hostname`] into [`Expectation`]s.
//!   `_acme-challenge` delegates per hostname or, with
//!   [`DelegationTarget::PerTenant`], to one name shared by a tenant's SANs.
//! - [`Checker`] asks every authoritative server directly (recursion off, no
//!   cache, UDP with TCP fallback, per-query timeout), follows CNAME chains
//!   (bounded, loops detected) and returns a [`RecordReport`] per expectation
//!   with a [`RecordStatus`]: `Valid`, `Missing`, `Wrong`, `Duplicate`,
//!   `Proxied` or `LookupFailed` (temporary, never reported as missing).
//!   [`SanReport`] aggregates a name's records into a [`SanStatus`].
//! - [`drift`] compares a fresh report with the last good one.
//! - [`DnsProvider`] writes records: [`MemoryProvider`], and
//!   [`Rfc2136Provider`] (dynamic update signed with TSIG, via hickory).
//!   `provider_conformance` (feature `testing`) checks a provider of your own
//!   through the [`Checker`].
//!
//! Wire format and transport are hickory's; this crate only decides what to
//! ask and what the answers mean (the judging in `evaluate` is pure).

mod checker;
mod drift;
mod evaluate;
mod expect;
#[cfg(feature = "local-zone")]
mod local_zone;
pub mod metrics;
mod provider;
#[cfg(feature = "testing")]
pub mod provider_conformance;
mod proxy;
mod query;
mod report;

/// The attribute that implements [`DnsProvider`]: a provider of your own
/// needs no other dependency.
pub use async_trait::async_trait;
pub use checker::{Authorities, Checker, CheckerBuilder, MAX_CNAME_CHAIN, interpret_response};
pub use drift::{DriftChange, drift};
pub use evaluate::{AnswerEnd, Observation, aggregate, judge};
pub use expect::{
    ACME_CHALLENGE_LABEL, DelegationTarget, DelegationTargetError, Expectation, OWNERSHIP_LABEL,
    Requirements, tenant_label,
};
#[cfg(feature = "local-zone")]
pub use local_zone::{LocalZone, LocalZoneError};
pub use provider::{
    BoxError, DnsProvider, DnsRecord, MemoryProvider, PropagationError, ProviderError, RecordData,
    Rfc2136Provider, cname_conflict, same_type, txt_strings, wait_for_propagation,
};
pub use proxy::{CLOUDFLARE_RANGES, CLOUDFLARE_RANGES_SOURCE_DATE, InvalidRange, ProxyRanges};
pub use query::{LookupError, SharedError};
pub use report::{RecordReport, RecordStatus, SanReport, SanStatus, ServerAnswer, fix_for};
pub use tls_names::{
    Hostname, HostnameError, canonical_hostname, lookup_exact_then_wildcard, name_matches, wildcard_of,
};

/// The README's example (its example needs feature `local-zone`), compiled and run as a doc test so it
/// stays true.
#[cfg(all(doctest, feature = "local-zone"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
