//! The customer's DNS setup widget: a page, its script and its style
//! (embedded in the binary, no build step), and `GET /widget/session`,
//! which tells the page which connection its widget token grants and until
//! when.
//!
//! The page is opened as `/widget#token=<widget token>`: a fragment never
//! leaves the browser, so the token is in no server's access log and in no
//! `Referer` header. The script sends it as `Authorization: Bearer` to
//! `GET /widget/session`, then to the widget routes of the API
//! (`records:check`, `verify`, the connection itself). It loads nothing
//! from elsewhere, so it is served under a strict Content-Security-Policy
//! whose `frame-ancestors` lists the dashboards allowed to embed it
//! ([`FrameAncestors`], `EDGE_WIDGET_FRAME_ANCESTORS`).

use std::{str::FromStr, time::Duration};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use control_plane::WidgetKey;
use serde::Serialize;
use time::OffsetDateTime;

use super::api::ApiError;

const PAGE: &str = include_str!("widget/index.html");
const SCRIPT: &str = include_str!("widget/widget.js");
const STYLE: &str = include_str!("widget/widget.css");

/// The `frame-ancestors` sources of the widget's Content-Security-Policy:
/// `'none'` (the default: the widget may only be opened as a page of its
/// own), `'self'`, or origins such as `https://dashboard.example.com`,
/// `https://*.example.com`, `https:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameAncestors(String);

/// A `frame-ancestors` source that is not one the widget accepts.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "frame-ancestors source `{0}` is not 'none', 'self', a scheme (https:) or an origin (https://dashboard.example.com, https://*.example.com:8443)"
)]
pub struct InvalidFrameAncestor(String);

impl FrameAncestors {
    /// The directive as written in the policy.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `host`, `*.host`, with an optional `:port` or `:*`.
fn is_host_source(rest: &str) -> bool {
    let (host, port) = rest.split_once(':').unwrap_or((rest, ""));
    let host = host.strip_prefix("*.").unwrap_or(host);
    let host_ok = !host.is_empty()
        && host
            .split('.')
            .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    let port_ok = rest.split_once(':').is_none()
        || port == "*"
        || (port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p > 0));
    host_ok && port_ok
}

fn is_source(source: &str) -> bool {
    let lower = source.to_ascii_lowercase();
    if lower == "'self'" || lower == "https:" || lower == "http:" {
        return true;
    }
    let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://")).unwrap_or(&lower);
    is_host_source(rest.strip_suffix('/').unwrap_or(rest))
}

impl FromStr for FrameAncestors {
    type Err = InvalidFrameAncestor;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let sources: Vec<&str> = s.split_whitespace().collect();
        match sources.as_slice() {
            [] => Err(InvalidFrameAncestor(s.to_owned())),
            [none] if none.eq_ignore_ascii_case("'none'") => Ok(Self("'none'".into())),
            _ => match sources.iter().find(|source| !is_source(source)) {
                Some(bad) => Err(InvalidFrameAncestor((*bad).to_owned())),
                None => Ok(Self(sources.join(" "))),
            },
        }
    }
}

impl Default for FrameAncestors {
    fn default() -> Self {
        Self("'none'".into())
    }
}

/// How the widget is served.
#[derive(Debug, Clone)]
pub struct WidgetSettings {
    /// Who may embed it in a frame.
    pub frame_ancestors: FrameAncestors,
    /// How often an open widget re-checks the records by itself.
    pub refresh: Duration,
}

#[derive(Clone)]
struct WidgetState {
    key: WidgetKey,
    settings: std::sync::Arc<WidgetSettings>,
    csp: HeaderValue,
}

/// `GET /widget/session`: what the widget token grants.
#[derive(Debug, Serialize)]
pub struct WidgetSession {
    /// The connection the page shows.
    pub connection_id: String,
    /// When the token stops being accepted.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Seconds left, by the server's clock (the page counts down from this,
    /// so a wrong clock in the browser does not matter).
    pub expires_in_secs: i64,
    /// How often the page re-checks the records by itself.
    pub refresh_secs: u64,
}

/// The widget's routes: `/widget` (the page), `/widget/widget.js`,
/// `/widget/widget.css` and `/widget/session`, each with a 10 s timeout.
pub fn routes(key: WidgetKey, settings: WidgetSettings) -> Router {
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors {}",
        settings.frame_ancestors.as_str()
    );
    // FrameAncestors admits only visible ASCII and spaces: always a valid header value.
    let csp =
        HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
    let state = WidgetState { key, settings: std::sync::Arc::new(settings), csp };
    Router::new()
        .route("/widget", get(page))
        .route("/widget/", get(page))
        .route("/widget/widget.js", get(script))
        .route("/widget/widget.css", get(style))
        .route("/widget/session", get(session))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(10),
        ))
        .with_state(state)
}

/// An embedded file with the headers every widget response carries.
fn asset(state: &WidgetState, content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, state.csp.clone());
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    // Small files; revalidated so a new edge version never pairs an old script with a new page.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn page(State(s): State<WidgetState>) -> Response {
    asset(&s, "text/html; charset=utf-8", PAGE)
}

async fn script(State(s): State<WidgetState>) -> Response {
    asset(&s, "text/javascript; charset=utf-8", SCRIPT)
}

async fn style(State(s): State<WidgetState>) -> Response {
    asset(&s, "text/css; charset=utf-8", STYLE)
}

async fn session(State(s): State<WidgetState>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let now = OffsetDateTime::now_utc();
    let Some(grant) = token.and_then(|t| s.key.grant(t, now)) else {
        return ApiError::unauthorized().into_response();
    };
    let body = WidgetSession {
        expires_in_secs: (grant.expires_at - now).whole_seconds().max(0),
        connection_id: grant.connection_id,
        expires_at: grant.expires_at,
        refresh_secs: s.settings.refresh.as_secs().max(1),
    };
    let mut response = Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ancestors_accept_origins_and_refuse_what_would_change_the_policy() {
        for ok in [
            "'none'",
            "'self'",
            "https://dashboard.example.com",
            "https://*.example.com:8443 'self'",
            "http://127.0.0.1:3000",
            "https:",
        ] {
            assert!(ok.parse::<FrameAncestors>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "https://a.example; script-src *",
            "https://a.example,https://b.example",
            "'unsafe-inline'",
            "https://a.example/path",
            "'none' https://a.example",
            "javascript:",
            "https://a.example:99999",
        ] {
            let e = bad.parse::<FrameAncestors>().unwrap_err();
            assert!(e.to_string().contains("frame-ancestors"), "{bad}: {e}");
        }
        assert_eq!(
            "  https://a.example   'self' ".parse::<FrameAncestors>().ok().map(|f| f.0),
            Some("https://a.example 'self'".to_owned())
        );
    }

    #[test]
    fn the_page_loads_nothing_inline_and_nothing_from_elsewhere() {
        assert!(PAGE.contains(r#"<script src="/widget/widget.js""#));
        assert!(PAGE.contains(r#"<link rel="stylesheet" href="/widget/widget.css">"#));
        assert_eq!(PAGE.matches("<script").count(), 1, "one external script, nothing inline");
        for text in [PAGE, SCRIPT, STYLE] {
            assert!(!text.contains("http://") && !text.contains("https://"), "no external resource");
            assert!(!text.contains(" style=") && !text.contains("onclick"), "no inline style or handler");
        }
        assert!(!SCRIPT.contains("innerHTML"), "text goes in with textContent only");
    }
}
