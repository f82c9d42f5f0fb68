//! Every storage key cert-store writes, built here and nowhere else.
//!
//! All of them live under [`ROOT`] (`tls/`), beside acme-core's keys (which
//! use `tls/acme/…`, `tls/manager/…`, `tls/local-ca/…`, `tls/leases/…`; see
//! its `keys` module), so an embedder can keep its own data in the same
//! store: anything outside `tls/` (and the control plane's `edge/`) is theirs.
//!
//! | key | value |
//! |---|---|
//! | `tls/certs/<name>` | one [`CertBundle`](crate::CertBundle) (chain, **private key**, meta) per primary name, JSON, written in one atomic `put` |
//! | `tls/accounts/<readable>-<digest>` | ACME account credentials (**private key**) for one directory URL |
//! | `tls/index/expiry` | the [`ExpiryIndex`](crate::ExpiryIndex) record (its first line: the [`IndexGeneration`](crate::IndexGeneration) it was written as) |
//! | `tls/index/expiry-generation` | the generation of the latest index write, a few bytes: what [`CertStore`](crate::CertStore) reads to know whether its cached index is current |
//! | `tls/leases/expiry-index` | lease: index updates are serialised under it |
//! | `tls/changes/<time>-<random>` | the name of a certificate just saved or deleted: the change feed other processes poll (kept 5 minutes) |
//!
//! `<name>` is a canonical hostname (`*.example.com` for a wildcard);
//! `<readable>` is the directory URL without its scheme, every character
//! other than letters, digits and `-` replaced by `_`, at most 80 characters;
//! `<digest>` the first 8 bytes of the URL's SHA-256, hex.
//!
//! Stores written before this layout (`certs/<name>`, `accounts/…`,
//! `index/expiry` at the root) are still read: [`CertStore`](crate::CertStore)
//! falls back to the old key when the new one does not exist, writes only the
//! new layout, and deletes both.
//!
//! ```
//! use cert_store::keys;
//! assert_eq!(keys::certificate("Shop.Example.com").unwrap().as_str(), "tls/certs/shop.example.com");
//! assert_eq!(keys::expiry_index().as_str(), "tls/index/expiry");
//! assert!(keys::account("https://acme-v02.api.letsencrypt.org/directory").unwrap().as_str()
//!     .starts_with("tls/accounts/acme-v02_api_letsencrypt_org_directory-"));
//! ```

use crate::{CertError, Key, Prefix, StorageError, hostname::canonical_hostname};

/// The prefix of every key cert-store writes.
///
/// ```
/// assert_eq!(cert_store::keys::ROOT, "tls");
/// ```
pub const ROOT: &str = "tls";

/// `tls/certs/<name>`, for the canonical form of `name`.
///
/// ```
/// let key = cert_store::keys::certificate("*.Example.com.").unwrap();
/// assert_eq!(key.as_str(), "tls/certs/*.example.com");
/// assert!(cert_store::keys::certificate("a..b").is_err());
/// ```
///
/// # Errors
/// [`CertError::InvalidName`] when `name` is not a hostname.
pub fn certificate(name: &str) -> Result<Key, CertError> {
    let canonical = canonical_hostname(name)
        .map_err(|reason| CertError::InvalidName { name: name.to_owned(), reason })?;
    Ok(Key::new(format!("{ROOT}/certs/{canonical}"))?)
}

/// `tls/certs`: every stored bundle.
///
/// ```
/// assert_eq!(cert_store::keys::certificates().as_str(), "tls/certs");
/// ```
#[must_use]
pub fn certificates() -> Prefix {
    constant_prefix(format!("{ROOT}/certs"))
}

/// The primary name of a key under [`certificates`] (`None` for other keys).
///
/// ```
/// use cert_store::keys;
/// let key = keys::certificate("shop.example.com").unwrap();
/// assert_eq!(keys::certificate_name(&key), Some("shop.example.com"));
/// assert_eq!(keys::certificate_name(&keys::expiry_index()), None);
/// ```
#[must_use]
pub fn certificate_name(key: &Key) -> Option<&str> {
    let new = key.as_str().strip_prefix(ROOT).and_then(|rest| rest.strip_prefix("/certs/"));
    new.or_else(|| legacy::certificate_name(key))
}

/// `tls/accounts/<readable>-<digest>` for an ACME directory URL: readable
/// for operators, unique by the digest.
///
/// ```
/// let key = cert_store::keys::account("https://ca.example/dir").unwrap();
/// assert!(key.as_str().starts_with("tls/accounts/ca_example_dir-"));
/// ```
///
/// # Errors
/// Never in practice: the readable part is sanitised.
pub fn account(directory_url: &str) -> Result<Key, StorageError> {
    Key::new(format!("{ROOT}/accounts/{}", account_leaf(directory_url)))
}

/// `tls/index/expiry`: the expiry index record.
///
/// ```
/// assert_eq!(cert_store::keys::expiry_index().as_str(), "tls/index/expiry");
/// ```
#[must_use]
pub fn expiry_index() -> Key {
    constant_key(format!("{ROOT}/index/expiry"))
}

/// `tls/index/expiry-generation`: the [`IndexGeneration`](crate::IndexGeneration)
/// of the latest index write (written just before the index itself).
///
/// ```
/// assert_eq!(cert_store::keys::expiry_generation().as_str(), "tls/index/expiry-generation");
/// ```
#[must_use]
pub fn expiry_generation() -> Key {
    constant_key(format!("{ROOT}/index/expiry-generation"))
}

/// `tls/leases/expiry-index`: the lease index updates run under.
///
/// ```
/// assert_eq!(cert_store::keys::expiry_index_lease().as_str(), "tls/leases/expiry-index");
/// ```
#[must_use]
pub fn expiry_index_lease() -> Key {
    constant_key(format!("{ROOT}/leases/expiry-index"))
}

/// `tls/changes/<record>`: one change-feed record (its value: the name of
/// the certificate saved or deleted), see [`changes`](crate::changes).
///
/// # Errors
/// When `record` cannot be part of a key.
///
/// ```
/// assert_eq!(cert_store::keys::change("0001-ab").unwrap().as_str(), "tls/changes/0001-ab");
/// ```
pub fn change(record: &str) -> Result<Key, StorageError> {
    Key::new(format!("{ROOT}/changes/{record}"))
}

/// The change feed: every record under `tls/changes`.
#[must_use]
pub fn changes() -> Prefix {
    constant_prefix(format!("{ROOT}/changes"))
}

/// A record name for something that happened `at`: `<nanoseconds since
/// 1970, 30 digits>-<random>`, so records sort by time and never collide.
/// For logs kept as independent records (the change feed here,
/// control-plane's activity log): appending never rewrites anything.
///
/// ```
/// use time::OffsetDateTime;
/// let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
/// let name = cert_store::keys::timed_record(at);
/// assert_eq!(cert_store::keys::record_time(&name), Some(at));
/// assert!(name < cert_store::keys::timed_record(at + time::Duration::SECOND));
/// ```
#[must_use]
pub fn timed_record(at: time::OffsetDateTime) -> String {
    let nanos = u128::try_from(at.unix_timestamp_nanos()).unwrap_or(0);
    format!("{nanos:030}-{}", hex::encode(rand::random::<[u8; 6]>()))
}

/// When the record `name` (made by [`timed_record`]) was written, read from
/// the name alone.
#[must_use]
pub fn record_time(name: &str) -> Option<time::OffsetDateTime> {
    let nanos: i128 = name.split_once('-')?.0.parse().ok()?;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

/// `<readable>-<digest>` of an ACME directory URL.
fn account_leaf(directory_url: &str) -> String {
    let readable: String = directory_url
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .take(80)
        .collect();
    let digest = ring::digest::digest(&ring::digest::SHA256, directory_url.as_bytes());
    format!("{readable}-{}", hex::encode(&digest.as_ref()[..8]))
}

/// A key built from constants only; valid by construction.
fn constant_key(key: String) -> Key {
    Key::new(key).unwrap_or_else(|e| unreachable!("a constant key is valid: {e}"))
}

/// A prefix built from constants only; valid by construction.
fn constant_prefix(prefix: String) -> Prefix {
    Prefix::new(prefix).unwrap_or_else(|e| unreachable!("a constant prefix is valid: {e}"))
}

/// The layout before `tls/`: read as a fallback, deleted with the new keys,
/// never written.
pub(crate) mod legacy {
    use super::{account_leaf, constant_key, constant_prefix};
    use crate::{CertError, Key, Prefix, StorageError, hostname::canonical_hostname};

    /// `certs/<name>`.
    pub(crate) fn certificate(name: &str) -> Result<Key, CertError> {
        let canonical = canonical_hostname(name)
            .map_err(|reason| CertError::InvalidName { name: name.to_owned(), reason })?;
        Ok(Key::new(format!("certs/{canonical}"))?)
    }

    /// `certs`.
    pub(crate) fn certificates() -> Prefix {
        constant_prefix("certs".to_owned())
    }

    /// The name of a key under `certs/`.
    pub(crate) fn certificate_name(key: &Key) -> Option<&str> {
        key.as_str().strip_prefix("certs/")
    }

    /// `accounts/<readable>-<digest>`.
    pub(crate) fn account(directory_url: &str) -> Result<Key, StorageError> {
        Key::new(format!("accounts/{}", account_leaf(directory_url)))
    }

    /// `index/expiry`.
    pub(crate) fn expiry_index() -> Key {
        constant_key("index/expiry".to_owned())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn every_key_is_under_the_root() {
        let root = Prefix::new(ROOT).unwrap();
        for key in [
            certificate("a.example.com").unwrap(),
            account("https://ca.example/directory").unwrap(),
            expiry_index(),
            expiry_generation(),
            expiry_index_lease(),
        ] {
            assert!(key.is_under(&root), "{key}");
        }
        assert!(Key::new(certificates().as_str()).unwrap().is_under(&root));
    }

    #[test]
    fn legacy_names_are_recognised() {
        let old = legacy::certificate("a.example.com").unwrap();
        assert_eq!(old.as_str(), "certs/a.example.com");
        assert_eq!(certificate_name(&old), Some("a.example.com"));
        assert!(legacy::certificates().as_str() == "certs");
        assert_eq!(
            legacy::account("https://ca/x").unwrap().as_str().strip_prefix("accounts/"),
            account("https://ca/x").unwrap().as_str().strip_prefix("tls/accounts/")
        );
        assert_eq!(legacy::expiry_index().as_str(), "index/expiry");
    }
}
