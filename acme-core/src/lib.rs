//! ACME issuance, renewal and the certificate lifecycle, on top of
//! `cert-store` and `dns-verify`.
//!
//! - [`Issuer`]: [`AcmeIssuer`] (instant-acme: account kept in the store,
//!   HTTP-01 / TLS-ALPN-01 answers published in [`ChallengeResponses`],
//!   DNS-01 through CNAME delegation with [`Dns01Solver`]) and
//!   [`LocalCaIssuer`] (rcgen; the embedded default).
//! - [`CertManager`]: ensure/get/import, single flight in and across
//!   processes, renewal, retries, resumption, events.
//! - [`IssueError`] with its [`ErrorClass`]es, mapped from ACME problem
//!   documents, and [`RetryPolicy`] deciding what happens after each failure.
//! - [`RenewalPolicy`]: when to renew, when to warn about self-managed
//!   certificates (never renewed); time comes from a [`Clock`].
//! - [`Event`], [`EventSink`] and the per-hostname [`ActivityLog`].
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use acme_core::{CertManager, CertRequest, LocalCaIssuer, ManagerConfig};
//! use cert_store::{CertStore, MemoryStorage};
//!
//! let storage = Arc::new(MemoryStorage::new());
//! let issuer = Arc::new(LocalCaIssuer::new(Arc::clone(&storage)));
//! let manager = CertManager::new(Arc::new(CertStore::new(storage)), issuer, ManagerConfig::default());
//! let bundle = manager.ensure(&CertRequest::new(["shop.example.com"])).await.unwrap();
//! assert_eq!(bundle.meta().names, ["shop.example.com"]);
//! # });
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod acme;
mod clock;
mod error;
mod events;
mod issuer;
mod local_ca;
mod manager;
mod order_limit;
mod renewal;
mod retry;
mod solver;

pub use acme::AcmeIssuer;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ErrorClass, IssueError, RetryDecision};
pub use events::{ACTIVITY_LOG_LIMIT, ActivityLog, Event, EventKind, EventSink};
pub use issuer::{CertRequest, Issuer, KeyAlgorithm};
pub use local_ca::LocalCaIssuer;
pub use manager::{CertManager, CertStatus, ManagerConfig, RetryState};
pub use order_limit::{OrderLimit, TokenBucket};
pub use renewal::{RenewalAction, RenewalPolicy};
pub use retry::RetryPolicy;
pub use solver::{ChallengeKind, ChallengeResponses, Dns01Solver, stored_http01, stored_tls_alpn01};
