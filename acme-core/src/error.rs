//! Issuance errors, classed the way users are told about them, each with a
//! retry decision.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why an issuance failed. Each variant is one class a user is shown and
/// maps to one [`RetryDecision`] through [`crate::RetryPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    /// A DNS lookup failed temporarily.
    #[error("DNS lookup failed: {0}")]
    DnsFetch(String),
    /// The request named no hostname.
    #[error("the certificate request names no hostname")]
    NoSan,
    /// The CA is unreachable or answered 5xx.
    #[error("the CA is unavailable: {0}")]
    CaUnavailable(String),
    /// The ACME account could not be created or loaded.
    #[error("ACME account error: {0}")]
    Account(String),
    /// Storage failed.
    #[error("storage error: {0}")]
    Storage(String),
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
            Self::DnsFetch(_) => ErrorClass::DnsFetch,
            Self::NoSan => ErrorClass::NoSan,
            Self::CaUnavailable(_) => ErrorClass::CaUnavailable,
            Self::Account(_) => ErrorClass::Account,
            Self::Storage(_) => ErrorClass::Storage,
        }
    }

    /// Classifies an ACME problem document (RFC 8555 §6.7) by its type URN.
    #[must_use]
    pub fn from_problem(problem_type: Option<&str>, detail: Option<&str>, status: Option<u16>) -> Self {
        let detail = detail.unwrap_or("no detail").to_owned();
        let kind = problem_type.and_then(|t| t.rsplit(':').next()).unwrap_or("");
        match kind {
            "rateLimited" => Self::RateLimited { retry_after: None },
            "dns" => Self::DnsFetch(detail),
            "unauthorized" | "incorrectResponse" | "caa" | "rejectedIdentifier" | "connection" | "tls"
            | "malformed" | "badCSR" => Self::ValidationFailed { detail },
            "serverInternal" => Self::CaUnavailable(detail),
            "accountDoesNotExist"
            | "unsupportedContact"
            | "invalidContact"
            | "externalAccountRequired"
            | "userActionRequired" => Self::Account(detail),
            _ if status.is_some_and(|s| s == 429) => Self::RateLimited { retry_after: None },
            _ if status.is_some_and(|s| s >= 500) => Self::CaUnavailable(detail),
            _ => Self::ValidationFailed { detail },
        }
    }
}

impl From<instant_acme::Error> for IssueError {
    fn from(err: instant_acme::Error) -> Self {
        match err {
            instant_acme::Error::Api(problem) => {
                Self::from_problem(problem.r#type.as_deref(), problem.detail.as_deref(), problem.status)
            }
            instant_acme::Error::Timeout(_) => Self::CaUnavailable("timed out waiting for the CA".into()),
            other => Self::CaUnavailable(other.to_string()),
        }
    }
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
}
