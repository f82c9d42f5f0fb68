//! The HTTP client [`AcmeIssuer`](crate::AcmeIssuer) gives instant-acme:
//! instant-acme's own (hyper + rustls, HTTP/1.1 and 2, HTTPS only), on
//! ring, that records each request's latency as
//! [`REQUEST_DURATION`](crate::metrics::REQUEST_DURATION) by endpoint and
//! status. The endpoints are named from the directory, read as it passes
//! through.

use std::{
    collections::HashMap,
    path::Path,
    pin::Pin,
    sync::{Arc, PoisonError, RwLock},
    time::Instant,
};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use instant_acme::{AccountBuilder, BodyWrapper, BytesResponse, HttpClient};
use rustls_pki_types::{CertificateDer, pem::PemObject};

use crate::metrics::{REQUEST_DURATION, endpoint, endpoint_of_directory_field, endpoint_of_path};

/// URL → endpoint, learned from the directory.
type Endpoints = Arc<RwLock<HashMap<String, &'static str>>>;

/// instant-acme's client with each request timed.
pub(crate) struct MeteredHttp {
    client: Client<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>,
    directory: String,
    endpoints: Endpoints,
}

/// An account builder whose requests to `directory` are timed; `root`: a
/// PEM root trusted instead of the platform's (private and test CAs).
pub(crate) fn account_builder(
    directory: &str,
    root: Option<&Path>,
) -> Result<AccountBuilder, instant_acme::Error> {
    let other = |e: Box<dyn std::error::Error + Send + Sync>| instant_acme::Error::Other(e);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = match root {
        Some(path) => {
            let root = CertificateDer::from_pem_file(path).map_err(|e| other(e.into()))?;
            let mut roots = rustls::RootCertStore::empty();
            roots.add(root).map_err(|e| other(e.into()))?;
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| other(e.into()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            HttpsConnectorBuilder::new().with_tls_config(config)
        }
        None => HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(provider)
            .map_err(|e| other(e.into()))?,
    };
    let connector = builder.https_only().enable_http1().enable_http2().build();
    let http = MeteredHttp {
        client: Client::builder(TokioExecutor::new()).build(connector),
        directory: directory.to_owned(),
        endpoints: Endpoints::default(),
    };
    Ok(instant_acme::Account::builder_with_http(Box::new(http)))
}

impl MeteredHttp {
    /// The endpoint label of a request to `url`.
    fn endpoint(&self, method: &Method, url: &str) -> &'static str {
        if url == self.directory {
            return endpoint::DIRECTORY;
        }
        let endpoints = self.endpoints.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = endpoints.get(url) {
            return known;
        }
        if method == Method::HEAD {
            return endpoint::NEW_NONCE;
        }
        // ARI URLs are the renewalInfo URL plus a certificate identifier.
        if endpoints
            .iter()
            .any(|(base, name)| *name == endpoint::RENEWAL_INFO && url.starts_with(base.as_str()))
        {
            return endpoint::RENEWAL_INFO;
        }
        let path = url.split_once("://").map_or(url, |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
        endpoint_of_path(path)
    }
}

/// Names the directory's resources from its JSON body.
fn learn_directory(endpoints: &Endpoints, body: &[u8]) {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let mut endpoints = endpoints.write().unwrap_or_else(PoisonError::into_inner);
    for (field, url) in fields {
        if let (Some(name), Some(url)) = (endpoint_of_directory_field(&field), url.as_str()) {
            endpoints.insert(url.to_owned(), name);
        }
    }
}

impl HttpClient for MeteredHttp {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let url = req.uri().to_string();
        let endpoint = self.endpoint(req.method(), &url);
        let endpoints = Arc::clone(&self.endpoints);
        let started = Instant::now();
        let response = self.client.request(req);
        Box::pin(async move {
            let response = response.await;
            let status =
                response.as_ref().map_or_else(|_| "error".to_owned(), |r| r.status().as_u16().to_string());
            metrics::histogram!(REQUEST_DURATION, "endpoint" => endpoint, "status" => status)
                .record(started.elapsed().as_secs_f64());
            let response = response.map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            if endpoint != endpoint::DIRECTORY || !response.status().is_success() {
                return Ok(BytesResponse::from(response));
            }
            // Read the directory to name its resources, then hand it on.
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(|e| instant_acme::Error::Other(Box::new(e)))?.to_bytes();
            learn_directory(&endpoints, &body);
            Ok(BytesResponse::from(Response::from_parts(parts, Full::new(body))))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn directory_resources_are_named_and_other_urls_by_their_path() {
        let http = MeteredHttp {
            client: Client::builder(TokioExecutor::new()).build(
                HttpsConnectorBuilder::new()
                    .with_provider_and_platform_verifier(Arc::new(rustls::crypto::ring::default_provider()))
                    .unwrap()
                    .https_only()
                    .enable_http1()
                    .build(),
            ),
            directory: "https://ca.test/dir".into(),
            endpoints: Endpoints::default(),
        };
        learn_directory(
            &http.endpoints,
            br#"{"newNonce":"https://ca.test/nonce-plz","newOrder":"https://ca.test/order-plz","renewalInfo":"https://ca.test/ari/","meta":{}}"#,
        );
        let post = Method::POST;
        assert_eq!(http.endpoint(&Method::GET, "https://ca.test/dir"), endpoint::DIRECTORY);
        assert_eq!(http.endpoint(&Method::HEAD, "https://ca.test/nonce-plz"), endpoint::NEW_NONCE);
        assert_eq!(http.endpoint(&post, "https://ca.test/order-plz"), endpoint::NEW_ORDER);
        assert_eq!(http.endpoint(&Method::GET, "https://ca.test/ari/abc.def"), endpoint::RENEWAL_INFO);
        assert_eq!(http.endpoint(&post, "https://ca.test/my-order/7"), endpoint::ORDER);
        assert_eq!(http.endpoint(&post, "https://ca.test/finalize-order/7"), endpoint::FINALIZE);
        assert_eq!(http.endpoint(&post, "https://ca.test/chalZ/9"), endpoint::CHALLENGE);
    }
}
