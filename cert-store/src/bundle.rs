//! Certificate bundles: a PEM chain, its private key and what was read from them.

use rustls::crypto::ring::default_provider;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use x509_parser::{extensions::GeneralName, prelude::FromDer, public_key::PublicKey};

use crate::{CertError, hostname::canonical_hostname};

/// Where a certificate came from; decides whether it is renewed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Provenance {
    /// Issued by an ACME CA.
    Acme {
        /// The CA's directory URL.
        directory: String,
    },
    /// Issued by the embedded local CA.
    LocalCa,
    /// Uploaded by a user: served and warned about, never renewed.
    SelfManaged,
}

/// The key algorithm of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum KeyType {
    /// ECDSA on P-256.
    EcdsaP256,
    /// ECDSA on P-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
    /// RSA with the given modulus size in bits.
    Rsa {
        /// Modulus size.
        bits: u32,
    },
}

/// What was read from a bundle's certificates at save time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CertMeta {
    /// The DNS SANs of the leaf, canonical (lowercase), in certificate order.
    pub names: Vec<String>,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// The serial number, lowercase hex.
    pub serial: String,
    /// The key algorithm.
    pub key_type: KeyType,
    /// Where the certificate came from.
    pub provenance: Provenance,
    /// The certificate had already expired when it was parsed (accepted, but flagged).
    pub expired_when_parsed: bool,
}

impl CertMeta {
    /// The first SAN, under which the bundle is stored.
    #[must_use]
    pub fn primary_name(&self) -> &str {
        self.names.first().map_or("", String::as_str)
    }

    /// Whether the certificate is expired at `now`.
    #[must_use]
    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        self.not_after <= now
    }

    /// When the certificate needs attention: for issued certificates the
    /// default renewal time ([`renewal_time`](Self::renewal_time) with 30
    /// days); for self-managed certificates the first expiry warning, 30 days
    /// before expiry.
    #[must_use]
    pub fn attention_at(&self) -> OffsetDateTime {
        let thirty_days = time::Duration::days(30);
        if self.provenance == Provenance::SelfManaged {
            return self.not_after - thirty_days;
        }
        self.renewal_time(thirty_days)
    }

    /// The renewal rule: `before_expiry` before expiry or when a third of the
    /// lifetime remains, whichever is earlier, but never before half the
    /// lifetime has passed (short-lived certificates).
    #[must_use]
    pub fn renewal_time(&self, before_expiry: time::Duration) -> OffsetDateTime {
        let lifetime = self.not_after - self.not_before;
        let by_days = self.not_after - before_expiry;
        let third_left = self.not_after - lifetime / 3;
        let half = self.not_before + lifetime / 2;
        by_days.min(third_left).max(half)
    }
}

/// A certificate chain (leaf first), its private key, and its [`CertMeta`].
///
/// Built only through [`CertBundle::from_pem`], which validates everything, so
/// a bundle in hand is always consistent. `Debug` never prints the key.
///
/// Deserializing validates too: the stored chain and key go through
/// [`from_pem`](CertBundle::from_pem) (with the stored provenance), and the
/// stored [`CertMeta`] must agree with what the certificate says (names,
/// validity, issuer, serial, key type); only the order of the names and
/// [`CertMeta::expired_when_parsed`] are taken from the record. A record
/// whose key does not match its certificate does not deserialize:
///
/// ```
/// use cert_store::{CertBundle, Provenance};
/// let key = rcgen::KeyPair::generate().unwrap();
/// let cert = rcgen::CertificateParams::new(vec!["shop.example.com".into()])
///     .unwrap().self_signed(&key).unwrap();
/// let bundle = CertBundle::from_pem(&cert.pem(), &key.serialize_pem(), Provenance::LocalCa).unwrap();
/// let json = serde_json::to_string(&bundle).unwrap();
/// assert_eq!(serde_json::from_str::<CertBundle>(&json).unwrap(), bundle);
///
/// let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
/// let tampered = json.replace(&serde_json::to_string(bundle.key_pem()).unwrap(),
///                             &serde_json::to_string(&other).unwrap());
/// assert!(serde_json::from_str::<CertBundle>(&tampered).is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredBundle")]
pub struct CertBundle {
    chain_pem: String,
    key_pem: String,
    meta: CertMeta,
}

/// The serialized form of a [`CertBundle`], before validation.
#[derive(Deserialize)]
struct StoredBundle {
    chain_pem: String,
    key_pem: String,
    meta: CertMeta,
}

impl TryFrom<StoredBundle> for CertBundle {
    type Error = CertError;

    fn try_from(stored: StoredBundle) -> Result<Self, CertError> {
        let mut bundle = Self::from_pem(&stored.chain_pem, &stored.key_pem, stored.meta.provenance.clone())?;
        let (read, claimed) = (&bundle.meta, &stored.meta);
        let same_names =
            read.names.len() == claimed.names.len() && claimed.names.iter().all(|n| read.names.contains(n));
        if !same_names
            || read.not_before != claimed.not_before
            || read.not_after != claimed.not_after
            || read.issuer != claimed.issuer
            || read.serial != claimed.serial
            || read.key_type != claimed.key_type
        {
            return Err(CertError::MetaMismatch);
        }
        bundle.meta = stored.meta;
        Ok(bundle)
    }
}

impl std::fmt::Debug for CertBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertBundle")
            .field("meta", &self.meta)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl CertBundle {
    /// Parses and validates a PEM chain (leaf first) and a PEM private key
    /// (PKCS#8, PKCS#1 or SEC1).
    ///
    /// Checks: the PEM is well formed; every certificate parses; the leaf has
    /// at least one DNS SAN and each is a valid hostname (wildcard only as the
    /// whole first label); the key is of a supported type (ECDSA P-256/P-384,
    /// Ed25519, RSA) and matches the leaf. An expired certificate is accepted
    /// with [`CertMeta::expired_when_parsed`] set.
    ///
    /// # Errors
    /// The first failed check, as a [`CertError`].
    pub fn from_pem(chain_pem: &str, key_pem: &str, provenance: Provenance) -> Result<Self, CertError> {
        let chain = parse_chain(chain_pem)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| malformed_pem(format!("private key: {e}"), e))?;
        let meta = inspect(&chain, &key, provenance)?;
        Ok(Self { chain_pem: chain_pem.to_owned(), key_pem: key_pem.to_owned(), meta })
    }

    /// The same bundle with `name` moved to the front of
    /// [`CertMeta::names`] (CAs may list SANs in any order; the first name is
    /// the one the bundle is stored under). Unchanged if `name` is not a SAN.
    #[must_use]
    pub fn with_primary_name(mut self, name: &str) -> Self {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(i) = self.meta.names.iter().position(|n| *n == name) {
            let primary = self.meta.names.remove(i);
            self.meta.names.insert(0, primary);
        }
        self
    }

    /// The chain, leaf first, as PEM.
    #[must_use]
    pub fn chain_pem(&self) -> &str {
        &self.chain_pem
    }

    /// The private key as PEM. Handle with care: never log it.
    #[must_use]
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// What was read from the certificates.
    #[must_use]
    pub fn meta(&self) -> &CertMeta {
        &self.meta
    }

    /// The chain as DER certificates, leaf first.
    ///
    /// # Errors
    /// [`CertError::MalformedPem`] only if the stored PEM was altered.
    pub fn chain_der(&self) -> Result<Vec<CertificateDer<'static>>, CertError> {
        parse_chain(&self.chain_pem)
    }

    /// The private key as DER.
    ///
    /// # Errors
    /// [`CertError::MalformedPem`] only if the stored PEM was altered.
    pub fn key_der(&self) -> Result<PrivateKeyDer<'static>, CertError> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| malformed_pem(format!("private key: {e}"), e))
    }
}

fn parse_chain(chain_pem: &str) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| malformed_pem(format!("certificate chain: {e}"), e))?;
    if chain.is_empty() {
        return Err(CertError::MalformedPem {
            detail: "no CERTIFICATE block in the chain".into(),
            source: None,
        });
    }
    Ok(chain)
}

fn inspect(
    chain: &[CertificateDer<'_>],
    key: &PrivateKeyDer<'_>,
    provenance: Provenance,
) -> Result<CertMeta, CertError> {
    let mut parsed = Vec::with_capacity(chain.len());
    for (index, der) in chain.iter().enumerate() {
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der.as_ref()).map_err(|e| {
            CertError::BadCertificate { index, reason: e.to_string(), source: Some(Box::new(e)) }
        })?;
        // RFC 5280 4.1.1.2: both signature algorithm fields must be the same;
        // TLS clients (and rustls itself) reject a certificate where they differ.
        if cert.signature_algorithm != cert.tbs_certificate.signature {
            return Err(CertError::BadCertificate {
                index,
                reason: "the signature algorithm inside the certificate differs from the outer one".into(),
                source: None,
            });
        }
        parsed.push(cert);
    }
    let leaf = &parsed[0];

    let mut names = Vec::new();
    let san = leaf.subject_alternative_name().map_err(|e| CertError::BadCertificate {
        index: 0,
        reason: e.to_string(),
        source: Some(Box::new(e)),
    })?;
    for general in san.iter().flat_map(|ext| ext.value.general_names.iter()) {
        if let GeneralName::DNSName(name) = general {
            let canonical = canonical_hostname(name)
                .map_err(|reason| CertError::InvalidName { name: (*name).to_owned(), reason })?;
            if !names.contains(&canonical) {
                names.push(canonical);
            }
        }
    }
    if names.is_empty() {
        return Err(CertError::NoSan);
    }

    let key_type = leaf_key_type(leaf)?;
    let signing_key = default_provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| CertError::UnsupportedKey { detail: e.to_string(), source: Some(Box::new(e)) })?;
    match signing_key.public_key() {
        Some(spki) if spki.as_ref() == leaf.tbs_certificate.subject_pki.raw => {}
        Some(_) => return Err(CertError::KeyMismatch),
        None => return Err(unsupported_key("cannot derive the public key".into())),
    }
    // The leaf must also parse with webpki, the stricter parser rustls serves
    // it with: a bundle stored here is always one the proxy can serve.
    let certified = rustls::sign::CertifiedKey::new(vec![chain[0].clone().into_owned()], signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => return Err(CertError::KeyMismatch),
        Err(e) => {
            return Err(CertError::BadCertificate {
                index: 0,
                reason: e.to_string(),
                source: Some(Box::new(e)),
            });
        }
    }

    let not_before = leaf.validity().not_before.to_datetime();
    let not_after = leaf.validity().not_after.to_datetime();
    Ok(CertMeta {
        names,
        not_before,
        not_after,
        issuer: leaf.issuer().to_string(),
        serial: hex::encode(leaf.raw_serial()),
        key_type,
        provenance,
        expired_when_parsed: not_after <= OffsetDateTime::now_utc(),
    })
}

fn leaf_key_type(leaf: &x509_parser::certificate::X509Certificate<'_>) -> Result<KeyType, CertError> {
    let spki = leaf.public_key();
    let parsed = spki.parsed().map_err(|e| CertError::UnsupportedKey {
        detail: format!("leaf public key: {e}"),
        source: Some(Box::new(e)),
    })?;
    match parsed {
        PublicKey::RSA(rsa) => {
            let bits = u32::try_from(rsa.key_size()).unwrap_or(u32::MAX);
            if bits < 2048 {
                return Err(unsupported_key(format!("RSA key of {bits} bits (minimum 2048)")));
            }
            Ok(KeyType::Rsa { bits })
        }
        PublicKey::EC(point) => match point.key_size() {
            256 => Ok(KeyType::EcdsaP256),
            384 => Ok(KeyType::EcdsaP384),
            other => Err(unsupported_key(format!("ECDSA key of {other} bits"))),
        },
        PublicKey::Unknown(_) if spki.algorithm.algorithm == x509_parser::oid_registry::OID_SIG_ED25519 => {
            Ok(KeyType::Ed25519)
        }
        other => Err(unsupported_key(format!("{other:?}").chars().take(60).collect())),
    }
}

fn malformed_pem(detail: String, source: impl std::error::Error + Send + Sync + 'static) -> CertError {
    CertError::MalformedPem { detail, source: Some(Box::new(source)) }
}

fn unsupported_key(detail: String) -> CertError {
    CertError::UnsupportedKey { detail, source: None }
}
