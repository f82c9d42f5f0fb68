//! The DNS provider of `examples/examples/custom_dns_provider` passes
//! dns-verify's provider conformance suite, refuses names outside its zone
//! and calls the DNS host only for real changes.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "../examples/custom_dns_provider/provider.rs"]
mod provider;

use std::sync::Arc;

use dns_verify::{
    Authorities, Checker, DnsProvider, DnsRecord, LocalZone, ProviderError, RecordData, provider_conformance,
};
use provider::{Change, ZoneProvider};

#[tokio::test]
async fn passes_the_provider_conformance_suite() {
    let host = Arc::new(LocalZone::start("127.0.0.1:0".parse().unwrap()).await.unwrap());
    let provider = ZoneProvider::new("acme.example.net", host.clone());
    let checker = Checker::builder().authorities(Authorities::fixed([host.addr()])).build();
    provider_conformance::run_all(&provider, &checker, "acme.example.net").await.unwrap();
    // The suite cleans up after itself: nothing is left in the zone.
    let journal = provider.journal().await;
    let created = journal.iter().filter(|c| matches!(c, Change::Created(_))).count();
    let deleted = journal.iter().filter(|c| matches!(c, Change::Deleted(_))).count();
    assert_eq!(created, deleted, "{journal:?}");
}

#[tokio::test]
async fn refuses_names_outside_its_zone_and_skips_no_op_changes() {
    let host = Arc::new(LocalZone::start("127.0.0.1:0".parse().unwrap()).await.unwrap());
    let provider = ZoneProvider::new("Acme.Example.NET.", host);
    for name in ["other.example", "evilacme.example.net", "a..acme.example.net"] {
        let err = provider.create(&DnsRecord::txt(name, "v")).await.unwrap_err();
        assert!(matches!(err, ProviderError::InvalidName { .. }), "{name}: {err}");
    }
    let record = DnsRecord::txt("X.acme.example.net.", "v");
    provider.create(&record).await.unwrap();
    provider.create(&record).await.unwrap();
    assert_eq!(provider.records("x.acme.example.net").await, [RecordData::Txt("v".into())]);
    provider.delete(&record).await.unwrap();
    provider.delete(&record).await.unwrap();
    assert_eq!(provider.journal().await, [Change::Created(record.clone()), Change::Deleted(record)]);
}
