//! On-demand TLS behind an ask policy of your own: a handshake for a name
//! the server has no certificate for issues one while it waits — only if the
//! policy allows the name. Here [`SuffixPolicy`] allows the names under one
//! suffix (your customers' subdomains) and refuses the rest; a real policy
//! asks your database whether the hostname belongs to a verified customer
//! (or use `sni_proxy::HttpAskPolicy` to ask an HTTP endpoint).
//!
//! ```sh
//! cargo run -p examples --example ask_policy                # TLS on 127.0.0.1:8443
//! cargo run -p examples --example ask_policy -- --self-test # check and exit
//! ```
//!
//! The self-test: an allowed name gets a certificate at its first handshake;
//! a refused name gets the `unrecognized_name` alert and nothing is issued.

use std::{error::Error, net::IpAddr, net::SocketAddr, sync::Arc};

use acme_core::{CertManager, LocalCaIssuer, ManagerConfig};
use cert_store::{CertStore, MemoryStorage};
use sni_proxy::{AskPolicy, OnDemand, Proxy, TlsConfig, async_trait, rustls};

/// Allows the names one label below `suffix` (`<tenant>.<suffix>`), refuses
/// everything else. Answers at once and fails closed.
struct SuffixPolicy {
    /// With a leading dot: `.tenants.example.com`.
    dotted_suffix: String,
}

impl SuffixPolicy {
    fn new(suffix: &str) -> Self {
        Self { dotted_suffix: format!(".{}", suffix.trim_matches('.').to_ascii_lowercase()) }
    }
}

#[async_trait]
impl AskPolicy for SuffixPolicy {
    async fn allow(&self, name: &str, client: IpAddr) -> bool {
        let allowed = name
            .strip_suffix(&self.dotted_suffix)
            .is_some_and(|label| !label.is_empty() && !label.contains('.') && label != "*");
        println!("ask: {name} from {client}: {}", if allowed { "allowed" } else { "refused" });
        allowed
    }
}

const ALLOWED: &str = "acme-corp.tenants.example.com";
const REFUSED: &str = "shop.elsewhere.example.org";

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let self_test = std::env::args().any(|a| a == "--self-test");
    let store = Arc::new(CertStore::new(Arc::new(MemoryStorage::new())));
    let issuer = Arc::new(LocalCaIssuer::new(Arc::clone(&store)));
    let manager = Arc::new(CertManager::new(Arc::clone(&store), issuer.clone(), ManagerConfig::default()));

    // The manager is the certificate source and, for allowed names, the issuer.
    let on_demand = OnDemand::new(Arc::new(SuffixPolicy::new("tenants.example.com")), manager.clone());
    let tls = TlsConfig::from_source(manager.clone(), "127.0.0.1:3000".parse()?).with_on_demand(on_demand);
    let listen = if self_test { "127.0.0.1:0" } else { "127.0.0.1:8443" };
    let bound = Proxy::new(listen.parse()?, tls).bind().await?;
    let addr = bound.tls_addr().ok_or("no TLS listener")?;
    // Nothing to provision up front: certificates come at first handshake.
    let running = bound.serve_then(async move { manager.start_background() });
    println!("on-demand TLS for *.tenants.example.com on {addr}");

    if self_test {
        let client = client(&issuer.root_pem().await?)?;
        let sans = handshake(&client, addr, ALLOWED).await?;
        println!("{ALLOWED}: issued at its first handshake, served {sans:?}");
        if !sans.iter().any(|s| s == ALLOWED) {
            return Err(format!("{ALLOWED}: the certificate served is for {sans:?}").into());
        }
        match handshake(&client, addr, REFUSED).await {
            Err(e) if is_unrecognized_name(e.as_ref()) => println!("{REFUSED}: unrecognized_name alert"),
            other => return Err(format!("{REFUSED}: expected unrecognized_name, got {other:?}").into()),
        }
        if store.load(REFUSED).await?.is_some() {
            return Err(format!("{REFUSED} was refused but a certificate was issued").into());
        }
        println!("stored certificates: {:?}", store.names().await?);
    } else {
        tokio::signal::ctrl_c().await?;
    }
    running.shutdown().await;
    Ok(())
}

/// A TLS client that trusts the local CA only.
fn client(root_pem: &str) -> Result<tokio_rustls::TlsConnector, Box<dyn Error>> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(root_pem.as_bytes())?)?;
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Handshakes for `name` and returns the DNS names of the certificate served.
async fn handshake(
    client: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    name: &str,
) -> Result<Vec<String>, Box<dyn Error>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let server_name = rustls::pki_types::ServerName::try_from(name.to_owned())?;
    let tls = client.connect(server_name, tcp).await?;
    let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).ok_or("no certificate")?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)?;
    let san = cert.subject_alternative_name()?.ok_or("no SAN")?.value;
    Ok(san
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
            _ => None,
        })
        .collect())
}

/// Whether the handshake failed on the server's `unrecognized_name` alert.
fn is_unrecognized_name(error: &(dyn Error + 'static)) -> bool {
    let tls = error
        .downcast_ref::<std::io::Error>()
        .and_then(|e| e.get_ref())
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    matches!(tls, Some(rustls::Error::AlertReceived(rustls::AlertDescription::UnrecognisedName)))
}
