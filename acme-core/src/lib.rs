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
//! - [`Event`], [`EventSink`] and the in-memory [`EventLog`].
//! - [`keys`]: every storage key this crate writes, all under `tls/`.
//!
//! [`CertManager`] and [`ChallengeResponses`] implement the serving traits of
//! `cert_store::serving` ([`CertSource`](cert_store::CertSource),
//! [`Provision`](cert_store::Provision),
//! [`ChallengeAnswers`](cert_store::ChallengeAnswers)), which is all
//! sni-proxy needs; neither crate depends on the other.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use acme_core::{CertManager, CertRequest, LocalCaIssuer, ManagerConfig};
//! use cert_store::{CertStore, MemoryStorage};
//!
//! let store = Arc::new(CertStore::new(Arc::new(MemoryStorage::new())));
//! let issuer = Arc::new(LocalCaIssuer::new(Arc::clone(&store)));
//! let manager = CertManager::new(store, issuer, ManagerConfig::default());
//! let bundle = manager.ensure(&CertRequest::new(["shop.example.com"])).await.unwrap();
//! assert_eq!(bundle.meta().names, ["shop.example.com"]);
//! # });
//! ```
//!
//! A whole server with sni-proxy, in the order that lets the CA reach the
//! challenge listeners: **bind** every listener, **serve**, then
//! **provision** (the manager's background task never starts by itself):
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use acme_core::{AcmeIssuer, CertManager, CertRequest, ManagerConfig};
//! use cert_store::{CertStore, FileStorage};
//! use sni_proxy::{Http80Config, Proxy, TlsConfig};
//!
//! let storage = Arc::new(FileStorage::new("./data")?);
//! let store = Arc::new(CertStore::new(Arc::clone(&storage)));
//! let acme = AcmeIssuer::new("https://acme-v02.api.letsencrypt.org/directory", Arc::clone(&store));
//! // HTTP-01 / TLS-ALPN-01 answers, also those other nodes on the store published
//! let answers = Arc::new(acme.responses().clone().with_shared_store(storage));
//! let manager = Arc::new(CertManager::new(store, Arc::new(acme), ManagerConfig::default()));
//!
//! // 1. bind: certificates come from the manager, renewals are served at once
//! let tls = TlsConfig::from_source(manager.clone(), "127.0.0.1:3000".parse()?).with_answers(answers.clone());
//! let bound = Proxy::new("0.0.0.0:443".parse()?, tls)
//!     .with_http("0.0.0.0:80".parse()?, Http80Config::new(answers))
//!     .bind()
//!     .await?;
//! // 2. serve, 3. then provision
//! let running = bound.serve_then(async move {
//!     manager.start_background();
//!     let _ = manager.ensure(&CertRequest::new(["shop.customer.com"])).await;
//! });
//! // … on shutdown:
//! running.shutdown().await;
//! # Ok(()) }
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod acme;
mod clock;
mod error;
mod events;
mod issuer;
pub mod keys;
mod local_ca;
mod manager;
mod metered_http;
pub mod metrics;
mod order_limit;
mod renewal;
mod retry;
mod solver;

pub use acme::{AcmeIssuer, DEFAULT_MAX_IN_FLIGHT};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{BoxError, ErrorClass, IssueError, RetryDecision};
pub use events::{EVENT_LOG_PER_NAME, Event, EventKind, EventLog, EventSink};
pub use issuer::{CertRequest, Issuer, KeyAlgorithm};
pub use local_ca::LocalCaIssuer;
pub use manager::{CertManager, CertManagerBuilder, CertStatus, ManagerConfig, RetryState};
pub use order_limit::OrderLimit;
pub use renewal::{RenewalAction, RenewalPolicy};
pub use retry::RetryPolicy;
pub use solver::{
    ChallengeKind, ChallengeResponses, Dns01Solver, TenantOf, stored_http01, stored_tls_alpn01,
};

/// The README's example, compiled and run as a doc test so it
/// stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
