//! Issuance errors, classed the way users are told about them, each with a
//! retry decision.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A boxed error kept as the source of an [`IssueError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an issuance failed. Each variant is one class a user is shown and
/// maps to one [`RetryDecision`] through [`crate::RetryPolicy`]. The
/// underlying error, when there is one, is the [`source`](std::error::Error::source);
/// [`IssueError::report`] renders the whole chain on one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The `_acme-challenge` CNAME delegation does not exist.
    #[error("the _acme-challenge CNAME for {name} is missing")]
    CnameNotFound {
        /// The SAN.
        name: String,
    },
    /// TXT records sit where the `_acme-challenge` CNAME must be.
    #[error("TXT records at _acme-challenge.{name} conflict with the required CNAME: {records:?}")]
    TxtConflict {
        /// The SAN.
        name: String,
        /// The conflicting values.
        records: Vec<String>,
    },
    /// The CA rate-limited us.
    #[error("rate limited by the CA{}", retry_after.map(|d| format!(" (retry after {d:?})")).unwrap_or_default())]
    RateLimited {
        /// How long the CA asked us to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// The CA could not validate a challenge (wrong response, CAA, rejected identifier …).
    #[error("validation failed: {detail}")]
    ValidationFailed {
        /// The CA's explanation.
        detail: String,
    },
    /// A DNS lookup or a DNS-01 record write failed, or the record did not
    /// propagate in time (temporary).
    #[error("DNS lookup failed: {detail}")]
    DnsFetch {
        /// What failed.
        detail: String,
        /// The DNS provider's or the propagation check's error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// The request named no hostname.
    #[error("the certificate request names no hostname")]
    NoSan,
    /// The CA is unreachable, answered 5xx, or answered something unusable.
    #[error("the CA is unavailable: {detail}")]
    CaUnavailable {
        /// What failed.
        detail: String,
        /// The transport, HTTP or parse error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// The ACME account could not be created or loaded.
    #[error("ACME account error: {detail}")]
    Account {
        /// What failed.
        detail: String,
        /// The CA's problem document or the decoding error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// Storage failed.
    #[error("storage error: {detail}")]
    Storage {
        /// What was being read or written.
        detail: String,
        /// The storage (or encoding) error.
        #[source]
        source: BoxError,
    },
    /// Something on this side failed: generating a key, a CSR, a TLS-ALPN-01
    /// challenge certificate, or signing with the local CA.
    #[error("internal error: {detail}")]
    Internal {
        /// What failed.
        detail: String,
        /// The crypto library's error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
}

/// The stable class name of an [`IssueError`], for events, APIs and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorClass {
    /// [`IssueError::CnameNotFound`].
    CnameNotFound,
    /// [`IssueError::TxtConflict`].
    TxtConflict,
    /// [`IssueError::RateLimited`].
    RateLimited,
    /// [`IssueError::ValidationFailed`].
    ValidationFailed,
    /// [`IssueError::DnsFetch`].
    DnsFetch,
    /// [`IssueError::NoSan`].
    NoSan,
    /// [`IssueError::CaUnavailable`].
    CaUnavailable,
    /// [`IssueError::Account`].
    Account,
    /// [`IssueError::Storage`].
    Storage,
    /// [`IssueError::Internal`].
    Internal,
}

impl IssueError {
    /// The error's class.
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::CnameNotFound { .. } => ErrorClass::CnameNotFound,
            Self::TxtConflict { .. } => ErrorClass::TxtConflict,
            Self::RateLimited { .. } => ErrorClass::RateLimited,
            Self::ValidationFailed { .. } => ErrorClass::ValidationFailed,
            Self::DnsFetch { .. } => ErrorClass::DnsFetch,
            Self::NoSan => ErrorClass::NoSan,
            Self::CaUnavailable { .. } => ErrorClass::CaUnavailable,
            Self::Account { .. } => ErrorClass::Account,
            Self::Storage { .. } => ErrorClass::Storage,
            Self::Internal { .. } => ErrorClass::Internal,
        }
    }

    /// [`IssueError::CaUnavailable`] with no underlying error.
    pub fn ca_unavailable(detail: impl Into<String>) -> Self {
        Self::CaUnavailable { detail: detail.into(), source: None }
    }

    /// [`IssueError::DnsFetch`] with no underlying error.
    pub fn dns_fetch(detail: impl Into<String>) -> Self {
        Self::DnsFetch { detail: detail.into(), source: None }
    }

    /// [`IssueError::Account`] with no underlying error.
    pub fn account(detail: impl Into<String>) -> Self {
        Self::Account { detail: detail.into(), source: None }
    }

    /// [`IssueError::Storage`] while doing `detail`.
    pub fn storage(detail: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Storage { detail: detail.into(), source: source.into() }
    }

    /// [`IssueError::Internal`] while doing `detail`.
    pub fn internal(detail: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Internal { detail: detail.into(), source: Some(source.into()) }
    }

    /// The message followed by every source, `: `-separated (for events,
    /// logs and users).
    ///
    /// ```
    /// let err = acme_core::IssueError::storage("saving shop.example.com", std::io::Error::other("disk full"));
    /// assert_eq!(err.report(), "storage error: saving shop.example.com: disk full");
    /// ```
    #[must_use]
    pub fn report(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(e) = source {
            out.push_str(": ");
            out.push_str(&e.to_string());
            source = e.source();
        }
        out
    }

    /// Classifies an ACME problem document (RFC 8555 §6.7) by its type URN.
    #[must_use]
    pub fn from_problem(problem_type: Option<&str>, detail: Option<&str>, status: Option<u16>) -> Self {
        let detail = detail.unwrap_or("no detail").to_owned();
        let kind = problem_type.and_then(|t| t.rsplit(':').next()).unwrap_or("");
        match kind {
            "rateLimited" => Self::RateLimited { retry_after: None },
            "dns" => Self::DnsFetch { detail, source: None },
            "unauthorized" | "incorrectResponse" | "caa" | "rejectedIdentifier" | "connection" | "tls"
            | "malformed" | "badCSR" => Self::ValidationFailed { detail },
            "serverInternal" => Self::ca_unavailable(detail),
            "accountDoesNotExist"
            | "unsupportedContact"
            | "invalidContact"
            | "externalAccountRequired"
            | "userActionRequired" => Self::account(detail),
            _ if status.is_some_and(|s| s == 429) => Self::RateLimited { retry_after: None },
            _ if status.is_some_and(|s| s >= 500) => Self::ca_unavailable(detail),
            _ => Self::ValidationFailed { detail },
        }
    }
}

/// Classifies instant-acme's errors by their type: problem documents by
/// their URN, our own key and CSR failures as [`IssueError::Internal`],
/// transport, timeout and garbled answers as [`IssueError::CaUnavailable`]
/// (temporary). The error itself is kept as the source.
impl From<instant_acme::Error> for IssueError {
    fn from(err: instant_acme::Error) -> Self {
        use instant_acme::Error as E;
        match err {
            E::Api(problem) => {
                Self::from_problem(problem.r#type.as_deref(), problem.detail.as_deref(), problem.status)
            }
            E::Timeout(_) => Self::ca_unavailable("timed out waiting for the CA"),
            E::Crypto | E::KeyRejected => Self::internal("ACME request signing", err),
            E::InvalidUri(_) => Self::account("the ACME directory URL is invalid"),
            E::Unsupported(what) => {
                Self::ValidationFailed { detail: format!("the CA does not support {what}") }
            }
            E::Other(inner) => classify_other(inner),
            E::Http(_) | E::Hyper(_) => {
                Self::CaUnavailable { detail: "HTTP request failed".into(), source: Some(err.into()) }
            }
            E::Json(_) => Self::CaUnavailable {
                detail: "unreadable answer from the CA".into(),
                source: Some(err.into()),
            },
            other => Self::CaUnavailable { detail: "ACME request failed".into(), source: Some(other.into()) },
        }
    }
}

/// An `instant_acme::Error::Other`, by the type of the error inside (and
/// of its sources): a CSR or key error is ours, an I/O error (connection
/// refused, reset, TLS failure while connecting, reading the root file) or
/// anything else is the CA being unreachable.
fn classify_other(inner: BoxError) -> IssueError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(inner.as_ref());
    let mut io_kind = None;
    while let Some(e) = cause {
        if e.downcast_ref::<rcgen::Error>().is_some() {
            return IssueError::Internal { detail: "building the CSR".into(), source: Some(inner) };
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
        cause = e.source();
    }
    let detail = match io_kind {
        Some(std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied) => {
            return IssueError::Account {
                detail: "reading the CA's root certificate".into(),
                source: Some(inner),
            };
        }
        Some(kind) => format!("cannot reach the CA ({kind})"),
        None => "ACME request failed".to_owned(),
    };
    IssueError::CaUnavailable { detail, source: Some(inner) }
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again after this delay.
    RetryAfter(Duration),
    /// Wait until the DNS records verify (rechecked at this interval), then issue.
    WaitForDns(Duration),
    /// Do not retry automatically: a person must act.
    GiveUp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_documents_map_to_classes() {
        let c = |t: &str, s| IssueError::from_problem(Some(t), Some("d"), s).class();
        assert_eq!(c("urn:ietf:params:acme:error:rateLimited", Some(429)), ErrorClass::RateLimited);
        assert_eq!(c("urn:ietf:params:acme:error:dns", Some(400)), ErrorClass::DnsFetch);
        assert_eq!(c("urn:ietf:params:acme:error:unauthorized", Some(403)), ErrorClass::ValidationFailed);
        assert_eq!(
            c("urn:ietf:params:acme:error:incorrectResponse", Some(403)),
            ErrorClass::ValidationFailed
        );
        assert_eq!(c("urn:ietf:params:acme:error:caa", Some(403)), ErrorClass::ValidationFailed);
        assert_eq!(
            c("urn:ietf:params:acme:error:rejectedIdentifier", Some(400)),
            ErrorClass::ValidationFailed
        );
        assert_eq!(c("urn:ietf:params:acme:error:serverInternal", Some(500)), ErrorClass::CaUnavailable);
        assert_eq!(c("about:blank", Some(503)), ErrorClass::CaUnavailable);
        assert_eq!(c("about:blank", Some(429)), ErrorClass::RateLimited);
    }

    #[test]
    fn instant_acme_errors_are_classified_by_type() {
        use instant_acme::Error as E;
        let class = |e: E| IssueError::from(e).class();
        assert_eq!(class(E::Timeout(None)), ErrorClass::CaUnavailable);
        assert_eq!(class(E::Crypto), ErrorClass::Internal);
        assert_eq!(class(E::KeyRejected), ErrorClass::Internal);
        assert_eq!(class(E::Unsupported("profiles")), ErrorClass::ValidationFailed);
        let json = serde_json::from_str::<u8>("{").unwrap_err();
        assert_eq!(class(E::Json(json)), ErrorClass::CaUnavailable);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let err = IssueError::from(E::Other(Box::new(refused)));
        assert_eq!(err.class(), ErrorClass::CaUnavailable);
        assert!(
            err.report().contains("ConnectionRefused") || err.report().contains("connection refused"),
            "{}",
            err.report()
        );
        // The source is kept and can be downcast.
        let source = std::error::Error::source(&err).unwrap();
        assert_eq!(
            source.downcast_ref::<std::io::Error>().unwrap().kind(),
            std::io::ErrorKind::ConnectionRefused
        );
        let csr = rcgen::Error::CouldNotParseCertificate;
        assert_eq!(class(E::Other(Box::new(csr))), ErrorClass::Internal);
        let missing_root = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(class(E::Other(Box::new(missing_root))), ErrorClass::Account);
    }

    #[test]
    fn key_generation_failures_are_internal_and_keep_their_source() {
        let err = IssueError::internal("key generation", rcgen::Error::KeyGenerationUnavailable);
        assert_eq!(err.class(), ErrorClass::Internal);
        let source = std::error::Error::source(&err).unwrap();
        assert!(source.downcast_ref::<rcgen::Error>().is_some());
        let storage = IssueError::storage("saving", std::io::Error::other("disk full"));
        assert_eq!(storage.report(), "storage error: saving: disk full");
    }
}
