//! Shared helpers of the sni-proxy tests.

#![allow(dead_code, clippy::unwrap_used)]

pub use testkit::{client_config, echo_upstream};

/// What to issue (the shape of acme-core's request, without acme-core).
pub struct CertRequest(Vec<String>);

impl CertRequest {
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        Self(names.into_iter().map(Into::into).collect())
    }
}

/// A test CA made with rcgen: leaf certificates for any names, and the root
/// a client trusts.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    root_pem: String,
}

impl TestCa {
    pub fn new() -> Self {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name.push(rcgen::DnType::CommonName, "sni-proxy test CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params.key_usages =
            vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).unwrap();
        let root_pem = cert.pem();
        Self { issuer: rcgen::Issuer::new(params, key), root_pem }
    }

    /// A leaf for the request's names, chained to the root.
    pub async fn issue(
        &self,
        request: &CertRequest,
    ) -> Result<cert_store::CertBundle, cert_store::CertError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(request.0.clone()).unwrap();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let leaf = params.signed_by(&key, &self.issuer).unwrap();
        let chain = format!("{}{}", leaf.pem(), self.root_pem);
        cert_store::CertBundle::from_pem(&chain, &key.serialize_pem(), cert_store::Provenance::SelfManaged)
    }

    /// A leaf for `names` (DNS names or IP addresses): (chain PEM, key PEM).
    pub fn leaf_pem(&self, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let leaf = params.signed_by(&key, &self.issuer).unwrap();
        (format!("{}{}", leaf.pem(), self.root_pem), key.serialize_pem())
    }

    /// The root certificate, PEM (synchronously).
    pub fn root(&self) -> &str {
        &self.root_pem
    }

    /// The root certificate, PEM.
    pub async fn root_pem(&self) -> Result<String, std::convert::Infallible> {
        Ok(self.root_pem.clone())
    }
}
