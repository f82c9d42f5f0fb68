//! Customers' DNS provider credentials at the edge: settings, the
//! `PUT`/`DELETE /v1/connections/{id}/dns-provider` routes, and the
//! worker's pass that writes the records (the rules are
//! `control_plane::DnsCredentials`).

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use axum::{
    Extension, Json, Router,
    extract::{Path, State, rejection::JsonRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::put,
};
use cert_store::Storage;
#[allow(unused_imports)] // named by the OpenAPI attributes
use control_plane::ProviderState;
use control_plane::{ControlPlane, CredentialError, DnsCredentials, SecretBox};
use dns_providers::ProviderConfig;

#[allow(unused_imports)] // named by the OpenAPI attributes
use super::api::ErrorBody;
use super::api::{ApiState, Caller};

/// Settings of delegated DNS credentials.
#[derive(Clone, clap::Args)]
pub struct CredentialArgs {
    /// Keys sealing stored DNS provider credentials (AES-256-GCM):
    /// `id:base64` of 32 bytes, comma-separated, the current key first and
    /// older keys after it (rotation). Without it, credentials are refused.
    #[arg(long = "secrets-key", env = "EDGE_SECRETS_KEY", hide_env_values = true)]
    pub secrets_key: Option<String>,
    /// The IP address the edge's outgoing API calls come from: sent as
    /// Namecheap's `ClientIp`, and the address customers allow-list.
    #[arg(long = "egress-ip", env = "EDGE_EGRESS_IP")]
    pub egress_ip: Option<String>,
    /// Without `EDGE_EGRESS_IP`: an echo service answering this host's
    /// address (text or `{"ip": …}`), asked once when a provider needs it,
    /// e.g. `https://api.ipify.org`.
    #[arg(long = "egress-ip-url", env = "EDGE_EGRESS_IP_URL")]
    pub egress_ip_url: Option<String>,
    /// How often the records of connections with a credential are compared
    /// with the provider and written again when missing, in seconds.
    #[arg(long = "dns-apply-interval-secs", env = "EDGE_DNS_APPLY_INTERVAL_SECS", default_value = "60")]
    pub apply_interval_secs: u64,
    /// Let credentials of hosted providers name their own API URL (tests
    /// against local API doubles only).
    #[arg(long = "dns-api-url-override", env = "EDGE_DNS_API_URL_OVERRIDE", default_value = "false")]
    pub allow_api_url_override: bool,
}

impl std::fmt::Debug for CredentialArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialArgs")
            .field("secrets_key", &self.secrets_key.as_ref().map(|_| "<set>"))
            .field("egress_ip", &self.egress_ip)
            .field("apply_interval_secs", &self.apply_interval_secs)
            .finish_non_exhaustive()
    }
}

impl CredentialArgs {
    /// The credentials store over `storage`.
    ///
    /// # Errors
    /// An unusable `EDGE_SECRETS_KEY`.
    pub fn build(&self, storage: Arc<dyn Storage>) -> Result<Arc<DnsCredentials>, String> {
        let secrets = match self.secrets_key.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(spec) => Some(SecretBox::parse(spec).map_err(|e| format!("EDGE_SECRETS_KEY: {e}"))?),
            None => None,
        };
        Ok(Arc::new(
            DnsCredentials::new(storage, secrets)
                .egress_ip(self.egress_ip.clone())
                .egress_ip_from(self.egress_ip_url.clone())
                .allow_api_url_override(self.allow_api_url_override),
        ))
    }
}

/// Runs [`DnsCredentials::apply_all`] at most once per `interval`; called
/// on every worker tick.
#[derive(Debug)]
pub struct ApplyPass {
    interval: Duration,
    last: Mutex<Option<Instant>>,
}

impl ApplyPass {
    /// A pass every `interval`.
    #[must_use]
    pub fn every(interval: Duration) -> Self {
        Self { interval, last: Mutex::new(None) }
    }

    /// Writes what is missing, if the interval has passed.
    pub async fn tick(&self, cp: &ControlPlane) {
        let Some(credentials) = cp.dns_credentials() else { return };
        {
            let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|at| at.elapsed() < self.interval) {
                return;
            }
            *last = Some(Instant::now());
        }
        credentials.apply_all(cp.repo(), cp.activity()).await;
    }
}

/// The routes (behind the tenant API key layer).
pub fn routes() -> Router<ApiState> {
    Router::new().route("/v1/connections/{id}/dns-provider", put(set_provider).delete(remove_provider))
}

fn problem(status: StatusCode, code: &str, message: String, fix: Option<String>) -> Response {
    let mut body = serde_json::json!({ "code": code, "message": message });
    if let Some(fix) = fix {
        body["fix"] = serde_json::Value::String(fix);
    }
    (status, Json(body)).into_response()
}

fn credential_error(e: &CredentialError) -> Response {
    match e {
        CredentialError::Disabled => {
            problem(StatusCode::SERVICE_UNAVAILABLE, "CredentialsDisabled", e.to_string(), None)
        }
        CredentialError::Config(_) | CredentialError::ApiUrlNotAllowed(_) => {
            problem(StatusCode::BAD_REQUEST, "InvalidRequest", e.to_string(), None)
        }
        CredentialError::Provider(p) => {
            let status =
                if p.is_temporary() { StatusCode::BAD_GATEWAY } else { StatusCode::UNPROCESSABLE_ENTITY };
            problem(status, p.code(), p.to_string(), Some(p.resolution()))
        }
        _ => {
            tracing::error!(error = %e, "credential store failed");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal",
                "internal error; it has been logged".into(),
                None,
            )
        }
    }
}

/// `PUT /v1/connections/{id}/dns-provider` with `{"provider": …, credential fields}`:
/// checked at once with a harmless call, stored sealed, never returned.
#[utoipa::path(put, path = "/v1/connections/{id}/dns-provider", params(super::api::ConnectionId),
    request_body(content = Object, description = "`{\"provider\": \"rfc2136\" | \"powerdns\" | \"cloudflare\" | \"godaddy\" | \"namecheap\" | \"route53\", …the provider's credential fields}`"),
    security(("api_key" = [])),
    responses((status = 200, body = ProviderState, description = "checked and stored; the records are written now and kept"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "the provider refused the credential; `fix` says what to do"),
        (status = 502, body = ErrorBody, description = "the provider could not be reached; try again"),
        (status = 503, body = ErrorBody, description = "this edge has no EDGE_SECRETS_KEY")))]
pub(super) async fn set_provider(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Json<ProviderConfig>, JsonRejection>,
) -> Response {
    let c = match s.connection(&caller, &id).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Json(config) = match body {
        Ok(b) => b,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "InvalidRequest", e.body_text(), None),
    };
    let Some(credentials) = s.control_plane().dns_credentials() else {
        return credential_error(&CredentialError::Disabled);
    };
    match credentials.set(&c, &config).await {
        Ok(state) => {
            // Written at once, not at the next pass.
            if let Err(e) = credentials.apply(&c, s.control_plane().activity()).await {
                tracing::warn!(connection = %c.id, error = %e, "records not written");
            }
            let state = credentials.state(&c.id).await.ok().flatten().unwrap_or(state);
            (StatusCode::OK, Json(state)).into_response()
        }
        Err(e) => credential_error(&e),
    }
}

/// `DELETE /v1/connections/{id}/dns-provider`: the records the edge wrote
/// are removed, then the credential.
#[utoipa::path(delete, path = "/v1/connections/{id}/dns-provider", params(super::api::ConnectionId),
    security(("api_key" = [])),
    responses((status = 204, description = "the credential is deleted"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "this edge has no EDGE_SECRETS_KEY")))]
pub(super) async fn remove_provider(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let c = match s.connection(&caller, &id).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Some(credentials) = s.control_plane().dns_credentials() else {
        return credential_error(&CredentialError::Disabled);
    };
    match credentials.remove(&c).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => credential_error(&e),
    }
}
