//! What the API shows: connections, their records, errors with stable codes.

use acme_core::DomainState;
use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// A customer's hostname on the platform.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Connection {
    /// Stable identifier.
    pub id: String,
    /// The hostname (lowercase, punycode).
    pub hostname: String,
    /// The plan it counts against.
    pub plan: String,
    /// Lifecycle state.
    #[schema(value_type = String, example = "pending_ownership")]
    pub state: DomainState,
    /// The records the customer must create.
    pub records: Vec<DesiredRecord>,
    /// The certificate served, once there is one.
    pub certificate: Option<CertificateInfo>,
    /// What last went wrong, in words, with its code.
    pub last_error: Option<ErrorBody>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// When the worker looks at it next.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub next_check_at: OffsetDateTime,
    /// DNS checks that found the records not (yet) right, in a row.
    pub failed_checks: u32,
    /// The ownership token (the value of the `_customdomain-challenge` TXT).
    pub ownership_token: String,
}

/// One DNS record the customer creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CertificateInfo {
    /// Serial number (hex).
    pub serial: String,
    /// `acme`, `local_ca` or `self_managed`.
    pub source: String,
    /// Expiry.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub not_after: OffsetDateTime,
}

/// The body of every error: a stable `code` programs match on, a message
/// people read, and details for some codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// `HostnameConflict`, `QuotaExceeded`, `InvalidHostname`, `NotFound`,
    /// `Unauthorized`, `InvalidRequest`, `InvalidCertificate`, `Internal`.
    pub code: String,
    /// What happened.
    pub message: String,
    /// The plan's limit (`QuotaExceeded`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// The plan (`QuotaExceeded`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// Where to upgrade (`QuotaExceeded`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade_url: Option<String>,
}

/// An API error: status + body.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {} ({})", body.message, body.code)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// JSON body.
    pub body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                code: code.to_owned(),
                message: message.into(),
                limit: None,
                plan: None,
                upgrade_url: None,
            },
        }
    }

    /// 409: another connection holds the hostname.
    #[must_use]
    pub fn hostname_conflict(hostname: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "HostnameConflict",
            format!("{hostname} is already claimed by another connection"),
        )
    }

    /// 402: the plan's limit is reached.
    #[must_use]
    pub fn quota_exceeded(plan: &str, limit: usize, upgrade_url: &str) -> Self {
        let mut e = Self::new(
            StatusCode::PAYMENT_REQUIRED,
            "QuotaExceeded",
            format!("plan {plan} allows {limit} connections"),
        );
        e.body.limit = Some(limit);
        e.body.plan = Some(plan.to_owned());
        e.body.upgrade_url = Some(upgrade_url.to_owned());
        e
    }

    /// 400: not a hostname.
    #[must_use]
    pub fn invalid_hostname(reason: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidHostname", reason.to_string())
    }

    /// 400: a malformed request.
    #[must_use]
    pub fn invalid_request(reason: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidRequest", reason.to_string())
    }

    /// 400: an uploaded certificate that cannot be served.
    #[must_use]
    pub fn invalid_certificate(reason: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidCertificate", reason.to_string())
    }

    /// 404.
    #[must_use]
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", "no such connection")
    }

    /// 401.
    #[must_use]
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "missing or invalid credentials")
    }

    /// 500 (the detail is logged, not shown).
    #[must_use]
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal", "internal error; it has been logged")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<cert_store::StorageError> for ApiError {
    fn from(e: cert_store::StorageError) -> Self {
        Self::internal(e)
    }
}
