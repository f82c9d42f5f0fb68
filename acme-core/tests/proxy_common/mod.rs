//! Helpers of the tests that run acme-core behind sni-proxy (moved from
//! sni-proxy, which does not depend on acme-core).

#![allow(dead_code, clippy::unwrap_used)]

use std::{net::SocketAddr, sync::Arc};

use rustls_pki_types::{CertificateDer, pem::PemObject};

/// A rustls client trusting only `root_pem`.
pub fn client_config(root_pem: impl AsRef<str>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(root_pem.as_ref().as_bytes()).unwrap()).unwrap();
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// A TCP server that echoes every byte back.
pub async fn echo_upstream() -> SocketAddr {
    testkit::tcp_server(|mut s| async move {
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    })
    .await
}
