//! ACME issuance, renewal and certificate lifecycle on top of `cert-store`.
//!
//! Not implemented yet: this crate is reserved for the `acme-core` part of the
//! design (issuers, challenge solvers, `CertManager`). It exports nothing so far.
