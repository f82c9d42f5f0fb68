//! The control plane API (JSON, bearer API key; widget tokens for one
//! connection's `records:check`, `verify` and the connection itself).
//!
//! Authentication is a layer on each group of routes ([`router`]), so no
//! route can forget it; [`ApiError`] maps the control plane's typed errors
//! to statuses in one place.

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, Path, Query, Request, State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use control_plane::{
    CertificateInfo, Connection, ControlPlane, DesiredRecord, Error, ErrorCode, Problem, RecordCheck,
    RecordsCheck,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

/// Events shown by a connection's `activity`.
pub const ACTIVITY_PAGE: usize = 200;

/// Largest request body accepted (a PEM chain and key fit easily).
pub const MAX_BODY: usize = 64 * 1024;

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
        let body = ErrorBody {
            code: code.to_owned(),
            message: message.into(),
            limit: None,
            plan: None,
            upgrade_url: None,
        };
        Self { status, body }
    }

    /// 400: a malformed request.
    #[must_use]
    pub fn invalid_request(reason: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidRequest", reason.to_string())
    }

    /// 404.
    #[must_use]
    pub fn not_found() -> Self {
        Self::from(Error::NotFound)
    }

    /// 401.
    #[must_use]
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "missing or invalid credentials")
    }
}

/// The one mapping from the control plane's errors to HTTP.
impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let code = e.code();
        let status = match code {
            ErrorCode::InvalidHostname | ErrorCode::InvalidRequest | ErrorCode::InvalidCertificate => {
                StatusCode::BAD_REQUEST
            }
            ErrorCode::HostnameConflict => StatusCode::CONFLICT,
            ErrorCode::QuotaExceeded => StatusCode::PAYMENT_REQUIRED,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if e.is_internal() {
            tracing::error!(error = %e, source = ?std::error::Error::source(&e), "internal error");
            return Self::new(status, code.as_str(), "internal error; it has been logged");
        }
        let mut out = Self::new(status, code.as_str(), e.to_string());
        if let Error::QuotaExceeded { plan, limit, upgrade_url } = e {
            out.body.limit = Some(limit);
            out.body.plan = Some(plan);
            out.body.upgrade_url = Some(upgrade_url);
        }
        out
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// Shared by the handlers.
#[derive(Clone)]
pub struct ApiState {
    cp: Arc<ControlPlane>,
    worker_enabled: bool,
    /// Keyed digests of the API keys: compared with `ring::hmac::verify`,
    /// constant time whatever the candidate's length.
    key_check: Arc<(ring::hmac::Key, Vec<ring::hmac::Tag>)>,
}

impl ApiState {
    /// State for `cp` accepting `api_keys`; `worker_enabled`: new
    /// connections are checked at once.
    #[must_use]
    pub fn new(cp: Arc<ControlPlane>, api_keys: &[String], worker_enabled: bool) -> Self {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &rand::random::<[u8; 32]>());
        let tags =
            api_keys.iter().filter(|k| !k.is_empty()).map(|k| ring::hmac::sign(&key, k.as_bytes())).collect();
        Self { cp, worker_enabled, key_check: Arc::new((key, tags)) }
    }

    fn bearer(headers: &HeaderMap) -> Option<&str> {
        headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
    }

    fn is_api_key(&self, candidate: &str) -> bool {
        let (key, tags) = &*self.key_check;
        // Check every key (no early exit), each in constant time.
        tags.iter()
            .fold(false, |ok, tag| ring::hmac::verify(key, candidate.as_bytes(), tag.as_ref()).is_ok() | ok)
    }
}

/// Layer of the API-key routes: an API key, or 401.
async fn require_api_key(
    State(s): State<ApiState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    match ApiState::bearer(request.headers()) {
        Some(candidate) if s.is_api_key(candidate) => Ok(next.run(request).await),
        _ => Err(ApiError::unauthorized()),
    }
}

/// Layer of the widget routes: an API key, or a widget token for the
/// connection in the path, or 401.
async fn require_key_or_widget(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let candidate = ApiState::bearer(request.headers()).ok_or_else(ApiError::unauthorized)?;
    let granted = s.is_api_key(candidate)
        || s.cp.widget_connection(candidate, OffsetDateTime::now_utc()).is_some_and(|granted| granted == id);
    if granted { Ok(next.run(request).await) } else { Err(ApiError::unauthorized()) }
}

fn body<T>(json: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    json.map(|Json(t)| t).map_err(|rejection| {
        let mut e = ApiError::invalid_request(rejection.body_text());
        e.status = rejection.status();
        e
    })
}

/// `POST /v1/connections` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConnection {
    /// The customer's hostname, e.g. `shop.customer.com`.
    #[schema(min_length = 1, max_length = 253)]
    pub hostname: String,
    /// The plan (default `free`).
    pub plan: Option<String>,
}

/// `POST /v1/connections/{id}/certificate` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadCertificate {
    /// PEM chain, leaf first.
    pub certificate_pem: String,
    /// PEM private key of the leaf.
    pub private_key_pem: String,
}

/// A page of connections.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionPage {
    /// This page.
    pub items: Vec<Connection>,
    /// Page number, from 1.
    pub page: usize,
    /// Items per page.
    pub per_page: usize,
    /// Connections in all.
    pub total: usize,
}

/// Paging query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Page number, from 1 (default 1).
    #[param(minimum = 1)]
    page: Option<usize>,
    /// Items per page, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<usize>,
}

/// A widget token.
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetToken {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// Expiry (60 minutes).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

/// The ask answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AskAnswer {
    /// Whether a certificate may be issued.
    pub allow: bool,
}

/// The connection in the path.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ConnectionId {
    /// The connection's id.
    #[allow(dead_code)]
    id: String,
}

/// Ask query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AskQuery {
    /// The server name of the handshake.
    domain: String,
}

#[utoipa::path(post, path = "/v1/connections", request_body = CreateConnection, security(("api_key" = [])),
    responses((status = 201, body = Connection), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 402, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create(
    State(s): State<ApiState>,
    json: Result<Json<CreateConnection>, JsonRejection>,
) -> Result<(StatusCode, Json<Connection>), ApiError> {
    let request = body(json)?;
    let c = s.cp.create(&request.hostname, request.plan.as_deref()).await?;
    // Checked right away by the worker.
    let cp = Arc::clone(&s.cp);
    let id = c.id.clone();
    if s.worker_enabled {
        tokio::spawn(async move {
            if let Err(e) = cp.advance(&id, false, 4).await {
                tracing::debug!(%id, error = %e, "first check");
            }
        });
    }
    Ok((StatusCode::CREATED, Json(c)))
}

#[utoipa::path(get, path = "/v1/connections", params(Paging), security(("api_key" = [])),
    responses((status = 200, body = ConnectionPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list(
    State(s): State<ApiState>,
    paging: Result<Query<Paging>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ConnectionPage>, ApiError> {
    let Query(paging) = paging.map_err(|e| ApiError::invalid_request(e.body_text()))?;
    let per_page = paging.per_page.unwrap_or(20);
    let page = paging.page.unwrap_or(1);
    if !(1..=100).contains(&per_page) || page == 0 {
        return Err(ApiError::invalid_request("page starts at 1; per_page is 1 to 100"));
    }
    let all = s.cp.repo().list().await.map_err(Error::from)?;
    let items = all.iter().skip((page - 1).saturating_mul(per_page)).take(per_page).cloned().collect();
    Ok(Json(ConnectionPage { items, page, per_page, total: all.len() }))
}

#[utoipa::path(get, path = "/v1/connections/{id}", params(ConnectionId), security(("api_key" = []), ("widget_token" = [])),
    responses((status = 200, body = Connection), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_one(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<Connection>, ApiError> {
    Ok(Json(s.cp.get(&id).await?))
}

#[utoipa::path(delete, path = "/v1/connections/{id}", params(ConnectionId), security(("api_key" = [])),
    responses((status = 200, body = Connection), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn archive(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<Connection>, ApiError> {
    Ok(Json(s.cp.archive(&id).await?))
}

#[utoipa::path(post, path = "/v1/connections/{id}/verify", params(ConnectionId), security(("api_key" = []), ("widget_token" = [])),
    responses((status = 200, body = Connection), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn verify(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<Connection>, ApiError> {
    // One step: the DNS check (and the move to `verified`, or to/from
    // `drifted`); issuance is the worker's, or on demand at the first handshake.
    s.cp.advance(&id, true, 1).await?.map(Json).ok_or_else(ApiError::not_found)
}

#[utoipa::path(get, path = "/v1/connections/{id}/records:check", params(ConnectionId), security(("api_key" = []), ("widget_token" = [])),
    responses((status = 200, body = RecordsCheck), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn records_check(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<RecordsCheck>, ApiError> {
    Ok(Json(s.cp.check_records(&id).await?))
}

#[utoipa::path(get, path = "/v1/connections/{id}/activity", params(ConnectionId), security(("api_key" = [])),
    responses((status = 200, body = Vec<Object>, description = "events, newest first"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn activity(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<acme_core::Event>>, ApiError> {
    let c = s.cp.get(&id).await?;
    Ok(Json(s.cp.activity_of(&c.hostname, ACTIVITY_PAGE).await?))
}

#[utoipa::path(post, path = "/v1/connections/{id}/certificate", params(ConnectionId), request_body = UploadCertificate, security(("api_key" = [])),
    responses((status = 200, body = Connection), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn upload_certificate(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    json: Result<Json<UploadCertificate>, JsonRejection>,
) -> Result<Json<Connection>, ApiError> {
    let upload = body(json)?;
    Ok(Json(s.cp.upload_certificate(&id, &upload.certificate_pem, &upload.private_key_pem).await?))
}

#[utoipa::path(post, path = "/v1/connections/{id}/widget-token", params(ConnectionId), security(("api_key" = [])),
    responses((status = 200, body = WidgetToken), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn widget_token(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<WidgetToken>, ApiError> {
    let c = s.cp.get(&id).await?;
    let (token, expires_at) = s.cp.widget_token(&c.id, OffsetDateTime::now_utc());
    Ok(Json(WidgetToken { token, expires_at }))
}

#[utoipa::path(get, path = "/internal/ask", params(AskQuery),
    responses((status = 200, body = AskAnswer), (status = 403, body = AskAnswer)))]
async fn ask(
    State(s): State<ApiState>,
    query: Result<Query<AskQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let allow = match query {
        Ok(Query(q)) => s.cp.ask(&q.domain).await.unwrap_or(false),
        Err(_) => false,
    };
    let status = if allow { StatusCode::OK } else { StatusCode::FORBIDDEN };
    (status, Json(AskAnswer { allow })).into_response()
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn not_found() -> ApiError {
    let mut e = ApiError::not_found();
    e.body.message = "no such route".into();
    e
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        components.add_security_scheme("api_key", bearer());
        components.add_security_scheme("widget_token", bearer());
    }
}

/// The OpenAPI document, generated from the handlers and types.
#[derive(OpenApi)]
#[openapi(
    info(title = "custom-domain edge", description = "Custom hostnames with automatic TLS."),
    paths(create, list, get_one, archive, verify, records_check, activity, upload_certificate, widget_token, ask),
    components(schemas(Connection, DesiredRecord, CertificateInfo, Problem, ErrorBody, CreateConnection, UploadCertificate,
        ConnectionPage, WidgetToken, AskAnswer, RecordsCheck, RecordCheck)),
    modifiers(&Security)
)]
pub struct ApiDoc;

/// The API's routes with body limit, timeout and concurrency limit. Each
/// group of routes has its authentication as a layer: API key, API key or
/// widget token, or none (`/internal/ask`, the OpenAPI document).
pub fn router(state: ApiState) -> Router {
    let with_api_key = Router::new()
        .route("/v1/connections", post(create).get(list))
        .route("/v1/connections/{id}", axum::routing::delete(archive))
        .route("/v1/connections/{id}/activity", get(activity))
        .route("/v1/connections/{id}/certificate", post(upload_certificate))
        .route("/v1/connections/{id}/widget-token", post(widget_token))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_api_key));
    let with_widget_token = Router::new()
        .route("/v1/connections/{id}", get(get_one))
        .route("/v1/connections/{id}/verify", post(verify))
        .route("/v1/connections/{id}/records:check", get(records_check))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key_or_widget));
    let public = Router::new().route("/internal/ask", get(ask)).route("/v1/openapi.json", get(openapi));
    Router::new()
        .merge(with_api_key)
        .merge(with_widget_token)
        .merge(public)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(180),
        ))
        .with_state(state)
}
