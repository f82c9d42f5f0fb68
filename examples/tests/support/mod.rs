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

/// One `edge` process.
pub struct Edge {
    child: Child,
    /// The API's address.
    pub api: SocketAddr,
    log: PathBuf,
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Edge {
    /// Starts the binary with `env` (plus `EDGE_API_ADDR`), its log in `log`.
    pub fn start(env: &[(&str, String)], log: &Path) -> Self {
        let api = SocketAddr::from(([127, 0, 0, 1], testkit::free_port().unwrap()));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_edge"))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("EDGE_API_ADDR", api.to_string())
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        let mut edge = Self { child, api, log: log.to_owned() };
        let start = Instant::now();
        while std::net::TcpStream::connect(api).is_err() {
            if let Ok(Some(status)) = edge.child.try_wait() {
                panic!("edge exited with {status}:\n{}", std::fs::read_to_string(log).unwrap_or_default());
            }
            assert!(start.elapsed() < Duration::from_secs(60), "edge did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        edge
    }

    /// The edge's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A request with curl and the API key; returns (status, JSON body).
    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-X", method, "-w", "\n%{http_code}", "-H", &format!("Authorization: Bearer {KEY}")]);
        if let Some(body) = body {
            cmd.args(["-H", "content-type: application/json", "--data-binary", &body.to_string()]);
        }
        let out = cmd.arg(format!("http://{}{path}", self.api)).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.parse().unwrap(), serde_json::from_str(body).unwrap_or(Value::Null))
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
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let Ok(n @ 1..) = s.read(&mut chunk).await else { return };
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let headers: HashMap<String, String> = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                while buf.len() < head_end + length {
                    let Ok(n @ 1..) = s.read(&mut chunk).await else { return };
                    buf.extend_from_slice(&chunk[..n]);
                }
                record.lock().unwrap().push((headers, buf[head_end..head_end + length].to_vec()));
                let _ =
                    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
            });
        }
    });
    (format!("http://{addr}/hooks"), got)
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
