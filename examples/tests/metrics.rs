//! The `edge` binary's metrics and health listener, end to end with real
//! peers on loopback: BIND (the customer's zone, changed through RFC 2136),
//! pebble (the CA), curl (the client), a webhook receiver, Debian's
//! `promtool` (checks the text) and the `prometheus-parse` crate (reads it).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use dns_verify::{DnsProvider, DnsRecord, Rfc2136Provider};
use prometheus_parse::{Scrape, Value as Sample};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "test-api-key-0123456789";

/// One `edge` process, killed when dropped.
struct Edge {
    child: Child,
    api: SocketAddr,
    metrics: SocketAddr,
    log: PathBuf,
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Edge {
    /// Starts the edge with `env`, its API and metrics on free ports; returns
    /// once the metrics listener answers.
    fn spawn(env: &[(&str, String)], log: &Path) -> Self {
        let api = SocketAddr::from(([127, 0, 0, 1], testkit::free_port().unwrap()));
        let metrics = SocketAddr::from(([127, 0, 0, 1], testkit::free_port().unwrap()));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_edge"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("EDGE_API_ADDR", api.to_string())
            .env("EDGE_METRICS_ADDR", metrics.to_string())
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        let mut edge = Self { child, api, metrics, log: log.to_owned() };
        edge.wait_for(metrics);
        edge
    }

    fn wait_for(&mut self, addr: SocketAddr) {
        let start = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "edge exited with {status}:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(start.elapsed() < Duration::from_secs(60), "edge did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

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

    fn api(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-X", method, "-H", &format!("Authorization: Bearer {KEY}")]);
        if let Some(body) = body {
            cmd.args(["-H", "content-type: application/json", "--data-binary", &body.to_string()]);
        }
        let out = cmd.arg(format!("http://{}{path}", self.api)).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    async fn wait_state(&self, id: &str, state: &str) -> Value {
        let start = Instant::now();
        loop {
            let c = self.api("GET", &format!("/v1/connections/{id}"), None);
            if c["state"] == state {
                return c;
            }
            assert!(start.elapsed() < Duration::from_secs(300), "never {state}: {c}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `/readyz`: (status, reason).
    fn readyz(&self) -> (u16, String) {
        let (status, body) = self.get(&format!("http://{}/readyz", self.metrics), None);
        let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        (status, body["reason"].as_str().unwrap_or_default().to_owned())
    }

    /// `/metrics` as text, checked by promtool, and parsed.
    fn scrape(&self) -> (String, Metrics) {
        let (status, text) = self.get(&format!("http://{}/metrics", self.metrics), None);
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

async fn upstream() -> SocketAddr {
    testkit::tcp_server(|mut s| async move {
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let body = "hello from upstream\n";
        let response =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        let _ = s.write_all(response.as_bytes()).await;
    })
    .await
}

/// A webhook receiver answering 200 to every request; counts them.
async fn webhook_receiver() -> (String, Arc<AtomicUsize>) {
    let received = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&received);
    let addr = testkit::tcp_server(move |mut s| {
        let count = Arc::clone(&count);
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut seen = 0;
            // Head and body: wait until Content-Length bytes followed the head.
            loop {
                let Ok(n @ 1..) = s.read(&mut buf[seen..]).await else { return };
                seen += n;
                let text = String::from_utf8_lossy(&buf[..seen]).to_ascii_lowercase();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length: usize = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if seen >= end + 4 + length {
                        break;
                    }
                }
            }
            count.fetch_add(1, Ordering::SeqCst);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
        }
    })
    .await;
    (format!("http://{addr}/hooks"), received)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edge-metrics-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn customer_dns(dns: &testkit::DnsServer) -> Rfc2136Provider {
    use base64::Engine;
    let secret = base64::engine::general_purpose::STANDARD.decode(dns.tsig_secret_base64()).unwrap();
    Rfc2136Provider::new(dns.addr(), "customer.test", testkit::TSIG_KEY_NAME, secret).unwrap()
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
    let dns = testkit::DnsServer::builder()
        .zone(testkit::Zone::new("customer.test", "placeholder A 192.0.2.1\n"))
        .zone(testkit::Zone::new("edge.test", "edge A 127.0.0.1\n"))
        .recursion(true)
        .start()
        .unwrap();
    let pebble = testkit::PebbleServer::builder().dns_server(dns.addr()).start().unwrap();
    let dir = temp_dir("run");
    let root = dir.join("root.pem");
    std::fs::write(&root, pebble.issuing_root_pem().unwrap()).unwrap();
    let (hooks, received) = webhook_receiver().await;
    let env = [
        ("EDGE_API_KEYS", KEY.to_owned()),
        ("EDGE_STORE", dir.join("store").display().to_string()),
        ("EDGE_DELEGATION_ZONE", "acme.edge.test".into()),
        ("EDGE_ROUTING_CNAME", "edge.edge.test".into()),
        ("EDGE_DNS_AUTHORITIES", dns.addr().to_string()),
        ("EDGE_TICK_MS", "200".into()),
        ("EDGE_DRIFT_INTERVAL_SECS", "3600".into()),
        ("EDGE_ACME_TIMEOUT_SECS", "10".into()),
        ("EDGE_ISSUER", pebble.directory_url()),
        ("EDGE_CA_ROOT", pebble.tls_root_path().display().to_string()),
        ("EDGE_HTTPS_ADDR", format!("127.0.0.1:{}", pebble.tls_port())),
        ("EDGE_HTTP_ADDR", format!("127.0.0.1:{}", pebble.http_port())),
        ("EDGE_UPSTREAM", upstream().await.to_string()),
        ("EDGE_WEBHOOK_URLS", hooks),
        ("EDGE_WEBHOOK_SECRET", "metrics-test-secret".into()),
    ];
    let mut edge = Edge::spawn(&env, &dir.join("edge.log"));
    edge.wait_for(edge.api);
    let (_, before) = edge.scrape();
    assert_eq!(before.value("acme_issuance_attempts_total", &[]), 0.0);
    assert_eq!(before.value("sni_proxy_handshakes_total", &[]), 0.0);

    // One hostname: records created, verified, issued by the worker from pebble.
    let provider = customer_dns(&dns);
    let c = edge.api("POST", "/v1/connections", Some(json!({"hostname": "shop.customer.test"})));
    let id = c["id"].as_str().unwrap().to_owned();
    for r in c["records"].as_array().unwrap() {
        let (name, value) = (r["name"].as_str().unwrap(), r["value"].as_str().unwrap());
        let record = match r["type"].as_str().unwrap() {
            "TXT" => DnsRecord::txt(name, value),
            "CNAME" => DnsRecord::cname(name, value),
            other => panic!("unexpected record type {other}"),
        };
        provider.create(&record).await.unwrap();
    }
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
    let unverified =
        edge.api("POST", "/v1/connections", Some(json!({"hostname": "unverified.customer.test"})));
    assert_eq!(unverified["state"], "pending_ownership", "{unverified}");
    provider.create(&DnsRecord::cname("unverified.customer.test", "edge.edge.test")).await.unwrap();
    assert!(!curl_https(port, "unverified.customer.test", &root));
    // The webhook for the issuance reaches its receiver.
    let start = Instant::now();
    while received.load(Ordering::SeqCst) == 0 {
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
    assert_eq!(edge.get(&format!("http://{}/healthz", edge.metrics), None).0, 200);
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
    let pid = edge.child.id().to_string();
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
    assert!(edge.child.try_wait().unwrap().is_none(), "the edge exited instead of draining");
    assert_eq!(edge.get(&format!("http://{}/healthz", edge.metrics), None).0, 200);
    drop(held);
    let start = Instant::now();
    while edge.child.try_wait().unwrap().is_none() {
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
    assert_eq!(edge.get(&format!("http://{}/healthz", edge.metrics), None).0, 200);
    drop(edge);
    let _ = std::fs::remove_dir_all(&dir);
}
