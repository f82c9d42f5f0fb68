//! ACME issuance, renewal and the certificate lifecycle, on top of
//! `cert-store` and `dns-verify`.
//!
//! Work in progress (issue #5). Available now, each with tests:
//! - [`IssueError`] with its [`ErrorClass`]es, mapped from ACME problem
//!   documents, and [`RetryPolicy`] deciding what happens after each failure;
//! - [`RenewalPolicy`]: when to renew, when to warn about self-managed
//!   certificates (never renewed);
//! - [`DomainState`]: the custom-domain lifecycle as a transition table;
//! - [`Event`], [`EventSink`] and the per-hostname [`ActivityLog`].
//!
//! Still to come: issuers (`AcmeIssuer` on instant-acme, `LocalCaIssuer`),
//! challenge solvers, `CertManager`.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod acme;
mod error;
mod events;
mod issuer;
mod lifecycle;
mod local_ca;
mod renewal;
mod retry;
mod solver;

pub use acme::AcmeIssuer;
pub use error::{ErrorClass, IssueError, RetryDecision};
pub use events::{ACTIVITY_LOG_LIMIT, ActivityLog, Event, EventKind, EventSink};
pub use issuer::{CertRequest, Issuer, KeyAlgorithm};
pub use lifecycle::{DomainState, InvalidTransition, TRANSITIONS};
pub use local_ca::LocalCaIssuer;
pub use renewal::{RenewalAction, RenewalPolicy};
pub use retry::RetryPolicy;
pub use solver::{ChallengeKind, ChallengeResponses, Dns01Solver};
