//! Parsing and validation of certificate bundles: every refusal is typed.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use cert_store::{CertBundle, CertError, KeyType, Provenance, hostname::HostnameError};
use common::*;
use time::{Duration, OffsetDateTime};

#[test]
fn valid_p256_bundle_is_read_into_meta() {
    let (chain, key) = self_signed(&["Shop.Example.com", "www.shop.example.com"]);
    let bundle =
        CertBundle::from_pem(&chain, &key, Provenance::Acme { directory: "https://ca/dir".into() }).unwrap();
    let meta = bundle.meta();
    assert_eq!(meta.names, ["shop.example.com", "www.shop.example.com"]);
    assert_eq!(meta.primary_name(), "shop.example.com");
    assert_eq!(meta.key_type, KeyType::EcdsaP256);
    assert_eq!(meta.provenance, Provenance::Acme { directory: "https://ca/dir".into() });
    assert!(!meta.expired_when_parsed);
    assert!(!meta.serial.is_empty());
    assert!(meta.not_before < meta.not_after);
    assert_eq!(bundle.chain_der().unwrap().len(), 1);
}

#[test]
fn other_supported_key_types() {
    let (c, k) = self_signed_with(&["a.example.com"], &rcgen::PKCS_ECDSA_P384_SHA384);
    assert_eq!(
        CertBundle::from_pem(&c, &k, Provenance::LocalCa).unwrap().meta().key_type,
        KeyType::EcdsaP384
    );
    let (c, k) = self_signed_with(&["a.example.com"], &rcgen::PKCS_ED25519);
    assert_eq!(CertBundle::from_pem(&c, &k, Provenance::LocalCa).unwrap().meta().key_type, KeyType::Ed25519);
    // RSA with a PKCS#1 key and ECDSA with a SEC1 key, as openssl writes them.
    let (c, k) = openssl_cert(&["-newkey", "rsa:2048"], "rsa.example.com", true);
    assert!(k.contains("BEGIN RSA PRIVATE KEY"));
    assert_eq!(
        CertBundle::from_pem(&c, &k, Provenance::SelfManaged).unwrap().meta().key_type,
        KeyType::Rsa { bits: 2048 }
    );
    let (c, k) =
        openssl_cert(&["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "ec.example.com", true);
    assert!(k.contains("BEGIN EC PRIVATE KEY"));
    assert_eq!(
        CertBundle::from_pem(&c, &k, Provenance::SelfManaged).unwrap().meta().key_type,
        KeyType::EcdsaP256
    );
}

#[test]
fn unsupported_key_type_is_typed() {
    let (c, k) =
        openssl_cert(&["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521"], "p521.example.com", false);
    assert!(matches!(
        CertBundle::from_pem(&c, &k, Provenance::SelfManaged),
        Err(CertError::UnsupportedKey { .. })
    ));
    let (c, k) = openssl_cert(&["-newkey", "rsa:1024"], "weak.example.com", false);
    assert!(matches!(
        CertBundle::from_pem(&c, &k, Provenance::SelfManaged),
        Err(CertError::UnsupportedKey { .. })
    ));
}

#[test]
fn malformed_pem_is_typed() {
    let (chain, key) = self_signed(&["a.example.com"]);
    for bad in ["", "not pem at all", "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"] {
        assert!(
            matches!(
                CertBundle::from_pem(bad, &key, Provenance::LocalCa),
                Err(CertError::MalformedPem { .. })
            ),
            "{bad:?}"
        );
    }
    let truncated = &chain[..chain.len() / 2];
    assert!(CertBundle::from_pem(truncated, &key, Provenance::LocalCa).is_err());
    assert!(matches!(
        CertBundle::from_pem(&chain, "garbage", Provenance::LocalCa),
        Err(CertError::MalformedPem { .. })
    ));
    // Well-formed PEM around bytes that are not a certificate.
    let junk = "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n";
    let err = CertBundle::from_pem(junk, &key, Provenance::LocalCa).unwrap_err();
    assert!(matches!(err, CertError::BadCertificate { index: 0, .. }), "{err:?}");
    // The parser's own error is kept as the source.
    assert!(std::error::Error::source(&err).is_some(), "{err:?}");
    // A bad intermediate is reported with its position.
    let with_junk = format!("{chain}{junk}");
    assert!(matches!(
        CertBundle::from_pem(&with_junk, &key, Provenance::LocalCa),
        Err(CertError::BadCertificate { index: 1, .. })
    ));
}

#[test]
fn key_of_another_certificate_is_refused() {
    let (chain, _) = self_signed(&["a.example.com"]);
    let (_, other_key) = self_signed(&["a.example.com"]);
    assert!(matches!(
        CertBundle::from_pem(&chain, &other_key, Provenance::LocalCa),
        Err(CertError::KeyMismatch)
    ));
}

#[test]
fn certificate_without_san_is_refused() {
    let (chain, key) = with_params(|p| {
        p.distinguished_name.push(rcgen::DnType::CommonName, "cn-only.example.com");
    });
    assert!(matches!(CertBundle::from_pem(&chain, &key, Provenance::LocalCa), Err(CertError::NoSan)));
}

#[test]
fn invalid_san_names_are_refused() {
    for (name, reason) in [
        ("under_score.example.com", HostnameError::InvalidChar('_')),
        ("a.*.example.com", HostnameError::MisplacedWildcard),
        ("*.com", HostnameError::MisplacedWildcard),
        ("-lead.example.com", HostnameError::HyphenAtEdge("-lead".into())),
    ] {
        let (chain, key) = with_params(|p| p.subject_alt_names = vec![raw_dns_san(name)]);
        match CertBundle::from_pem(&chain, &key, Provenance::LocalCa) {
            Err(CertError::InvalidName { name: n, reason: r }) => {
                assert_eq!((n.as_str(), r), (name, reason));
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    let (chain, key) = self_signed(&["*.example.com", "example.com"]);
    assert_eq!(
        CertBundle::from_pem(&chain, &key, Provenance::LocalCa).unwrap().meta().names,
        ["*.example.com", "example.com"]
    );
}

#[test]
fn expired_certificate_is_accepted_and_flagged() {
    let (chain, key) = with_params(|p| {
        p.subject_alt_names = vec![raw_dns_san("old.example.com")];
        p.not_before = OffsetDateTime::now_utc() - Duration::days(100);
        p.not_after = OffsetDateTime::now_utc() - Duration::days(10);
    });
    let bundle = CertBundle::from_pem(&chain, &key, Provenance::SelfManaged).unwrap();
    assert!(bundle.meta().expired_when_parsed);
    assert!(bundle.meta().is_expired_at(OffsetDateTime::now_utc()));
}

#[test]
fn debug_output_never_shows_the_key() {
    let (chain, key) = self_signed(&["a.example.com"]);
    let bundle = CertBundle::from_pem(&chain, &key, Provenance::LocalCa).unwrap();
    let shown = format!("{bundle:?}");
    let key_body = key.lines().nth(1).unwrap();
    assert!(!shown.contains(key_body));
    assert!(shown.contains("redacted"));
}

#[test]
fn attention_time_follows_the_renewal_rule() {
    let day = Duration::days(1);
    let make = |lifetime_days: i64, provenance: Provenance| {
        let (chain, key) = with_params(|p| {
            p.subject_alt_names = vec![raw_dns_san("r.example.com")];
            p.not_before = OffsetDateTime::now_utc();
            p.not_after = OffsetDateTime::now_utc() + day * i32::try_from(lifetime_days).unwrap();
        });
        CertBundle::from_pem(&chain, &key, provenance).unwrap().meta().clone()
    };
    let close = |a: OffsetDateTime, b: OffsetDateTime| (a - b).abs() < Duration::minutes(1);
    // 90 days: 30 days before expiry == a third left.
    let m = make(90, Provenance::LocalCa);
    assert!(close(m.attention_at(), m.not_after - day * 30));
    // 365 days: a third left (~122 days) comes before 30 days.
    let m = make(365, Provenance::LocalCa);
    assert!(close(m.attention_at(), m.not_after - (m.not_after - m.not_before) / 3));
    // 6 days: never before half the lifetime.
    let m = make(6, Provenance::LocalCa);
    assert!(close(m.attention_at(), m.not_before + day * 3));
    // Self-managed: first warning 30 days before expiry.
    let m = make(365, Provenance::SelfManaged);
    assert!(close(m.attention_at(), m.not_after - day * 30));
}

/// Found by the fuzzer (`fuzz/`, target `cert_bundle`): certificates that
/// x509-parser reads but TLS clients and rustls reject must be refused here,
/// or the store would hold bundles the proxy cannot serve.
#[test]
fn certificates_rustls_would_reject_are_refused() {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    let (chain, key) = self_signed(&["shop.example.com"]);
    let der = CertificateDer::from_pem_slice(chain.as_bytes()).unwrap().to_vec();
    let to_pem = |der: &[u8]| {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
        format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
    };
    // 1. The inner signature algorithm (ecdsa-with-SHA256) turned into SHA-384.
    let oid = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    let at = der.windows(oid.len()).position(|w| w == oid).unwrap();
    let mut mismatched = der.clone();
    mismatched[at + oid.len() - 1] = 0x03;
    let err = CertBundle::from_pem(&to_pem(&mismatched), &key, Provenance::SelfManaged).unwrap_err();
    assert!(matches!(err, CertError::BadCertificate { index: 0, .. }), "{err:?}");
    // 2. The untouched certificate is still fine.
    CertBundle::from_pem(&to_pem(&der), &key, Provenance::SelfManaged).unwrap();
}

/// A stored record is read only through validation: a key swapped for
/// another one, or metadata that does not describe the certificate, is
/// refused; an untouched record reads back equal (names order included).
#[test]
fn a_tampered_serialized_bundle_does_not_deserialize() {
    let (chain, key) = self_signed(&["shop.example.com", "www.shop.example.com"]);
    let bundle = CertBundle::from_pem(&chain, &key, Provenance::SelfManaged)
        .unwrap()
        .with_primary_name("www.shop.example.com");
    let json = serde_json::to_value(&bundle).unwrap();
    assert_eq!(serde_json::from_value::<CertBundle>(json.clone()).unwrap(), bundle);

    let (_, other_key) = self_signed(&["shop.example.com"]);
    let mut swapped_key = json.clone();
    swapped_key["key_pem"] = other_key.into();
    let err = serde_json::from_value::<CertBundle>(swapped_key).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");

    let mut other_names = json.clone();
    other_names["meta"]["names"] = serde_json::json!(["evil.example.com"]);
    assert!(serde_json::from_value::<CertBundle>(other_names).is_err());

    let mut later_expiry = json.clone();
    later_expiry["meta"]["not_after"] = "2999-01-01T00:00:00Z".into();
    assert!(serde_json::from_value::<CertBundle>(later_expiry).is_err());

    let mut not_pem = json;
    not_pem["chain_pem"] = "garbage".into();
    assert!(serde_json::from_value::<CertBundle>(not_pem).is_err());
}
