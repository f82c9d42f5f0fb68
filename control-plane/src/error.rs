//! Typed domain errors with stable codes, and the problems a connection shows.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::lifecycle::InvalidTransition;

/// What a control-plane operation can fail with. Each variant keeps its
/// cause; [`Error::code`] is the stable code a program (or an HTTP layer
/// choosing a status) matches on.
///
/// ```
/// use control_plane::{ClaimHolder, Error, ErrorCode};
/// let e = Error::HostnameConflict { hostname: "shop.example.com".into(), held_by: ClaimHolder::OtherTenant };
/// assert_eq!(e.code(), ErrorCode::HostnameConflict);
/// assert_eq!(e.to_string(), "shop.example.com is already claimed by another account");
/// assert_eq!(e.code().as_str(), "HostnameConflict");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The name is not a hostname a certificate can carry.
    #[error("{name:?} is not a valid hostname: {source}")]
    InvalidHostname {
        /// The name as given.
        name: String,
        /// The rule it breaks.
        #[source]
        source: dns_verify::HostnameError,
    },
    /// Wildcard hostnames are not offered as connections.
    #[error("{name}: wildcard hostnames are not offered")]
    WildcardNotOffered {
        /// The name as given.
        name: String,
    },
    /// The plan does not exist.
    #[error("unknown plan {plan}")]
    UnknownPlan {
        /// The plan asked for.
        plan: String,
    },
    /// Another connection holds the hostname's claim.
    #[error("{hostname} is already claimed by {held_by}")]
    HostnameConflict {
        /// The hostname.
        hostname: String,
        /// Who holds it, as far as the caller may know.
        held_by: ClaimHolder,
    },
    /// The plan's limit for this period is reached.
    #[error("plan {plan} allows {limit} new connections per period; {used} were created in this one")]
    QuotaExceeded {
        /// The plan.
        plan: String,
        /// Its limit.
        limit: usize,
        /// Connections created in the current period.
        used: u64,
        /// When the current period ends (and the count starts again).
        period_end: OffsetDateTime,
        /// Where to upgrade.
        upgrade_url: String,
    },
    /// A request the control plane cannot act on (the reason says why).
    #[error("{reason}")]
    InvalidRequest {
        /// What is wrong with it.
        reason: String,
    },
    /// No such connection (or not one the caller may see).
    #[error("no such connection")]
    NotFound,
    /// An uploaded certificate that cannot be served.
    #[error("{0}")]
    InvalidCertificate(#[from] CertificateRejected),
    /// The storage failed.
    #[error("storage: {0}")]
    Storage(#[from] cert_store::StorageError),
    /// A state change the lifecycle table does not allow (a bug, or a
    /// record changed by another version).
    #[error(transparent)]
    Lifecycle(#[from] InvalidTransition),
}

/// Who holds a hostname's claim, as the caller may know it: the id of one
/// of its own connections, never another tenant's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClaimHolder {
    /// The caller's own connection `connection`.
    SameTenant {
        /// The connection's id.
        connection: String,
    },
    /// A connection of another tenant (which one is not said).
    OtherTenant,
}

impl std::fmt::Display for ClaimHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SameTenant { connection } => write!(f, "your connection {connection}"),
            Self::OtherTenant => f.write_str("another account"),
        }
    }
}

/// Why an uploaded certificate was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateRejected {
    /// The PEM does not make a valid bundle (malformed, key mismatch …).
    #[error("{0}")]
    Invalid(#[source] cert_store::CertError),
    /// The certificate does not cover the connection's hostname.
    #[error("the certificate covers {names:?}, not {hostname}")]
    NotCovering {
        /// The names it covers.
        names: Vec<String>,
        /// The connection's hostname.
        hostname: String,
    },
    /// The certificate has expired.
    #[error("the certificate has expired")]
    Expired,
    /// The certificate manager refused to import it.
    #[error("{0}")]
    Import(#[source] acme_core::IssueError),
}

/// The stable codes of [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not a hostname, or one that is not offered.
    InvalidHostname,
    /// A malformed request (e.g. an unknown plan).
    InvalidRequest,
    /// Another connection holds the hostname.
    HostnameConflict,
    /// The plan's limit is reached.
    QuotaExceeded,
    /// No such connection.
    NotFound,
    /// An uploaded certificate that cannot be served.
    InvalidCertificate,
    /// Something on our side (storage …): logged, not shown in detail.
    Internal,
}

impl ErrorCode {
    /// The code as programs see it, e.g. `HostnameConflict`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidHostname => "InvalidHostname",
            Self::InvalidRequest => "InvalidRequest",
            Self::HostnameConflict => "HostnameConflict",
            Self::QuotaExceeded => "QuotaExceeded",
            Self::NotFound => "NotFound",
            Self::InvalidCertificate => "InvalidCertificate",
            Self::Internal => "Internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// The stable code.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidHostname { .. } | Self::WildcardNotOffered { .. } => ErrorCode::InvalidHostname,
            Self::UnknownPlan { .. } | Self::InvalidRequest { .. } => ErrorCode::InvalidRequest,
            Self::HostnameConflict { .. } => ErrorCode::HostnameConflict,
            Self::QuotaExceeded { .. } => ErrorCode::QuotaExceeded,
            Self::NotFound => ErrorCode::NotFound,
            Self::InvalidCertificate(_) => ErrorCode::InvalidCertificate,
            Self::Storage(_) | Self::Lifecycle(_) => ErrorCode::Internal,
        }
    }

    /// Whether the detail is ours (log it, show a generic message).
    #[must_use]
    pub fn is_internal(&self) -> bool {
        self.code() == ErrorCode::Internal
    }
}

/// The codes of a connection's [`Problem`]: what is wrong now, in a form a
/// program matches on. Serialized in snake_case (`cname_not_found`); the
/// names of earlier versions (`DnsMissing` …) are still read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProblemCode {
    /// A required record (ownership TXT, routing) is missing.
    #[serde(alias = "DnsMissing")]
    DnsMissing,
    /// A required record has another value.
    #[serde(alias = "DnsWrong")]
    DnsWrong,
    /// A TXT record where a CNAME is required (outside `_acme-challenge`).
    #[serde(alias = "DnsDuplicate")]
    DnsDuplicate,
    /// A record is proxied by a CDN where it must be DNS only.
    DnsProxied,
    /// A lookup failed (records stored before `dns_fetch_error` existed).
    #[serde(alias = "LookupFailed")]
    LookupFailed,
    /// Another connection holds a SAN.
    #[serde(alias = "HostnameConflict")]
    HostnameConflict,
    /// An `_acme-challenge` CNAME is missing.
    #[serde(alias = "CnameNotFound")]
    CnameNotFound,
    /// A TXT record at `_acme-challenge` conflicts with the delegation.
    #[serde(alias = "TxtConflict")]
    TxtConflict,
    /// The CA's rate limit: retried by itself.
    #[serde(alias = "RateLimited")]
    RateLimited,
    /// The CA could not validate (DNS propagation incomplete …): retried by itself.
    #[serde(alias = "ValidationFailed")]
    ValidationFailed,
    /// DNS could not be read or written (the provider is unreachable,
    /// SERVFAIL …): temporary, retried.
    #[serde(rename = "dns_fetch_error", alias = "DnsFetch")]
    DnsFetch,
    /// No names to certify.
    #[serde(alias = "NoSan")]
    NoSan,
    /// The certificate served has expired.
    CertificateExpired,
    /// The CA is unreachable or failing.
    #[serde(alias = "CaUnavailable")]
    CaUnavailable,
    /// The ACME account was refused.
    #[serde(alias = "Account")]
    Account,
    /// Our storage failed.
    #[serde(alias = "Storage")]
    Storage,
    /// Something else on our side.
    #[serde(alias = "Internal")]
    Internal,
}

impl ProblemCode {
    /// The code of an issuance failure of `class`.
    #[must_use]
    pub fn of_issuance(class: acme_core::ErrorClass) -> Self {
        use acme_core::ErrorClass as C;
        match class {
            C::CnameNotFound => Self::CnameNotFound,
            C::TxtConflict => Self::TxtConflict,
            C::RateLimited => Self::RateLimited,
            C::ValidationFailed => Self::ValidationFailed,
            C::DnsFetch => Self::DnsFetch,
            C::NoSan => Self::NoSan,
            C::CaUnavailable => Self::CaUnavailable,
            C::Account => Self::Account,
            C::Storage => Self::Storage,
            #[allow(unreachable_patterns)]
            _ => Self::Internal,
        }
    }

    /// The code as it is serialized, e.g. `cname_not_found`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DnsMissing => "dns_missing",
            Self::DnsWrong => "dns_wrong",
            Self::DnsDuplicate => "dns_duplicate",
            Self::DnsProxied => "dns_proxied",
            Self::LookupFailed => "lookup_failed",
            Self::HostnameConflict => "hostname_conflict",
            Self::CnameNotFound => "cname_not_found",
            Self::TxtConflict => "txt_conflict",
            Self::RateLimited => "rate_limited",
            Self::ValidationFailed => "validation_failed",
            Self::DnsFetch => "dns_fetch_error",
            Self::NoSan => "no_san",
            Self::CertificateExpired => "certificate_expired",
            Self::CaUnavailable => "ca_unavailable",
            Self::Account => "account",
            Self::Storage => "storage",
            Self::Internal => "internal",
        }
    }

    /// What the customer does about it, in one sentence.
    #[must_use]
    pub const fn resolution(self) -> &'static str {
        match self {
            Self::CnameNotFound => {
                "Add the _acme-challenge CNAME record shown for each name; it is checked again automatically."
            }
            Self::TxtConflict => {
                "Remove the TXT record at _acme-challenge and keep only the CNAME record shown."
            }
            Self::RateLimited => {
                "Nothing to do: the certificate authority's rate limit applies; it is retried automatically after one hour (retry_at)."
            }
            Self::ValidationFailed => {
                "Nothing to do if the records shown are in place: DNS propagation is incomplete; it is retried automatically (retry_at)."
            }
            Self::DnsFetch | Self::LookupFailed => {
                "Temporary: the DNS provider could not be reached; it is retried automatically."
            }
            Self::NoSan => "No names are configured for this certificate: contact support.",
            Self::DnsMissing => "Create the records shown; they are checked again automatically.",
            Self::DnsWrong => "Change the record to the value shown; it is checked again automatically.",
            Self::DnsDuplicate => "Remove the TXT record and keep only the CNAME record shown.",
            Self::DnsProxied => "Set this record to DNS only (not proxied) at your DNS provider.",
            Self::HostnameConflict => {
                "The name is used by another connection: remove it there first, or contact support."
            }
            Self::CertificateExpired => {
                "The certificate has expired and renewal keeps being retried: make sure the _acme-challenge CNAME records shown are in place (add them back if they are gone)."
            }
            Self::CaUnavailable => {
                "Temporary: the certificate authority is unavailable; it is retried automatically."
            }
            Self::Account | Self::Storage | Self::Internal => {
                "A problem on our side: it is retried automatically; contact support if it persists."
            }
        }
    }

    /// Whether it clears by itself (retried without anyone acting).
    #[must_use]
    pub const fn is_temporary(self) -> bool {
        matches!(
            self,
            Self::RateLimited
                | Self::ValidationFailed
                | Self::DnsFetch
                | Self::LookupFailed
                | Self::CaUnavailable
                | Self::Storage
                | Self::Internal
        )
    }
}

impl std::fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The resolution of an expired self-managed certificate.
pub const UPLOAD_NEW_CERTIFICATE: &str =
    "Upload a new certificate: a certificate you manage yourself is never renewed.";

/// What last went wrong with a connection, in words, with its code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// The code programs match on (`cname_not_found`, `txt_conflict`,
    /// `rate_limited`, `validation_failed`, `dns_fetch_error`, `no_san` …).
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "cname_not_found"))]
    pub code: ProblemCode,
    /// What happened.
    pub message: String,
    /// What to do about it, in one sentence.
    #[serde(default)]
    pub resolution: String,
    /// When it is retried by itself, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub retry_at: Option<OffsetDateTime>,
}

impl Problem {
    /// A problem with no automatic retry time, with its code's resolution.
    #[must_use]
    pub fn new(code: ProblemCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), resolution: code.resolution().to_owned(), retry_at: None }
    }

    /// The same, with another resolution sentence.
    #[must_use]
    pub fn resolved_by(mut self, resolution: impl Into<String>) -> Self {
        self.resolution = resolution.into();
        self
    }

    /// The same, retried at `at`.
    #[must_use]
    pub fn retry_at(mut self, at: OffsetDateTime) -> Self {
        self.retry_at = Some(at);
        self
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn each_customer_code_has_its_spelling_and_a_resolution() {
        use acme_core::ErrorClass as C;
        for (class, code, says) in [
            (C::CnameNotFound, "cname_not_found", "Add the _acme-challenge CNAME"),
            (C::TxtConflict, "txt_conflict", "Remove the TXT record at _acme-challenge"),
            (C::RateLimited, "rate_limited", "after one hour"),
            (C::ValidationFailed, "validation_failed", "propagation"),
            (C::DnsFetch, "dns_fetch_error", "DNS provider could not be reached"),
            (C::NoSan, "no_san", "contact support"),
        ] {
            let p = Problem::new(ProblemCode::of_issuance(class), "x");
            let json = serde_json::to_value(&p).unwrap();
            assert_eq!(json["code"], code);
            assert!(json["resolution"].as_str().unwrap().contains(says), "{json}");
            assert_eq!(p.code.as_str(), code);
        }
        assert!(ProblemCode::RateLimited.is_temporary() && !ProblemCode::NoSan.is_temporary());
    }

    #[test]
    fn problems_stored_by_earlier_versions_still_load() {
        let old: Problem = serde_json::from_str(r#"{"code":"LookupFailed","message":"m"}"#).unwrap();
        assert_eq!(old.code, ProblemCode::LookupFailed);
        assert_eq!(old.resolution, "");
        let old: Problem = serde_json::from_str(r#"{"code":"DnsFetch","message":"m"}"#).unwrap();
        assert_eq!(old.code, ProblemCode::DnsFetch);
    }
}
