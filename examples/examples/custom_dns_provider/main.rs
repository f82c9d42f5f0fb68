//! A `dns_verify::DnsProvider` of your own, checked the way the toolkit uses
//! it: records written through it must be what the zone's authoritative
//! server answers. Here the DNS host is an in-process authoritative server
//! (`dns_verify::LocalZone`); in your code it is your DNS host's API.
//!
//! ```sh
//! cargo run -p examples --example custom_dns_provider
//! ```
//!
//! It writes an ownership TXT record, checks it with the `Checker`, runs the
//! provider conformance suite (`dns_verify::provider_conformance`, feature
//! `testing`) and exits non-zero if anything fails. The provider is in
//! `provider.rs`; `examples/tests/custom_dns_provider.rs` runs the suite too.

mod provider;

use std::{error::Error, sync::Arc};

use dns_verify::{
    Authorities, Checker, DnsProvider, DnsRecord, Expectation, Hostname, LocalZone, RecordStatus,
    provider_conformance,
};
use provider::ZoneProvider;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // The DNS host: an authoritative server on a free port.
    let host = Arc::new(LocalZone::start("127.0.0.1:0".parse()?).await?);
    let provider = ZoneProvider::new("customer.example", host.clone());
    // Checks ask the authoritative server directly, as they do in production.
    let checker = Checker::builder().authorities(Authorities::fixed([host.addr()])).build();

    // The ownership record a new connection for shop.customer.example asks for.
    let hostname = Hostname::parse("shop.customer.example")?;
    let record = DnsRecord::txt("_customdomain-challenge.shop.customer.example", "token-123");
    provider.create(&record).await?;
    println!("written: {} {:?}", record.name, provider.records(&record.name).await);
    let report =
        checker.check_one(&Expectation::OwnershipTxt { host: hostname, token: "token-123".into() }).await;
    println!("{} {} → {}", report.record_type, report.name, report.status.label());
    if report.status != RecordStatus::Valid {
        return Err(format!("the record written is not served: {report:?}").into());
    }
    // Names outside the provider's zone are refused.
    let outside = provider.create(&DnsRecord::txt("_customdomain-challenge.other.example", "x")).await;
    println!(
        "outside the zone: {}",
        outside.as_ref().map_or_else(ToString::to_string, |()| "accepted".into())
    );
    if outside.is_ok() {
        return Err("a record outside the zone was accepted".into());
    }
    provider.delete(&record).await?;

    provider_conformance::run_all(&provider, &checker, "customer.example").await?;
    println!("provider conformance: {} checks passed", provider_conformance::CHECKS.len());
    println!("{} changes written to the DNS host", provider.journal().await.len());
    Ok(())
}
