//! Connections, the records their customers create, their certificates.

use cert_store::{CertBundle, Provenance};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{DomainState, Problem, Ssl};

/// The tenant of connections created before tenants existed, and of an
/// edge run without tenants.
pub const DEFAULT_TENANT: &str = "default";

fn default_tenant() -> String {
    DEFAULT_TENANT.to_owned()
}

/// A customer's hostname on the platform.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Connection {
    /// Stable identifier.
    pub id: String,
    /// The tenant owning it (connections stored before tenants existed
    /// load as [`DEFAULT_TENANT`]).
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// The hostname (lowercase, punycode): the certificate's primary name.
    pub hostname: String,
    /// Whether the certificate also carries `*.<hostname>` (by default for
    /// a registrable domain such as `customer.com`).
    #[serde(default)]
    pub include_wildcard: bool,
    /// More names on the same certificate (at most 100 names in all).
    #[serde(default)]
    pub additional_sans: Vec<String>,
    /// The plan it counts against.
    pub plan: String,
    /// Lifecycle state.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "pending_ownership"))]
    pub state: DomainState,
    /// The records the customer must create.
    pub records: Vec<DesiredRecord>,
    /// The certificate served, once there is one.
    pub certificate: Option<CertificateInfo>,
    /// What last went wrong, in words, with its code.
    pub last_error: Option<Problem>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: OffsetDateTime,
    /// When the worker looks at it next.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub next_check_at: OffsetDateTime,
    /// DNS checks that found the records not (yet) right, in a row.
    pub failed_checks: u32,
    /// The ownership token (the value of the `_customdomain-challenge` TXT).
    pub ownership_token: String,
    /// The SSL view: status, each SAN's DNS status, the certificate.
    #[serde(default)]
    pub ssl: Ssl,
}

impl Connection {
    /// Every name of its certificate: the hostname, `*.<hostname>` when
    /// included, then the additional SANs.
    #[must_use]
    pub fn sans(&self) -> Vec<String> {
        let mut out = vec![self.hostname.clone()];
        if self.include_wildcard {
            out.push(format!("*.{}", self.hostname));
        }
        out.extend(self.additional_sans.iter().cloned());
        out
    }
}

/// One DNS record the customer creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DesiredRecord {
    /// `ownership`, `acme_delegation` or `routing`.
    pub purpose: String,
    /// The record's name.
    pub name: String,
    /// `TXT`, `CNAME`, or `A`.
    #[serde(rename = "type")]
    pub record_type: String,
    /// The value to set.
    pub value: String,
    /// Needed before the hostname can be verified (the ACME delegation is
    /// needed only for wildcard or DNS-01 issuance).
    pub required: bool,
}

/// The certificate of a connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CertificateInfo {
    /// Serial number (hex).
    pub serial: String,
    /// `acme`, `local_ca` or `self_managed`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub source: CertificateSource,
    /// Expiry.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub not_after: OffsetDateTime,
}

/// Where a connection's certificate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CertificateSource {
    /// An ACME CA.
    Acme,
    /// The embedded local CA.
    LocalCa,
    /// Uploaded by the customer: served, never renewed.
    SelfManaged,
}

impl CertificateInfo {
    /// What the connection shows of `bundle`.
    #[must_use]
    pub fn of(bundle: &CertBundle) -> Self {
        let meta = bundle.meta();
        Self {
            serial: meta.serial.clone(),
            source: Self::source_of(&meta.provenance),
            not_after: meta.not_after,
        }
    }

    /// The source of a certificate of `provenance`.
    #[must_use]
    pub fn source_of(provenance: &Provenance) -> CertificateSource {
        match provenance {
            Provenance::LocalCa => CertificateSource::LocalCa,
            Provenance::SelfManaged => CertificateSource::SelfManaged,
            _ => CertificateSource::Acme,
        }
    }
}
