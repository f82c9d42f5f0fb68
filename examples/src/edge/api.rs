//! The control plane API (JSON, bearer API key; widget tokens for one
//! connection's `records:check` and `verify`).

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, Path, Query, State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::{
    model::{ApiError, CertificateInfo, Connection, DesiredRecord, ErrorBody},
    service::{Edge, RecordCheck, RecordsCheck},
};

/// Largest request body accepted (a PEM chain and key fit easily).
pub const MAX_BODY: usize = 64 * 1024;

/// Shared by the handlers.
#[derive(Clone)]
pub struct ApiState {
    edge: Arc<Edge>,
    /// Keyed digests of the API keys: compared with `ring::hmac::verify`,
    /// constant time whatever the candidate's length.
    key_check: Arc<(ring::hmac::Key, Vec<ring::hmac::Tag>)>,
}

impl ApiState {
    /// State for `edge` accepting `api_keys`.
    #[must_use]
    pub fn new(edge: Arc<Edge>, api_keys: &[String]) -> Self {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &rand::random::<[u8; 32]>());
        let tags =
            api_keys.iter().filter(|k| !k.is_empty()).map(|k| ring::hmac::sign(&key, k.as_bytes())).collect();
        Self { edge, key_check: Arc::new((key, tags)) }
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

    /// An API key.
    fn require_key(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match Self::bearer(headers) {
            Some(candidate) if self.is_api_key(candidate) => Ok(()),
            _ => Err(ApiError::unauthorized()),
        }
    }

    /// An API key, or a widget token for connection `id`.
    fn require_key_or_widget(&self, headers: &HeaderMap, id: &str) -> Result<(), ApiError> {
        let candidate = Self::bearer(headers).ok_or_else(ApiError::unauthorized)?;
        if self.is_api_key(candidate) {
            return Ok(());
        }
        match self.edge.widget_connection(candidate, OffsetDateTime::now_utc()) {
            Some(granted) if granted == id => Ok(()),
            _ => Err(ApiError::unauthorized()),
        }
    }
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
    headers: HeaderMap,
    json: Result<Json<CreateConnection>, JsonRejection>,
) -> Result<(StatusCode, Json<Connection>), ApiError> {
    s.require_key(&headers)?;
    let request = body(json)?;
    let c = s.edge.create(&request.hostname, request.plan.as_deref()).await?;
    // Checked right away by the worker.
    let edge = Arc::clone(&s.edge);
    let id = c.id.clone();
    if s.edge.config.worker_enabled {
        tokio::spawn(async move {
            if let Err(e) = edge.advance(&id, false, 4).await {
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
    headers: HeaderMap,
    paging: Result<Query<Paging>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ConnectionPage>, ApiError> {
    s.require_key(&headers)?;
    let Query(paging) = paging.map_err(|e| ApiError::invalid_request(e.body_text()))?;
    let per_page = paging.per_page.unwrap_or(20);
    let page = paging.page.unwrap_or(1);
    if !(1..=100).contains(&per_page) || page == 0 {
        return Err(ApiError::invalid_request("page starts at 1; per_page is 1 to 100"));
    }
    let all = s.edge.repo.list().await?;
    let items = all.iter().skip((page - 1).saturating_mul(per_page)).take(per_page).cloned().collect();
    Ok(Json(ConnectionPage { items, page, per_page, total: all.len() }))
}

#[utoipa::path(get, path = "/v1/connections/{id}", params(ConnectionId), security(("api_key" = [])),
    responses((status = 200, body = Connection), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_one(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Connection>, ApiError> {
    s.require_key(&headers)?;
    Ok(Json(s.edge.get(&id).await?))
}

#[utoipa::path(delete, path = "/v1/connections/{id}", params(ConnectionId), security(("api_key" = [])),
    responses((status = 200, body = Connection), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn archive(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Connection>, ApiError> {
    s.require_key(&headers)?;
    Ok(Json(s.edge.archive(&id).await?))
}

#[utoipa::path(post, path = "/v1/connections/{id}/verify", params(ConnectionId), security(("api_key" = []), ("widget_token" = [])),
    responses((status = 200, body = Connection), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn verify(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Connection>, ApiError> {
    s.require_key_or_widget(&headers, &id)?;
    // One step: the DNS check (and the move to `verified`, or to/from
    // `drifted`); issuance is the worker's, or on demand at the first handshake.
    s.edge.advance(&id, true, 1).await?.map(Json).ok_or_else(ApiError::not_found)
}

#[utoipa::path(get, path = "/v1/connections/{id}/records:check", params(ConnectionId), security(("api_key" = []), ("widget_token" = [])),
    responses((status = 200, body = RecordsCheck), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn records_check(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<RecordsCheck>, ApiError> {
    s.require_key_or_widget(&headers, &id)?;
    Ok(Json(s.edge.check_records(&id).await?))
}

#[utoipa::path(get, path = "/v1/connections/{id}/activity", params(ConnectionId), security(("api_key" = [])),
    responses((status = 200, body = Vec<Object>, description = "events, newest first"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn activity(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Vec<acme_core::Event>>, ApiError> {
    s.require_key(&headers)?;
    let c = s.edge.get(&id).await?;
    Ok(Json(s.edge.activity.read(&c.hostname).await?))
}

#[utoipa::path(post, path = "/v1/connections/{id}/certificate", params(ConnectionId), request_body = UploadCertificate, security(("api_key" = [])),
    responses((status = 200, body = Connection), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn upload_certificate(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    json: Result<Json<UploadCertificate>, JsonRejection>,
) -> Result<Json<Connection>, ApiError> {
    s.require_key(&headers)?;
    let upload = body(json)?;
    Ok(Json(s.edge.upload_certificate(&id, &upload.certificate_pem, &upload.private_key_pem).await?))
}

#[utoipa::path(post, path = "/v1/connections/{id}/widget-token", params(ConnectionId), security(("api_key" = [])),
    responses((status = 200, body = WidgetToken), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn widget_token(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<WidgetToken>, ApiError> {
    s.require_key(&headers)?;
    let c = s.edge.get(&id).await?;
    let (token, expires_at) = s.edge.widget_token(&c.id, OffsetDateTime::now_utc());
    Ok(Json(WidgetToken { token, expires_at }))
}

#[utoipa::path(get, path = "/internal/ask", params(AskQuery),
    responses((status = 200, body = AskAnswer), (status = 403, body = AskAnswer)))]
async fn ask(
    State(s): State<ApiState>,
    query: Result<Query<AskQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let allow = match query {
        Ok(Query(q)) => s.edge.ask(&q.domain).await.unwrap_or(false),
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
    components(schemas(Connection, DesiredRecord, CertificateInfo, ErrorBody, CreateConnection, UploadCertificate,
        ConnectionPage, WidgetToken, AskAnswer, RecordsCheck, RecordCheck)),
    modifiers(&Security)
)]
pub struct ApiDoc;

/// The API's routes with body limit, timeout and concurrency limit.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/connections", post(create).get(list))
        .route("/v1/connections/{id}", get(get_one).delete(archive))
        .route("/v1/connections/{id}/verify", post(verify))
        .route("/v1/connections/{id}/records:check", get(records_check))
        .route("/v1/connections/{id}/activity", get(activity))
        .route("/v1/connections/{id}/certificate", post(upload_certificate))
        .route("/v1/connections/{id}/widget-token", post(widget_token))
        .route("/internal/ask", get(ask))
        .route("/v1/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(180),
        ))
        .with_state(state)
}
