//! The `edge` binary's metrics and health listener, end to end with real
//! peers on loopback: BIND (the customer's zone, changed through RFC 2136),
//! pebble (the CA), curl (the client), a webhook receiver, Debian's
//! `promtool` (checks the text) and the `prometheus-parse` crate (reads it).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use std::{
    net::SocketAddr,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use dns_verify::{DnsProvider, DnsRecord};
use prometheus_parse::{Scrape, Value as Sample};
use serde_json::{Value, json};
use support::{
    Edge, KEY, base_env, create_records, customer_dns, dns, pebble_env, temp_dir, upstream, webhook_receiver,
};

/// What these tests ask of the edge's metrics and health listener.
impl Edge {
    /// A request with curl: (status, body).
    fn get(&self, url: &str, token: Option<&str>) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "--max-time", "10", "-w", "\n%{http_code}"]);
        if let Some(token) = token {
            cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        let out = cmd.arg(url).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.parse().unwrap_or(0), body.to_owned())
    }

    /// The metrics listener's URL for `path`.
    fn metrics_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.metrics.unwrap())
    }

    /// `/readyz`: (status, reason).
    fn readyz(&self) -> (u16, String) {
        let (status, body) = self.get(&self.metrics_url("/readyz"), None);
        let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        (status, body["reason"].as_str().unwrap_or_default().to_owned())
    }

    /// `/metrics` as text, checked by promtool, and parsed.
    fn scrape(&self) -> (String, Metrics) {
        let (status, text) = self.get(&self.metrics_url("/metrics"), None);
        assert_eq!(status, 200, "{text}");
        promtool_check(&text);
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        (text, Metrics(scrape))
    }
}

/// `promtool check metrics` (Debian's prometheus package, installed by
/// scripts/test) accepts `text`: it parses, and passes promtool's lint
/// (names, `_total` counters, base units, help texts).
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/test installs it)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One scrape, parsed.
struct Metrics(Scrape);

impl Metrics {
    /// The value of the sample `name` with `labels` (a histogram: its count);
    /// 0 when absent.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map_or(0.0, |s| match &s.value {
                Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => *v,
                Sample::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
                Sample::Summary(_) => panic!("{name} is a summary"),
            })
    }
}

/// `curl https://host/` through the edge's TLS port; returns whether it succeeded.
fn curl_https(port: u16, host: &str, root: &Path) -> bool {
    Command::new("curl")
        .args(["-s", "--max-time", "60", "--resolve", &format!("{host}:{port}:127.0.0.1"), "--cacert"])
        .arg(root)
        .arg(format!("https://{host}:{port}/"))
        .output()
        .unwrap()
        .status
        .success()
}

/// One hostname goes live through pebble, one unverified name is refused
/// on demand; `/metrics` says so, promtool accepts the text, no label names
/// a hostname; `/readyz` is 200 while serving and 503 while draining.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_an_end_to_end_run_and_readyz_is_503_while_draining() {
    let dns = dns();
    let pebble = testkit::PebbleServer::builder().dns_server(dns.addr()).start().unwrap();
    let dir = temp_dir("run");
    let root = dir.join("root.pem");
    std::fs::write(&root, pebble.issuing_root_pem().unwrap()).unwrap();
    let (hooks, received) = webhook_receiver().await;
    let mut env = base_env(&dns, &dir);
    env.extend(pebble_env(&pebble));
    env.push(("EDGE_UPSTREAM", upstream().await.to_string()));
    env.push(("EDGE_WEBHOOK_URLS", hooks));
    env.push(("EDGE_WEBHOOK_SECRET", "metrics-test-secret".into()));
    let mut edge = Edge::start(&env, &dir.join("edge.log"));
    let (_, before) = edge.scrape();
    assert_eq!(before.value("acme_issuance_attempts_total", &[]), 0.0);
    assert_eq!(before.value("sni_proxy_handshakes_total", &[]), 0.0);

    // One hostname: records created, verified, issued by the worker from pebble.
    let provider = customer_dns(&dns, "customer.test");
    let (_, c) = edge.api("POST", "/v1/connections", Some(json!({"hostname": "shop.customer.test"})));
    let id = c["id"].as_str().unwrap().to_owned();
    create_records(&provider, &c, None, |_| false).await;
    edge.api("POST", &format!("/v1/connections/{id}/verify"), None);
    let live = edge.wait_state(&id, "live").await;
    let not_after = time::OffsetDateTime::parse(
        live["certificate"]["not_after"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    // One handshake served; one for a name the control plane refuses (it has
    // a routing record but no verified ownership).
    let port = pebble.tls_port();
    assert!(curl_https(port, "shop.customer.test", &root));
    let (_, unverified) =
        edge.api("POST", "/v1/connections", Some(json!({"hostname": "unverified.customer.test"})));
    assert_eq!(unverified["state"], "pending_ownership", "{unverified}");
    provider.create(&DnsRecord::cname("unverified.customer.test", "edge.edge.test")).await.unwrap();
    assert!(!curl_https(port, "unverified.customer.test", &root));
    // The webhook for the issuance reaches its receiver.
    let start = Instant::now();
    while received.lock().unwrap().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(60), "no webhook delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (text, m) = edge.scrape();
    let issued = [("kind", "issue"), ("outcome", "success"), ("error", "none")];
    assert_eq!(m.value("acme_issuance_attempts_total", &issued), 1.0, "{text}");
    assert_eq!(m.value("sni_proxy_on_demand_decisions_total", &[("decision", "refused_policy")]), 1.0);
    assert_eq!(m.value("sni_proxy_on_demand_decisions_total", &[("decision", "allowed")]), 0.0);
    let ok = [("result", "ok"), ("route", "terminate")];
    assert_eq!(m.value("sni_proxy_handshakes_total", &ok), 1.0, "{text}");
    let refused = [("result", "refused"), ("route", "terminate")];
    assert_eq!(m.value("sni_proxy_handshakes_total", &refused), 1.0, "{text}");
    // The certificate: its expiry, to the second, and how far off it is.
    #[allow(clippy::cast_precision_loss)]
    let expected = not_after.unix_timestamp() as f64;
    assert_eq!(m.value("tls_certificate_earliest_expiry_timestamp_seconds", &[]), expected, "{text}");
    #[allow(clippy::cast_precision_loss)]
    let left = (not_after - time::OffsetDateTime::now_utc()).whole_seconds() as f64;
    assert!((m.value("tls_certificate_earliest_expiry_seconds", &[]) - left).abs() < 60.0, "{text}");
    assert_eq!(m.value("tls_certificates", &[("source", "acme"), ("state", "valid")]), 1.0, "{text}");
    assert_eq!(m.value("tls_certificates_stored", &[]), 1.0);
    // The CA's requests, by endpoint and status; no order left in flight.
    for endpoint in
        ["directory", "new_nonce", "new_account", "new_order", "authorization", "challenge", "finalize"]
    {
        assert!(
            m.value("acme_request_duration_seconds", &[("endpoint", endpoint)]) >= 1.0,
            "{endpoint}: {text}"
        );
    }
    assert!(m.value("acme_request_duration_seconds", &[("endpoint", "new_order"), ("status", "201")]) >= 1.0);
    assert_eq!(m.value("acme_orders_in_flight", &[]), 0.0);
    // DNS checks, storage, webhooks.
    let ownership = [("record", "ownership_txt"), ("status", "valid")];
    assert!(m.value("dns_verify_checks_total", &ownership) >= 1.0, "{text}");
    let puts = [("backend", "file"), ("operation", "put")];
    assert!(m.value("cert_store_operation_duration_seconds", &puts) >= 1.0, "{text}");
    assert!(m.value("control_plane_webhook_deliveries_total", &[]) >= 1.0, "{text}");
    // Bounded labels: no hostname anywhere in the text.
    assert!(!text.contains("customer.test"), "a hostname in the metrics:\n{text}");

    // Ready while serving; the connections closed.
    assert_eq!(edge.readyz(), (200, String::new()));
    assert_eq!(edge.get(&edge.metrics_url("/healthz"), None).0, 200);
    let start = Instant::now();
    while edge.scrape().1.value("sni_proxy_connections_open", &[]) != 0.0 {
        assert!(start.elapsed() < Duration::from_secs(10), "connections still counted open");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Draining: a connection is still open (it has not sent its ClientHello:
    // the drain waits for its handshake timeout), SIGTERM arrives.
    let held = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let start = Instant::now();
    while edge.scrape().1.value("sni_proxy_connections_open", &[]) != 1.0 {
        assert!(start.elapsed() < Duration::from_secs(10), "the held connection is not counted open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = edge.pid().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let start = Instant::now();
    let (status, reason) = loop {
        let (status, reason) = edge.readyz();
        if status != 200 {
            break (status, reason);
        }
        assert!(start.elapsed() < Duration::from_secs(5), "still ready after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, 503, "{reason}");
    assert!(reason.contains("draining"), "{reason}");
    assert!(!edge.exited(), "the edge exited instead of draining");
    assert_eq!(edge.get(&edge.metrics_url("/healthz"), None).0, 200);
    drop(held);
    let start = Instant::now();
    while !edge.exited() {
        assert!(start.elapsed() < Duration::from_secs(30), "the edge did not stop after draining");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `/readyz` is 503 before the listeners are bound: the metrics listener
/// starts first, and the store the edge opens next does not answer (a TCP
/// server standing in for a PostgreSQL server that accepts and says
/// nothing — what an overloaded or half-started database looks like).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_until_the_listeners_are_bound() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let store = format!("postgres://postgres@{}/edge", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let dir = temp_dir("starting");
    let https = SocketAddr::from(([127, 0, 0, 1], testkit::free_port().unwrap()));
    let env = [
        ("EDGE_API_KEYS", KEY.to_owned()),
        ("EDGE_STORE", store),
        ("EDGE_HTTPS_ADDR", https.to_string()),
        ("EDGE_HTTP_ADDR", format!("127.0.0.1:{}", testkit::free_port().unwrap())),
    ];
    let edge = Edge::spawn(&env, &dir.join("edge.log"));
    let (status, reason) = edge.readyz();
    assert_eq!(status, 503, "{reason}");
    assert!(reason.contains("not bound"), "{reason}");
    // Indeed not bound, yet up.
    assert!(std::net::TcpStream::connect(https).is_err());
    assert!(std::net::TcpStream::connect(edge.api).is_err());
    assert_eq!(edge.get(&edge.metrics_url("/healthz"), None).0, 200);
    drop(edge);
    let _ = std::fs::remove_dir_all(&dir);
}
