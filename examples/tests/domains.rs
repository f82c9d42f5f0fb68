//! Domains end to end through the `edge` binary, with real peers on
//! loopback: BIND (the customer's zones, written with RFC 2136, and the
//! delegation zone), pebble as the CA behind testkit's fault proxy (which
//! also journals every order), openssl as the client.
//!
//! A domain is one certificate for the apex, `*.apex` and additional SANs;
//! its SSL view shows each SAN's DNS status, and every failure a customer
//! can act on has a code, a resolution sentence and a retry time.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use std::{
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use dns_verify::{DnsProvider, DnsRecord};
use serde_json::{Value, json};
use support::{Edge, create_records, customer_dns, s_client, temp_dir};
use testkit::{FaultPlan, FaultProxy};

/// BIND: the customer's zones, the platform's (routing target and the
/// delegation zone the DNS-01 TXT records are written into), a zone that
/// answers SERVFAIL; recursive for pebble (it does not chase CNAMEs).
fn dns() -> testkit::DnsServer {
    testkit::DnsServer::builder()
        .zone(testkit::Zone::new("customer.test", "placeholder A 192.0.2.1\n"))
        .zone(testkit::Zone::new("edge.test", "edge A 127.0.0.1\n"))
        .zone(testkit::Zone::new("acme.edge.test", "placeholder A 192.0.2.1\n"))
        .zone(testkit::Zone::unloadable("broken.test"))
        .recursion(true)
        .start()
        .unwrap()
}

/// The edge's settings: HTTP-01 by default (on pebble's validation ports),
/// DNS-01 through the delegation zone for wildcards, the CA through `ca`.
fn env(
    dns: &testkit::DnsServer,
    pebble: &testkit::PebbleServer,
    ca: &FaultProxy,
    dir: &Path,
) -> Vec<(&'static str, String)> {
    vec![
        ("EDGE_API_KEYS", support::KEY.to_owned()),
        ("EDGE_STORE", dir.join("store").display().to_string()),
        ("EDGE_DELEGATION_ZONE", "acme.edge.test".into()),
        ("EDGE_ROUTING_CNAME", "edge.edge.test".into()),
        // The platform's edge addresses; 127.0.0.2 is one that is down.
        ("EDGE_ROUTING_ADDRESSES", "127.0.0.1,127.0.0.2".into()),
        ("EDGE_DNS_AUTHORITIES", dns.addr().to_string()),
        ("EDGE_TICK_MS", "200".into()),
        ("EDGE_DRIFT_INTERVAL_SECS", "3600".into()),
        ("EDGE_ACME_TIMEOUT_SECS", "20".into()),
        ("EDGE_ISSUER", ca.directory_url()),
        ("EDGE_CA_ROOT", pebble.tls_root_path().display().to_string()),
        ("EDGE_HTTPS_ADDR", format!("127.0.0.1:{}", pebble.tls_port())),
        ("EDGE_HTTP_ADDR", format!("127.0.0.1:{}", pebble.http_port())),
        ("EDGE_RFC2136_SERVER", dns.addr().to_string()),
        ("EDGE_TSIG_KEY_NAME", testkit::TSIG_KEY_NAME.into()),
        ("EDGE_TSIG_SECRET", dns.tsig_secret_base64().into()),
        ("EDGE_QUOTAS", "free=50".into()),
    ]
}

/// Orders placed at the CA for certificates carrying `name`.
fn orders_for(ca: &FaultProxy, name: &str) -> usize {
    ca.journal()
        .iter()
        .filter(|e| e.path.contains("order-plz"))
        .filter(|e| {
            e.payload.as_ref().is_some_and(|p| {
                p["identifiers"].as_array().is_some_and(|ids| ids.iter().any(|i| i["value"] == name))
            })
        })
        .count()
}

fn san<'a>(c: &'a Value, name: &str) -> &'a Value {
    c["ssl"]["sans"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap_or(&Value::Null)
}

/// The problem's code, with a resolution sentence and (when `retried`) a
/// retry time in the future of the check.
fn assert_problem(c: &Value, code: &str, resolution_has: &str, retried: bool) {
    let p = &c["last_error"];
    assert_eq!(p["code"], code, "{c:#}");
    let resolution = p["resolution"].as_str().unwrap_or_default();
    assert!(resolution.contains(resolution_has), "resolution {resolution:?} lacks {resolution_has:?}");
    assert!(!p["message"].as_str().unwrap_or_default().is_empty(), "{p}");
    if retried {
        let at = time::OffsetDateTime::parse(
            p["retry_at"].as_str().unwrap_or_else(|| panic!("no retry_at: {p}")),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert!(at > time::OffsetDateTime::now_utc() - time::Duration::minutes(1), "{p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_with_wildcard_and_sans_goes_active_gains_a_san_without_downtime_and_shows_each_error() {
    let dns = dns();
    let pebble = testkit::PebbleServer::builder().dns_server(dns.addr()).start().unwrap();
    let ca = FaultProxy::in_front_of(&pebble, FaultPlan::none()).await.unwrap();
    let dir = temp_dir("domains");
    let root = dir.join("root.pem");
    std::fs::write(&root, pebble.issuing_root_pem().unwrap()).unwrap();
    let mut env = env(&dns, &pebble, &ca, &dir);
    env.push(("EDGE_UPSTREAM", testkit::echo_upstream().await.to_string()));
    let edge = Edge::start(&env, &dir.join("edge.log"));
    let zone = customer_dns(&dns, "customer.test");
    let tls_port = pebble.tls_port();

    // A bad SAN is refused by name, too many names too; nothing is stored.
    let (status, err) = edge.api(
        "POST",
        "/v1/connections",
        Some(json!({"hostname": "customer.test", "additional_sans": ["ok.customer.test", "bad_name!.customer.test"]})),
    );
    assert_eq!((status, err["code"].as_str()), (400, Some("InvalidHostname")), "{err}");
    assert!(err["message"].as_str().unwrap().contains("bad_name!.customer.test"), "{err}");
    let many: Vec<String> = (0..99).map(|i| format!("n{i}.customer.test")).collect();
    let (status, err) = edge.api(
        "POST",
        "/v1/connections",
        Some(json!({"hostname": "customer.test", "additional_sans": many})),
    );
    assert_eq!((status, err["code"].as_str()), (400, Some("InvalidRequest")), "{err}");
    assert_eq!(edge.api("GET", "/v1/connections", None).1["total"], 0, "nothing stored");

    // The domain: apex, its wildcard (by default), two more SANs.
    let (status, c) = edge.api(
        "POST",
        "/v1/connections",
        Some(json!({"hostname": "customer.test", "additional_sans": ["sub.shop.customer.test", "x.other.customer.test"]})),
    );
    assert_eq!(status, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_owned();
    assert_eq!(c["include_wildcard"], true, "{c}");
    let delegations: Vec<&Value> =
        c["records"].as_array().unwrap().iter().filter(|r| r["purpose"] == "acme_delegation").collect();
    let names: Vec<&str> = delegations.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "_acme-challenge.customer.test",
            "_acme-challenge.sub.shop.customer.test",
            "_acme-challenge.x.other.customer.test"
        ],
        "one delegation per SAN (the wildcard's is its apex's)"
    );
    assert_eq!(delegations[0]["required"], true, "the wildcard forces DNS-01");
    assert_eq!(delegations[1]["required"], false, "HTTP-01 for plain names");

    // Errors of other domains, set up now so their checks and orders run
    // alongside: a TXT left at _acme-challenge (txt_conflict), a zone
    // answering SERVFAIL (dns_fetch_error), an edge address that is down
    // (the CA cannot validate: validation_failed).
    let (_, tc) = edge.api(
        "POST",
        "/v1/connections",
        Some(json!({"hostname": "tc.customer.test", "include_wildcard": true})),
    );
    create_records(&zone, &tc, None, |r| r["purpose"] == "acme_delegation").await;
    zone.create(&DnsRecord::txt("_acme-challenge.tc.customer.test", "left-over-from-another-provider"))
        .await
        .unwrap();
    let (_, broken) = edge.api("POST", "/v1/connections", Some(json!({"hostname": "x.broken.test"})));
    let (_, down) = edge.api("POST", "/v1/connections", Some(json!({"hostname": "down.customer.test"})));
    create_records(&zone, &down, None, |r| r["purpose"] == "routing").await;
    zone.create(&DnsRecord::a("down.customer.test", "127.0.0.2".parse().unwrap())).await.unwrap();

    // Every record but the wildcard's delegation: exactly that SAN is
    // missing, with its fix; no order is placed.
    create_records(&zone, &c, Some("customer.test"), |r| r["name"] == "_acme-challenge.customer.test").await;
    // (the first check ran at creation, before the records: wait for the recheck)
    let pending = edge
        .wait_for(&id, Duration::from_secs(30), "checked with the records", |c| {
            san(c, "customer.test")["dns_status"] == "valid"
        })
        .await;
    assert_eq!(pending["ssl"]["status"], "pending_validation", "{pending:#}");
    let statuses: Vec<(&str, &str)> = pending["ssl"]["sans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["dns_status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("customer.test", "valid"),
            ("*.customer.test", "missing"),
            ("sub.shop.customer.test", "valid"),
            ("x.other.customer.test", "valid")
        ],
        "{pending:#}"
    );
    let wild = san(&pending, "*.customer.test");
    assert!(wild["fix"].as_str().unwrap().contains("_acme-challenge.customer.test"), "{wild}");
    assert_eq!(wild["expected"], delegations[0]["value"], "{wild}");
    assert!(wild["last_checked_at"].is_string() && wild["next_check_at"].is_string(), "{wild}");
    assert_problem(&pending, "cname_not_found", "CNAME", true);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(orders_for(&ca, "customer.test"), 0, "no order while a SAN is missing");

    // The customer adds the record: issued by the worker's recheck, no API call.
    zone.create(&support::record_of(delegations[0], None)).await.unwrap();
    let active =
        edge.wait_for(&id, Duration::from_secs(180), "active", |c| c["ssl"]["status"] == "active").await;
    assert_eq!(active["state"], "live");
    assert!(active["last_error"].is_null(), "{active:#}");
    let cert = &active["ssl"]["certificate"];
    let mut cert_names: Vec<&str> =
        cert["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    cert_names.sort_unstable();
    assert_eq!(
        cert_names,
        ["*.customer.test", "customer.test", "sub.shop.customer.test", "x.other.customer.test"]
    );
    assert_eq!(cert["source"], "acme");
    for field in ["serial", "issuer", "not_before", "not_after", "renews_at"] {
        assert!(cert[field].is_string(), "{field}: {cert}");
    }
    assert_eq!(orders_for(&ca, "customer.test"), 1, "one order for the whole domain");

    // Real clients: the chain verifies for the apex, a wildcard name and
    // each extra SAN; a name two levels down is not the wildcard's.
    for name in ["customer.test", "a.customer.test", "sub.shop.customer.test", "x.other.customer.test"] {
        s_client(tls_port, name, &root).unwrap_or_else(|out| panic!("{name}: {out}"));
    }
    assert!(
        s_client(tls_port, "a.b.customer.test", &root).is_err(),
        "a.b.customer.test is not *.customer.test"
    );

    // A SAN another connection holds: 409 naming it.
    let (status, err) =
        edge.api("POST", "/v1/connections", Some(json!({"hostname": "sub.shop.customer.test"})));
    assert_eq!((status, err["code"].as_str()), (409, Some("HostnameConflict")), "{err}");

    // A SAN added to the live domain: the served certificate gains it, and
    // a client connecting every 100 ms meanwhile never fails.
    zone.create(&DnsRecord::cname("new.shop.customer.test", "edge.edge.test")).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (handshakes, failures) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())));
    let client = {
        let (stop, handshakes, failures, root) =
            (Arc::clone(&stop), Arc::clone(&handshakes), Arc::clone(&failures), root.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Err(out) = s_client(tls_port, "customer.test", &root) {
                    failures.lock().unwrap().push(out);
                }
                handshakes.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let (status, added) = edge.api(
        "POST",
        &format!("/v1/connections/{id}/sans"),
        Some(json!({"name": "new.shop.customer.test"})),
    );
    assert_eq!(status, 200, "{added}");
    assert_eq!(
        added["additional_sans"],
        json!(["sub.shop.customer.test", "x.other.customer.test", "new.shop.customer.test"])
    );
    let start = std::time::Instant::now();
    loop {
        if s_client(tls_port, "new.shop.customer.test", &root).is_ok() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "never served:\n{}",
            support::tail(&edge.log(), 40)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    let failed = std::mem::take(&mut *failures.lock().unwrap());
    assert!(
        failed.is_empty(),
        "{} of {} handshakes failed: {}",
        failed.len(),
        handshakes.load(Ordering::Relaxed),
        failed[0]
    );
    assert!(handshakes.load(Ordering::Relaxed) >= 5, "the client ran during the change");
    println!(
        "SAN added: {} handshakes every 100 ms during the change, none failed",
        handshakes.load(Ordering::Relaxed)
    );
    let active =
        edge.wait_for(&id, Duration::from_secs(30), "active again", |c| c["ssl"]["status"] == "active").await;
    assert_eq!(active["ssl"]["certificate"]["names"].as_array().unwrap().len(), 5, "{active:#}");

    // A SAN removed: re-issued without it, no longer served.
    let (status, removed) =
        edge.api("DELETE", &format!("/v1/connections/{id}/sans/x.other.customer.test"), None);
    assert_eq!(status, 200, "{removed}");
    let shrunk = edge
        .wait_for(&id, Duration::from_secs(120), "re-issued without the SAN", |c| {
            c["ssl"]["status"] == "active"
                && c["ssl"]["certificate"]["names"].as_array().is_some_and(|n| n.len() == 4)
        })
        .await;
    assert!(!shrunk["ssl"]["certificate"]["names"].to_string().contains("x.other"), "{shrunk:#}");
    assert!(s_client(tls_port, "x.other.customer.test", &root).is_err(), "the removed SAN is not served");

    // The other domains' errors, each with its code, resolution and retry time.
    let tc = edge
        .wait_for(tc["id"].as_str().unwrap(), Duration::from_secs(60), "txt_conflict", |c| {
            c["last_error"]["code"] == "txt_conflict"
        })
        .await;
    assert_problem(&tc, "txt_conflict", "Remove the TXT record at _acme-challenge", true);
    assert_eq!(san(&tc, "*.tc.customer.test")["dns_status"], "duplicate", "{tc:#}");
    let broken = edge
        .wait_for(broken["id"].as_str().unwrap(), Duration::from_secs(60), "dns_fetch_error", |c| {
            c["last_error"]["code"] == "dns_fetch_error"
        })
        .await;
    assert_problem(&broken, "dns_fetch_error", "retried automatically", true);
    assert_eq!(san(&broken, "x.broken.test")["dns_status"], "pending", "{broken:#}");
    let down = edge
        .wait_for(down["id"].as_str().unwrap(), Duration::from_secs(120), "validation_failed", |c| {
            c["last_error"]["code"] == "validation_failed"
        })
        .await;
    assert_problem(&down, "validation_failed", "retried automatically", true);
    assert_eq!(
        orders_for(&ca, "tc.customer.test") + orders_for(&ca, "x.broken.test"),
        0,
        "no order for DNS problems"
    );

    // The CA's rate limit (429 from the fault proxy on new orders).
    ca.set_plan(FaultPlan { rate_limited: 1.0, only_path: Some("order-plz".into()), ..FaultPlan::none() });
    let (_, rl) = edge.api("POST", "/v1/connections", Some(json!({"hostname": "rl.customer.test"})));
    create_records(&zone, &rl, None, |_| false).await;
    let rl = edge
        .wait_for(rl["id"].as_str().unwrap(), Duration::from_secs(120), "rate_limited", |c| {
            c["last_error"]["code"] == "rate_limited"
        })
        .await;
    assert_problem(&rl, "rate_limited", "retried automatically after one hour", true);
    ca.set_plan(FaultPlan::none());

    // The activity log carries the codes too.
    let (_, log) = edge.api("GET", &format!("/v1/connections/{id}/activity"), None);
    assert!(log.to_string().contains("cname_not_found"), "{log:#}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Expired certificates. Auto-managed: pebble issues 20-second
/// certificates; with the CA failing, the renewal failure shows on the live
/// connection; with the domain's delegation record gone too, the
/// certificate expires: `expired`, and the resolution says to add the
/// record back. Self-managed: a certificate uploaded with 10
/// days left is warned about once (webhook + activity) however often the
/// maintenance runs; one uploaded with seconds left expires into `expired`
/// with "upload a new certificate", and no order is ever placed for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_certificates_say_what_to_do_and_self_managed_ones_are_warned_about_once() {
    use acme_core::{CertRequest, Issuer, LocalCaIssuer};
    let dns = dns();
    let pebble = testkit::PebbleServer::builder()
        .dns_server(dns.addr())
        .certificate_validity(Duration::from_secs(20))
        .start()
        .unwrap();
    let ca = FaultProxy::in_front_of(&pebble, FaultPlan::none()).await.unwrap();
    let dir = temp_dir("domains-expiry");
    let (hook_url, deliveries) = support::webhook_receiver().await;
    let mut env = env(&dns, &pebble, &ca, &dir);
    env.extend([
        ("EDGE_MAINTENANCE_INTERVAL_SECS", "1".to_owned()),
        ("EDGE_DRIFT_INTERVAL_SECS", "2".to_owned()),
        ("EDGE_WEBHOOK_URLS", hook_url),
        ("EDGE_WEBHOOK_SECRET", "webhook-secret-for-tests".to_owned()),
    ]);
    let edge = Edge::start(&env, &dir.join("edge.log"));
    let zone = customer_dns(&dns, "customer.test");

    // Auto-managed, with its wildcard (so its delegation record is needed).
    let (_, c) = edge.api(
        "POST",
        "/v1/connections",
        Some(json!({"hostname": "exp.customer.test", "include_wildcard": true})),
    );
    let id = c["id"].as_str().unwrap().to_owned();
    create_records(&zone, &c, None, |_| false).await;
    edge.wait_for(&id, Duration::from_secs(120), "active", |c| c["ssl"]["status"] == "active").await;
    // The CA fails every new order: the renewal (at half the 20 s lifetime)
    // fails, and the live connection says so, with its retry time.
    ca.set_plan(FaultPlan { server_error: 1.0, only_path: Some("order-plz".into()), ..FaultPlan::none() });
    let failing = edge
        .wait_for(&id, Duration::from_secs(30), "a renewal failure shown", |c| {
            c["last_error"]["message"].as_str().is_some_and(|m| m.contains("renewing the certificate failed"))
        })
        .await;
    assert_eq!(failing["state"], "live", "{failing:#}");
    assert!(failing["last_error"]["retry_at"].is_string(), "{failing:#}");
    assert!(!failing["last_error"]["resolution"].as_str().unwrap().is_empty(), "{failing:#}");
    // The delegation record goes too: once expired, the resolution names it.
    let delegation =
        c["records"].as_array().unwrap().iter().find(|r| r["purpose"] == "acme_delegation").unwrap();
    zone.delete(&support::record_of(delegation, None)).await.unwrap();
    let expired =
        edge.wait_for(&id, Duration::from_secs(120), "expired", |c| c["ssl"]["status"] == "expired").await;
    assert_problem(&expired, "certificate_expired", "Add back the delegation records", true);
    assert!(
        expired["last_error"]["resolution"].as_str().unwrap().contains("_acme-challenge.exp.customer.test"),
        "{expired:#}"
    );
    assert_eq!(san(&expired, "*.exp.customer.test")["dns_status"], "missing", "{expired:#}");

    // Self-managed: the customer's own CA.
    let (_, own) = edge.api("POST", "/v1/connections", Some(json!({"hostname": "own.customer.test"})));
    let own_id = own["id"].as_str().unwrap().to_owned();
    let theirs = |lifetime: Duration| {
        LocalCaIssuer::new(Arc::new(cert_store::CertStore::new(Arc::new(cert_store::MemoryStorage::new()))))
            .with_lifetime(lifetime)
    };
    let upload = |b: &cert_store::CertBundle| json!({"certificate_pem": b.chain_pem(), "private_key_pem": b.key_pem()});
    let ten_days = theirs(Duration::from_secs(10 * 24 * 3600))
        .issue(&CertRequest::new(["own.customer.test"]))
        .await
        .unwrap();
    let path = format!("/v1/connections/{own_id}/certificate");
    let (status, body) = edge.api("POST", &path, Some(upload(&ten_days)));
    assert_eq!(status, 200, "{body}");
    let expiring = |d: &support::Deliveries| {
        support::events_of(d, "certificate.expiring")
            .into_iter()
            .filter(|e| e.to_string().contains("own.customer.test"))
            .count()
    };
    let start = std::time::Instant::now();
    while expiring(&deliveries) == 0 {
        assert!(start.elapsed() < Duration::from_secs(30), "no expiry warning");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await; // four more maintenance rounds
    assert_eq!(expiring(&deliveries), 1, "the 14-day warning is sent once");
    // (not verified, the connection holds no claim: the record is the tenant's)
    let (_, log) = edge.api("GET", "/v1/activity", None);
    let warnings: Vec<&Value> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "expiring" && e["hostname"] == "own.customer.test")
        .collect();
    assert_eq!(warnings.len(), 1, "{log:#}");
    let active = edge.connection(&own_id);
    assert_eq!(active["ssl"]["status"], "active", "{active:#}");
    assert_eq!(active["ssl"]["certificate"]["source"], "self_managed");
    assert!(active["ssl"]["certificate"]["renews_at"].is_null(), "never renewed");

    let seconds =
        theirs(Duration::from_secs(8)).issue(&CertRequest::new(["own.customer.test"])).await.unwrap();
    let (status, body) = edge.api("POST", &path, Some(upload(&seconds)));
    assert_eq!(status, 200, "{body}");
    let expired =
        edge.wait_for(&own_id, Duration::from_secs(30), "expired", |c| c["ssl"]["status"] == "expired").await;
    assert_problem(&expired, "certificate_expired", "Upload a new certificate", false);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(orders_for(&ca, "own.customer.test"), 0, "a self-managed certificate is never renewed");
    assert_eq!(edge.connection(&own_id)["ssl"]["certificate"]["serial"], seconds.meta().serial.as_str());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `EDGE_DELEGATION_TARGET=per-tenant`: every SAN of a tenant points its
/// `_acme-challenge` at `<tenant>.<delegation zone>`. Two domains of one
/// tenant (apex + wildcard each, DNS-01 for every name) are issued at the
/// same time through that one name: both succeed, and no TXT value is left
/// there afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_tenant_delegation_two_domains_issued_at_once_through_one_name() {
    let dns = dns();
    let pebble = testkit::PebbleServer::builder().dns_server(dns.addr()).start().unwrap();
    let ca = FaultProxy::in_front_of(&pebble, FaultPlan::none()).await.unwrap();
    let dir = temp_dir("domains-tenant");
    let mut env = env(&dns, &pebble, &ca, &dir);
    env.extend([
        ("EDGE_DELEGATION_TARGET", "per-tenant".to_owned()),
        ("EDGE_CHALLENGE", "dns-01".to_owned()),
    ]);
    let edge = Edge::start(&env, &dir.join("edge.log"));
    let zone = customer_dns(&dns, "customer.test");

    let mut ids = Vec::new();
    let mut domains = Vec::new();
    for hostname in ["alpha.customer.test", "beta.customer.test"] {
        let (status, c) = edge.api(
            "POST",
            "/v1/connections",
            Some(json!({"hostname": hostname, "include_wildcard": true})),
        );
        assert_eq!(status, 201, "{c}");
        for r in c["records"].as_array().unwrap().iter().filter(|r| r["purpose"] == "acme_delegation") {
            assert_eq!(r["value"], "default.acme.edge.test", "one target for the tenant: {r}");
        }
        ids.push(c["id"].as_str().unwrap().to_owned());
        domains.push(c);
    }
    // Both domains' records at once: verified and issued side by side.
    for c in &domains {
        create_records(&zone, c, None, |_| false).await;
    }
    for id in &ids {
        let c =
            edge.wait_for(id, Duration::from_secs(180), "active", |c| c["ssl"]["status"] == "active").await;
        assert_eq!(c["ssl"]["certificate"]["names"].as_array().unwrap().len(), 2, "{c:#}");
    }
    let shared = customer_dns(&dns, "acme.edge.test");
    let left = shared.list("default.acme.edge.test").await.unwrap();
    assert!(left.is_empty(), "TXT values left at the shared name: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
