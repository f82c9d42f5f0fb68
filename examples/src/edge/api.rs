//! The control plane API (JSON, bearer API key; widget tokens for one
//! connection's `records:check`, `verify` and the connection itself).
//!
//! Authentication is a layer on each group of routes ([`router`]), so no
//! route can forget it; [`ApiError`] maps the control plane's typed errors
//! to statuses in one place.

use std::{sync::Arc, time::Duration};

use axum::{
    Extension, Json, Router,
    extract::{DefaultBodyLimit, Path, Query, Request, State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use control_plane::{
    Activity, ActivityEntry, ActivityFilter, ActivityPage, CertificateInfo, ClaimHolder, Connection,
    ControlPlane, DEFAULT_TENANT, DesiredRecord, Error, ErrorCode, NewTenantKey, Problem, QuotaUsage,
    RecordCheck, RecordsCheck, SanCheck, Ssl, SslCertificate, Tenant,
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
    /// Connections created this period (`QuotaExceeded`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used: Option<u64>,
    /// When the quota period ends (`QuotaExceeded`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub period_end: Option<OffsetDateTime>,
    /// `same_tenant` or `other_tenant` (`HostnameConflict`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
    /// The caller's connection holding the name (`HostnameConflict`, same tenant).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
    /// The name in conflict (`HostnameConflict`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// An API error: status + body.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {} ({})", body.message, body.code)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// JSON body.
    pub body: Box<ErrorBody>,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        let body = ErrorBody {
            code: code.to_owned(),
            message: message.into(),
            limit: None,
            plan: None,
            upgrade_url: None,
            used: None,
            period_end: None,
            held_by: None,
            connection_id: None,
            hostname: None,
        };
        Self { status, body: Box::new(body) }
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
        match e {
            Error::QuotaExceeded { plan, limit, used, period_end, upgrade_url } => {
                out.body.limit = Some(limit);
                out.body.plan = Some(plan);
                out.body.upgrade_url = Some(upgrade_url);
                out.body.used = Some(used);
                out.body.period_end = Some(period_end);
            }
            Error::HostnameConflict { hostname, held_by } => {
                out.body.hostname = Some(hostname);
                match held_by {
                    ClaimHolder::SameTenant { connection } => {
                        out.body.held_by = Some("same_tenant".into());
                        out.body.connection_id = Some(connection);
                    }
                    _ => out.body.held_by = Some("other_tenant".into()),
                }
            }
            _ => {}
        }
        out
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(*self.body)).into_response()
    }
}

/// A set of static keys, compared in constant time: keyed digests checked
/// with `ring::hmac::verify`, whatever the candidate's length.
struct StaticKeys(ring::hmac::Key, Vec<ring::hmac::Tag>);

impl StaticKeys {
    fn new(keys: &[String]) -> Self {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &rand::random::<[u8; 32]>());
        let tags =
            keys.iter().filter(|k| !k.is_empty()).map(|k| ring::hmac::sign(&key, k.as_bytes())).collect();
        Self(key, tags)
    }

    fn contains(&self, candidate: &str) -> bool {
        // Every key checked (no early exit), each in constant time.
        self.1.iter().fold(false, |ok, tag| {
            ring::hmac::verify(&self.0, candidate.as_bytes(), tag.as_ref()).is_ok() | ok
        })
    }
}

/// Shared by the handlers.
#[derive(Clone)]
pub struct ApiState {
    cp: Arc<ControlPlane>,
    worker_enabled: bool,
    /// Keys of the default tenant (`EDGE_API_KEYS`).
    default_keys: Arc<StaticKeys>,
    /// Operator keys (`EDGE_ADMIN_KEYS`).
    admin_keys: Arc<StaticKeys>,
}

/// Who is calling, as the authentication layer found: what the handlers
/// act for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A tenant's API key (or a default-tenant key): its connections only.
    Tenant(String),
    /// A widget token: this one connection only.
    Widget(String),
}

impl ApiState {
    /// State for `cp` accepting `api_keys` for the default tenant and
    /// `admin_keys` for operators; `worker_enabled`: new connections are
    /// checked at once.
    #[must_use]
    pub fn new(
        cp: Arc<ControlPlane>,
        api_keys: &[String],
        admin_keys: &[String],
        worker_enabled: bool,
    ) -> Self {
        Self {
            cp,
            worker_enabled,
            default_keys: Arc::new(StaticKeys::new(api_keys)),
            admin_keys: Arc::new(StaticKeys::new(admin_keys)),
        }
    }

    /// The control plane the handlers act on.
    pub(super) fn control_plane(&self) -> &Arc<ControlPlane> {
        &self.cp
    }

    fn bearer(headers: &HeaderMap) -> Option<&str> {
        headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
    }

    /// The tenant a key acts for: a default-tenant key, or a live tenant key.
    async fn tenant_of(&self, candidate: &str) -> Result<Option<String>, ApiError> {
        if self.default_keys.contains(candidate) {
            return Ok(Some(DEFAULT_TENANT.to_owned()));
        }
        Ok(self.cp.tenants().authenticate(candidate).await?)
    }

    /// Connection `id` as `caller` may see it: its tenant's, or the
    /// widget's own; anything else is 404, exactly as a missing one.
    pub(super) async fn connection(&self, caller: &Caller, id: &str) -> Result<Connection, ApiError> {
        match caller {
            Caller::Tenant(tenant) => Ok(self.cp.get_in(tenant, id).await?),
            Caller::Widget(granted) if granted == id => Ok(self.cp.get(id).await?),
            Caller::Widget(_) => Err(ApiError::not_found()),
        }
    }
}

/// Layer of the tenant routes: a tenant (or default-tenant) key, or 401.
/// The [`Caller`] is handed to the handler.
async fn require_tenant_key(
    State(s): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let candidate = ApiState::bearer(request.headers()).ok_or_else(ApiError::unauthorized)?;
    let tenant = s.tenant_of(candidate).await?.ok_or_else(ApiError::unauthorized)?;
    request.extensions_mut().insert(Caller::Tenant(tenant));
    Ok(next.run(request).await)
}

/// Layer of the operator routes: an operator key, or 401.
async fn require_admin_key(
    State(s): State<ApiState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    match ApiState::bearer(request.headers()) {
        Some(candidate) if s.admin_keys.contains(candidate) => Ok(next.run(request).await),
        _ => Err(ApiError::unauthorized()),
    }
}

/// Layer of the widget routes: a tenant key, or a widget token for the
/// connection in the path, or 401.
async fn require_key_or_widget(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let candidate = ApiState::bearer(request.headers()).ok_or_else(ApiError::unauthorized)?;
    let caller = match s.tenant_of(candidate).await? {
        Some(tenant) => Caller::Tenant(tenant),
        None => match s.cp.widget_connection(candidate, OffsetDateTime::now_utc()) {
            Some(granted) if granted == id => Caller::Widget(granted),
            _ => return Err(ApiError::unauthorized()),
        },
    };
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

fn body<T>(json: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    json.map(|Json(t)| t).map_err(|rejection| {
        let mut e = ApiError::invalid_request(rejection.body_text());
        e.status = rejection.status();
        e
    })
}

/// A JSON object body as `T` (serde would also take a JSON array for a
/// struct, which the schema does not allow): 422 otherwise.
fn object_body<T: serde::de::DeserializeOwned>(
    json: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<T, ApiError> {
    let value = body(json)?;
    let unprocessable = |reason: String| {
        let mut e = ApiError::invalid_request(reason);
        e.status = StatusCode::UNPROCESSABLE_ENTITY;
        e
    };
    if !value.is_object() {
        return Err(unprocessable("the body must be a JSON object".to_owned()));
    }
    serde_json::from_value(value).map_err(|e| unprocessable(e.to_string()))
}

/// `POST /v1/connections` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConnection {
    /// The customer's hostname, e.g. `shop.customer.com` or `customer.com`.
    #[schema(min_length = 1, max_length = 253)]
    pub hostname: String,
    /// Whether the certificate also covers `*.hostname` (default: yes for a
    /// registrable domain such as `customer.com`, no for a subdomain).
    pub include_wildcard: Option<bool>,
    /// More names on the same certificate (at most 100 names in all).
    #[serde(default)]
    pub additional_sans: Vec<String>,
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
    Extension(caller): Extension<Caller>,
    json: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Connection>), ApiError> {
    let request: CreateConnection = object_body(json)?;
    let Caller::Tenant(tenant) = caller else { return Err(ApiError::unauthorized()) };
    let c =
        s.cp.create_domain(&tenant, &request.hostname, request.include_wildcard, &request.additional_sans)
            .await?;
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
    Extension(caller): Extension<Caller>,
    paging: Result<Query<Paging>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ConnectionPage>, ApiError> {
    let Caller::Tenant(tenant) = caller else { return Err(ApiError::unauthorized()) };
    let Query(paging) = paging.map_err(|e| ApiError::invalid_request(e.body_text()))?;
    let per_page = paging.per_page.unwrap_or(20);
    let page = paging.page.unwrap_or(1);
    if !(1..=100).contains(&per_page) || page == 0 {
        return Err(ApiError::invalid_request("page starts at 1; per_page is 1 to 100"));
    }
    let (items, total) = s.cp.list_page(&tenant, page as u64, per_page as u64).await?;
    Ok(Json(ConnectionPage { items, page, per_page, total: usize::try_from(total).unwrap_or(usize::MAX) }))
}

#[utoipa::path(get, path = "/v1/connections/{id}", params(ConnectionId), security(("api_key" = []), ("widget_token" = [])),
    responses((status = 200, body = Connection), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_one(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Connection>, ApiError> {
    Ok(Json(s.connection(&caller, &id).await?))
}

#[utoipa::path(delete, path = "/v1/connections/{id}", params(ConnectionId), security(("api_key" = [])),
    responses((status = 200, body = Connection), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn archive(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Connection>, ApiError> {
    s.connection(&caller, &id).await?;
    Ok(Json(s.cp.archive(&id).await?))
}

/// `POST /v1/connections/{id}/sans` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddSan {
    /// The name to add, e.g. `sub.shop.customer.com` or `*.shop.customer.com`.
    #[schema(min_length = 1, max_length = 253)]
    pub name: String,
}

/// A SAN of a connection in the path.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ConnectionSan {
    /// The connection's id.
    #[allow(dead_code)]
    id: String,
    /// The name to remove (an additional SAN, or `*.<hostname>`).
    #[allow(dead_code)]
    san: String,
}

/// Checks the connection again at once (worker enabled): a SAN change
/// re-checks DNS and re-issues without waiting for the next round.
fn recheck_soon(s: &ApiState, id: &str) {
    if s.worker_enabled {
        let cp = Arc::clone(&s.cp);
        let id = id.to_owned();
        tokio::spawn(async move {
            if let Err(e) = cp.advance(&id, false, 4).await {
                tracing::debug!(%id, error = %e, "recheck after a SAN change");
            }
        });
    }
}

#[utoipa::path(post, path = "/v1/connections/{id}/sans", params(ConnectionId), request_body = AddSan, security(("api_key" = [])),
    responses((status = 200, body = Connection, description = "the connection with the name added; DNS is checked again and the certificate re-issued once every SAN is valid, the current one served meanwhile"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn add_san(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    json: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<Connection>, ApiError> {
    let request: AddSan = object_body(json)?;
    s.connection(&caller, &id).await?;
    let c = s.cp.add_san(&id, &request.name).await?;
    recheck_soon(&s, &id);
    Ok(Json(c))
}

#[utoipa::path(delete, path = "/v1/connections/{id}/sans/{san}", params(ConnectionSan), security(("api_key" = [])),
    responses((status = 200, body = Connection, description = "the connection without the name; the certificate is re-issued without it"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_san(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((id, san)): Path<(String, String)>,
) -> Result<Json<Connection>, ApiError> {
    s.connection(&caller, &id).await?;
    let c = s.cp.remove_san(&id, &san).await?;
    recheck_soon(&s, &id);
    Ok(Json(c))
}

#[utoipa::path(post, path = "/v1/connections/{id}/verify", params(ConnectionId), security(("api_key" = []), ("widget_token" = [])),
    responses((status = 200, body = Connection), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn verify(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Connection>, ApiError> {
    s.connection(&caller, &id).await?;
    // One step: the DNS check (and the move to `verified`, or to/from
    // `drifted`); issuance is the worker's, or on demand at the first handshake.
    s.cp.advance(&id, true, 1).await?.map(Json).ok_or_else(ApiError::not_found)
}

#[utoipa::path(get, path = "/v1/connections/{id}/records:check", params(ConnectionId), security(("api_key" = []), ("widget_token" = [])),
    responses((status = 200, body = RecordsCheck), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn records_check(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<RecordsCheck>, ApiError> {
    s.connection(&caller, &id).await?;
    Ok(Json(s.cp.check_records(&id).await?))
}

#[utoipa::path(get, path = "/v1/connections/{id}/activity", params(ConnectionId, ActivityQuery), security(("api_key" = [])),
    responses((status = 200, body = ActivityPage, description = "the connection's part of the team log, newest first"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn activity(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    query: Result<Query<ActivityQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ActivityPage>, ApiError> {
    let c = s.connection(&caller, &id).await?;
    let Query(query) = query.map_err(|e| ApiError::invalid_request(e.body_text()))?;
    let (mut filter, limit) = query.filter()?;
    filter.connection = Some(c.id);
    Ok(Json(s.cp.activity_page(&c.tenant, &filter, limit).await?))
}

/// Activity query: filters and the cursor.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    /// Only this connection's records.
    connection: Option<String>,
    /// Only this hostname's records.
    hostname: Option<String>,
    /// Only this kind, e.g. `issued`, `failed`, `archived`.
    kind: Option<String>,
    /// The previous page's `next`: records older than it.
    before: Option<String>,
    /// Records per page, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<usize>,
}

impl ActivityQuery {
    fn filter(self) -> Result<(ActivityFilter, usize), ApiError> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=ACTIVITY_PAGE).contains(&limit) {
            return Err(ApiError::invalid_request("limit is 1 to 200"));
        }
        let filter = ActivityFilter {
            connection: self.connection,
            hostname: self.hostname.map(|h| h.to_ascii_lowercase()),
            kind: self.kind,
            before: self.before,
        };
        Ok((filter, limit))
    }
}

#[utoipa::path(get, path = "/v1/activity", params(ActivityQuery), security(("api_key" = [])),
    responses((status = 200, body = ActivityPage, description = "the tenant's log, newest first"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn team_activity(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<ActivityQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ActivityPage>, ApiError> {
    let Caller::Tenant(tenant) = caller else { return Err(ApiError::unauthorized()) };
    let Query(query) = query.map_err(|e| ApiError::invalid_request(e.body_text()))?;
    let (filter, limit) = query.filter()?;
    Ok(Json(s.cp.activity_page(&tenant, &filter, limit).await?))
}

#[utoipa::path(get, path = "/v1/quota", security(("api_key" = [])),
    responses((status = 200, body = QuotaUsage), (status = 401, body = ErrorBody)))]
async fn quota(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<QuotaUsage>, ApiError> {
    let Caller::Tenant(tenant) = caller else { return Err(ApiError::unauthorized()) };
    Ok(Json(s.cp.quota_of(&tenant).await?))
}

#[utoipa::path(post, path = "/v1/connections/{id}/certificate", params(ConnectionId), request_body = UploadCertificate, security(("api_key" = [])),
    responses((status = 200, body = Connection), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn upload_certificate(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    json: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<Connection>, ApiError> {
    s.connection(&caller, &id).await?;
    let upload: UploadCertificate = object_body(json)?;
    Ok(Json(s.cp.upload_certificate(&id, &upload.certificate_pem, &upload.private_key_pem).await?))
}

#[utoipa::path(post, path = "/v1/connections/{id}/widget-token", params(ConnectionId), security(("api_key" = [])),
    responses((status = 200, body = WidgetToken), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn widget_token(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<WidgetToken>, ApiError> {
    let c = s.connection(&caller, &id).await?;
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

/// `POST /v1/tenants` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Display name.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Plan (default `free`).
    pub plan: Option<String>,
}

/// `PATCH /v1/tenants/{id}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    /// New display name.
    pub name: Option<String>,
    /// New plan.
    pub plan: Option<String>,
}

/// The tenant in the path.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantId {
    /// The tenant's id.
    #[allow(dead_code)]
    id: String,
}

/// The tenant and key in the path.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantKeyPath {
    /// The tenant's id.
    #[allow(dead_code)]
    id: String,
    /// The key's id.
    #[allow(dead_code)]
    key_id: String,
}

#[utoipa::path(post, path = "/v1/tenants", request_body = CreateTenant, security(("admin_key" = [])),
    responses((status = 201, body = Tenant), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_tenant(
    State(s): State<ApiState>,
    json: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    let request: CreateTenant = object_body(json)?;
    let plan = request.plan.as_deref().unwrap_or("free");
    let tenant = s.cp.tenants().create(&request.name, plan, &s.cp.settings().quotas).await?;
    Ok((StatusCode::CREATED, Json(tenant)))
}

#[utoipa::path(get, path = "/v1/tenants", security(("admin_key" = [])),
    responses((status = 200, body = Vec<Tenant>), (status = 401, body = ErrorBody)))]
async fn list_tenants(State(s): State<ApiState>) -> Result<Json<Vec<Tenant>>, ApiError> {
    Ok(Json(s.cp.tenants().list().await?))
}

#[utoipa::path(get, path = "/v1/tenants/{id}", params(TenantId), security(("admin_key" = [])),
    responses((status = 200, body = Tenant), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_tenant(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<Tenant>, ApiError> {
    Ok(Json(s.cp.tenants().get(&id).await?.ok_or(Error::NotFound)?))
}

#[utoipa::path(patch, path = "/v1/tenants/{id}", params(TenantId), request_body = UpdateTenant, security(("admin_key" = [])),
    responses((status = 200, body = Tenant), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update_tenant(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    json: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<Tenant>, ApiError> {
    let request: UpdateTenant = object_body(json)?;
    let quotas = &s.cp.settings().quotas;
    Ok(Json(s.cp.tenants().update(&id, request.name.as_deref(), request.plan.as_deref(), quotas).await?))
}

#[utoipa::path(post, path = "/v1/tenants/{id}/keys", params(TenantId), security(("admin_key" = [])),
    responses((status = 201, body = NewTenantKey, description = "the key, shown this once"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_tenant_key(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<NewTenantKey>), ApiError> {
    let key = s.cp.tenants().create_key(&id).await?;
    s.cp.record_tenant_activity(&key.tenant, Activity::KeyCreated { key_id: key.key_id.clone() }).await;
    Ok((StatusCode::CREATED, Json(key)))
}

#[utoipa::path(delete, path = "/v1/tenants/{id}/keys/{key_id}", params(TenantKeyPath), security(("admin_key" = [])),
    responses((status = 204, description = "revoked"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_tenant_key(
    State(s): State<ApiState>,
    Path((id, key_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.cp.tenants().revoke_key(&id, &key_id).await?;
    s.cp.record_tenant_activity(&id, Activity::KeyRevoked { key_id }).await;
    Ok(StatusCode::NO_CONTENT)
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
        components.add_security_scheme("admin_key", bearer());
    }
}

/// The OpenAPI document, generated from the handlers and types.
#[derive(OpenApi)]
#[openapi(
    info(title = "custom-domain edge", description = "Custom hostnames with automatic TLS."),
    paths(create, list, get_one, archive, add_san, remove_san, verify, records_check, activity, team_activity, quota, upload_certificate,
        widget_token, ask, create_tenant, list_tenants, get_tenant, update_tenant, create_tenant_key, revoke_tenant_key,
        super::dns_credentials::set_provider, super::dns_credentials::remove_provider),
    components(schemas(Connection, DesiredRecord, CertificateInfo, Problem, ErrorBody, CreateConnection, UploadCertificate,
        AddSan, Ssl, SanCheck, SslCertificate,
        ConnectionPage, WidgetToken, AskAnswer, RecordsCheck, RecordCheck, ActivityPage, ActivityEntry, QuotaUsage,
        Tenant, NewTenantKey, CreateTenant, UpdateTenant, control_plane::ProviderState, control_plane::ProviderProblem)),
    modifiers(&Security)
)]
pub struct ApiDoc;

/// The API's routes with body limit, timeout and concurrency limit. Each
/// group of routes has its authentication as a layer: tenant API key,
/// operator key (`/v1/tenants`), tenant key or widget token, or none
/// (`/internal/ask`, the OpenAPI document).
pub fn router(state: ApiState) -> Router {
    let with_api_key = Router::new()
        .route("/v1/connections", post(create).get(list))
        .route("/v1/connections/{id}", axum::routing::delete(archive))
        .route("/v1/connections/{id}/activity", get(activity))
        .route("/v1/connections/{id}/certificate", post(upload_certificate))
        .route("/v1/connections/{id}/sans", post(add_san))
        .route("/v1/connections/{id}/sans/{san}", axum::routing::delete(remove_san))
        .route("/v1/connections/{id}/widget-token", post(widget_token))
        .route("/v1/activity", get(team_activity))
        .route("/v1/quota", get(quota))
        .merge(super::dns_credentials::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_tenant_key));
    let with_admin_key = Router::new()
        .route("/v1/tenants", post(create_tenant).get(list_tenants))
        .route("/v1/tenants/{id}", get(get_tenant).patch(update_tenant))
        .route("/v1/tenants/{id}/keys", post(create_tenant_key))
        .route("/v1/tenants/{id}/keys/{key_id}", axum::routing::delete(revoke_tenant_key))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin_key));
    let with_widget_token = Router::new()
        .route("/v1/connections/{id}", get(get_one))
        .route("/v1/connections/{id}/verify", post(verify))
        .route("/v1/connections/{id}/records:check", get(records_check))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key_or_widget));
    let public = Router::new().route("/internal/ask", get(ask)).route("/v1/openapi.json", get(openapi));
    Router::new()
        .merge(with_api_key)
        .merge(with_admin_key)
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
