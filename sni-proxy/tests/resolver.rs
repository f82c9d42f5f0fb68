//! SniResolver lookups, and a real rustls handshake resolved through it.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sni_proxy::SniResolver;

fn key_for(name: &str) -> Arc<CertifiedKey> {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap().self_signed(&key).unwrap();
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(
        CertifiedKey::from_der(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            &provider,
        )
        .unwrap(),
    )
}

#[test]
fn exact_then_single_level_wildcard() {
    let r = SniResolver::new();
    let exact = key_for("shop.example.com");
    let wild = key_for("*.example.com");
    r.insert("Shop.Example.com", Arc::clone(&exact));
    r.insert("*.example.com", Arc::clone(&wild));
    assert!(Arc::ptr_eq(&r.lookup("shop.example.com").unwrap(), &exact));
    assert!(Arc::ptr_eq(&r.lookup("SHOP.EXAMPLE.COM.").unwrap(), &exact));
    assert!(Arc::ptr_eq(&r.lookup("a.example.com").unwrap(), &wild));
    assert!(r.lookup("a.b.example.com").is_none(), "one level only");
    assert!(r.lookup("example.com").is_none(), "the wildcard does not cover the apex");
    assert!(r.lookup("other.test").is_none());
    assert!(r.lookup("").is_none());
    assert!(r.lookup(".").is_none());
    assert!(r.lookup(&"a".repeat(300)).is_none());
    assert!(r.lookup("bücher.example.com").is_none());
    assert_eq!(r.len(), 2);
    r.remove("shop.example.com");
    assert!(Arc::ptr_eq(&r.lookup("shop.example.com").unwrap(), &wild), "falls back to the wildcard");
}

#[test]
fn swapping_a_certificate_is_seen_by_the_next_lookup() {
    let r = SniResolver::new();
    let (a, b) = (key_for("x.example.com"), key_for("x.example.com"));
    r.insert("x.example.com", Arc::clone(&a));
    let held = r.lookup("x.example.com").unwrap();
    r.insert("x.example.com", Arc::clone(&b));
    assert!(Arc::ptr_eq(&held, &a), "a reader keeps what it loaded");
    assert!(Arc::ptr_eq(&r.lookup("x.example.com").unwrap(), &b));
    r.insert_many((0..1000).map(|i| (format!("h{i}.example.com"), key_for("h.example.com"))).take(3));
    assert_eq!(r.len(), 4);
}

#[test]
fn rustls_handshake_picks_the_certificate_by_sni() {
    use rustls::{ClientConnection, ServerConnection};
    let r = Arc::new(SniResolver::new());
    r.insert("*.example.com", key_for("*.example.com"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(r),
    );
    // A client that records the certificate it was shown.
    #[derive(Debug)]
    struct Accept;
    impl rustls::client::danger::ServerCertVerifier for Accept {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &rustls_pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls_pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            let (_, cert) = x509_parser::parse_x509_certificate(end_entity).unwrap();
            let san = cert.subject_alternative_name().unwrap().unwrap();
            assert_eq!(format!("{:?}", san.value.general_names[0]), "DNSName(\"*.example.com\")");
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
        }
    }
    let handshake = |sni: &str| -> Result<(), rustls::Error> {
        let client_config = Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()
                .unwrap()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Accept))
                .with_no_client_auth(),
        );
        let mut client = ClientConnection::new(client_config, sni.to_owned().try_into().unwrap()).unwrap();
        let mut server = ServerConnection::new(Arc::clone(&server)).unwrap();
        for _ in 0..10 {
            let mut buf = Vec::new();
            client.write_tls(&mut buf).unwrap();
            server.read_tls(&mut buf.as_slice()).unwrap();
            server.process_new_packets()?;
            let mut buf = Vec::new();
            server.write_tls(&mut buf).unwrap();
            client.read_tls(&mut buf.as_slice()).unwrap();
            client.process_new_packets()?;
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
        }
        Err(rustls::Error::General("handshake did not finish".into()))
    };
    handshake("shop.example.com").unwrap();
    // No certificate for the name: the server refuses (unrecognized_name / no cert).
    assert!(handshake("shop.other.test").is_err());
}
