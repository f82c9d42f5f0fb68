//! Certificates load from the store at their first handshake; a bounded
//! resolver keeps memory flat and reloads what it evicted.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::sync::Arc;

use acme_core::{CertManager, CertRequest, ChallengeResponses, LocalCaIssuer, ManagerConfig};
use cert_store::{CertStore, MemoryStorage};
use rustls_pki_types::ServerName;
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
    let upstream_addr = common::echo_upstream().await;
    // A fresh proxy: nothing loaded at start, at most ~256 names kept.
    let resolver = Arc::new(SniResolver::with_capacity(256));
    let mut config = TlsConfig::new(Arc::clone(&resolver), ChallengeResponses::default(), upstream_addr);
    config.source = Some(manager);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_tls(listener, config));
    assert_eq!(resolver.len(), 0);

    let client = Arc::new(common::client_config(&root));
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
