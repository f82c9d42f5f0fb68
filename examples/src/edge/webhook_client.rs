//! The edge's [`WebhookTransport`]: hyper with rustls (ring), so receivers
//! may be `http://` or `https://` (public web roots, plus an optional extra
//! root for a private CA).

use std::path::Path;

use async_trait::async_trait;
use control_plane::{DeliveryError, WebhookTransport};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use rustls_pki_types::{CertificateDer, pem::PemObject};

/// Why the webhook client or a receiver URL is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ClientSetupError {
    /// The extra root file cannot be read or holds no certificate.
    #[error("cannot read CA certificates from {path}: {reason}")]
    Root {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// A certificate of the extra root is not a usable trust anchor.
    #[error("extra root refused: {0}")]
    Anchor(#[source] rustls::Error),
    /// The TLS settings could not be made.
    #[error("TLS settings: {0}")]
    Tls(#[source] rustls::Error),
    /// A receiver URL that is not `http(s)://host…`.
    #[error("{url:?} is not an http:// or https:// URL with a host")]
    Url {
        /// The URL as given.
        url: String,
    },
}

/// Checks that `url` is `http://` or `https://` with a host (done at start,
/// so a typo is an error naming the URL, not deliveries retried forever).
///
/// # Errors
/// [`ClientSetupError::Url`].
pub fn check_url(url: &str) -> Result<(), ClientSetupError> {
    let bad = || ClientSetupError::Url { url: url.to_owned() };
    let uri: hyper::Uri = url.parse().map_err(|_| bad())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if scheme_ok && uri.host().is_some_and(|h| !h.is_empty()) { Ok(()) } else { Err(bad()) }
}

/// Posts webhook events with hyper over plain HTTP or rustls.
#[derive(Clone)]
pub struct HyperWebhooks {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for HyperWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperWebhooks").finish_non_exhaustive()
    }
}

impl HyperWebhooks {
    /// A client trusting the public web roots and, if given, the CA
    /// certificates in the PEM file `extra_root`.
    ///
    /// # Errors
    /// [`ClientSetupError`] when the extra root is unusable.
    pub fn new(extra_root: Option<&Path>) -> Result<Self, ClientSetupError> {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        if let Some(path) = extra_root {
            let root_error = |reason: String| ClientSetupError::Root { path: path.to_owned(), reason };
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|e| root_error(e.to_string()))?;
            if certificates.is_empty() {
                return Err(root_error("no certificate in the file".into()));
            }
            for certificate in certificates {
                roots.add(certificate).map_err(ClientSetupError::Anchor)?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(ClientSetupError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(std::time::Duration::from_secs(5)));
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self { client: Client::builder(TokioExecutor::new()).build(connector) })
    }
}

#[async_trait]
impl WebhookTransport for HyperWebhooks {
    async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Result<(), DeliveryError> {
        let mut request = hyper::Request::post(url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request =
            request.body(Full::new(Bytes::from(body))).map_err(|e| DeliveryError::Transport(e.into()))?;
        let response = self.client.request(request).await.map_err(|e| DeliveryError::Transport(e.into()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(DeliveryError::Status(response.status().as_u16()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiver_urls_are_checked_at_start() {
        for ok in ["http://127.0.0.1:9/hooks", "https://hooks.example.com/x"] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in ["hooks.example.com", "ftp://x/", "https://", "not a url"] {
            let e = check_url(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
        let missing = HyperWebhooks::new(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err().to_string();
        assert!(missing.contains("/nonexistent/ca.pem"), "{missing}");
    }
}
