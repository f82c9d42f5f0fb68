//! How the checker judges what a customer's zone really holds, against a real
//! BIND (started by testkit): a proxied `_acme-challenge` (addresses where the
//! CNAME must be) and a CNAME into another provider's zone whose chain cannot
//! be followed (REFUSED, SERVFAIL, NXDOMAIN, a dead server).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::{net::Ipv4Addr, time::Duration};

use dns_verify::{Authorities, Checker, Expectation, Hostname, RecordStatus, Requirements, SanStatus};
use testkit::{DnsServer, Zone};

const DELEGATION_ZONE: &str = "acme.edge.test";

fn host(name: &str) -> Hostname {
    Hostname::parse(name).unwrap()
}

fn requirements() -> Requirements {
    Requirements::delegating_to(DELEGATION_ZONE)
}

/// The delegation target of `<h>.example.test`, with the trailing dot.
fn target(h: &str) -> String {
    format!("{}.", requirements().delegation_target(&host(&format!("{h}.example.test"))))
}

fn delegation(h: &str) -> Expectation {
    let hn = host(&format!("{h}.example.test"));
    Expectation::AcmeDelegation { target: requirements().delegation_target(&hn), host: hn }
}

/// The customer's zone: `_acme-challenge` names proxied by Cloudflare, and
/// CNAMEs into zones whose names cannot be resolved. `other-zone.test` is
/// not served (REFUSED), `broken.test` cannot be loaded (SERVFAIL) and
/// `dead.test`'s only name server is 127.0.0.2, where nothing answers. The
/// delegation zone itself is not served either. With `recursion`, BIND also
/// answers as a resolver (it then chases CNAMEs, as a production resolver does).
fn start_with(recursion: bool) -> DnsServer {
    let mut records = String::new();
    for h in ["proxied", "proxied6", "plain", "refused", "servfail", "nx", "dead", "ok", "okbroken"] {
        records.push_str(&format!("{h} A 127.0.0.1\n"));
    }
    records.push_str(&format!(
        "_acme-challenge.proxied A 104.16.0.1\n\
         _acme-challenge.proxied A 104.16.0.2\n\
         _acme-challenge.proxied6 AAAA 2606:4700::6810:1\n\
         _acme-challenge.plain A 192.0.2.99\n\
         _acme-challenge.refused CNAME something.other-zone.test.\n\
         _customdomain-challenge.refused CNAME something.other-zone.test.\n\
         _acme-challenge.servfail CNAME something.broken.test.\n\
         _acme-challenge.nx CNAME nothing.example.test.\n\
         _acme-challenge.dead CNAME something.dead.test.\n\
         _acme-challenge.ok CNAME {}\n\
         _acme-challenge.okbroken CNAME hop.broken.test.\n",
        target("ok"),
    ));
    DnsServer::builder()
        .zone(Zone::new("example.test", &records))
        .zone(Zone::unloadable("broken.test"))
        .zone(
            Zone::new("dead.test", "something A 127.0.0.1\n").nameserver_address(Ipv4Addr::new(127, 0, 0, 2)),
        )
        .recursion(recursion)
        .start()
        .unwrap()
}

fn start() -> DnsServer {
    start_with(false)
}

fn fixed(dns: &DnsServer) -> Checker {
    Checker::builder()
        .authorities(Authorities::fixed([dns.addr()]))
        .timeout(Duration::from_millis(700))
        .build()
}

/// Finds every zone's servers through BIND itself (SOA, NS, their addresses).
fn discovering(dns: &DnsServer) -> Checker {
    Checker::builder()
        .authorities(Authorities::Discover { resolver: dns.addr(), port: dns.port() })
        .timeout(Duration::from_millis(700))
        .build()
}

#[tokio::test]
async fn proxied_acme_challenge_is_proxied_not_missing() {
    let dns = start();
    let c = fixed(&dns);
    let r = c.check_one(&delegation("proxied")).await;
    assert_eq!(r.status, RecordStatus::Proxied, "{r:#?}");
    let mut seen = r.observed.clone();
    seen.sort();
    assert_eq!(seen, ["104.16.0.1", "104.16.0.2"]);
    assert!(r.fix.contains("set this record to DNS only"), "{}", r.fix);
    assert!(r.fix.contains(&requirements().delegation_target(&host("proxied.example.test"))), "{}", r.fix);
    assert!(r.servers[0].detail.as_deref().unwrap().contains("Cloudflare"), "{r:#?}");

    // IPv6 only (AAAA in Cloudflare's ranges) is proxied too.
    let r6 = c.check_one(&delegation("proxied6")).await;
    assert_eq!(r6.status, RecordStatus::Proxied, "{r6:#?}");
    assert_eq!(r6.observed, ["2606:4700::6810:1"]);

    // As a SAN: the delegation is not right, and not missing.
    let sans = c.check_hosts(&requirements(), &[(host("proxied.example.test"), None)]).await;
    assert_eq!(sans[0].status, SanStatus::DnsWrong);

    // Addresses outside any proxy range stay what they were: the CNAME is missing.
    let plain = c.check_one(&delegation("plain")).await;
    assert_eq!(plain.status, RecordStatus::Missing, "{plain:#?}");
    assert_eq!(plain.servers[0].detail.as_deref(), Some("NODATA"));
}

#[tokio::test]
async fn cname_elsewhere_is_wrong_even_when_its_chain_cannot_be_resolved() {
    let dns = start();
    for c in [fixed(&dns), discovering(&dns)] {
        // REFUSED: a zone this server does not serve.
        let r = c.check_one(&delegation("refused")).await;
        assert_eq!(r.status, RecordStatus::Wrong, "{r:#?}");
        assert_eq!(r.observed, ["something.other-zone.test"]);
        assert!(r.fix.contains("from something.other-zone.test to"), "{}", r.fix);
        assert!(r.servers[0].detail.as_deref().unwrap().contains("could not be followed"), "{r:#?}");
        let sans = c.check_hosts(&requirements(), &[(host("refused.example.test"), None)]).await;
        assert_eq!(sans[0].status, SanStatus::DnsWrong);

        // SERVFAIL: a zone that cannot be loaded.
        let r = c.check_one(&delegation("servfail")).await;
        assert_eq!(r.status, RecordStatus::Wrong, "{r:#?}");
        assert_eq!(r.observed, ["something.broken.test"]);

        // NXDOMAIN: the first hop does not exist.
        let r = c.check_one(&delegation("nx")).await;
        assert_eq!(r.status, RecordStatus::Wrong, "{r:#?}");
        assert_eq!(r.observed, ["nothing.example.test"]);

        // A record other than the delegation keeps "temporary" for a chain
        // that cannot be followed: its value lies behind it.
        let txt = c
            .check_one(&Expectation::OwnershipTxt { host: host("refused.example.test"), token: "t".into() })
            .await;
        assert_eq!(txt.status, RecordStatus::LookupFailed, "{txt:#?}");
    }
}

#[tokio::test]
async fn cname_into_a_zone_whose_server_is_dead_is_wrong() {
    let dns = start();
    // dead.test's name server (127.0.0.2) never answers: the second hop times out.
    let c = discovering(&dns);
    let r = c.check_one(&delegation("dead")).await;
    assert_eq!(r.status, RecordStatus::Wrong, "{r:#?}");
    assert_eq!(r.observed, ["something.dead.test"]);
    assert!(r.servers[0].detail.as_deref().unwrap().contains("timeout"), "{r:#?}");
    // The customer zone's own server was asked, not dead.test's.
    assert_eq!(r.servers.iter().map(|s| s.server).collect::<Vec<_>>(), [dns.addr()]);
}

/// A recursive resolver chases the CNAME when asked for the SOA of
/// `_acme-challenge.<host>`: the SOA (or SERVFAIL) it returns is the target
/// zone's, not the customer's. Discovery must still ask the customer zone's
/// servers.
#[tokio::test]
async fn discovery_through_a_resolver_that_chases_the_cname_finds_the_customer_zone() {
    let dns = start_with(true);
    let c = discovering(&dns);
    for (h, first_hop) in [("dead", "something.dead.test"), ("servfail", "something.broken.test")] {
        let r = c.check_one(&delegation(h)).await;
        assert_eq!(r.status, RecordStatus::Wrong, "{h}: {r:#?}");
        assert_eq!(r.observed, [first_hop]);
        assert_eq!(r.servers.iter().map(|s| s.server).collect::<Vec<_>>(), [dns.addr()], "{h}");
    }
    let r = c.check_one(&delegation("proxied")).await;
    assert_eq!(r.status, RecordStatus::Proxied, "{r:#?}");
}

#[tokio::test]
async fn cname_to_the_expected_target_stays_valid_when_the_target_cannot_be_resolved() {
    let dns = start();
    for c in [fixed(&dns), discovering(&dns)] {
        // The delegation zone is not served here (REFUSED behind the first hop).
        let r = c.check_one(&delegation("ok")).await;
        assert_eq!(r.status, RecordStatus::Valid, "{r:#?}");
        assert_eq!(r.observed, [target("ok").trim_end_matches('.')]);
    }
    // A first hop elsewhere whose zone fails is not the expected target.
    let r = fixed(&dns).check_one(&delegation("okbroken")).await;
    assert_eq!(r.status, RecordStatus::Wrong, "{r:#?}");
}
