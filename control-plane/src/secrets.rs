//! Secrets at rest: AES-256-GCM (ring) under a key named by an id stored
//! beside each ciphertext, so keys rotate: new secrets are sealed with the
//! first key, older ones still open with the keys after it.
//!
//! Keys come as `id:base64[,oldid:base64…]` (each 32 bytes), e.g. from
//! `EDGE_SECRETS_KEY`.
//!
//! ```
//! use control_plane::SecretBox;
//! let keys = SecretBox::parse("k2:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=")?;
//! let sealed = keys.seal(b"api-token", b"connection-1")?;
//! assert_eq!(sealed.key_id, "k2");
//! assert_eq!(keys.open(&sealed, b"connection-1")?, b"api-token");
//! assert!(keys.open(&sealed, b"connection-2").is_err()); // bound to its connection
//! # Ok::<(), control_plane::SecretsError>(())
//! ```

use base64::Engine as _;
use ring::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};
use serde::{Deserialize, Serialize};

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    /// The key list is not `id:base64[,id:base64…]` of 32-byte keys.
    #[error("secrets key list: {0} (expected id:base64 of 32 bytes, comma-separated, current key first)")]
    InvalidKeys(String),
    /// The ciphertext names a key that is not configured (rotated out).
    #[error("secret sealed with key {0:?}, which is not configured")]
    UnknownKey(String),
    /// Wrong key, wrong binding, or a modified ciphertext.
    #[error("secret does not open: wrong key, other record, or modified")]
    Open,
    /// The system's random source failed.
    #[error("no randomness for a nonce")]
    Random,
}

/// A sealed secret: key id, nonce and ciphertext (with its tag), base64.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// Which key sealed it.
    pub key_id: String,
    /// The 96-bit nonce, base64.
    pub nonce: String,
    /// Ciphertext and tag, base64.
    pub ciphertext: String,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

/// The configured keys; the first seals.
pub struct SecretBox {
    keys: Vec<(String, LessSafeKey)>,
    rng: SystemRandom,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("SecretBox").field("key_ids", &ids).finish_non_exhaustive()
    }
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl SecretBox {
    /// Keys from `id:base64[,id:base64…]`, the current one first.
    ///
    /// # Errors
    /// [`SecretsError::InvalidKeys`].
    pub fn parse(spec: &str) -> Result<Self, SecretsError> {
        let mut keys = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, b64) =
                part.split_once(':').ok_or_else(|| SecretsError::InvalidKeys("a key has no id".into()))?;
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(SecretsError::InvalidKeys(format!("key id {id:?} is not [A-Za-z0-9_-]+")));
            }
            let bytes = B64
                .decode(b64)
                .map_err(|_| SecretsError::InvalidKeys(format!("key {id:?} is not base64")))?;
            let unbound = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| SecretsError::InvalidKeys(format!("key {id:?} is not 32 bytes")))?;
            if keys.iter().any(|(k, _)| k == id) {
                return Err(SecretsError::InvalidKeys(format!("key id {id:?} appears twice")));
            }
            keys.push((id.to_owned(), LessSafeKey::new(unbound)));
        }
        if keys.is_empty() {
            return Err(SecretsError::InvalidKeys("no key".into()));
        }
        Ok(Self { keys, rng: SystemRandom::new() })
    }

    /// Seals `plaintext` with the current key, bound to `context` (e.g. the
    /// connection id: the ciphertext opens for that record only).
    ///
    /// # Errors
    /// [`SecretsError::Random`].
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Sealed, SecretsError> {
        let (id, key) = self.keys.first().ok_or(SecretsError::Open)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SecretsError::Random)?;
        let mut buf = plaintext.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut buf)
            .map_err(|_| SecretsError::Random)?;
        Ok(Sealed { key_id: id.clone(), nonce: B64.encode(nonce), ciphertext: B64.encode(buf) })
    }

    /// Opens `sealed` with the key it names, checking it was bound to `context`.
    ///
    /// # Errors
    /// [`SecretsError::UnknownKey`], [`SecretsError::Open`].
    pub fn open(&self, sealed: &Sealed, context: &[u8]) -> Result<Vec<u8>, SecretsError> {
        let (_, key) = self
            .keys
            .iter()
            .find(|(id, _)| *id == sealed.key_id)
            .ok_or_else(|| SecretsError::UnknownKey(sealed.key_id.clone()))?;
        let nonce: [u8; NONCE_LEN] =
            B64.decode(&sealed.nonce).ok().and_then(|n| n.try_into().ok()).ok_or(SecretsError::Open)?;
        let mut buf = B64.decode(&sealed.ciphertext).map_err(|_| SecretsError::Open)?;
        let plain = key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut buf)
            .map_err(|_| SecretsError::Open)?;
        Ok(plain.to_vec())
    }

    /// Whether `sealed` is under an older key (re-seal it to rotate).
    #[must_use]
    pub fn is_stale(&self, sealed: &Sealed) -> bool {
        self.keys.first().is_none_or(|(id, _)| *id != sealed.key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const K2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

    #[test]
    fn rotation_opens_old_and_seals_new() {
        let old = SecretBox::parse(&format!("k1:{K1}")).unwrap();
        let sealed = old.seal(b"secret", b"c1").unwrap();
        assert!(!sealed.ciphertext.contains("secret"));
        let rotated = SecretBox::parse(&format!("k2:{K2},k1:{K1}")).unwrap();
        assert_eq!(rotated.open(&sealed, b"c1").unwrap(), b"secret");
        assert!(rotated.is_stale(&sealed));
        assert_eq!(rotated.seal(b"x", b"c1").unwrap().key_id, "k2");
        let gone = SecretBox::parse(&format!("k2:{K2}")).unwrap();
        assert!(matches!(gone.open(&sealed, b"c1"), Err(SecretsError::UnknownKey(_))));
    }

    #[test]
    fn tampering_and_bad_keys_fail() {
        let b = SecretBox::parse(&format!("k1:{K1}")).unwrap();
        let mut sealed = b.seal(b"secret", b"c1").unwrap();
        sealed.ciphertext = B64.encode(b"garbage-garbage-garbage");
        assert!(matches!(b.open(&sealed, b"c1"), Err(SecretsError::Open)));
        assert!(SecretBox::parse("k1:AAAA").is_err());
        assert!(SecretBox::parse("").is_err());
        assert!(SecretBox::parse(&format!("k1:{K1},k1:{K2}")).is_err());
        assert!(!format!("{b:?}").contains(K1));
    }
}
