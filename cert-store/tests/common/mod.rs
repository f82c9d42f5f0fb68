//! Certificates for tests, made on the fly.

#![allow(dead_code)]

use std::process::Command;

use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};

/// A self-signed certificate for `names` with a fresh P-256 key: (chain PEM, key PEM).
pub fn self_signed(names: &[&str]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Like [`self_signed`] with the given algorithm.
pub fn self_signed_with(names: &[&str], alg: &'static rcgen::SignatureAlgorithm) -> (String, String) {
    let key = KeyPair::generate_for(alg).unwrap();
    let params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A certificate whose validity is set by `adjust`.
pub fn with_params(adjust: impl FnOnce(&mut CertificateParams)) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    adjust(&mut params);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A SAN list entry that rcgen accepts but that is not a valid hostname.
pub fn raw_dns_san(name: &str) -> SanType {
    SanType::DnsName(name.try_into().unwrap())
}

/// A certificate and key made by the `openssl` CLI: `key_args` for `req -newkey`
/// (e.g. `rsa:2048`, `ec -pkeyopt ec_paramgen_curve:P-521`), optionally the key
/// converted to its traditional (PKCS#1 / SEC1) form.
pub fn openssl_cert(newkey: &[&str], name: &str, traditional: bool) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (key, crt) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "30", "-subj", &format!("/CN={name}")])
        .args(["-addext", &format!("subjectAltName=DNS:{name}")])
        .args(newkey)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl (Debian package `openssl`) is required");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    if traditional {
        let out =
            Command::new("openssl").arg("pkey").arg("-in").arg(&key).arg("-traditional").output().unwrap();
        assert!(out.status.success());
        std::fs::write(&key, out.stdout).unwrap();
    }
    (std::fs::read_to_string(crt).unwrap(), std::fs::read_to_string(key).unwrap())
}
