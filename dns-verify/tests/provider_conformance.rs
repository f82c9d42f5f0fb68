//! The DNS provider conformance suite passes on `LocalZone` and fails on
//! providers that are subtly wrong.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::{sync::Mutex, time::Duration};

use async_trait::async_trait;
use dns_verify::{
    Authorities, Checker, DnsProvider, DnsRecord, LocalZone, ProviderError, provider_conformance,
};

async fn zone_and_checker() -> (LocalZone, Checker) {
    let zone = LocalZone::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let checker = Checker::builder().authorities(Authorities::fixed([zone.addr()])).build();
    (zone, checker)
}

#[tokio::test]
async fn local_zone_passes() {
    let (zone, checker) = zone_and_checker().await;
    provider_conformance::run_all(&zone, &checker, "conformance.example").await.unwrap();
}

/// Writes into a zone, with one fault.
struct Broken {
    zone: LocalZone,
    fault: Fault,
    /// What was created and not deleted since.
    present: Mutex<Vec<DnsRecord>>,
}

#[derive(Clone, Copy)]
enum Fault {
    /// `delete` succeeds but leaves the record.
    DeleteKeeps,
    /// `create` replaces every value at the name (one TXT per name).
    CreateReplaces,
    /// `delete` of a record that is not there fails.
    DeleteMissingFails,
}

#[async_trait]
impl DnsProvider for Broken {
    async fn create(&self, record: &DnsRecord) -> Result<(), ProviderError> {
        if let Fault::CreateReplaces = self.fault {
            for token in ["value-a", "value-b"] {
                let mut other = record.clone();
                other.data = dns_verify::RecordData::Txt(token.to_owned());
                self.zone.delete(&other).await?;
            }
        }
        self.present.lock().unwrap().push(record.clone());
        self.zone.create(record).await
    }
    async fn delete(&self, record: &DnsRecord) -> Result<(), ProviderError> {
        let was_present = {
            let mut present = self.present.lock().unwrap();
            let before = present.len();
            present.retain(|r| r != record);
            present.len() != before
        };
        match self.fault {
            Fault::DeleteKeeps => Ok(()),
            Fault::DeleteMissingFails if !was_present => Err(ProviderError::server("no such record")),
            _ => self.zone.delete(record).await,
        }
    }
}

#[tokio::test]
async fn broken_providers_fail() {
    for (fault, check) in [
        (Fault::DeleteKeeps, "create_is_idempotent"),
        (Fault::CreateReplaces, "two_txt_values"),
        (Fault::DeleteMissingFails, "delete_missing_succeeds"),
    ] {
        let (zone, checker) = zone_and_checker().await;
        let broken = Broken { zone, fault, present: Mutex::default() };
        let failure = provider_conformance::run_all_within(
            &broken,
            &checker,
            "conformance.example",
            Duration::from_millis(600),
        )
        .await
        .unwrap_err();
        assert_eq!(failure.check, check, "{failure}");
    }
}
