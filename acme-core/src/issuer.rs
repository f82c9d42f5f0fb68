//! The [`Issuer`] trait: turns a certificate request into a certificate.

use async_trait::async_trait;
use cert_store::CertBundle;
use serde::{Deserialize, Serialize};

use crate::IssueError;

/// The key algorithm of a new certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// ECDSA P-256 (default: small, fast handshakes).
    #[default]
    EcdsaP256,
    /// ECDSA P-384.
    EcdsaP384,
    /// RSA 2048 (for clients that cannot do ECDSA). Generated with the `rsa`
    /// crate (ring cannot generate RSA keys); every signature is made by ring.
    Rsa2048,
}

impl KeyAlgorithm {
    /// The algorithm that renews a certificate whose key is `key_type`:
    /// the same one where we can generate it, else the default.
    ///
    /// ```
    /// use acme_core::KeyAlgorithm;
    /// use cert_store::KeyType;
    /// assert_eq!(KeyAlgorithm::renewing(&KeyType::Rsa { bits: 2048 }), KeyAlgorithm::Rsa2048);
    /// assert_eq!(KeyAlgorithm::renewing(&KeyType::Ed25519), KeyAlgorithm::EcdsaP256);
    /// ```
    #[must_use]
    pub fn renewing(key_type: &cert_store::KeyType) -> Self {
        match key_type {
            cert_store::KeyType::EcdsaP384 => Self::EcdsaP384,
            cert_store::KeyType::Rsa { .. } => Self::Rsa2048,
            _ => Self::EcdsaP256,
        }
    }

    /// A fresh key pair of this algorithm.
    ///
    /// # Errors
    /// [`IssueError::Internal`] when generation fails (the crypto library's
    /// error is the source).
    pub fn generate(self) -> Result<rcgen::KeyPair, IssueError> {
        let fail = |e: rcgen::Error| IssueError::internal(format!("generating a {self:?} key"), e);
        match self {
            Self::EcdsaP256 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(fail),
            Self::EcdsaP384 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(fail),
            Self::Rsa2048 => {
                use rsa::pkcs8::EncodePrivateKey;
                let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                    .map_err(|e| IssueError::internal("generating an RSA 2048 key", e))?;
                let der =
                    key.to_pkcs8_der().map_err(|e| IssueError::internal("encoding an RSA 2048 key", e))?;
                let pkcs8 = rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_bytes());
                rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256).map_err(fail)
            }
        }
    }
}

/// What to issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRequest {
    /// The SANs, first = primary name (wildcards allowed as `*.example.com`).
    pub names: Vec<String>,
    /// The key algorithm.
    #[serde(default)]
    pub key: KeyAlgorithm,
}

impl CertRequest {
    /// A request for `names` with the default key.
    ///
    /// ```
    /// let req = acme_core::CertRequest::new(["shop.example.com", "www.shop.example.com"]);
    /// assert_eq!(req.primary(), Some("shop.example.com"));
    /// ```
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            names: names.into_iter().map(|n| n.into().trim_end_matches('.').to_ascii_lowercase()).collect(),
            key: KeyAlgorithm::default(),
        }
    }

    /// The primary (first) name.
    #[must_use]
    pub fn primary(&self) -> Option<&str> {
        self.names.first().map(String::as_str)
    }

    /// Checks that there is at least one name and each is a valid hostname.
    ///
    /// # Errors
    /// [`IssueError::NoSan`] or [`IssueError::ValidationFailed`] for an invalid name.
    pub fn validate(&self) -> Result<(), IssueError> {
        if self.names.is_empty() {
            return Err(IssueError::NoSan);
        }
        for name in &self.names {
            cert_store::hostname::canonical_hostname(name)
                .map_err(|e| IssueError::ValidationFailed { detail: format!("{name}: {e}") })?;
        }
        Ok(())
    }
}

/// Something that issues certificates: an ACME CA, the local CA, a test double.
#[async_trait]
pub trait Issuer: Send + Sync {
    /// Issues a certificate for `request`.
    async fn issue(&self, request: &CertRequest) -> Result<CertBundle, IssueError>;

    /// A short name for logs and events (`acme:<directory>`, `local-ca`).
    fn name(&self) -> String;

    /// When the issuer wants `bundle` renewed, if it says (ACME renewal
    /// information, RFC 9773). `None`: use the default schedule.
    async fn renewal_window(&self, bundle: &CertBundle) -> Option<time::OffsetDateTime> {
        let _ = bundle;
        None
    }
}
