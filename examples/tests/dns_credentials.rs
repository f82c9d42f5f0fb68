//! Delegated DNS credentials through the `edge` binary, with real peers on
//! loopback: PowerDNS Authoritative (the customer's DNS provider, its HTTP
//! API written by the edge and its DNS answers read by the edge's checker),
//! the embedded CA for issuance.
//!
//! GoDaddy and Namecheap have no emulator: their gates are played by
//! `testkit::ApiDouble`, local HTTP servers answering exactly as each API
//! documents (GoDaddy `403 ACCESS_DENIED`, Namecheap error 1011150).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use dns_providers::PowerDns;
use dns_verify::{DnsProvider, DnsRecord};
use serde_json::{Value, json};
use support::{Edge, tail, temp_dir};
use testkit::{ApiDouble, Gate, PowerDnsServer};

/// The sealing key of these tests (32 bytes of 7, base64).
const SECRETS_KEY: &str = "k1:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
/// The edge's egress IP as customers allow-list it.
const EGRESS_IP: &str = "203.0.113.77";

fn env(pdns: &PowerDnsServer, dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("EDGE_API_KEYS", support::KEY.to_owned()),
        ("EDGE_STORE", dir.join("store").display().to_string()),
        ("EDGE_DELEGATION_ZONE", "acme.edge.test".into()),
        ("EDGE_ROUTING_CNAME", "edge.edge.test".into()),
        ("EDGE_DNS_AUTHORITIES", pdns.dns_addr().to_string()),
        ("EDGE_TICK_MS", "200".into()),
        ("EDGE_DRIFT_INTERVAL_SECS", "2".into()),
        ("EDGE_DNS_APPLY_INTERVAL_SECS", "1".into()),
        ("EDGE_SECRETS_KEY", SECRETS_KEY.into()),
        ("EDGE_EGRESS_IP", EGRESS_IP.into()),
        ("EDGE_DNS_API_URL_OVERRIDE", "true".into()),
        ("EDGE_HTTPS_ADDR", format!("127.0.0.1:{}", testkit::free_port().unwrap())),
        ("EDGE_HTTP_ADDR", format!("127.0.0.1:{}", testkit::free_port().unwrap())),
        ("EDGE_METRICS_ADDR", "off".into()),
    ]
}

/// PowerDNS with the customer's zone and the platform's (routing target).
async fn powerdns() -> PowerDnsServer {
    let pdns = PowerDnsServer::start().unwrap();
    pdns.create_zone("customer.test").unwrap();
    pdns.create_zone("edge.test").unwrap();
    // The platform's own zone: the routing target.
    let platform = PowerDns::new(&pdns.api_url(), pdns.api_key(), "edge.test").unwrap();
    platform.create(&DnsRecord::a("edge.edge.test", std::net::Ipv4Addr::LOCALHOST)).await.unwrap();
    pdns
}

fn create(edge: &Edge, hostname: &str) -> Value {
    let (status, c) = edge.api("POST", "/v1/connections", Some(json!({ "hostname": hostname })));
    assert_eq!(status, 201, "{c}");
    c
}

fn activity(edge: &Edge, id: &str) -> Vec<Value> {
    let (status, page) = edge.api("GET", &format!("/v1/connections/{id}/activity?limit=100"), None);
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

fn of_kind(entries: &[Value], kind: &str) -> Vec<Value> {
    entries.iter().filter(|e| e["kind"] == kind).cloned().collect()
}

/// Every file under `dir`, as bytes.
fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path, bytes));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_powerdns_credential_takes_a_connection_live_and_repairs_drift() {
    let pdns = powerdns().await;
    let dir = temp_dir("dns-credentials");
    let edge = Edge::start(&env(&pdns, &dir), &dir.join("edge.log"));
    let c = create(&edge, "shop.customer.test");
    let id = c["id"].as_str().unwrap();

    // The customer gives a credential instead of writing records.
    let credential = json!({
        "provider": "powerdns", "api_url": pdns.api_url(), "api_key": pdns.api_key(), "zone": "customer.test",
    });
    let (status, state) = edge.api("PUT", &format!("/v1/connections/{id}/dns-provider"), Some(credential));
    assert_eq!(status, 200, "{state}");
    assert!(!state.to_string().contains(pdns.api_key()), "the credential is never returned: {state}");
    assert_eq!(state["provider"], "powerdns");

    // created → live with no record written by the test.
    let started = Instant::now();
    edge.wait_for(id, Duration::from_secs(60), "live", |c| c["state"] == "live").await;
    println!("created -> live through the PowerDNS credential in {:?}", started.elapsed());
    let (_, check) = edge.api("GET", &format!("/v1/connections/{id}/records:check"), None);
    for r in check["records"].as_array().unwrap().iter().filter(|r| r["required"] == true) {
        assert_eq!(r["status"], "valid", "{r}");
        assert_eq!(r["applied_by_edge"], true, "{r}");
    }
    assert!(check["dns_provider"]["last_error"].is_null(), "{check}");
    assert!(!of_kind(&activity(&edge, id), "records_applied").is_empty());

    // The customer deletes the ownership TXT in PowerDNS: written again
    // within one drift interval, and the activity log says so.
    let txt = c["records"].as_array().unwrap().iter().find(|r| r["type"] == "TXT").unwrap().clone();
    let customer = PowerDns::new(&pdns.api_url(), pdns.api_key(), "customer.test").unwrap();
    let record = DnsRecord::txt(txt["name"].as_str().unwrap(), txt["value"].as_str().unwrap());
    customer.delete(&record).await.unwrap();
    assert!(customer.list(&record.name).await.unwrap().is_empty());
    let deleted = Instant::now();
    loop {
        let repaired = of_kind(&activity(&edge, id), "records_applied").iter().any(|e| e["repaired"] == true);
        if repaired && customer.list(&record.name).await.unwrap().iter().any(|r| r.data == record.data) {
            break;
        }
        assert!(
            deleted.elapsed() < Duration::from_secs(2 + 1 + 3),
            "not written again within one drift interval:\n{}",
            tail(&edge.log(), 40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("deleted ownership TXT written again in {:?}", deleted.elapsed());
    edge.wait_for(id, Duration::from_secs(20), "live again", |c| c["state"] == "live").await;

    // Stored sealed: no file of the store holds the key; nor does the debug log.
    let store = files(&dir.join("store"));
    assert!(store.iter().any(|(p, _)| p.to_string_lossy().contains("credentials")), "no credential stored");
    for (path, bytes) in &store {
        assert!(!contains(bytes, pdns.api_key()), "{} holds the API key in clear", path.display());
    }
    let log = edge.log();
    assert!(log.contains("DEBUG") || log.contains("debug"), "the log is at debug level");
    assert!(!log.contains(pdns.api_key()), "the debug log holds the API key");

    // Key rotation: restarted with a new current key and the old one after it,
    // the credential still opens and is sealed again under the new key.
    drop(edge);
    let mut rotated = env(&pdns, &dir);
    rotated.retain(|(k, _)| *k != "EDGE_SECRETS_KEY");
    rotated
        .push(("EDGE_SECRETS_KEY", format!("k2:CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=,{SECRETS_KEY}")));
    let edge = Edge::start(&rotated, &dir.join("edge.log"));
    customer.delete(&record).await.unwrap();
    let start = Instant::now();
    loop {
        let sealed_k2 = files(&dir.join("store")).iter().any(|(p, bytes)| {
            p.to_string_lossy().contains("credentials") && contains(bytes, "\"key_id\":\"k2\"")
        });
        if sealed_k2 && customer.list(&record.name).await.unwrap().iter().any(|r| r.data == record.data) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "not re-sealed under k2:\n{}",
            tail(&edge.log(), 30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Archived: the credential is deleted with the connection.
    let (status, _) = edge.api("DELETE", &format!("/v1/connections/{id}"), None);
    assert_eq!(status, 200);
    assert!(!files(&dir.join("store")).iter().any(|(p, _)| p.to_string_lossy().contains("credentials/")));
}

/// A provider gate after the credential was accepted: typed error, the
/// customer's sentence in `records:check`, one activity entry, and no
/// retry storm (tried again at most hourly).
async fn gate_is_reported_once(
    edge: &Edge,
    api: &ApiDouble,
    hostname: &str,
    credential: Value,
    code: &str,
) -> Value {
    let c = create(edge, hostname);
    let id = c["id"].as_str().unwrap();
    let (status, state) =
        edge.api("PUT", &format!("/v1/connections/{id}/dns-provider"), Some(credential.clone()));
    assert_eq!(status, 200, "{state}");
    api.set_gate(Gate::Closed);
    let start = Instant::now();
    let check = loop {
        let (_, check) = edge.api("GET", &format!("/v1/connections/{id}/records:check"), None);
        if check["dns_provider"]["last_error"]["code"] == code {
            break check;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no {code}: {check:#}\n{}", tail(&edge.log(), 30));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Several apply intervals later: no more calls, one activity entry.
    let calls = api.requests();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(api.requests(), calls, "the gate was retried within the hour");
    let failures = of_kind(&activity(edge, id), "provider_failed");
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert_eq!(failures[0]["code"], code);
    assert_eq!(failures[0]["fix"], check["dns_provider"]["last_error"]["fix"]);

    // A new credential is checked at once: the gate answers 422 with the sentence.
    let (status, refused) = edge.api("PUT", &format!("/v1/connections/{id}/dns-provider"), Some(credential));
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["code"], code);
    assert_eq!(refused["fix"], check["dns_provider"]["last_error"]["fix"]);
    check["dns_provider"]["last_error"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn godaddy_tier_gate_and_namecheap_ip_gate_are_explained_once() {
    let pdns = powerdns().await;
    let dir = temp_dir("dns-credential-gates");
    // The egress IP is discovered here (an echo service on loopback), not set.
    let echo = testkit::tcp_server(|mut stream| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf).await;
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{EGRESS_IP}",
            EGRESS_IP.len()
        );
        let _ = stream.write_all(answer.as_bytes()).await;
    })
    .await;
    let mut env = env(&pdns, &dir);
    env.retain(|(k, _)| *k != "EDGE_EGRESS_IP");
    env.push(("EDGE_EGRESS_IP_URL", format!("http://{echo}/")));
    let edge = Edge::start(&env, &dir.join("edge.log"));

    let godaddy = ApiDouble::godaddy("godaddy.test", "gd-key", "gd-secret-value").await;
    let credential = json!({
        "provider": "godaddy", "api_key": "gd-key", "api_secret": "gd-secret-value", "domain": "godaddy.test",
        "api_url": godaddy.url(),
    });
    let problem =
        gate_is_reported_once(&edge, &godaddy, "shop.godaddy.test", credential, "provider_account_tier")
            .await;
    assert!(problem["message"].as_str().unwrap().contains("ACCESS_DENIED"), "{problem}");
    assert!(problem["fix"].as_str().unwrap().contains("10 domains"), "{problem}");

    let namecheap = ApiDouble::namecheap("namecheap.test", "nc-key-value", EGRESS_IP).await;
    let credential = json!({
        "provider": "namecheap", "api_user": "nc-user", "api_key": "nc-key-value", "domain": "namecheap.test",
        "api_url": format!("{}/xml.response", namecheap.url()),
    });
    let problem = gate_is_reported_once(
        &edge,
        &namecheap,
        "shop.namecheap.test",
        credential,
        "provider_ip_not_allowed",
    )
    .await;
    assert!(problem["message"].as_str().unwrap().contains("1011150"), "{problem}");
    assert!(problem["fix"].as_str().unwrap().contains(EGRESS_IP), "{problem}");

    let log = edge.log();
    for secret in ["gd-secret-value", "nc-key-value"] {
        assert!(!log.contains(secret), "the debug log holds {secret}");
        for (path, bytes) in files(&dir.join("store")) {
            assert!(!contains(&bytes, secret), "{} holds {secret} in clear", path.display());
        }
    }
}
