//! Every storage key acme-core uses, built here and nowhere else.
//!
//! All of them live under `tls/` (cert-store keeps its certificates, accounts
//! and expiry index there too), so an embedder can keep its own data in the
//! same store: anything outside `tls/` (and the control plane's `edge/`) is
//! theirs.
//!
//! | key | value | written by |
//! |---|---|---|
//! | `tls/acme/orders/<digest>` | an order placed and not finished (URL, names, CSR key, published answers), JSON | `AcmeIssuer`; resumed by the next attempt |
//! | `tls/acme/challenges/http-01/<token>` | the key authorization, so any node can answer | `AcmeIssuer` |
//! | `tls/acme/challenges/tls-alpn-01/<hostname>` | the hex digest of the key authorization | `AcmeIssuer` |
//! | `tls/manager/pending/<name>` | a request being issued (a crash leaves it; resumed by maintenance) | `CertManager` |
//! | `tls/manager/retry/<name>` | the [`RetryState`](crate::RetryState) of a failing name, JSON | `CertManager` |
//! | `tls/manager/warned/<name>` | the last expiry warning threshold sent (days) | `CertManager` |
//! | `tls/local-ca/ca` | the local CA's certificate and key, JSON | `LocalCaIssuer` |
//! | `tls/leases/issue/<name>` | lease: one issuance per name across processes | `CertManager` |
//! | `tls/leases/acme-account/<digest>` | lease: one account creation per directory | `AcmeIssuer` |
//! | `tls/leases/local-ca` | lease: one local CA creation | `LocalCaIssuer` |
//!
//! `<digest>` is the first 8 bytes of a SHA-256, hex; `<name>` a primary
//! certificate name (`*.example.com` for a wildcard).

use cert_store::{Key, Prefix, StorageError};

/// The prefix of every key this crate writes.
pub const ROOT: &str = "tls";

/// `tls/acme/orders/<digest>`.
///
/// # Errors
/// [`StorageError::InvalidKey`] when `digest` cannot be part of a key.
pub fn acme_order(digest: &str) -> Result<Key, StorageError> {
    Key::new(format!("{ROOT}/acme/orders/{digest}"))
}

/// `tls/acme/challenges/http-01/<token>`.
///
/// # Errors
/// [`StorageError::InvalidKey`] when `token` cannot be part of a key.
pub fn http01(token: &str) -> Result<Key, StorageError> {
    Key::new(format!("{ROOT}/acme/challenges/http-01/{token}"))
}

/// `tls/acme/challenges/tls-alpn-01/<hostname>` (lowercased).
///
/// # Errors
/// [`StorageError::InvalidKey`] when `hostname` cannot be part of a key.
pub fn tls_alpn01(hostname: &str) -> Result<Key, StorageError> {
    Key::new(format!("{ROOT}/acme/challenges/tls-alpn-01/{}", hostname.to_ascii_lowercase()))
}

/// `tls/acme/challenges`: every published challenge answer.
///
/// # Errors
/// Never in practice (a constant).
pub fn challenges() -> Result<Prefix, StorageError> {
    Prefix::new(format!("{ROOT}/acme/challenges"))
}

/// `tls/acme/orders`: every unfinished order.
///
/// # Errors
/// Never in practice (a constant).
pub fn acme_orders() -> Result<Prefix, StorageError> {
    Prefix::new(format!("{ROOT}/acme/orders"))
}

/// `tls/manager/pending/<name>`.
///
/// # Errors
/// [`StorageError::InvalidKey`] when `name` cannot be part of a key.
pub fn pending(name: &str) -> Result<Key, StorageError> {
    Key::new(format!("{ROOT}/manager/pending/{name}"))
}

/// `tls/manager/pending`.
///
/// # Errors
/// Never in practice (a constant).
pub fn pending_prefix() -> Result<Prefix, StorageError> {
    Prefix::new(format!("{ROOT}/manager/pending"))
}

/// `tls/manager/retry/<name>`.
///
/// # Errors
/// [`StorageError::InvalidKey`] when `name` cannot be part of a key.
pub fn retry(name: &str) -> Result<Key, StorageError> {
    Key::new(format!("{ROOT}/manager/retry/{name}"))
}

/// `tls/manager/retry`.
///
/// # Errors
/// Never in practice (a constant).
pub fn retry_prefix() -> Result<Prefix, StorageError> {
    Prefix::new(format!("{ROOT}/manager/retry"))
}

/// `tls/manager/warned/<name>`.
///
/// # Errors
/// [`StorageError::InvalidKey`] when `name` cannot be part of a key.
pub fn warned(name: &str) -> Result<Key, StorageError> {
    Key::new(format!("{ROOT}/manager/warned/{name}"))
}

/// `tls/local-ca/ca`.
///
/// # Errors
/// Never in practice (a constant).
pub fn local_ca() -> Result<Key, StorageError> {
    Key::new(format!("{ROOT}/local-ca/ca"))
}

/// `local-ca/ca`: where the local CA was kept before the `tls/` layout;
/// read once to carry an existing CA over (its root is what clients trust).
///
/// # Errors
/// Never in practice (a constant).
pub fn legacy_local_ca() -> Result<Key, StorageError> {
    Key::new("local-ca/ca")
}

/// Lease `tls/leases/issue/<name>`.
///
/// # Errors
/// [`StorageError::InvalidKey`] when `name` cannot be part of a key.
pub fn issue_lease(name: &str) -> Result<Key, StorageError> {
    Key::new(format!("{ROOT}/leases/issue/{name}"))
}

/// Lease `tls/leases/acme-account/<digest>`.
///
/// # Errors
/// [`StorageError::InvalidKey`] when `digest` cannot be part of a key.
pub fn account_lease(digest: &str) -> Result<Key, StorageError> {
    Key::new(format!("{ROOT}/leases/acme-account/{digest}"))
}

/// Lease `tls/leases/local-ca`.
///
/// # Errors
/// Never in practice (a constant).
pub fn local_ca_lease() -> Result<Key, StorageError> {
    Key::new(format!("{ROOT}/leases/local-ca"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_under_tls() {
        let keys = [
            acme_order("0011223344556677"),
            http01("tok-en_1"),
            tls_alpn01("Shop.Example.com"),
            pending("*.example.com"),
            retry("shop.example.com"),
            warned("shop.example.com"),
            local_ca(),
            issue_lease("shop.example.com"),
            account_lease("0011223344556677"),
            local_ca_lease(),
        ];
        for key in keys {
            let key = key.unwrap();
            assert!(key.as_str().starts_with("tls/"), "{key}");
        }
        assert_eq!(
            tls_alpn01("Shop.Example.com").unwrap().as_str(),
            "tls/acme/challenges/tls-alpn-01/shop.example.com"
        );
        for prefix in [challenges(), acme_orders(), pending_prefix(), retry_prefix()] {
            assert!(prefix.unwrap().as_str().starts_with("tls/"));
        }
    }
}
