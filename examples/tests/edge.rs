//! The `edge` binary end to end, with real peers on loopback: BIND (the
//! customer's zone, changed through RFC 2136), pebble (the CA), openssl and
//! curl (the clients), PostgreSQL (a fleet of two edges), a webhook receiver.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use std::{
    net::SocketAddr,
    path::Path,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use dns_verify::{DnsProvider, DnsRecord};
use serde_json::{Value, json};
use support::{
    Deliveries, Edge, KEY, base_env, create_records, dns, events_of, pebble_env, read_request, temp_dir,
    upstream, wait_event, webhook_receiver,
};
use tokio::io::AsyncWriteExt;

const WEBHOOK_SECRET: &str = "webhook-secret-for-tests";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_goes_live_with_pebble_and_drift_is_reported() {
    let dns = dns();
    let pebble = testkit::PebbleServer::builder().dns_server(dns.addr()).start().unwrap();
    let root = pebble.issuing_root_pem().unwrap();
    let dir = temp_dir("live");
    std::fs::write(dir.join("root.pem"), &root).unwrap();
    let (hook_url, deliveries) = webhook_receiver().await;
    let mut env = base_env(&dns, &dir);
    env.extend(pebble_env(&pebble));
    env.push(("EDGE_UPSTREAM", upstream().await.to_string()));
    env.push(("EDGE_WEBHOOK_URLS", hook_url));
    env.push(("EDGE_WEBHOOK_SECRET", WEBHOOK_SECRET.into()));
    env.push(("EDGE_QUOTAS", "free=3".into()));
    let edge = Edge::start(&env, &dir.join("edge.log"));

    // Create: pending, with the records to set.
    let (status, c) = edge.api("POST", "/v1/connections", Some(json!({"hostname": "Shop.Customer.test"})));
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["state"], "pending_ownership");
    assert_eq!(c["hostname"], "shop.customer.test");
    let id = c["id"].as_str().unwrap().to_owned();
    let (_, check) = edge.api("GET", &format!("/v1/connections/{id}/records:check"), None);
    assert_eq!(check["san_status"], "dns_missing", "{check}");

    // The customer creates the records; verify; the worker issues from pebble.
    create_records(&support::customer_dns(&dns, "customer.test"), &c, None, |_| false).await;
    let (_, check) = edge.api("GET", &format!("/v1/connections/{id}/records:check"), None);
    assert_eq!(check["san_status"], "valid", "{check}");
    let (status, verified) = edge.api("POST", &format!("/v1/connections/{id}/verify"), None);
    assert_eq!(status, 200);
    assert!(
        ["verified", "issuing_cert", "live"].contains(&verified["state"].as_str().unwrap()),
        "{verified}"
    );
    let live = edge.wait_state(&id, "live").await;
    assert_eq!(live["certificate"]["source"], "acme", "{live}");

    // Real clients get a chain that verifies against pebble's root.
    let port = pebble.tls_port().to_string();
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", "shop.customer.test"])
        .args(["-verify_return_error", "-CAfile"])
        .arg(dir.join("root.pem"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    let out = Command::new("curl")
        .args(["-s", "--resolve", &format!("shop.customer.test:{port}:127.0.0.1"), "--cacert"])
        .arg(dir.join("root.pem"))
        .arg(format!("https://shop.customer.test:{port}/"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from upstream\n");

    // Webhooks arrived, signed.
    for kind in ["domain.verified", "certificate.issued", "domain.live"] {
        wait_event(&deliveries, kind).await;
    }
    let (_, activity) = edge.api("GET", &format!("/v1/connections/{id}/activity"), None);
    assert!(activity["items"].as_array().unwrap().iter().any(|e| e["kind"] == "issued"), "{activity}");
    assert_secrets_kept(&dir, &[KEY, WEBHOOK_SECRET]).await;

    // A second claim of the same hostname: 409.
    let (status, err) = edge.api("POST", "/v1/connections", Some(json!({"hostname": "shop.customer.test"})));
    assert_eq!((status, err["code"].as_str()), (409, Some("HostnameConflict")), "{err}");
    // Over quota: 402 with the details.
    for h in ["a.customer.test", "b.customer.test"] {
        assert_eq!(edge.api("POST", "/v1/connections", Some(json!({"hostname": h}))).0, 201);
    }
    let (status, err) = edge.api("POST", "/v1/connections", Some(json!({"hostname": "c.customer.test"})));
    assert_eq!(status, 402, "{err}");
    assert_eq!(err["code"], "QuotaExceeded");
    assert_eq!(err["limit"], 3);
    assert_eq!(err["plan"], "free");
    assert!(err["upgrade_url"].is_string());
    // Not a hostname: 400.
    let (status, err) = edge.api("POST", "/v1/connections", Some(json!({"hostname": "not a host"})));
    assert_eq!((status, err["code"].as_str()), (400, Some("InvalidHostname")));

    // The customer removes the ownership record: drifted, and the webhook says so.
    let token = c["ownership_token"].as_str().unwrap();
    support::customer_dns(&dns, "customer.test")
        .delete(&DnsRecord::txt("_customdomain-challenge.shop.customer.test", token))
        .await
        .unwrap();
    let (_, drifted) = edge.api("POST", &format!("/v1/connections/{id}/verify"), None);
    assert_eq!(drifted["state"], "drifted", "{drifted}");
    wait_event(&deliveries, "domain.drift").await;
    let all = deliveries.lock().unwrap().clone();
    let (headers, body) =
        all.iter().find(|(h, _)| h.get("x-edge-event").is_some_and(|e| e == "domain.drift")).unwrap();
    let timestamp: i64 = headers["x-edge-timestamp"].parse().unwrap();
    assert!(control_plane::verify_signature(
        WEBHOOK_SECRET.as_bytes(),
        timestamp,
        body,
        &headers["x-edge-signature"]
    ));
    assert!(!control_plane::verify_signature(b"other", timestamp, body, &headers["x-edge-signature"]));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_issues_for_verified_hostnames_only() {
    let dns = dns();
    let pebble = testkit::PebbleServer::builder().dns_server(dns.addr()).start().unwrap();
    let dir = temp_dir("ondemand");
    std::fs::write(dir.join("root.pem"), pebble.issuing_root_pem().unwrap()).unwrap();
    let mut env = base_env(&dns, &dir);
    env.extend(pebble_env(&pebble));
    env.push(("EDGE_UPSTREAM", upstream().await.to_string()));
    // No worker: issuance can only happen on demand, at the first handshake.
    env.push(("WORKER_ENABLED", "0".into()));
    let edge = Edge::start(&env, &dir.join("edge.log"));
    let provider = support::customer_dns(&dns, "customer.test");
    let (_, ok) = edge.api("POST", "/v1/connections", Some(json!({"hostname": "ok.customer.test"})));
    let (_, unverified) =
        edge.api("POST", "/v1/connections", Some(json!({"hostname": "unverified.customer.test"})));
    create_records(&provider, &ok, None, |_| false).await;
    // Routing only: the ownership record is missing, so it stays unverified.
    provider.create(&DnsRecord::cname("unverified.customer.test", "edge.edge.test")).await.unwrap();
    let (_, v) = edge.api("POST", &format!("/v1/connections/{}/verify", ok["id"].as_str().unwrap()), None);
    assert_eq!(v["state"], "verified", "{v}");
    let (_, u) =
        edge.api("POST", &format!("/v1/connections/{}/verify", unverified["id"].as_str().unwrap()), None);
    assert_eq!(u["state"], "pending_ownership", "{u}");

    let port = pebble.tls_port().to_string();
    let curl = |host: &str| {
        Command::new("curl")
            .args(["-s", "--max-time", "60", "--resolve", &format!("{host}:{port}:127.0.0.1"), "--cacert"])
            .arg(dir.join("root.pem"))
            .arg(format!("https://{host}:{port}/"))
            .output()
            .unwrap()
    };
    assert_eq!(String::from_utf8_lossy(&curl("ok.customer.test").stdout), "hello from upstream\n");
    let refused = curl("unverified.customer.test");
    assert!(!refused.status.success());
    assert!(!dir.join("store/tls/certs/unverified.customer.test").exists());
    assert!(dir.join("store/tls/certs/ok.customer.test").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widget_tokens_grant_one_connection_and_its_widget_routes() {
    let mut dns = dns();
    let dir = temp_dir("widget");
    let mut env = base_env(&dns, &dir);
    let port = || format!("127.0.0.1:{}", testkit::free_port().unwrap());
    env.push(("EDGE_HTTPS_ADDR", port()));
    env.push(("EDGE_HTTP_ADDR", port()));
    let edge = Edge::start(&env, &dir.join("edge.log"));
    let (_, a) = edge.api("POST", "/v1/connections", Some(json!({"hostname": "a.customer.test"})));
    let (_, b) = edge.api("POST", "/v1/connections", Some(json!({"hostname": "b.customer.test"})));
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let (status, token) = edge.api("POST", &format!("/v1/connections/{a}/widget-token"), None);
    assert_eq!(status, 200);
    let token = token["token"].as_str().unwrap();
    assert_eq!(edge.call("GET", &format!("/v1/connections/{a}/records:check"), None, token).0, 200);
    assert_eq!(edge.call("POST", &format!("/v1/connections/{a}/verify"), None, token).0, 200);
    // Another connection, another route, a tampered token: 401.
    assert_eq!(edge.call("GET", &format!("/v1/connections/{b}/records:check"), None, token).0, 401);
    // The connection itself is readable (the widget shows its SANs; verify answers it too), not deletable.
    assert_eq!(edge.call("GET", &format!("/v1/connections/{a}"), None, token).0, 200);
    assert_eq!(edge.call("GET", &format!("/v1/connections/{b}"), None, token).0, 401);
    assert_eq!(edge.call("DELETE", &format!("/v1/connections/{a}"), None, token).0, 401);
    let mut tampered = token.to_owned();
    tampered.replace_range(0..1, if token.starts_with('0') { "1" } else { "0" });
    assert_eq!(edge.call("GET", &format!("/v1/connections/{a}/records:check"), None, &tampered).0, 401);
    // Every /v1 route refuses a missing or wrong key.
    for (method, path) in [
        ("GET", "/v1/connections".to_owned()),
        ("POST", "/v1/connections".to_owned()),
        ("GET", format!("/v1/connections/{a}")),
        ("DELETE", format!("/v1/connections/{a}")),
        ("GET", format!("/v1/connections/{a}/activity")),
        ("POST", format!("/v1/connections/{a}/certificate")),
        ("POST", format!("/v1/connections/{a}/widget-token")),
    ] {
        let (status, err) = edge.call(method, &path, None, "wrong-key");
        assert_eq!((status, err["code"].as_str()), (401, Some("Unauthorized")), "{method} {path}");
    }
    // The OpenAPI document is served and names the routes.
    let out =
        Command::new("curl").args(["-s", &format!("http://{}/v1/openapi.json", edge.api)]).output().unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["paths"]["/v1/connections/{id}/records:check"].is_object(), "{doc}");
    // Ids that cannot be ours (control characters, slashes, dots): 404, never a 500.
    for bad in ["%06", "..", "a%2Fb", "%C3%BFR", "zz"] {
        for (method, path) in [("GET", ""), ("DELETE", ""), ("POST", "/verify"), ("POST", "/certificate")] {
            let (status, err) = edge.api(method, &format!("/v1/connections/{bad}{path}"), None);
            assert!([404, 415].contains(&status), "{method} {bad}{path}: {status} {err}");
        }
    }
    // Oversized and malformed bodies: a 4xx with a JSON error, nothing created.
    let huge = json!({"hostname": "x".repeat(100 * 1024)});
    let (status, err) = edge.api("POST", "/v1/connections", Some(huge));
    assert_eq!((status, err["code"].as_str()), (413, Some("InvalidRequest")), "{err}");
    let (status, err) = edge.api("POST", "/v1/connections", Some(json!("not an object")));
    assert_eq!((status, err["code"].as_str()), (422, Some("InvalidRequest")), "{err}");
    assert_eq!(edge.api("GET", "/v1/connections", None).1["total"], 2);
    // Archive releases the hostname: it can be claimed again.
    assert_eq!(edge.api("DELETE", &format!("/v1/connections/{a}"), None).1["state"], "archived");
    // The customer's zone answers SERVFAIL: a temporary failure, never "missing".
    let (_, s) = edge.api("POST", "/v1/connections", Some(json!({"hostname": "shop.broken.test"})));
    let (_, still) = edge.api("POST", &format!("/v1/connections/{}/verify", s["id"].as_str().unwrap()), None);
    assert_eq!(still["state"], "pending_ownership");
    assert_eq!(still["last_error"]["code"], "dns_fetch_error", "{still}");
    // The DNS server goes away: the same.
    dns.stop();
    let (_, still) = edge.api("POST", &format!("/v1/connections/{b}/verify"), None);
    assert_eq!(still["state"], "pending_ownership");
    assert_eq!(still["last_error"]["code"], "dns_fetch_error", "{still}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_edges_sharing_postgres_hand_out_one_active_claim() {
    let dns = dns();
    let pg = testkit::PostgresServer::start().unwrap();
    let dir = temp_dir("fleet");
    let edges: Vec<Arc<Edge>> = (0..2)
        .map(|i| {
            let mut env = base_env(&dns, &dir);
            env.retain(|(k, _)| *k != "EDGE_STORE");
            env.push(("EDGE_STORE", pg.url()));
            env.push(("EDGE_QUOTAS", "free=1000".into()));
            env.push(("WORKER_ENABLED", "0".into()));
            let port = || format!("127.0.0.1:{}", testkit::free_port().unwrap());
            env.push(("EDGE_HTTPS_ADDR", port()));
            env.push(("EDGE_HTTP_ADDR", port()));
            Arc::new(Edge::start(&env, &dir.join(format!("edge{i}.log"))))
        })
        .collect();
    // 50 creates of one hostname, racing on both edges.
    let creates: Vec<_> = (0..50)
        .map(|i| {
            let edge = Arc::clone(&edges[i % 2]);
            tokio::task::spawn_blocking(move || {
                edge.api("POST", "/v1/connections", Some(json!({"hostname": "race.customer.test"})))
            })
        })
        .collect();
    let mut connections = Vec::new();
    for c in creates {
        let (status, c) = c.await.unwrap();
        assert_eq!(status, 201, "{c}");
        connections.push(c);
    }
    // Every token is published (as if 50 tenants each proved ownership).
    let provider = support::customer_dns(&dns, "customer.test");
    provider.create(&DnsRecord::cname("race.customer.test", "edge.edge.test")).await.unwrap();
    for c in &connections {
        let token = c["ownership_token"].as_str().unwrap();
        provider.create(&DnsRecord::txt("_customdomain-challenge.race.customer.test", token)).await.unwrap();
    }
    let verifies: Vec<_> = connections
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let edge = Arc::clone(&edges[(i + 1) % 2]);
            let id = c["id"].as_str().unwrap().to_owned();
            tokio::task::spawn_blocking(move || {
                edge.api("POST", &format!("/v1/connections/{id}/verify"), None)
            })
        })
        .collect();
    let mut verified = 0;
    for v in verifies {
        let (status, c) = v.await.unwrap();
        assert_eq!(status, 200, "{c}");
        if c["state"] == "verified" {
            verified += 1;
        } else {
            assert_eq!(c["last_error"]["code"], "hostname_conflict", "{c}");
        }
    }
    assert_eq!(verified, 1, "exactly one active claim");
    let (_, page) = edges[1].api("GET", "/v1/connections?per_page=100", None);
    let active = page["items"].as_array().unwrap().iter().filter(|c| c["state"] == "verified").count();
    assert_eq!(active, 1);
    let (status, _) =
        edges[0].api("POST", "/v1/connections", Some(json!({"hostname": "race.customer.test"})));
    assert_eq!(status, 409);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_issuance_then_restart_ends_live_with_no_lost_webhook() {
    let mut dns = dns();
    let pebble = testkit::PebbleServer::builder().dns_server(dns.addr()).start().unwrap();
    let dir = temp_dir("kill");
    let (hook_url, deliveries) = webhook_receiver().await;
    let mut env = base_env(&dns, &dir);
    env.extend(pebble_env(&pebble));
    env.push(("EDGE_WEBHOOK_URLS", hook_url));
    env.push(("EDGE_WEBHOOK_SECRET", WEBHOOK_SECRET.into()));
    env.push(("EDGE_UPSTREAM", upstream().await.to_string()));
    let mut edge = Edge::start(&env, &dir.join("edge.log"));
    let (_, c) = edge.api("POST", "/v1/connections", Some(json!({"hostname": "crash.customer.test"})));
    let id = c["id"].as_str().unwrap().to_owned();
    create_records(&support::customer_dns(&dns, "customer.test"), &c, None, |_| false).await;
    let (_, v) = edge.api("POST", &format!("/v1/connections/{id}/verify"), None);
    assert_eq!(v["state"], "verified", "{v}");
    // The worker picks it up within a tick and orders from pebble: kill it mid-way.
    tokio::time::sleep(Duration::from_millis(400)).await;
    edge.kill_and_restart();
    let live = edge.wait_state(&id, "live").await;
    for kind in ["domain.verified", "domain.live"] {
        wait_event(&deliveries, kind).await;
    }
    // One certificate: the one the connection names is the one served.
    let (_, again) = edge.api("GET", &format!("/v1/connections/{id}"), None);
    assert_eq!(again["certificate"]["serial"], live["certificate"]["serial"]);
    let certs: Vec<_> = std::fs::read_dir(dir.join("store/tls/certs")).unwrap().collect();
    assert_eq!(certs.len(), 1, "{certs:?}");
    let accounts: Vec<_> = std::fs::read_dir(dir.join("store/tls/accounts")).unwrap().collect();
    assert_eq!(accounts.len(), 1, "no second ACME account: {accounts:?}");
    // DNS unreachable while live: still live, the failure is temporary.
    dns.stop();
    let (_, still) = edge.api("POST", &format!("/v1/connections/{id}/verify"), None);
    assert_eq!(still["state"], "live", "{still}");
    assert_eq!(still["last_error"]["code"], "dns_fetch_error", "{still}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_managed_certificate_is_validated_served_and_never_renewed() {
    use acme_core::{CertRequest, Issuer, LocalCaIssuer};
    let dns = dns();
    let dir = temp_dir("selfmanaged");
    let mut env = base_env(&dns, &dir);
    let tls_port = testkit::free_port().unwrap();
    env.push(("EDGE_HTTPS_ADDR", format!("127.0.0.1:{tls_port}")));
    env.push(("EDGE_HTTP_ADDR", format!("127.0.0.1:{}", testkit::free_port().unwrap())));
    env.push(("EDGE_UPSTREAM", upstream().await.to_string()));
    let edge = Edge::start(&env, &dir.join("edge.log"));
    let (_, c) = edge.api("POST", "/v1/connections", Some(json!({"hostname": "own.customer.test"})));
    let id = c["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/connections/{id}/certificate");

    // The customer's own CA (not the edge's).
    let theirs =
        LocalCaIssuer::new(Arc::new(cert_store::CertStore::new(Arc::new(cert_store::MemoryStorage::new()))));
    let good = theirs.issue(&CertRequest::new(["own.customer.test"])).await.unwrap();
    let other = theirs.issue(&CertRequest::new(["other.customer.test"])).await.unwrap();
    let upload = |chain: &str, key: &str| json!({"certificate_pem": chain, "private_key_pem": key});
    for (body, why) in [
        (upload(good.chain_pem(), other.key_pem()), "key of another certificate"),
        (upload(other.chain_pem(), other.key_pem()), "does not cover the hostname"),
        (
            upload("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", good.key_pem()),
            "malformed",
        ),
    ] {
        let (status, err) = edge.api("POST", &path, Some(body));
        assert_eq!((status, err["code"].as_str()), (400, Some("InvalidCertificate")), "{why}: {err}");
    }
    let (status, err) = edge.api("POST", &path, Some(json!({"certificate_pem": 1})));
    assert_eq!((status, err["code"].as_str()), (422, Some("InvalidRequest")), "{err}");
    let (status, uploaded) = edge.api("POST", &path, Some(upload(good.chain_pem(), good.key_pem())));
    assert_eq!(status, 200, "{uploaded}");
    assert_eq!(uploaded["certificate"]["source"], "self_managed");

    create_records(&support::customer_dns(&dns, "customer.test"), &c, None, |_| false).await;
    edge.api("POST", &format!("/v1/connections/{id}/verify"), None);
    let live = edge.wait_state(&id, "live").await;
    assert_eq!(
        live["certificate"]["serial"],
        good.meta().serial.as_str(),
        "served as uploaded, not reissued"
    );
    std::fs::write(dir.join("theirs.pem"), theirs.root_pem().await.unwrap()).unwrap();
    let out = Command::new("curl")
        .args(["-s", "--resolve", &format!("own.customer.test:{tls_port}:127.0.0.1"), "--cacert"])
        .arg(dir.join("theirs.pem"))
        .arg(format!("https://own.customer.test:{tls_port}/"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from upstream\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns01_through_the_customers_cname_delegation() {
    let dns = testkit::DnsServer::builder()
        .zone(testkit::Zone::new("customer.test", "placeholder A 192.0.2.1\n"))
        .zone(testkit::Zone::new("edge.test", "edge A 127.0.0.1\n"))
        .zone(testkit::Zone::new("acme.edge.test", "placeholder A 192.0.2.1\n"))
        .recursion(true)
        .start()
        .unwrap();
    let pebble = testkit::PebbleServer::builder().dns_server(dns.addr()).start().unwrap();
    let dir = temp_dir("dns01");
    std::fs::write(dir.join("root.pem"), pebble.issuing_root_pem().unwrap()).unwrap();
    let mut env = base_env(&dns, &dir);
    let tls_port = testkit::free_port().unwrap();
    env.extend([
        ("EDGE_ISSUER", pebble.directory_url()),
        ("EDGE_CA_ROOT", pebble.tls_root_path().display().to_string()),
        // Not pebble's validation ports: HTTP-01 and TLS-ALPN-01 could not succeed.
        ("EDGE_HTTPS_ADDR", format!("127.0.0.1:{tls_port}")),
        ("EDGE_HTTP_ADDR", format!("127.0.0.1:{}", testkit::free_port().unwrap())),
        ("EDGE_CHALLENGE", "dns-01".into()),
        ("EDGE_RFC2136_SERVER", dns.addr().to_string()),
        ("EDGE_TSIG_KEY_NAME", testkit::TSIG_KEY_NAME.into()),
        ("EDGE_TSIG_SECRET", dns.tsig_secret_base64().into()),
        ("EDGE_UPSTREAM", upstream().await.to_string()),
    ]);
    let edge = Edge::start(&env, &dir.join("edge.log"));
    let (_, c) = edge.api("POST", "/v1/connections", Some(json!({"hostname": "dns.customer.test"})));
    let id = c["id"].as_str().unwrap().to_owned();
    let delegation =
        c["records"].as_array().unwrap().iter().find(|r| r["purpose"] == "acme_delegation").unwrap();
    assert_eq!(delegation["required"], true, "DNS-01 needs the delegation");
    create_records(&support::customer_dns(&dns, "customer.test"), &c, None, |_| false).await;
    let (_, v) = edge.api("POST", &format!("/v1/connections/{id}/verify"), None);
    assert_eq!(v["state"], "verified", "{v}");
    let live = edge.wait_state(&id, "live").await;
    assert_eq!(live["certificate"]["source"], "acme");
    let out = Command::new("curl")
        .args(["-s", "--resolve", &format!("dns.customer.test:{tls_port}:127.0.0.1"), "--cacert"])
        .arg(dir.join("root.pem"))
        .arg(format!("https://dns.customer.test:{tls_port}/"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from upstream\n");
    assert_secrets_kept(&dir, &[KEY, dns.tsig_secret_base64()]).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_edges_recover_from_a_postgres_restart_and_lose_no_event() {
    let dns = dns();
    let pg = testkit::PostgresServer::start().unwrap();
    let dir = temp_dir("pgrestart");
    let (hook_url, deliveries) = webhook_receiver().await;
    let edges: Vec<Edge> = (0..2)
        .map(|i| {
            let mut env = base_env(&dns, &dir);
            env.retain(|(k, _)| *k != "EDGE_STORE");
            env.push(("EDGE_STORE", pg.url()));
            env.push(("EDGE_WEBHOOK_URLS", hook_url.clone()));
            env.push(("EDGE_WEBHOOK_SECRET", WEBHOOK_SECRET.into()));
            let port = || format!("127.0.0.1:{}", testkit::free_port().unwrap());
            env.push(("EDGE_HTTPS_ADDR", port()));
            env.push(("EDGE_HTTP_ADDR", port()));
            Edge::start(&env, &dir.join(format!("edge{i}.log")))
        })
        .collect();
    let provider = support::customer_dns(&dns, "customer.test");
    let (_, before) =
        edges[0].api("POST", "/v1/connections", Some(json!({"hostname": "before.customer.test"})));
    create_records(&provider, &before, None, |_| false).await;

    pg.stop().unwrap();
    let (status, err) =
        edges[1].api("POST", "/v1/connections", Some(json!({"hostname": "during.customer.test"})));
    assert_eq!((status, err["code"].as_str()), (500, Some("Internal")), "{err}");
    pg.restart().unwrap();

    // Both edges work again; the connection made before the restart and one
    // made after it go live, each live event delivered.
    let (status, after) =
        edges[1].api("POST", "/v1/connections", Some(json!({"hostname": "after.customer.test"})));
    assert_eq!(status, 201, "{after}");
    create_records(&provider, &after, None, |_| false).await;
    for (edge, c) in [(&edges[1], &before), (&edges[0], &after)] {
        let id = c["id"].as_str().unwrap();
        let (status, v) = edge.api("POST", &format!("/v1/connections/{id}/verify"), None);
        assert_eq!(status, 200, "{v}");
        edge.wait_state(id, "live").await;
    }
    let start = Instant::now();
    loop {
        let live: Vec<String> = events_of(&deliveries, "domain.live")
            .iter()
            .map(|e| e["hostname"].as_str().unwrap().to_owned())
            .collect();
        if live.contains(&"before.customer.test".to_owned())
            && live.contains(&"after.customer.test".to_owned())
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "live events: {live:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// [`base_env`] for an edge that only serves its API: HTTPS and HTTP on
/// ports of their own, no worker, [`ADMIN_KEY`] an operator key.
fn api_only_env(dns: &testkit::DnsServer, dir: &Path) -> Vec<(&'static str, String)> {
    let mut env = base_env(dns, dir);
    let port = || format!("127.0.0.1:{}", testkit::free_port().unwrap());
    env.push(("EDGE_HTTPS_ADDR", port()));
    env.push(("EDGE_HTTP_ADDR", port()));
    env.push(("WORKER_ENABLED", "0".into()));
    env.push(("EDGE_ADMIN_KEYS", ADMIN_KEY.into()));
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_undocumented_response() {
    let dns = dns();
    let dir = temp_dir("schemathesis");
    let env = api_only_env(&dns, &dir);
    let edge = Edge::start(&env, &dir.join("edge.log"));
    // With a tenant key and with an operator key, every check but
    // "schema-valid data is accepted": the schema cannot say which strings
    // are hostnames, and refusing "0" with 400 is right.
    for key in [KEY, ADMIN_KEY] {
        let out = Command::new("st")
            .args([
                "run",
                &format!("http://{}/v1/openapi.json", edge.api),
                "-H",
                &format!("Authorization: Bearer {key}"),
            ])
            .args([
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
                "--max-examples",
                "25",
                "--seed",
                "7",
            ])
            .env("SCHEMATHESIS_TELEMETRY", "false")
            .current_dir(&dir) // its cache stays out of the repository
            .output()
            .expect("schemathesis (`st`, from PyPI: pip install schemathesis; scripts/test installs it)");
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{report}");
    }
    let log = std::fs::read_to_string(dir.join("edge.log")).unwrap();
    assert!(!log.contains("internal error"), "a 5xx was logged");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kill_9_at_random_points_lose_nothing() {
    use rand::Rng;
    let dns = dns();
    let pebble = testkit::PebbleServer::builder().dns_server(dns.addr()).start().unwrap();
    let dir = temp_dir("kill20");
    let mut env = base_env(&dns, &dir);
    env.extend(pebble_env(&pebble));
    env.push(("EDGE_QUOTAS", "free=100".into()));
    env.push(("EDGE_UPSTREAM", upstream().await.to_string()));
    let mut edge = Edge::start(&env, &dir.join("edge.log"));
    let provider = support::customer_dns(&dns, "customer.test");
    let mut ids = Vec::new();
    for i in 0..10 {
        let (_, c) =
            edge.api("POST", "/v1/connections", Some(json!({"hostname": format!("k{i}.customer.test")})));
        create_records(&provider, &c, None, |_| false).await;
        ids.push(c["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        edge.api("POST", &format!("/v1/connections/{id}/verify"), None);
    }
    // The worker issues while the edge is killed at random moments; the
    // store is whole after every kill.
    let mut rng = rand::rng();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..700))).await;
        edge.kill();
        assert_store_whole(&dir.join("store"), &[]).await;
        edge.restart();
    }
    for id in &ids {
        edge.wait_state(id, "live").await;
    }
    drop(edge);
    // Nothing torn or half-written: every stored bundle loads and is the one
    // its connection's record names; one ACME account.
    let storage = Arc::new(cert_store::FileStorage::new(dir.join("store")).unwrap());
    let store = cert_store::CertStore::new(Arc::clone(&storage));
    let repo = control_plane::Repo::new(storage);
    for id in &ids {
        let record = repo.get(id).await.unwrap().unwrap();
        let bundle = store.load(&record.hostname).await.unwrap().unwrap();
        assert_eq!(record.certificate.unwrap().serial, bundle.meta().serial, "{}", record.hostname);
    }
    store.index().await.unwrap();
    assert_eq!(std::fs::read_dir(dir.join("store/tls/accounts")).unwrap().count(), 1, "no second account");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Nothing torn or half-written in a filesystem store: every stored
/// bundle loads (chain, key, metadata agree) and `hostnames` all have one,
/// every connection record parses, the index reads, at most one account.
async fn assert_store_whole(store_dir: &Path, hostnames: &[String]) {
    let storage = Arc::new(cert_store::FileStorage::new(store_dir).unwrap());
    let store = cert_store::CertStore::new(Arc::clone(&storage));
    for entry in std::fs::read_dir(store_dir.join("tls/certs")).into_iter().flatten() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(store.load(&name).await.unwrap().is_some(), "{name}: stored bundle does not load");
    }
    for hostname in hostnames {
        assert!(store.load(hostname).await.unwrap().is_some(), "{hostname}: no loadable certificate");
    }
    control_plane::Repo::new(storage).list().await.unwrap();
    store.index().await.unwrap();
    let accounts = std::fs::read_dir(store_dir.join("tls/accounts")).map(|d| d.count()).unwrap_or(0);
    assert!(accounts <= 1, "no second account: {accounts}");
}

/// The serial of the certificate the edge serves for `hostname` (openssl).
fn served_serial(port: u16, hostname: &str) -> String {
    let script = format!(
        "openssl s_client -connect 127.0.0.1:{port} -servername {hostname} </dev/null 2>/dev/null \
         | openssl x509 -noout -serial"
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().trim_start_matches("serial=").trim_start_matches('0').to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_renewals_loses_nothing_and_serves_the_renewed_certificates() {
    use rand::Rng;
    let dns = dns();
    // Ten-second certificates are renewed at half their life: with five of
    // them and a maintenance round every second, a renewal is nearly always
    // under way when the edge is killed.
    let pebble = testkit::PebbleServer::builder()
        .dns_server(dns.addr())
        .certificate_validity(Duration::from_secs(10))
        .start()
        .unwrap();
    let dir = temp_dir("renew");
    let mut env = base_env(&dns, &dir);
    env.extend(pebble_env(&pebble));
    env.push(("EDGE_UPSTREAM", upstream().await.to_string()));
    env.push(("EDGE_MAINTENANCE_INTERVAL_SECS", "1".into()));
    let mut edge = Edge::start(&env, &dir.join("edge.log"));
    let provider = support::customer_dns(&dns, "customer.test");
    let (mut ids, mut hostnames) = (Vec::new(), Vec::new());
    for i in 0..5 {
        let hostname = format!("r{i}.customer.test");
        let (_, c) = edge.api("POST", "/v1/connections", Some(json!({ "hostname": hostname })));
        create_records(&provider, &c, None, |_| false).await;
        ids.push(c["id"].as_str().unwrap().to_owned());
        hostnames.push(hostname);
    }
    let mut first = Vec::new();
    for id in &ids {
        edge.api("POST", &format!("/v1/connections/{id}/verify"), None);
        first.push(edge.wait_state(id, "live").await["certificate"]["serial"].as_str().unwrap().to_owned());
    }

    let mut rng = rand::rng();
    let mut mid_order = 0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..1500))).await;
        edge.kill();
        let pending =
            std::fs::read_dir(dir.join("store/tls/manager/pending")).map(|d| d.count()).unwrap_or(0);
        mid_order += usize::from(pending > 0);
        assert_store_whole(&dir.join("store"), &hostnames).await;
        edge.restart();
    }
    assert!(mid_order > 0, "no kill landed during a renewal");

    // Renewals go on; what is stored, what the API shows and what is served
    // agree, and every certificate was renewed since it went live.
    let store =
        cert_store::CertStore::new(Arc::new(cert_store::FileStorage::new(dir.join("store")).unwrap()));
    let mut renewals = 0;
    for ((id, hostname), first) in ids.iter().zip(&hostnames).zip(&first) {
        let start = Instant::now();
        loop {
            let stored = store.load(hostname).await.unwrap().unwrap().meta().serial.clone();
            let (_, c) = edge.api("GET", &format!("/v1/connections/{id}"), None);
            let served = served_serial(pebble.tls_port(), hostname);
            let agree = c["state"] == "live"
                && c["certificate"]["serial"] == stored.as_str()
                && served == stored.trim_start_matches('0');
            if agree && stored != *first {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{hostname}: stored {stored}, API {c}, served {served}, first {first}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (_, log) = edge.api("GET", &format!("/v1/connections/{id}/activity"), None);
        renewals += log["items"].as_array().unwrap().iter().filter(|e| e["kind"] == "renewed").count();
    }
    drop(edge);
    assert_store_whole(&dir.join("store"), &hostnames).await;
    println!("5 certificates, 20 kills ({mid_order} during an order): {renewals} renewals recorded");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The secrets of an end-to-end run are nowhere in its debug-level log:
/// no PEM private key, no certificate key or ACME account key material from
/// the store, none of `secrets` (API key, webhook secret, TSIG secret …);
/// and every stored file is 0600 in 0700 directories.
async fn assert_secrets_kept(dir: &Path, secrets: &[&str]) {
    use std::os::unix::fs::PermissionsExt;
    let log = std::fs::read_to_string(dir.join("edge.log")).unwrap();
    assert!(log.len() > 1000, "the log was captured");
    assert!(!log.contains("PRIVATE KEY"), "a PEM private key was logged");
    for secret in secrets {
        assert!(!log.contains(secret), "a secret was logged: {}…", &secret[..4]);
    }
    let store_dir = dir.join("store");
    let store = cert_store::CertStore::new(Arc::new(cert_store::FileStorage::new(&store_dir).unwrap()));
    let mut keys = 0;
    for entry in std::fs::read_dir(store_dir.join("tls/certs")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let Some(bundle) = store.load(&name).await.unwrap() else { continue };
        for line in bundle.key_pem().lines().filter(|l| l.len() > 20) {
            assert!(!log.contains(line), "{name}: certificate key material logged");
        }
        keys += 1;
    }
    assert!(keys > 0, "the run stored a certificate");
    for account in std::fs::read_dir(store_dir.join("tls/accounts")).unwrap() {
        let credentials: Value =
            serde_json::from_slice(&std::fs::read(account.unwrap().path()).unwrap()).unwrap();
        let key = credentials["key_pkcs8"].as_str().unwrap();
        assert!(!log.contains(key) && !log.contains(&key[..32]), "ACME account key logged");
    }
    let mut stack = vec![store_dir];
    while let Some(d) = stack.pop() {
        assert_eq!(std::fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700, "{}", d.display());
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", path.display());
            }
        }
    }
}

/// The README's quick start, as a newcomer runs it: `edge --dev` from a
/// fresh store, no DNS server or CA of ours, one `POST`, and the hostname
/// goes `pending_ownership → live` on the local CA by itself (the edge
/// writes the records into its own zone and checks them there); `curl
/// --resolve` then reaches the upstream through the served certificate, and
/// `dig` against the development zone shows the records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_quick_start_reaches_live_with_no_public_dns() {
    let dir = temp_dir("dev");
    let https = SocketAddr::from(([127, 0, 0, 1], testkit::free_port().unwrap()));
    let dev_dns = SocketAddr::from(([127, 0, 0, 1], testkit::free_port().unwrap()));
    let env = vec![
        ("EDGE_DEV", "1".to_owned()),
        ("EDGE_DEV_DNS_ADDR", dev_dns.to_string()),
        ("EDGE_API_KEYS", KEY.to_owned()),
        ("EDGE_STORE", dir.join("store").display().to_string()),
        ("EDGE_HTTPS_ADDR", https.to_string()),
        ("EDGE_HTTP_ADDR", format!("127.0.0.1:{}", testkit::free_port().unwrap())),
        ("EDGE_UPSTREAM", upstream().await.to_string()),
    ];
    let edge = Edge::start(&env, &dir.join("edge.log"));

    let (status, c) = edge.api("POST", "/v1/connections", Some(json!({"hostname": "shop.customer.example"})));
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["state"], "pending_ownership");
    let id = c["id"].as_str().unwrap().to_owned();
    let live = edge.wait_state(&id, "live").await;
    assert_eq!(live["certificate"]["source"], "local_ca", "{live}");
    let (_, check) = edge.api("GET", &format!("/v1/connections/{id}/records:check"), None);
    assert_eq!(check["san_status"], "valid", "{check}");

    // The development zone answers what the connection asked for.
    let txt = c["records"].as_array().unwrap().iter().find(|r| r["type"] == "TXT").unwrap();
    let answer = dns_verify::Checker::builder()
        .authorities(dns_verify::Authorities::fixed(vec![dev_dns]))
        .build()
        .check(&[dns_verify::Expectation::OwnershipTxt {
            host: dns_verify::Hostname::parse("shop.customer.example").unwrap(),
            token: txt["value"].as_str().unwrap().to_owned(),
        }])
        .await;
    assert_eq!(answer[0].status, dns_verify::RecordStatus::Valid, "{answer:?}");

    // What the README tells the newcomer to run next.
    let out = Command::new("curl")
        .args(["-sk", "--resolve", &format!("shop.customer.example:{}:127.0.0.1", https.port())])
        .arg(format!("https://shop.customer.example:{}/", https.port()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from upstream\n", "{out:?}");
    let serial = live["certificate"]["serial"].as_str().unwrap().trim_start_matches('0').to_ascii_lowercase();
    assert_eq!(served_serial(https.port(), "shop.customer.example"), serial);
    drop(edge);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One truth across a fleet (issue #17): two edges on one PostgreSQL, the
/// hostname served by both; a certificate uploaded on edge A is served by
/// edge B within 5 s, and after an archive on A, B refuses the name within
/// 5 s (real clients: `openssl s_client` against each edge).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_edges_serve_one_truth_upload_and_archive_reach_the_other_within_5_s() {
    use acme_core::{CertRequest, Issuer, LocalCaIssuer};
    let pg = testkit::PostgresServer::start().unwrap();
    let dir = temp_dir("onetruth");
    let upstream = upstream().await;
    let port = || testkit::free_port().unwrap();
    let (https_a, https_b) = (port(), port());
    let start = |i: usize, https: u16, dev: bool| {
        let mut env = vec![
            ("EDGE_API_KEYS", KEY.to_owned()),
            ("EDGE_STORE", pg.url()),
            ("EDGE_HTTPS_ADDR", format!("127.0.0.1:{https}")),
            ("EDGE_HTTP_ADDR", format!("127.0.0.1:{}", port())),
            ("EDGE_UPSTREAM", upstream.to_string()),
            ("EDGE_TICK_MS", "200".into()),
        ];
        if dev {
            // Edge A checks the records it writes into its own zone.
            env.push(("EDGE_DEV", "1".into()));
            env.push(("EDGE_DEV_DNS_ADDR", format!("127.0.0.1:{}", port())));
        } else {
            env.push(("WORKER_ENABLED", "0".into()));
        }
        Edge::start(&env, &dir.join(format!("edge{i}.log")))
    };
    let a = start(0, https_a, true);
    let b = start(1, https_b, false);

    let (status, c) = a.api("POST", "/v1/connections", Some(json!({"hostname": "fleet.customer.example"})));
    assert_eq!(status, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_owned();
    let live = a.wait_state(&id, "live").await;
    let issued = live["certificate"]["serial"].as_str().unwrap().trim_start_matches('0').to_ascii_lowercase();
    assert_eq!(served_serial(https_a, "fleet.customer.example"), issued);
    assert_eq!(served_serial(https_b, "fleet.customer.example"), issued, "B serves what A issued");

    // The customer uploads their own certificate on A: B serves it within 5 s.
    let theirs =
        LocalCaIssuer::new(Arc::new(cert_store::CertStore::new(Arc::new(cert_store::MemoryStorage::new()))));
    let own = theirs.issue(&CertRequest::new(["fleet.customer.example"])).await.unwrap();
    let upload = json!({"certificate_pem": own.chain_pem(), "private_key_pem": own.key_pem()});
    let (status, uploaded) = a.api("POST", &format!("/v1/connections/{id}/certificate"), Some(upload));
    assert_eq!(status, 200, "{uploaded}");
    let new_serial = own.meta().serial.trim_start_matches('0').to_ascii_lowercase();
    let clock = Instant::now();
    while served_serial(https_b, "fleet.customer.example") != new_serial {
        assert!(clock.elapsed() < Duration::from_secs(5), "B still serves the old certificate after 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("upload on A served by B after {:?}", clock.elapsed());

    // Archived on A: refused by A at once and by B within 5 s.
    let (status, archived) = a.api("DELETE", &format!("/v1/connections/{id}"), None);
    assert_eq!((status, archived["state"].as_str()), (200, Some("archived")), "{archived}");
    assert_eq!(served_serial(https_a, "fleet.customer.example"), "", "A refuses the archived name");
    let clock = Instant::now();
    while !served_serial(https_b, "fleet.customer.example").is_empty() {
        assert!(clock.elapsed() < Duration::from_secs(5), "B still serves an archived name after 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("archive on A refused by B after {:?}", clock.elapsed());
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A control plane and a webhook receiver served over HTTPS by a private CA
/// (what a platform runs internally): `/internal/ask` answers
/// `{"allow": true}` only for names starting with `yes.`, every other path
/// records a webhook delivery. Returns the base URL, the CA's PEM, the
/// deliveries and the names asked about.
async fn https_control_plane() -> (String, String, Deliveries, Arc<Mutex<Vec<String>>>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "platform internal CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls_pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
            )
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let deliveries: Deliveries = Arc::default();
    let asked: Arc<Mutex<Vec<String>>> = Arc::default();
    let (record, asks) = (Arc::clone(&deliveries), Arc::clone(&asked));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let (acceptor, record, asks) = (acceptor.clone(), Arc::clone(&record), Arc::clone(&asks));
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else { return };
                let Some(request) = read_request(&mut s).await else { return };
                let answer = if let Some(query) = request.target.strip_prefix("/internal/ask?domain=") {
                    let name = query.split('&').next().unwrap_or_default().to_owned();
                    let allow = name.starts_with("yes.");
                    asks.lock().unwrap().push(name);
                    format!("{{\"allow\": {allow}}}")
                } else {
                    record.lock().unwrap().push((request.headers, request.body));
                    String::new()
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = s.write_all(response.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (format!("https://localhost:{port}"), ca_cert.pem(), deliveries, asked)
}

/// The control plane's answer is honoured and HTTPS peers work (issue #17):
/// with `CONTROLPLANE_URL` an `https://` endpoint of a private CA (trusted
/// through `EDGE_EXTRA_ROOT`), a name it allows is issued at its first
/// handshake, a name it answers `200 {"allow": false}` for is refused with
/// nothing stored; webhooks to an `https://` receiver arrive signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_control_plane_is_asked_and_its_no_is_honoured_and_https_webhooks_arrive() {
    let dir = temp_dir("https-peers");
    let (base, ca_pem, deliveries, asked) = https_control_plane().await;
    std::fs::write(dir.join("ca.pem"), &ca_pem).unwrap();
    let https = testkit::free_port().unwrap();
    let env = vec![
        ("EDGE_DEV", "1".to_owned()),
        ("EDGE_DEV_DNS_ADDR", format!("127.0.0.1:{}", testkit::free_port().unwrap())),
        ("EDGE_API_KEYS", KEY.to_owned()),
        ("EDGE_STORE", dir.join("store").display().to_string()),
        ("EDGE_HTTPS_ADDR", format!("127.0.0.1:{https}")),
        ("EDGE_HTTP_ADDR", format!("127.0.0.1:{}", testkit::free_port().unwrap())),
        ("EDGE_UPSTREAM", upstream().await.to_string()),
        ("CONTROLPLANE_URL", base.clone()),
        ("EDGE_EXTRA_ROOT", dir.join("ca.pem").display().to_string()),
        ("EDGE_WEBHOOK_URLS", format!("{base}/hooks")),
        ("EDGE_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
        ("EDGE_TICK_MS", "200".into()),
    ];
    let edge = Edge::start(&env, &dir.join("edge.log"));

    // "No": refused at the handshake, nothing issued or stored.
    assert_eq!(served_serial(https, "no.customer.example"), "", "a refused name is not served");
    assert!(asked.lock().unwrap().iter().any(|n| n == "no.customer.example"), "the control plane was asked");
    assert!(!dir.join("store/tls/certs/no.customer.example").exists(), "nothing stored for a refused name");
    // "Yes": issued while the handshake waits.
    assert!(!served_serial(https, "yes.customer.example").is_empty(), "an allowed name is served at once");
    assert!(dir.join("store/tls/certs/yes.customer.example").exists());

    // Webhooks over HTTPS, signed.
    let (status, c) =
        edge.api("POST", "/v1/connections", Some(json!({"hostname": "hooks.customer.example"})));
    assert_eq!(status, 201, "{c}");
    edge.wait_state(c["id"].as_str().unwrap(), "live").await;
    let live = wait_event(&deliveries, "domain.live").await;
    assert_eq!(live["hostname"], "hooks.customer.example");
    let (headers, body) =
        deliveries.lock().unwrap().iter().find(|(h, _)| h["x-edge-event"] == "domain.live").cloned().unwrap();
    let timestamp: i64 = headers["x-edge-timestamp"].parse().unwrap();
    assert!(control_plane::verify_signature(
        WEBHOOK_SECRET.as_bytes(),
        timestamp,
        &body,
        &headers["x-edge-signature"]
    ));
    drop(edge);
    let _ = std::fs::remove_dir_all(&dir);
}

const ADMIN_KEY: &str = "test-admin-key-9876543210";

/// Tenants through the real binary: operator keys manage tenants and keys;
/// a tenant key sees and changes only its own connections (another's id is
/// 404, as a missing one); 409 says whose claim it is only to its owner; the
/// quota counts connections created this period, archived or not, and a new
/// period (the edge restarted with its clock moved) frees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_see_only_their_own_and_quotas_count_per_period() {
    let dns = dns();
    let dir = temp_dir("tenants");
    let mut env = api_only_env(&dns, &dir);
    env.push(("EDGE_QUOTAS", "free=2,pro=10".into()));
    let mut edge = Edge::start(&env, &dir.join("edge.log"));

    // Operators make tenants and their keys; nobody else may.
    let (status, alpha) = edge.call("POST", "/v1/tenants", Some(json!({"name": "Alpha"})), ADMIN_KEY);
    assert_eq!((status, alpha["plan"].as_str()), (201, Some("free")), "{alpha}");
    let (status, beta) =
        edge.call("POST", "/v1/tenants", Some(json!({"name": "Beta", "plan": "pro"})), ADMIN_KEY);
    assert_eq!(status, 201, "{beta}");
    let (alpha_id, beta_id) = (alpha["id"].as_str().unwrap(), beta["id"].as_str().unwrap());
    let key_of = |tenant: &str| {
        let (status, key) = edge.call("POST", &format!("/v1/tenants/{tenant}/keys"), None, ADMIN_KEY);
        assert_eq!(status, 201, "{key}");
        (key["key_id"].as_str().unwrap().to_owned(), key["secret"].as_str().unwrap().to_owned())
    };
    let ((alpha_key_id, ka), (_, kb)) = (key_of(alpha_id), key_of(beta_id));
    assert_eq!(edge.call("GET", "/v1/tenants", None, &ka).0, 401, "a tenant key is no operator key");
    assert_eq!(edge.call("GET", "/v1/tenants", None, KEY).0, 401);
    assert_eq!(edge.call("GET", "/v1/connections", None, ADMIN_KEY).0, 401, "operators see no connection");
    let (status, listed) = edge.call("GET", "/v1/tenants", None, ADMIN_KEY);
    assert_eq!((status, listed.as_array().map(Vec::len)), (200, Some(2)), "{listed}");
    let (status, patched) =
        edge.call("PATCH", &format!("/v1/tenants/{beta_id}"), Some(json!({"plan": "gold"})), ADMIN_KEY);
    assert_eq!((status, patched["code"].as_str()), (400, Some("InvalidRequest")), "{patched}");
    let stored = std::fs::read_to_string(dir.join("store/edge/api-keys").join(&alpha_key_id)).unwrap();
    assert!(!stored.contains(ka.rsplit('_').next().unwrap()), "the key's secret is not stored");

    // Each tenant's connections are its own.
    let create = |key: &str, hostname: &str| {
        edge.call("POST", "/v1/connections", Some(json!({"hostname": hostname})), key)
    };
    let (status, ca) = create(&ka, "a1.customer.test");
    assert_eq!((status, ca["tenant"].as_str()), (201, Some(alpha_id)), "{ca}");
    let (status, cb) = create(&kb, "b1.customer.test");
    assert_eq!(status, 201, "{cb}");
    let (a, b) = (ca["id"].as_str().unwrap().to_owned(), cb["id"].as_str().unwrap().to_owned());
    let upload = json!({"certificate_pem": "x", "private_key_pem": "y"});
    for (method, path, body) in [
        ("GET", format!("/v1/connections/{a}"), None),
        ("POST", format!("/v1/connections/{a}/verify"), None),
        ("GET", format!("/v1/connections/{a}/records:check"), None),
        ("GET", format!("/v1/connections/{a}/activity"), None),
        ("POST", format!("/v1/connections/{a}/certificate"), Some(upload.clone())),
        ("DELETE", format!("/v1/connections/{a}"), None),
        ("POST", format!("/v1/connections/{a}/widget-token"), None),
    ] {
        let (status, err) = edge.call(method, &path, body, &kb);
        assert_eq!((status, err["code"].as_str()), (404, Some("NotFound")), "{method} {path}: {err}");
    }
    let (_, page) = edge.call("GET", "/v1/connections", None, &kb);
    assert_eq!(
        (page["total"].as_u64(), page["items"][0]["id"].as_str()),
        (Some(1), Some(b.as_str())),
        "{page}"
    );
    let (_, log) = edge.call("GET", "/v1/activity", None, &kb);
    assert!(log["items"].as_array().unwrap().iter().all(|e| e["connection"] != a.as_str()), "{log}");
    let (_, log) = edge.call("GET", "/v1/activity?kind=created", None, &ka);
    assert_eq!(log["items"].as_array().unwrap().len(), 1, "{log}");
    assert_eq!(log["items"][0]["connection"], a.as_str());
    // A widget token opens its own connection only.
    let (_, token) = edge.call("POST", &format!("/v1/connections/{a}/widget-token"), None, &ka);
    let token = token["token"].as_str().unwrap();
    assert_eq!(edge.call("GET", &format!("/v1/connections/{a}"), None, token).0, 200);
    assert_eq!(edge.call("GET", &format!("/v1/connections/{b}"), None, token).0, 401);
    assert_eq!(edge.call("GET", "/v1/connections", None, token).0, 401);

    // Verified (the records in BIND, one check), Alpha holds the claim.
    create_records(&support::customer_dns(&dns, "customer.test"), &ca, None, |_| false).await;
    let (status, verified) = edge.call("POST", &format!("/v1/connections/{a}/verify"), None, &ka);
    assert_eq!((status, verified["state"].as_str()), (200, Some("verified")), "{verified}");
    let (status, err) = create(&ka, "a1.customer.test");
    assert_eq!(
        (status, err["held_by"].as_str(), err["connection_id"].as_str()),
        (409, Some("same_tenant"), Some(a.as_str())),
        "{err}"
    );
    let (status, err) = create(&kb, "a1.customer.test");
    assert_eq!((status, err["held_by"].as_str()), (409, Some("other_tenant")), "{err}");
    assert!(err.get("connection_id").is_none() && !err.to_string().contains(&a), "nothing of Alpha's: {err}");

    // Quota: created this period counts, archived or not.
    let (status, a2) = create(&ka, "a2.customer.test");
    assert_eq!(status, 201, "{a2}");
    let (status, _) =
        edge.call("DELETE", &format!("/v1/connections/{}", a2["id"].as_str().unwrap()), None, &ka);
    assert_eq!(status, 200);
    let (status, err) = create(&ka, "a3.customer.test");
    assert_eq!(status, 402, "{err}");
    assert_eq!(
        (err["code"].as_str(), err["limit"].as_u64(), err["used"].as_u64()),
        (Some("QuotaExceeded"), Some(2), Some(2))
    );
    assert_eq!(err["plan"], "free");
    assert!(err["upgrade_url"].is_string());
    let period_end = time::OffsetDateTime::parse(
        err["period_end"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let (_, usage) = edge.call("GET", "/v1/quota", None, &ka);
    assert_eq!((usage["used"].as_u64(), usage["limit"].as_u64()), (Some(2), Some(2)), "{usage}");

    // A revoked key is refused; the log says who made and revoked keys.
    let (status, _) =
        edge.call("DELETE", &format!("/v1/tenants/{alpha_id}/keys/{alpha_key_id}"), None, ADMIN_KEY);
    assert_eq!(status, 204);
    assert_eq!(edge.call("GET", "/v1/connections", None, &ka).0, 401, "revoked");
    let (_, ka2) = key_of(alpha_id);
    let (_, log) = edge.call("GET", "/v1/activity", None, &ka2);
    let kinds: Vec<&str> =
        log["items"].as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
    for kind in ["created", "verified", "archived", "key_created", "key_revoked"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }

    // The next period (the clock moved past its end): a slot again.
    let offset = (period_end - time::OffsetDateTime::now_utc()).whole_seconds() + 60;
    edge.kill();
    edge.push_env("EDGE_CLOCK_OFFSET_SECS", offset.to_string());
    edge.restart();
    let (status, c) =
        edge.call("POST", "/v1/connections", Some(json!({"hostname": "a3.customer.test"})), &ka2);
    assert_eq!(status, 201, "{c}");
    let _ = std::fs::remove_dir_all(&dir);
}
