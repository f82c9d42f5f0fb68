//! Shared test helpers: chain verification, challenge responders, peers.

#![allow(dead_code, clippy::unwrap_used)]

use std::{net::SocketAddr, sync::Arc};

use acme_core::ChallengeResponses;
use cert_store::CertBundle;
use rustls::{
    RootCertStore,
    client::{WebPkiServerVerifier, danger::ServerCertVerifier},
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Verifies `bundle`'s chain for `name` against `root_pem` with webpki.
pub fn verify(bundle: &CertBundle, root_pem: &str, name: &str) -> Result<(), rustls::Error> {
    let mut roots = RootCertStore::empty();
    for root in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(root.unwrap()).unwrap();
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    let chain = bundle.chain_der().unwrap();
    verifier
        .verify_server_cert(
            &chain[0],
            &chain[1..],
            &ServerName::try_from(name.to_owned()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
}

/// The HTTP-01 responder of testkit, serving `responses`.
pub async fn serve_http01(addr: SocketAddr, responses: ChallengeResponses) -> tokio::task::JoinHandle<()> {
    testkit::serve_http01(
        addr,
        Arc::new(move |token: String| {
            let answer = responses.http01(&token);
            Box::pin(async move { answer })
        }),
    )
    .await
    .unwrap()
}

/// A TLS-ALPN-01 responder on `addr`: presents `responses.tls_alpn01(sni)`
/// to clients that offer exactly `acme-tls/1`.
pub async fn serve_tls_alpn01(
    addr: SocketAddr,
    responses: ChallengeResponses,
) -> tokio::task::JoinHandle<()> {
    #[derive(Debug)]
    struct Resolver(ChallengeResponses);
    impl rustls::server::ResolvesServerCert for Resolver {
        fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
            self.0.tls_alpn01(hello.server_name()?)
        }
    }
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(responses)));
    config.alpn_protocols = vec![b"acme-tls/1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    let _ = tls.shutdown().await;
                }
            });
        }
    })
}

/// A fault injector standing in for a CA: a TLS server (with `cert`/`key`)
/// that answers every request with `status`, a problem document of
/// `problem_type` and `Retry-After: 120`.
pub async fn serve_fault(
    cert_pem_path: &std::path::Path,
    key_pem_path: &std::path::Path,
    status: u16,
    problem_type: &'static str,
) -> SocketAddr {
    use rustls_pki_types::PrivateKeyDer;
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(cert_pem_path).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(key_pem_path).unwrap();
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else { return };
                let mut buf = vec![0u8; 16384];
                let n = tls.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let base = format!("https://{addr}");
                // The directory and nonces work; every ACME request gets the fault.
                let response = match path.as_str() {
                    "/dir" => {
                        let body = format!(
                            r#"{{"newNonce":"{base}/nonce","newAccount":"{base}/account","newOrder":"{base}/order","revokeCert":"{base}/revoke","keyChange":"{base}/key-change","meta":{{}}}}"#
                        );
                        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                    }
                    "/nonce" => "HTTP/1.1 200 OK\r\nReplay-Nonce: aW5qZWN0ZWQ\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
                    _ => {
                        let body = format!(r#"{{"type":"{problem_type}","detail":"injected fault","status":{status}}}"#);
                        format!(
                            "HTTP/1.1 {status} Fault\r\nContent-Type: application/problem+json\r\nReplay-Nonce: aW5qZWN0ZWQ\r\nRetry-After: 120\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    }
                };
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

/// Counts issuances; fails the first `fail_first` of them.
pub struct Counting {
    inner: Arc<dyn acme_core::Issuer>,
    issued: std::sync::atomic::AtomicUsize,
    /// How many of the next issuances fail with `CaUnavailable`.
    pub fail_first: std::sync::atomic::AtomicUsize,
}

impl Counting {
    pub fn new(inner: Arc<dyn acme_core::Issuer>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            issued: std::sync::atomic::AtomicUsize::new(0),
            fail_first: std::sync::atomic::AtomicUsize::new(0),
        })
    }
    /// Issuances so far.
    pub fn count(&self) -> usize {
        self.issued.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl acme_core::Issuer for Counting {
    async fn issue(&self, request: &acme_core::CertRequest) -> Result<CertBundle, acme_core::IssueError> {
        if self.fail_first.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            self.fail_first.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            return Err(acme_core::IssueError::ca_unavailable("503 from the fault injector"));
        }
        self.issued.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Long enough for concurrent callers to pile up.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        self.inner.issue(request).await
    }
    fn name(&self) -> String {
        "counting".into()
    }
}
