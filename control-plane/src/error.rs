//! Typed domain errors with stable codes, and the problems a connection shows.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::lifecycle::InvalidTransition;

/// What a control-plane operation can fail with. Each variant keeps its
/// cause; [`Error::code`] is the stable code a program (or an HTTP layer
/// choosing a status) matches on.
///
/// ```
/// use control_plane::{Error, ErrorCode};
/// let e = Error::HostnameConflict { hostname: "shop.example.com".into() };
/// assert_eq!(e.code(), ErrorCode::HostnameConflict);
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
    #[error("{hostname} is already claimed by another connection")]
    HostnameConflict {
        /// The hostname.
        hostname: String,
    },
    /// The plan's limit is reached.
    #[error("plan {plan} allows {limit} connections")]
    QuotaExceeded {
        /// The plan.
        plan: String,
        /// Its limit.
        limit: usize,
        /// Where to upgrade.
        upgrade_url: String,
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
            Self::UnknownPlan { .. } => ErrorCode::InvalidRequest,
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
/// program matches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ProblemCode {
    /// A required record is missing.
    DnsMissing,
    /// A required record has another value.
    DnsWrong,
    /// A TXT record where a CNAME is required.
    DnsDuplicate,
    /// A lookup failed; nothing is concluded, retried soon.
    LookupFailed,
    /// Another connection holds the hostname.
    HostnameConflict,
    /// `_acme-challenge` CNAME not found.
    CnameNotFound,
    /// A TXT at `_acme-challenge` conflicts with the delegation.
    TxtConflict,
    /// The CA's rate limit.
    RateLimited,
    /// The CA could not validate.
    ValidationFailed,
    /// DNS could not be read or written.
    DnsFetch,
    /// No names to certify.
    NoSan,
    /// The CA is unreachable or failing.
    CaUnavailable,
    /// The ACME account was refused.
    Account,
    /// Our storage failed.
    Storage,
    /// Something else on our side.
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
}

/// What last went wrong with a connection, in words, with its code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// The code programs match on (`DnsMissing`, `LookupFailed`, `RateLimited` …).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub code: ProblemCode,
    /// What happened.
    pub message: String,
    /// When it is retried by itself, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub retry_at: Option<OffsetDateTime>,
}

impl Problem {
    /// A problem with no automatic retry time.
    #[must_use]
    pub fn new(code: ProblemCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry_at: None }
    }

    /// The same, retried at `at`.
    #[must_use]
    pub fn retry_at(mut self, at: OffsetDateTime) -> Self {
        self.retry_at = Some(at);
        self
    }
}
