//! DNS record checks against a zone's authoritative servers.
//!
//! Not implemented yet: this crate is reserved for the `dns-verify` part of the
//! design (per-hostname record status, drift detection, `DnsProvider`). It
//! exports nothing so far.
