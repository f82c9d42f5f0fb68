//! `dns_verify`'s provider conformance suite against real servers:
//!
//! - BIND through RFC 2136 + TSIG ([`dns_verify::Rfc2136Provider`]),
//!   observed through BIND's own answers;
//! - PowerDNS Authoritative through its HTTP API ([`dns_providers::PowerDns`]),
//!   observed through PowerDNS's DNS answers (the checker asks the zone's
//!   authoritative server, so it verifies what the API wrote);
//! - Route 53 as emulated by moto ([`dns_providers::Route53`], SigV4-signed
//!   requests). moto does not answer DNS, so this one is observed through
//!   the Route 53 API's own listing (`Observer::ProviderListing`).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use dns_providers::{ConfigError, PowerDns, ProviderConfig, Route53};
use dns_verify::{Authorities, Checker, provider_conformance::Fixture};
use testkit::{DnsServer, MotoServer, PowerDnsServer, TSIG_KEY_NAME, Zone};

fn checker(addr: std::net::SocketAddr) -> Checker {
    Checker::builder().authorities(Authorities::fixed([addr])).build()
}

async fn bind() -> Fixture {
    let dns = DnsServer::builder().zone(Zone::new("conformance.test", "")).start().unwrap();
    // Through ProviderConfig, as an edge builds it from a stored credential.
    let config = ProviderConfig::Rfc2136 {
        server: dns.addr(),
        zone: "conformance.test".into(),
        key_name: TSIG_KEY_NAME.into(),
        key_secret: dns.tsig_secret_base64().into(),
    };
    let provider = config.build(None).unwrap();
    Fixture::authoritative(provider, checker(dns.addr()), "conformance.test", dns)
}

async fn powerdns() -> Fixture {
    let pdns = PowerDnsServer::start().unwrap();
    pdns.create_zone("conformance.test").unwrap();
    let provider = PowerDns::new(&pdns.api_url(), pdns.api_key(), "conformance.test").unwrap();
    Fixture::authoritative(Arc::new(provider), checker(pdns.dns_addr()), "conformance.test", pdns)
}

async fn moto() -> Fixture {
    let moto = MotoServer::start().unwrap();
    moto.create_hosted_zone("conformance.test").unwrap();
    // Found by name (ListHostedZonesByName), as for a customer who gives no id.
    let provider =
        Route53::new("AKIDEXAMPLE", "moto-secret", "conformance.test").unwrap().with_endpoint(&moto.url());
    Fixture::listing(Arc::new(provider), "conformance.test", moto)
}

dns_verify::provider_conformance_tests!(mod bind_rfc2136, bind);
dns_verify::provider_conformance_tests!(mod powerdns_api, powerdns);
dns_verify::provider_conformance_tests!(mod route53_moto, moto);

/// A wrong PowerDNS API key is `InvalidCredential`, an unknown zone
/// `ZoneNotFound`, each with its sentence.
#[tokio::test]
async fn powerdns_errors_are_typed() {
    let pdns = PowerDnsServer::start().unwrap();
    pdns.create_zone("conformance.test").unwrap();
    let wrong = PowerDns::new(&pdns.api_url(), "not-the-key", "conformance.test").unwrap();
    let err = dns_verify::DnsProvider::list(&wrong, "x.conformance.test").await.unwrap_err();
    assert!(matches!(err, dns_verify::ProviderError::InvalidCredential { .. }), "{err:?}");
    let missing = PowerDns::new(&pdns.api_url(), pdns.api_key(), "other.test").unwrap();
    let err = dns_verify::DnsProvider::list(&missing, "x.other.test").await.unwrap_err();
    assert!(matches!(err, dns_verify::ProviderError::ZoneNotFound { .. }), "{err:?}");
    assert!(err.resolution().contains("other.test"), "{}", err.resolution());
}

/// moto's unknown hosted zone is `ZoneNotFound`.
#[tokio::test]
async fn route53_unknown_zone_is_zone_not_found() {
    let moto = MotoServer::start().unwrap();
    let provider =
        Route53::new("AKIDEXAMPLE", "moto-secret", "absent.test").unwrap().with_endpoint(&moto.url());
    let err = dns_verify::DnsProvider::list(&provider, "x.absent.test").await.unwrap_err();
    assert!(matches!(err, dns_verify::ProviderError::ZoneNotFound { .. }), "{err:?}");
}

#[test]
fn namecheap_config_needs_a_client_ip() {
    let config: ProviderConfig = serde_json::from_str(
        r#"{"provider":"namecheap","api_user":"u","api_key":"k","domain":"example.com"}"#,
    )
    .unwrap();
    assert!(matches!(config.build(None), Err(ConfigError::MissingClientIp)));
    assert!(config.build(Some("203.0.113.9")).is_ok());
}
