//! The smallest server: local CA + `CertManager` + SNI proxy serving two names (TLS on 127.0.0.1:8443,
//! plaintext to :3000). With `-- --self-test` it connects to each name, checks the certificate, exits.
use acme_core::{CertManager, CertRequest, LocalCaIssuer, ManagerConfig};
use cert_store::{CertStore, MemoryStorage};
use sni_proxy::{Proxy, TlsConfig, rustls};
use std::{error::Error, net::SocketAddr, sync::Arc};

const NAMES: [&str; 2] = ["shop.example.com", "www.example.org"];

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let self_test = std::env::args().any(|a| a == "--self-test");
    let store = Arc::new(CertStore::new(Arc::new(MemoryStorage::new())));
    let issuer = Arc::new(LocalCaIssuer::new(Arc::clone(&store)));
    let manager = Arc::new(CertManager::new(store, issuer.clone(), ManagerConfig::default()));
    // 1. bind every listener (nothing is provisioned yet)
    let tls = TlsConfig::from_source(manager.clone(), "127.0.0.1:3000".parse()?);
    let bound =
        Proxy::new(if self_test { "127.0.0.1:0" } else { "127.0.0.1:8443" }.parse()?, tls).bind().await?;
    let addr = bound.tls_addr().ok_or("no TLS listener")?;
    // 2. serve, 3. then provision
    let (done, provisioned) = tokio::sync::oneshot::channel();
    let running = bound.serve_then(async move {
        manager.start_background();
        let _ = done.send(manager.ensure(&CertRequest::new(NAMES)).await.map(|_| ()));
    });
    println!("serving {NAMES:?} on {addr}");
    if self_test {
        provisioned.await??;
        check(addr, &issuer.root_pem().await?).await?;
    } else {
        tokio::signal::ctrl_c().await?;
    }
    running.shutdown().await;
    Ok(())
}

/// A TLS client trusting the local CA asks for each name and reads the SANs served.
async fn check(addr: SocketAddr, root_pem: &str) -> Result<(), Box<dyn Error>> {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(root_pem.as_bytes())?)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config =
        rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions()?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(
        config.with_root_certificates(roots).with_no_client_auth(),
    ));
    for name in NAMES {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let tls = connector.connect(ServerName::try_from(name)?.to_owned(), tcp).await?;
        let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).ok_or("no certificate")?;
        let (_, cert) = x509_parser::parse_x509_certificate(leaf)?;
        let san = cert.subject_alternative_name()?.ok_or("no SAN")?.value;
        let dns: Vec<_> = san.general_names.iter().map(ToString::to_string).collect();
        println!("{name}: served {dns:?}, verified against the local CA");
        dns.iter().any(|n| n == &format!("DNSName({name})")).then_some(()).ok_or("SAN mismatch")?;
    }
    Ok(())
}
