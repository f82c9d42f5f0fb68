//! The :80 listener with curl: challenge answers and redirects (pebble
//! validating a real HTTP-01 order through it is in acme-core's `serving`
//! tests: sni-proxy does not depend on an issuer).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use sni_proxy::{ChallengeAnswers, Http80Config, serve_http80};

/// One published HTTP-01 answer.
struct OneAnswer;

#[async_trait::async_trait]
impl ChallengeAnswers for OneAnswer {
    async fn http01(&self, token: &str) -> Option<String> {
        (token == "published").then(|| "published.thumbprint".to_owned())
    }
    async fn tls_alpn01(&self, _server_name: &str) -> Option<Arc<rustls::sign::CertifiedKey>> {
        None
    }
}

async fn start(config: Http80Config) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(serve_http80(listener, config));
    port
}

use testkit::curl;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenges_are_answered_and_everything_else_redirected() {
    let mut config = Http80Config::new(Arc::new(OneAnswer));
    config.https_port = 8443;
    let port = start(config).await;
    let base = format!("http://127.0.0.1:{port}");
    let r = curl(&["-H", "Host: shop.example.com", &format!("{base}/.well-known/acme-challenge/published")]);
    assert_eq!(r, "published.thumbprint\n200 ");
    let r = curl(&["-H", "Host: shop.example.com", &format!("{base}/.well-known/acme-challenge/unknown")]);
    assert!(r.ends_with("404 "), "{r}");
    let r = curl(&["-H", "Host: Shop.Example.com:80", &format!("{base}/cart?item=1")]);
    assert!(r.ends_with("308 https://Shop.Example.com:8443/cart?item=1"), "{r}");
    let r = curl(&["-H", "Host: bad host", &format!("{base}/")]);
    assert!(r.ends_with("400 "), "{r}");
}
