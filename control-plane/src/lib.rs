//! The custom-domain control plane: what a SaaS platform keeps about its
//! customers' hostnames, and the rules that move them from "added" to
//! "served with a valid certificate" — with typed errors and no HTTP.
//!
//! - [`ControlPlane`]: create, check, verify, issue, watch for drift,
//!   archive, upload a certificate; the worker's round ([`ControlPlane::work_once`]);
//! - [`Connection`], [`DesiredRecord`], [`CertificateInfo`]: what a customer sees;
//! - [`DomainState`] and [`TRANSITIONS`]: the lifecycle as a transition table;
//! - [`Error`] with stable [`ErrorCode`]s, and a connection's [`Problem`];
//! - [`Repo`]: connections and hostname claims in a shared [`cert_store::Storage`]
//!   (keys under `edge/`, see [`keys`]);
//! - [`Outbox`]: signed webhooks stored before they are sent, through the
//!   embedder's [`WebhookTransport`];
//! - [`ActivityLog`]: every event of a hostname as an independent record;
//! - [`WidgetKey`]: tokens that let a customer's browser check one connection.
//!
//! What is served follows the [`acme_core::CertManager`] the control plane
//! issues through: connect it to the TLS server with
//! `sni_proxy::TlsConfig::from_source`, and every issue, upload and archive
//! reaches the proxy at once.
//!
//! An HTTP layer maps [`ErrorCode`] to statuses in one place; the `edge`
//! binary in this workspace's `examples` crate is such a layer (axum).

mod activity;
mod credentials;
mod delegation;
mod domain;
pub mod due;
mod error;
pub mod keys;
mod lifecycle;
pub mod metrics;
mod model;
mod repo;
mod secrets;
mod service;
mod settings;
mod source;
mod ssl;
mod tenant_index;
mod tenants;
mod webhooks;
mod widget;

pub use activity::{Activity, ActivityEntry, ActivityFilter, ActivityLog, ActivityPage, DEFAULT_RETENTION};
pub use credentials::{CredentialError, DnsCredentials, ProviderProblem, ProviderState};
pub use delegation::ClaimTenants;
pub use domain::{MAX_SANS, SanSet, is_registrable_domain};
pub use due::DueIndex;
pub use error::{CertificateRejected, ClaimHolder, Error, ErrorCode, Problem, ProblemCode};
pub use lifecycle::{DomainState, InvalidTransition, TRANSITIONS};
pub use model::{CertificateInfo, CertificateSource, Connection, DEFAULT_TENANT, DesiredRecord};
pub use repo::{Repo, WORK_LEASE_TTL, due_at};
pub use secrets::{Sealed, SecretBox, SecretsError};
pub use service::{ControlPlane, ControlPlaneBuilder, QuotaUsage, RecordCheck, RecordsCheck};
pub use settings::{Challenge, InvalidQuota, InvalidQuotaPeriod, QuotaPeriod, Quotas, Settings};
pub use source::DomainCerts;
pub use ssl::{SanCheck, SanDnsStatus, Ssl, SslCertificate, SslStatus, san_checks};
pub use tenant_index::{IndexHead, PAGE_SIZE, TenantIndex};
pub use tenants::{NewTenantKey, Tenant, Tenants, is_tenant_id};
pub use webhooks::{
    CertificateEvents, DeliveryError, Outbox, WebhookEvent, WebhookTransport, signature, verify_signature,
};
pub use widget::{WidgetGrant, WidgetKey};

/// The README's example, compiled and run as a doc test so it
/// stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
