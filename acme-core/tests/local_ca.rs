//! The local CA: issued chains verify with webpki against its root; one CA per store.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::sync::Arc;

use acme_core::{CertRequest, IssueError, Issuer, LocalCaIssuer};
use cert_store::{CertStore, MemoryStorage, Provenance};
use common::verify;

#[tokio::test]
async fn issues_chains_that_verify_and_keeps_one_ca_per_store() {
    let storage = Arc::new(MemoryStorage::new());
    let ca = LocalCaIssuer::new(Arc::new(CertStore::new(Arc::clone(&storage))));
    let bundle = ca.issue(&CertRequest::new(["shop.example.com", "*.shop.example.com"])).await.unwrap();
    assert_eq!(bundle.meta().provenance, Provenance::LocalCa);
    assert_eq!(bundle.meta().names, ["shop.example.com", "*.shop.example.com"]);
    let root = ca.root_pem().await.unwrap();
    verify(&bundle, &root, "shop.example.com").unwrap();
    verify(&bundle, &root, "a.shop.example.com").unwrap();
    assert!(verify(&bundle, &root, "other.example.com").is_err());

    // A second issuer on the same store (another process) signs with the same CA.
    let again = LocalCaIssuer::new(Arc::new(CertStore::new(Arc::clone(&storage))));
    assert_eq!(again.root_pem().await.unwrap(), root);
    let other = again.issue(&CertRequest::new(["x.example.com"])).await.unwrap();
    verify(&other, &root, "x.example.com").unwrap();
}

#[tokio::test]
async fn bad_requests_are_typed() {
    let ca = LocalCaIssuer::new(Arc::new(CertStore::new(Arc::new(MemoryStorage::new()))));
    assert!(matches!(
        ca.issue(&CertRequest::new(Vec::<String>::new())).await.unwrap_err(),
        IssueError::NoSan
    ));
    assert!(matches!(
        ca.issue(&CertRequest::new(["bad_name.example.com"])).await.unwrap_err(),
        IssueError::ValidationFailed { .. }
    ));
}

#[tokio::test]
async fn key_algorithms() {
    let ca = LocalCaIssuer::new(Arc::new(CertStore::new(Arc::new(MemoryStorage::new()))));
    for (alg, expected) in [
        (acme_core::KeyAlgorithm::EcdsaP256, cert_store::KeyType::EcdsaP256),
        (acme_core::KeyAlgorithm::EcdsaP384, cert_store::KeyType::EcdsaP384),
        (acme_core::KeyAlgorithm::Rsa2048, cert_store::KeyType::Rsa { bits: 2048 }),
    ] {
        let mut request = CertRequest::new(["k.example.com"]);
        request.key = alg;
        let bundle = ca.issue(&request).await.unwrap();
        assert_eq!(bundle.meta().key_type, expected);
        verify(&bundle, &ca.root_pem().await.unwrap(), "k.example.com").unwrap();
    }
}

#[tokio::test]
async fn a_ca_stored_before_the_tls_layout_is_kept() {
    use cert_store::Storage;
    let storage = Arc::new(MemoryStorage::new());
    let old = LocalCaIssuer::new(Arc::new(CertStore::new(Arc::clone(&storage))));
    let root = old.root_pem().await.unwrap();
    // Move the record to where older versions kept it.
    let current = acme_core::keys::local_ca().unwrap();
    let record = storage.get(&current).await.unwrap().unwrap();
    storage.delete(&current).await.unwrap();
    storage.put(&acme_core::keys::legacy_local_ca().unwrap(), &record).await.unwrap();

    let again = LocalCaIssuer::new(Arc::new(CertStore::new(Arc::clone(&storage))));
    assert_eq!(again.root_pem().await.unwrap(), root, "the same CA, not a new one");
    assert!(storage.get(&current).await.unwrap().is_some(), "carried over to tls/");
}
