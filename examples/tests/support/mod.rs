//! What the `edge` binary's end-to-end tests share: one `edge` process
//! driven through its API with curl, a webhook receiver, the customer's
//! DNS writes (RFC 2136 into BIND), TLS handshakes with openssl.

#![allow(dead_code)] // each test file uses part of it

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use dns_verify::{DnsProvider, DnsRecord, Rfc2136Provider};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The API key of the default tenant in these tests.
pub const KEY: &str = "test-api-key-0123456789";

/// Webhook deliveries: (headers, body).
pub type Deliveries = Arc<Mutex<Vec<(HashMap<String, String>, Vec<u8>)>>>;

/// One `edge` process, killed when dropped.
pub struct Edge {
    child: Child,
    /// The API's address.
    pub api: SocketAddr,
    /// The metrics and health listener's address (`None` when the caller's
    /// env turned it `off`).
    pub metrics: Option<SocketAddr>,
    env: Vec<(String, String)>,
    log: PathBuf,
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Edge {
    /// Starts the binary with `env` (plus `EDGE_API_ADDR`, and
    /// `EDGE_METRICS_ADDR` on a free port unless `env` sets it, so that
    /// edges running at once do not compete for one port), its log in `log`;
    /// returns once the API answers.
    pub fn start(env: &[(&str, String)], log: &Path) -> Self {
        let mut edge = Self::spawn(env, log);
        edge.wait_ready();
        edge
    }

    /// Starts the binary as [`Edge::start`] does, but returns once the
    /// metrics listener answers (it starts first, before the store is open).
    pub fn spawn(env: &[(&str, String)], log: &Path) -> Self {
        let api = SocketAddr::from(([127, 0, 0, 1], testkit::free_port().unwrap()));
        let mut env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        env.push(("EDGE_API_ADDR".into(), api.to_string()));
        let metrics = match env.iter().find(|(k, _)| k == "EDGE_METRICS_ADDR") {
            Some((_, v)) => v.parse().ok(),
            None => {
                let metrics = SocketAddr::from(([127, 0, 0, 1], testkit::free_port().unwrap()));
                env.push(("EDGE_METRICS_ADDR".into(), metrics.to_string()));
                Some(metrics)
            }
        };
        let mut edge = Self { child: launch(&env, log), api, metrics, env, log: log.to_owned() };
        if let Some(metrics) = metrics {
            edge.wait_listening(metrics);
        }
        edge
    }

    /// Waits until the API answers.
    pub fn wait_ready(&mut self) {
        self.wait_listening(self.api);
    }

    /// Waits until `addr` accepts connections; panics with the log when the
    /// edge exits first.
    pub fn wait_listening(&mut self, addr: SocketAddr) {
        let start = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("edge exited with {status}:\n{}", self.log());
            }
            assert!(start.elapsed() < Duration::from_secs(60), "edge did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`, then the same command again.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.restart();
    }

    /// `kill -9` (the process is gone on return).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The same command again; returns once the API answers.
    pub fn restart(&mut self) {
        self.child = launch(&self.env, &self.log);
        self.wait_ready();
    }

    /// Adds `key=value` to the env of the next [`Edge::restart`].
    pub fn push_env(&mut self, key: &str, value: String) {
        self.env.push((key.to_owned(), value));
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// The edge's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A request with curl and `token`; returns (status, JSON body).
    pub fn call(&self, method: &str, path: &str, body: Option<Value>, token: &str) -> (u16, Value) {
        let mut cmd = Command::new("curl");
        let authorization = format!("Authorization: Bearer {token}");
        cmd.args(["-s", "-X", method, "-w", "\n%{http_code}", "-H", &authorization]);
        if let Some(body) = body {
            cmd.args(["-H", "content-type: application/json", "--data-binary", &body.to_string()]);
        }
        let out = cmd.arg(format!("http://{}{path}", self.api)).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.parse().unwrap(), serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// A request with curl and the API key; returns (status, JSON body).
    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, path, body, KEY)
    }

    /// Polls the connection until it is in `state`.
    pub async fn wait_state(&self, id: &str, state: &str) -> Value {
        let start = Instant::now();
        loop {
            let (_, c) = self.api("GET", &format!("/v1/connections/{id}"), None);
            if c["state"] == state {
                return c;
            }
            // Generous: an order the CA stalls on is timed out (EDGE_ACME_TIMEOUT_SECS + 60 s),
            // given up, and a new one placed after the retry backoff (about a minute).
            assert!(start.elapsed() < Duration::from_secs(300), "never {state}: {c}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The connection.
    pub fn connection(&self, id: &str) -> Value {
        let (status, c) = self.api("GET", &format!("/v1/connections/{id}"), None);
        assert_eq!(status, 200, "{c}");
        c
    }

    /// Polls the connection until `done` holds (at most `within`).
    pub async fn wait_for(
        &self,
        id: &str,
        within: Duration,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let c = self.connection(id);
            if done(&c) {
                return c;
            }
            assert!(start.elapsed() < within, "never {what}: {c:#}\n{}", tail(&self.log(), 40));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Runs the binary with `env`, debug logs appended to `log`.
fn launch(env: &[(String, String)], log: &Path) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_edge"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The customer's zone `zone` in `dns`, written through RFC 2136 with TSIG.
pub fn customer_dns(dns: &testkit::DnsServer, zone: &str) -> Rfc2136Provider {
    use base64::Engine;
    let secret = base64::engine::general_purpose::STANDARD.decode(dns.tsig_secret_base64()).unwrap();
    Rfc2136Provider::new(dns.addr(), zone, testkit::TSIG_KEY_NAME, secret).unwrap()
}

/// The record `desired` (a connection's `records` entry) as the customer
/// creates it; a routing record at `apex` becomes an A record to the edge
/// (no CNAME at a zone apex).
pub fn record_of(desired: &Value, apex: Option<&str>) -> DnsRecord {
    let (name, value) = (desired["name"].as_str().unwrap(), desired["value"].as_str().unwrap());
    if desired["purpose"] == "routing" && Some(name) == apex {
        return DnsRecord::a(name, std::net::Ipv4Addr::LOCALHOST);
    }
    match desired["type"].as_str().unwrap() {
        "TXT" => DnsRecord::txt(name, value),
        "CNAME" => DnsRecord::cname(name, value),
        "A" => DnsRecord::a(name, value.parse().unwrap()),
        other => panic!("unexpected record type {other}"),
    }
}

/// Creates the connection's records, except those `skip` says.
pub async fn create_records(
    provider: &Rfc2136Provider,
    connection: &Value,
    apex: Option<&str>,
    skip: impl Fn(&Value) -> bool,
) {
    for r in connection["records"].as_array().unwrap().iter().filter(|r| !skip(r)) {
        provider.create(&record_of(r, apex)).await.unwrap();
    }
}

/// One HTTP/1.1 request as the test servers read it.
pub struct Request {
    /// The request target (path and query).
    pub target: String,
    /// Header names lowercased.
    pub headers: HashMap<String, String>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

/// Reads one request (head, then `Content-Length` bytes of body) from `s`.
pub async fn read_request<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let Ok(n @ 1..) = s.read(&mut chunk).await else { return None };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let target = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while buf.len() < head_end + length {
        let Ok(n @ 1..) = s.read(&mut chunk).await else { return None };
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(Request { target, headers, body: buf[head_end..head_end + length].to_vec() })
}

/// An HTTP server answering 200 to every request and recording it.
pub async fn webhook_receiver() -> (String, Deliveries) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got: Deliveries = Arc::default();
    let record = Arc::clone(&got);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { continue };
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let Some(request) = read_request(&mut s).await else { return };
                record.lock().unwrap().push((request.headers, request.body));
                let _ =
                    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
            });
        }
    });
    (format!("http://{addr}/hooks"), got)
}

/// The platform's application behind the proxy.
pub async fn upstream() -> SocketAddr {
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

/// BIND serving the customer's zone `customer.test` (updatable with TSIG),
/// the platform's `edge.test` and a zone that fails to load, recursive for
/// pebble.
pub fn dns() -> testkit::DnsServer {
    testkit::DnsServer::builder()
        .zone(testkit::Zone::new("customer.test", "placeholder A 192.0.2.1\n"))
        .zone(testkit::Zone::new("edge.test", "edge A 127.0.0.1\n"))
        .zone(testkit::Zone::unloadable("broken.test"))
        .recursion(true)
        .start()
        .unwrap()
}

/// The env every edge on [`dns`] starts from: the API key, a file store in
/// `dir`, the platform's zones, a 200 ms worker tick, drift checks hourly.
pub fn base_env(dns: &testkit::DnsServer, dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("EDGE_API_KEYS", KEY.to_owned()),
        ("EDGE_STORE", dir.join("store").display().to_string()),
        ("EDGE_DELEGATION_ZONE", "acme.edge.test".into()),
        ("EDGE_ROUTING_CNAME", "edge.edge.test".into()),
        ("EDGE_DNS_AUTHORITIES", dns.addr().to_string()),
        ("EDGE_TICK_MS", "200".into()),
        ("EDGE_DRIFT_INTERVAL_SECS", "3600".into()),
    ]
}

/// The env for issuing from `pebble`: its directory and root, the edge's
/// HTTPS and HTTP ports the ones pebble validates on.
pub fn pebble_env(pebble: &testkit::PebbleServer) -> Vec<(&'static str, String)> {
    vec![
        ("EDGE_ACME_TIMEOUT_SECS", "10".into()),
        ("EDGE_ISSUER", pebble.directory_url()),
        ("EDGE_CA_ROOT", pebble.tls_root_path().display().to_string()),
        ("EDGE_HTTPS_ADDR", format!("127.0.0.1:{}", pebble.tls_port())),
        ("EDGE_HTTP_ADDR", format!("127.0.0.1:{}", pebble.http_port())),
    ]
}

/// The webhook events of `kind` received so far.
pub fn events_of(deliveries: &Deliveries, kind: &str) -> Vec<Value> {
    deliveries
        .lock()
        .unwrap()
        .iter()
        .map(|(_, body)| serde_json::from_slice::<Value>(body).unwrap())
        .filter(|e| e["type"] == kind)
        .collect()
}

/// Waits (at most 60 s) for a webhook event of `kind`; returns the latest.
pub async fn wait_event(deliveries: &Deliveries, kind: &str) -> Value {
    let start = Instant::now();
    loop {
        if let Some(e) = events_of(deliveries, kind).pop() {
            return e;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no {kind} webhook");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A directory of its own for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edge-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `openssl s_client` to `127.0.0.1:port` with SNI `name`, verifying the
/// chain against `ca_file` and the name: `Ok(subject alternative names)`
/// when it verifies, `Err(output)` when not.
pub fn s_client(port: u16, name: &str, ca_file: &Path) -> Result<String, String> {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", name])
        .args(["-verify_hostname", name, "-verify_return_error", "-showcerts", "-CAfile"])
        .arg(ca_file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if !text.contains("Verify return code: 0 (ok)") {
        return Err(text);
    }
    // The leaf's names.
    let pem_start = text.find("-----BEGIN CERTIFICATE-----").ok_or_else(|| text.clone())?;
    let pem_end = text[pem_start..].find("-----END CERTIFICATE-----").ok_or_else(|| text.clone())?;
    let pem = &text[pem_start..pem_start + pem_end + "-----END CERTIFICATE-----".len()];
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        x509.stdin.take().unwrap().write_all(pem.as_bytes()).unwrap();
    }
    let out = x509.wait_with_output().unwrap();
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
