//! The one HTTP client every HTTPS provider uses: hyper + rustls on ring,
//! webpki roots, a deadline per request and a bound on the answer's size.

use std::time::Duration;

use bytes::Bytes;
use dns_verify::ProviderError;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode, header::HeaderMap};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde::{Serialize, de::DeserializeOwned};

use crate::xml::Element;

/// Largest answer read from a provider (a zone listing of a big zone fits).
const MAX_BODY: usize = 8 * 1024 * 1024;

/// A provider's answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as text, cut for error messages.
    pub fn snippet(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        if text.len() > 300 {
            let mut end = 300;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}…", &text[..end])
        } else {
            text.to_owned()
        }
    }

    /// `Retry-After` in seconds, if present.
    pub fn retry_after(&self) -> Option<Duration> {
        self.headers
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
    }

    /// The answer when its status is a success, else `error` of it (the
    /// provider's mapping of its documented errors).
    pub fn success_or(self, error: impl FnOnce(&Self) -> ProviderError) -> Result<Self, ProviderError> {
        if self.status.is_success() { Ok(self) } else { Err(error(&self)) }
    }

    /// The body as JSON; else [`ProviderError::Server`] saying
    /// `unexpected`, with the parse error as its source.
    pub fn json<T: DeserializeOwned>(&self, unexpected: impl Into<String>) -> Result<T, ProviderError> {
        serde_json::from_slice(&self.body).map_err(|e| ProviderError::server(unexpected).with_source(e))
    }

    /// The body as XML; else [`ProviderError::Server`] saying `unexpected`,
    /// with the parse error as its source.
    pub fn xml(&self, unexpected: impl Into<String>) -> Result<Element, ProviderError> {
        Element::parse(&self.body).map_err(|e| ProviderError::server(unexpected).with_source(e))
    }

    /// The error for an answer no provider rule matched: by status class.
    pub fn generic_error(&self, what: &str) -> ProviderError {
        let detail = format!("{what}: HTTP {} {}", self.status.as_u16(), self.snippet());
        match self.status.as_u16() {
            401 => ProviderError::invalid_credential(detail),
            403 => ProviderError::permission_denied(detail),
            429 => ProviderError::rate_limited(self.retry_after()),
            500..=599 => ProviderError::unavailable(detail),
            _ => ProviderError::server(detail),
        }
    }
}

/// An HTTPS (and, for loopback peers, HTTP) client with a per-request deadline.
#[derive(Clone)]
pub(crate) struct HttpClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

crate::debug::debug_without_secrets!(HttpClient { timeout });

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTPS client: {0}")]
pub struct ClientError(#[source] rustls::Error);

impl HttpClient {
    /// A client trusting the webpki roots.
    pub fn new(timeout: Duration) -> Result<Self, ClientError> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let roots = rustls::RootCertStore { roots: webpki_roots_certs() };
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(ClientError)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(https);
        Ok(Self { client, timeout })
    }

    /// Sends `method url` with `headers` and `body`; a transport failure or
    /// the deadline is [`ProviderError::Unavailable`].
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Answer, ProviderError> {
        let mut request = Request::builder().method(method.clone()).uri(url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ProviderError::server(format!("bad request to {}", redact(url))).with_source(e))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                ProviderError::unavailable(format!("{method} {}: {e}", redact(url))).with_source(e)
            })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_BODY).collect().await.map_err(|e| {
                ProviderError::unavailable(format!("{method} {}: reading the answer: {e}", redact(url)))
            })?;
            Ok(Answer { status: parts.status, headers: parts.headers, body: body.to_bytes() })
        };
        tokio::time::timeout(self.timeout, exchange).await.map_err(|_| {
            ProviderError::unavailable(format!("{method} {}: no answer in {:?}", redact(url), self.timeout))
        })?
    }
}

/// `value` as a JSON request body; else [`ProviderError::Server`] saying
/// `unencodable`.
pub(crate) fn json_body(value: &impl Serialize, unencodable: &str) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(value).map_err(|e| ProviderError::server(unencodable).with_source(e))
}

/// `url` without its query (Namecheap puts the API key there).
pub(crate) fn redact(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

fn webpki_roots_certs() -> Vec<rustls::pki_types::TrustAnchor<'static>> {
    webpki_roots::TLS_SERVER_ROOTS.to_vec()
}
