//! Certificates load from the store at their first handshake; a bounded
//! resolver keeps memory flat and reloads what it evicted.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use acme_core::{CertManager, CertRequest, ChallengeResponses, LocalCaIssuer, ManagerConfig};
use cert_store::{CertStore, MemoryStorage};
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
use sni_proxy::{SniResolver, TlsConfig, serve_tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_certificates_load_lazily_into_a_bounded_resolver() {
    let storage = Arc::new(MemoryStorage::new());
    let ca = Arc::new(LocalCaIssuer::new(Arc::clone(&storage)));
    let root = ca.root_pem().await.unwrap();
    let manager = Arc::new(CertManager::new(Arc::new(CertStore::new(storage)), ca, ManagerConfig::default()));
    let names: Vec<String> = (0..300).map(|i| format!("s{i}.example.com")).collect();
    for n in &names {
        manager.ensure(&CertRequest::new([n.as_str()])).await.unwrap();
    }
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = upstream.accept().await else { continue };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    // A fresh proxy: nothing loaded at start, at most ~256 names kept.
    let resolver = Arc::new(SniResolver::with_capacity(256));
    let mut config = TlsConfig::new(Arc::clone(&resolver), ChallengeResponses::default(), upstream_addr);
    config.source = Some(manager);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_tls(listener, config));
    assert_eq!(resolver.len(), 0);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(root.as_bytes()).unwrap()).unwrap();
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    for round in 0..2 {
        for n in &names {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut tls = tokio_rustls::TlsConnector::from(Arc::clone(&client))
                .connect(ServerName::try_from(n.clone()).unwrap(), tcp)
                .await
                .unwrap_or_else(|e| panic!("round {round}, {n}: {e}"));
            tls.write_all(b"k").await.unwrap();
            let mut b = [0u8; 1];
            tls.read_exact(&mut b).await.unwrap();
        }
        assert!(resolver.len() <= 256, "bounded: {}", resolver.len());
    }
}
