//! The checker against real authoritative servers (BIND, started by testkit):
//! one test per status, CNAME chains and loops, disagreeing servers,
//! unreachable servers, RFC 2136 updates, discovery and drift.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::{net::SocketAddr, time::Duration};

use dns_verify::{
    Authorities, Checker, DnsProvider, DnsRecord, Expectation, Hostname, ProviderError, RecordStatus,
    Requirements, Rfc2136Provider, SanStatus, drift, wait_for_propagation,
};
use testkit::{DnsServer, TSIG_KEY_NAME, Zone};

fn host(name: &str) -> Hostname {
    Hostname::parse(name).unwrap()
}

fn requirements() -> Requirements {
    Requirements::delegating_to("acme.edge.test")
        .routing_cname("edge.edge.test")
        .routing_addresses(vec!["192.0.2.10".parse().unwrap()])
}

/// The delegation target of `h.example.test`, relative to the edge.test zone.
fn target(req: &Requirements, h: &str) -> String {
    req.delegation_target(&host(&format!("{h}.example.test")))
}

fn customer_zone(req: &Requirements, ownership_valid: bool) -> Zone {
    let t = |h: &str| target(req, h);
    let mut records = format!(
        "_acme-challenge.valid CNAME {}.\n\
         valid CNAME edge.edge.test.\n\
         nodata A 192.0.2.99\n\
         _acme-challenge.nodata A 192.0.2.99\n\
         _acme-challenge.wrong CNAME other.acme.edge.test.\n\
         _acme-challenge.dup TXT \"left-over-from-old-provider\"\n\
         _acme-challenge.dup TXT \"second-old-token\"\n\
         proxied A 104.16.0.1\n\
         flat A 192.0.2.10\n\
         elsewhere A 198.51.100.7\n\
         _customdomain-challenge.wrongtxt TXT \"not-the-token\"\n\
         _acme-challenge.chain CNAME hop1.example.test.\n\
         hop1 CNAME {}.\n\
         chain CNAME hop2.example.test.\n\
         hop2 CNAME edge.edge.test.\n\
         _customdomain-challenge.loop CNAME l1.example.test.\n\
         l1 CNAME l2.example.test.\n\
         l2 CNAME l1.example.test.\n",
        t("valid"),
        t("chain"),
    );
    // 12 TXT strings of 200 bytes: larger than a 1232-byte UDP answer.
    for i in 0..12 {
        records.push_str(&format!("_customdomain-challenge.big TXT \"{}{i:02}\"\n", "x".repeat(198)));
    }
    records.push_str("_customdomain-challenge.big TXT \"tok-big\"\n");
    if ownership_valid {
        records.push_str("_customdomain-challenge.valid TXT \"tok-valid\"\n");
    }
    Zone::new("example.test", &records)
}

fn edge_zone(req: &Requirements) -> Zone {
    Zone::new(
        "edge.test",
        &format!(
            "edge A 192.0.2.10\n{} TXT \"live-challenge\"\n",
            target(req, "valid").trim_end_matches(".edge.test")
        ),
    )
}

fn start(ownership_valid: bool) -> DnsServer {
    let req = requirements();
    DnsServer::builder().zone(customer_zone(&req, ownership_valid)).zone(edge_zone(&req)).start().unwrap()
}

fn checker(servers: &[SocketAddr]) -> Checker {
    Checker::builder()
        .authorities(Authorities::fixed(servers.iter().copied()))
        .timeout(Duration::from_millis(700))
        .build()
}

async fn status_of(checker: &Checker, e: Expectation) -> dns_verify::RecordReport {
    checker.check_one(&e).await
}

fn delegation(h: &str) -> Expectation {
    let req = requirements();
    let hn = host(&format!("{h}.example.test"));
    Expectation::AcmeDelegation { target: req.delegation_target(&hn), host: hn }
}

fn ownership(h: &str, token: &str) -> Expectation {
    Expectation::OwnershipTxt { host: host(&format!("{h}.example.test")), token: token.into() }
}

fn routing(h: &str) -> Expectation {
    Expectation::Routing {
        host: host(&format!("{h}.example.test")),
        cname: Some("edge.edge.test".into()),
        addresses: vec!["192.0.2.10".parse().unwrap()],
    }
}

#[tokio::test]
async fn valid_records_on_every_server() {
    let dns = start(true);
    let c = checker(&[dns.addr()]);
    let sans =
        c.check_hosts(&requirements(), &[(host("valid.example.test"), Some("tok-valid".into()))]).await;
    assert_eq!(sans.len(), 1);
    for r in &sans[0].records {
        assert_eq!(r.status, RecordStatus::Valid, "{r:#?}");
        assert_eq!(r.fix, "Nothing to do.");
    }
    assert_eq!(sans[0].status, SanStatus::Valid);
}

#[tokio::test]
async fn missing_nxdomain_and_nodata_are_told_apart() {
    let dns = start(true);
    let c = checker(&[dns.addr()]);
    let nx = status_of(&c, delegation("nx")).await;
    assert_eq!(nx.status, RecordStatus::Missing);
    assert_eq!(nx.servers[0].detail.as_deref(), Some("NXDOMAIN"));
    assert!(nx.fix.starts_with("Create a CNAME record at _acme-challenge.nx.example.test"), "{}", nx.fix);
    let nodata = status_of(&c, delegation("nodata")).await;
    assert_eq!(nodata.status, RecordStatus::Missing);
    assert_eq!(nodata.servers[0].detail.as_deref(), Some("NODATA"));
    let sans = c.check_hosts(&requirements(), &[(host("nx.example.test"), None)]).await;
    assert_eq!(sans[0].status, SanStatus::DnsMissing);
}

#[tokio::test]
async fn wrong_cname_target_reports_what_it_points_to() {
    let dns = start(true);
    let c = checker(&[dns.addr()]);
    let r = status_of(&c, delegation("wrong")).await;
    assert_eq!(r.status, RecordStatus::Wrong);
    assert_eq!(r.observed, ["other.acme.edge.test"]);
    assert!(r.fix.contains("from other.acme.edge.test to"), "{}", r.fix);
    let txt = status_of(&c, ownership("wrongtxt", "tok")).await;
    assert_eq!(txt.status, RecordStatus::Wrong);
    assert_eq!(txt.observed, ["not-the-token"]);
    let routed = status_of(&c, routing("elsewhere")).await;
    assert_eq!(routed.status, RecordStatus::Wrong);
    assert_eq!(routed.observed, ["198.51.100.7"]);
}

#[tokio::test]
async fn leftover_txt_beside_required_cname_is_duplicate() {
    let dns = start(true);
    let c = checker(&[dns.addr()]);
    let r = status_of(&c, delegation("dup")).await;
    assert_eq!(r.status, RecordStatus::Duplicate);
    let mut seen = r.observed.clone();
    seen.sort();
    assert_eq!(seen, ["left-over-from-old-provider", "second-old-token"]);
    assert!(r.fix.starts_with("Delete the TXT record(s)"), "{}", r.fix);
    let sans = c.check_hosts(&requirements(), &[(host("dup.example.test"), None)]).await;
    assert_eq!(sans[0].status, SanStatus::DnsDuplicate);
}

#[tokio::test]
async fn proxied_and_flattened_routing() {
    let dns = start(true);
    let c = checker(&[dns.addr()]);
    let r = status_of(&c, routing("proxied")).await;
    assert_eq!(r.status, RecordStatus::Proxied);
    assert!(r.fix.contains("DNS only"), "{}", r.fix);
    // An apex flattened to the edge's own address is fine.
    assert_eq!(status_of(&c, routing("flat")).await.status, RecordStatus::Valid);
    let sans = c.check_hosts(&requirements(), &[(host("proxied.example.test"), None)]).await;
    assert_eq!(sans[0].status, SanStatus::DnsWrong);
}

#[tokio::test]
async fn cname_chains_are_followed_and_loops_detected() {
    let dns = start(true);
    let c = checker(&[dns.addr()]);
    let r = status_of(&c, delegation("chain")).await;
    assert_eq!(r.status, RecordStatus::Valid, "{r:#?}");
    assert_eq!(r.observed.len(), 2);
    assert_eq!(status_of(&c, routing("chain")).await.status, RecordStatus::Valid);
    let l = status_of(&c, ownership("loop", "tok")).await;
    assert_eq!(l.status, RecordStatus::Wrong);
    assert!(l.servers[0].detail.as_deref().unwrap().starts_with("CNAME loop"), "{l:#?}");
}

#[tokio::test]
async fn disagreeing_servers_name_the_laggard() {
    let a = start(true);
    let b = start(false); // ownership TXT not there yet
    let c = checker(&[a.addr(), b.addr()]);
    let r = status_of(&c, ownership("valid", "tok-valid")).await;
    assert_eq!(r.status, RecordStatus::Missing);
    assert_eq!(r.lagging, [b.addr()]);
    assert!(r.fix.contains(&b.addr().to_string()), "{}", r.fix);
    // Records both serve are valid.
    assert_eq!(status_of(&c, delegation("valid")).await.status, RecordStatus::Valid);
}

#[tokio::test]
async fn stopped_server_and_dropped_packets_are_lookup_failures_not_missing() {
    let mut dns = start(true);
    let addr = dns.addr();
    dns.stop();
    let c = checker(&[addr]);
    let r = status_of(&c, delegation("valid")).await;
    assert_eq!(r.status, RecordStatus::LookupFailed, "{r:#?}");
    assert!(r.status.is_temporary());
    // A socket that swallows every packet.
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let c = checker(&[sink.local_addr().unwrap()]);
    let r = status_of(&c, ownership("valid", "tok-valid")).await;
    assert_eq!(r.status, RecordStatus::LookupFailed);
    assert!(r.servers[0].detail.as_deref().unwrap().contains("timeout"), "{r:#?}");
    let sans = c.check_hosts(&requirements(), &[(host("valid.example.test"), None)]).await;
    assert_eq!(sans[0].status, SanStatus::Pending);
}

#[tokio::test]
async fn servfail_is_a_lookup_failure_never_missing_nor_drift() {
    // BIND answers SERVFAIL for a zone it is configured for but could not load.
    let dns = DnsServer::builder()
        .zone(Zone::new("example.test", "valid A 127.0.0.1\n"))
        .zone(Zone::unloadable("broken.test"))
        .start()
        .unwrap();
    let c = checker(&[dns.addr()]);
    let req = requirements();
    let expectations = req.for_host(&host("shop.broken.test"), Some("tok"));
    let reports = c.check(&expectations).await;
    for r in &reports {
        assert_eq!(r.status, RecordStatus::LookupFailed, "{r:#?}");
        assert!(r.status.is_temporary());
        assert!(r.servers[0].detail.as_deref().unwrap().contains("Server Failure"), "{r:#?}");
    }
    let sans = c.check_hosts(&req, &[(host("shop.broken.test"), Some("tok".into()))]).await;
    assert_eq!(sans[0].status, SanStatus::Pending, "not Missing");
    // A live hostname whose zone starts failing has not drifted.
    let good: Vec<_> = reports
        .iter()
        .cloned()
        .map(|mut r| {
            r.status = RecordStatus::Valid;
            r
        })
        .collect();
    assert!(drift(&good, &reports).is_empty());
}

fn provider(dns: &DnsServer, zone: &str) -> Rfc2136Provider {
    use base64::Engine;
    let secret = base64::engine::general_purpose::STANDARD.decode(dns.tsig_secret_base64()).unwrap();
    Rfc2136Provider::new(dns.addr(), zone, TSIG_KEY_NAME, secret).unwrap()
}

#[tokio::test]
async fn rfc2136_add_and_delete_are_seen_by_the_checker() {
    let dns = start(true);
    let c = checker(&[dns.addr()]);
    let p = provider(&dns, "example.test");
    let record = DnsRecord::txt("_customdomain-challenge.new.example.test", "fresh-token");
    assert_eq!(status_of(&c, ownership("new", "fresh-token")).await.status, RecordStatus::Missing);
    p.create(&record).await.unwrap();
    wait_for_propagation(&c, &record, Duration::from_secs(10)).await.unwrap();
    assert_eq!(status_of(&c, ownership("new", "fresh-token")).await.status, RecordStatus::Valid);
    p.delete(&record).await.unwrap();
    assert_eq!(status_of(&c, ownership("new", "fresh-token")).await.status, RecordStatus::Missing);
    // Deleting again is fine; a name outside the zone is a typed error.
    p.delete(&record).await.unwrap();
    assert!(matches!(
        p.create(&DnsRecord::txt("x.other.test", "v")).await,
        Err(ProviderError::InvalidName { .. })
    ));
    // A CNAME delegation written through the provider.
    let req = requirements();
    p.create(&DnsRecord::cname("_acme-challenge.new.example.test", &target(&req, "new"))).await.unwrap();
    assert_eq!(status_of(&c, delegation("new")).await.status, RecordStatus::Valid);
}

#[tokio::test]
async fn wrong_tsig_key_is_unauthorized() {
    let dns = start(true);
    let p = Rfc2136Provider::new(
        dns.addr(),
        "example.test",
        TSIG_KEY_NAME,
        b"definitely-not-the-key-32-bytes!".to_vec(),
    )
    .unwrap();
    let err = p.create(&DnsRecord::txt("x.example.test", "v")).await.unwrap_err();
    assert!(matches!(err, ProviderError::InvalidCredential { .. }), "{err:?}");
    let unknown = Rfc2136Provider::new(dns.addr(), "example.test", "no-such-key", b"k".repeat(32)).unwrap();
    let err = unknown.create(&DnsRecord::txt("x.example.test", "v")).await.unwrap_err();
    assert!(matches!(err, ProviderError::InvalidCredential { .. }), "{err:?}");
}

#[tokio::test]
async fn authorities_are_discovered_through_soa_and_ns() {
    let dns = start(true);
    // BIND answers for its zones; ns1.example.test is 127.0.0.1, on the test port.
    let c = Checker::builder()
        .authorities(Authorities::Discover { resolver: dns.addr(), port: dns.port() })
        .timeout(Duration::from_millis(700))
        .build();
    let r = status_of(&c, delegation("valid")).await;
    assert_eq!(r.status, RecordStatus::Valid, "{r:#?}");
    assert_eq!(r.servers.len(), 1);
    assert_eq!(r.servers[0].server, dns.addr());
}

#[tokio::test]
async fn drift_lists_changed_records_but_not_failed_lookups() {
    let dns = start(true);
    let c = checker(&[dns.addr()]);
    let expectations = requirements().for_host(&host("valid.example.test"), Some("tok-valid"));
    let good = c.check(&expectations).await;
    assert!(good.iter().all(|r| r.status == RecordStatus::Valid));
    assert!(drift(&good, &c.check(&expectations).await).is_empty());

    provider(&dns, "example.test")
        .delete(&DnsRecord::txt("_customdomain-challenge.valid.example.test", "tok-valid"))
        .await
        .unwrap();
    let changes = drift(&good, &c.check(&expectations).await);
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert_eq!(changes[0].kind, "ownership_txt");
    assert_eq!((changes[0].before, changes[0].after), (RecordStatus::Valid, RecordStatus::Missing));

    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let unreachable = checker(&[sink.local_addr().unwrap()]);
    assert!(drift(&good, &unreachable.check(&expectations).await).is_empty());
}

#[tokio::test]
async fn truncated_udp_answers_are_retried_over_tcp() {
    let dns = start(true);
    let c = checker(&[dns.addr()]);
    let r = status_of(&c, ownership("big", "tok-big")).await;
    assert_eq!(r.status, RecordStatus::Valid, "{r:#?}");
    assert_eq!(r.observed.len(), 13, "all TXT strings arrive over TCP");
}
