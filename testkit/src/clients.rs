//! Clients and trivial servers the TLS tests of several crates share.

use std::{net::SocketAddr, sync::Arc};

use rustls_pki_types::{CertificateDer, pem::PemObject};

/// A rustls client (ring provider) trusting only `root_pem`.
///
/// # Panics
/// When `root_pem` holds no certificate rustls accepts as a root (a test bug).
#[allow(clippy::unwrap_used)] // test-only crate: a bad fixture is a failed test
pub fn client_config(root_pem: impl AsRef<str>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(root_pem.as_ref().as_bytes()).unwrap()).unwrap();
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// A TCP server on 127.0.0.1 that echoes every byte back (an upstream).
pub async fn echo_upstream() -> SocketAddr {
    crate::tcp_server(|mut s| async move {
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    })
    .await
}

/// Runs `curl -s -S` with `args` and returns the body, then a line
/// `<status> <redirect URL>`.
///
/// # Panics
/// When curl cannot be run (a test bug or a missing package).
#[allow(clippy::unwrap_used)] // test-only crate
pub fn curl(args: &[&str]) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", "-S", "-o", "-", "-w", "\n%{http_code} %{redirect_url}"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}
