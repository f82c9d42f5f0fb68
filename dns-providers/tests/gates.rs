//! Cloudflare, GoDaddy and Namecheap have no emulator: these tests run the
//! clients against local HTTP servers (`testkit::ApiDouble`) that answer
//! exactly as each API documents — success bodies, and each gate with its
//! documented status and body — and check our typed error and the sentence
//! the customer reads.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use dns_providers::{Cloudflare, DnsProvider, DnsRecord, GoDaddy, Namecheap, ProviderError};
use testkit::{ApiDouble, Gate};

/// What every provider must do on its happy path: create (idempotent),
/// list, a second value, CNAME conflict, delete (idempotent).
async fn round_trip(p: &dyn DnsProvider, zone: &str) {
    let name = format!("_customdomain-challenge.shop.{zone}");
    let a = DnsRecord::txt(&name, "token-a");
    let b = DnsRecord::txt(&name, "token-b");
    p.create(&a).await.unwrap();
    p.create(&a).await.unwrap();
    p.create(&b).await.unwrap();
    let mut values: Vec<String> = p.list(&name).await.unwrap().iter().map(|r| r.data.value()).collect();
    values.sort();
    assert_eq!(values, ["token-a", "token-b"]);
    let err = p.create(&DnsRecord::cname(&name, "edge.example.net")).await.unwrap_err();
    assert!(matches!(err, ProviderError::Conflict { .. }), "{err:?}");
    p.delete(&a).await.unwrap();
    p.delete(&a).await.unwrap();
    let left: Vec<String> = p.list(&name).await.unwrap().iter().map(|r| r.data.value()).collect();
    assert_eq!(left, ["token-b"]);
    let cname = DnsRecord::cname(&format!("_acme-challenge.shop.{zone}"), "shop.acme.edge.example.net");
    p.create(&cname).await.unwrap();
    assert_eq!(p.list(&cname.name).await.unwrap()[0].data.value(), "shop.acme.edge.example.net");
}

#[tokio::test]
async fn godaddy_works_and_its_tier_gate_is_account_tier_gate() {
    let api = ApiDouble::godaddy("example.com", "gd-key", "gd-secret").await;
    let p = GoDaddy::new("gd-key", "gd-secret", "example.com").unwrap().with_api_url(&api.url());
    round_trip(&p, "example.com").await;

    api.set_gate(Gate::Closed);
    let err = p.list("x.example.com").await.unwrap_err();
    assert!(matches!(err, ProviderError::AccountTierGate { .. }), "{err:?}");
    assert!(err.to_string().contains("ACCESS_DENIED"), "{err}");
    assert!(err.resolution().contains("10 domains"), "{}", err.resolution());
    assert!(!err.is_temporary());

    let wrong = GoDaddy::new("gd-key", "wrong", "example.com").unwrap().with_api_url(&api.url());
    assert!(matches!(wrong.list("x.example.com").await, Err(ProviderError::InvalidCredential { .. })));
    api.set_gate(Gate::Open);
    let other = GoDaddy::new("gd-key", "gd-secret", "other.com").unwrap().with_api_url(&api.url());
    assert!(matches!(other.list("x.other.com").await, Err(ProviderError::ZoneNotFound { .. })));
}

#[tokio::test]
async fn namecheap_works_sends_client_ip_and_its_ip_gate_is_ip_not_allowed() {
    let api = ApiDouble::namecheap("example.com", "nc-key", "198.51.100.7").await;
    let url = format!("{}/xml.response", api.url());
    let p = Namecheap::new("nc-user", "nc-key", "example.com", "198.51.100.7").unwrap().with_api_url(&url);
    round_trip(&p, "example.com").await;

    let elsewhere =
        Namecheap::new("nc-user", "nc-key", "example.com", "203.0.113.50").unwrap().with_api_url(&url);
    let err = elsewhere.list("x.example.com").await.unwrap_err();
    match &err {
        ProviderError::IpNotAllowed { ip, detail, .. } => {
            assert_eq!(ip, "203.0.113.50");
            assert!(detail.contains("1011150"), "{detail}");
        }
        other => panic!("expected IpNotAllowed, got {other:?}"),
    }
    assert!(err.resolution().contains("203.0.113.50"), "{}", err.resolution());
    assert!(err.resolution().contains("Whitelisted IPs"), "{}", err.resolution());
    let bad_key =
        Namecheap::new("nc-user", "wrong", "example.com", "198.51.100.7").unwrap().with_api_url(&url);
    assert!(matches!(bad_key.list("x.example.com").await, Err(ProviderError::InvalidCredential { .. })));
}

#[tokio::test]
async fn cloudflare_works_and_its_gates_are_permission_denied_and_zone_not_found() {
    let api = ApiDouble::cloudflare("example.com", "cf-token").await;
    let base = format!("{}/client/v4", api.url());
    let p = Cloudflare::new("cf-token", "example.com").unwrap().with_api_url(&base);
    round_trip(&p, "example.com").await;

    // A token without Zone.DNS:Edit reads but may not write.
    api.set_gate(Gate::Closed);
    let err = p.create(&DnsRecord::txt("x.example.com", "v")).await.unwrap_err();
    assert!(matches!(err, ProviderError::PermissionDenied { .. }), "{err:?}");
    assert!(err.resolution().contains("DNS"), "{}", err.resolution());
    api.set_gate(Gate::Open);

    let elsewhere = Cloudflare::new("cf-token", "not-on-account.com").unwrap().with_api_url(&base);
    let err = elsewhere.list("x.not-on-account.com").await.unwrap_err();
    assert!(matches!(err, ProviderError::ZoneNotFound { .. }), "{err:?}");
    assert!(err.resolution().contains("not-on-account.com"));

    let bad = Cloudflare::new("wrong-token", "example.com").unwrap().with_api_url(&base);
    assert!(matches!(bad.list("x.example.com").await, Err(ProviderError::InvalidCredential { .. })));
}

/// A provider that does not answer in time is `Unavailable` (temporary).
#[tokio::test]
async fn a_dead_api_is_unavailable() {
    let p = GoDaddy::new("k", "s", "example.com").unwrap().with_api_url("http://127.0.0.1:9");
    let err = p.list("x.example.com").await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err:?}");
    assert!(err.is_temporary());
}

/// The egress IP is read from an echo service's plain-text or JSON answer.
#[tokio::test]
async fn egress_ip_is_discovered_from_plain_text_or_json() {
    use tokio::io::AsyncWriteExt;
    for body in ["198.51.100.23\n", r#"{"ip":"198.51.100.23"}"#] {
        let addr = testkit::tcp_server(move |mut stream| async move {
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        })
        .await;
        let ip = dns_providers::discover_egress_ip(&format!("http://{addr}/")).await.unwrap();
        assert_eq!(ip.to_string(), "198.51.100.23");
    }
    let err = dns_providers::discover_egress_ip("http://127.0.0.1:9/").await.unwrap_err();
    assert!(err.is_temporary(), "{err:?}");
}
