//! Our proxy vs nginx (HTTP and `stream`), Caddy and HAProxy, in one run on
//! loopback, with the same ECDSA P-256 certificates (10,000; 1,000 with
//! `--quick`), the same upstream and the same load generators.
//!
//! Rows (every one measured in this run, stamped with the commit and date):
//! - **crypto floor**: one ECDSA P-256 signature + one X25519 key generation
//!   and agreement with ring, on one core: what a full TLS 1.3 handshake
//!   cannot go below;
//! - **handshake only**: new TLS 1.3 connection (no resumption on any side),
//!   SNI cycling over every name, closed right after the handshake;
//!   handshakes/s and each server's **CPU time per handshake** (user + system
//!   of all its processes from `/proc/<pid>/stat`, before and after), also
//!   as a multiple of the crypto floor;
//! - **handshake + request**: the same plus one small HTTP request that every
//!   server forwards to the same upstream on a new upstream connection;
//! - **h2load** (nghttp2's load generator, a client we did not write): the
//!   handshake + request row again, one name (`localhost`, h2load takes SNI
//!   from the URL), `Connection: close` so each request is a new handshake;
//! - **termination throughput** vs nginx, **passthrough throughput** vs
//!   HAProxy (`option splice-auto`).
//!
//! Protocol: a warm-up per server, then rounds (5; 2 with `--quick`); in
//! each round every server is measured twice, in ABBA order (A B C D D C B A,
//! starting one server further each round), each half of its window; the
//! round's figure is over both halves. Failures are counted by reason on the
//! client side and from each server's log (kept in `$BENCH_LOG_DIR`, else a
//! temporary directory printed at the end).
//!
//! Peers, as their documentation recommends for this job (see benches/README.md):
//! nginx 2 workers, `reuseport`, one `server` block per name, tuned proxy
//! buffers; nginx `stream` terminating TLS at L4 with the certificate chosen
//! by `$ssl_server_name` (1.22's stream module has no `server_name`); Caddy
//! by JSON: `load_files`, one connection policy, one route, cache capacity 2×
//! the certificates; HAProxy 2 threads, SNI map, `option splice-auto`.
//! Session tickets and caches are off on every side (the clients never resume).
//!
//! `cargo run --release -p benches --bin proxy-vs-peers [-- --quick] [--certificates N]`
//! (needs Debian's `nginx`, `haproxy`, `caddy`, `nghttp2-client`).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command},
    sync::Arc,
    time::{Duration, Instant},
};

use acme_core::{CertRequest, Issuer, LocalCaIssuer};
use cert_store::{CertBundle, MemoryStorage, Provenance};
use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use sni_proxy::{Route, SniResolver, TlsConfig, serve_tls};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("upstream") => serve_mode(|rt| rt.block_on(upstream(port_arg(&args, 2)?))),
        Some("backend") => serve_mode(|rt| rt.block_on(backend(Path::new(&args[2]), port_arg(&args, 3)?))),
        Some("proxy") => serve_mode(|rt| {
            let ports: Vec<u16> = (3..7).map(|i| port_arg(&args, i)).collect::<Result<_, _>>()?;
            rt.block_on(proxy(Path::new(&args[2]), &ports))
        }),
        _ => {
            let mut opts = Options::new(args.iter().any(|a| a == "--quick"));
            // `--certificates N`: e.g. the quick windows at the full run's 10,000.
            if let Some(n) = args.iter().position(|a| a == "--certificates").and_then(|i| args.get(i + 1)) {
                opts.certificates = n.parse()?;
            }
            drive(&opts)
        }
    }
}

fn port_arg(args: &[String], i: usize) -> Result<u16, Error> {
    Ok(args.get(i).ok_or("missing port")?.parse()?)
}

/// Runs a server mode on a 2-thread runtime (the same as nginx's 2 workers).
fn serve_mode(f: impl FnOnce(&tokio::runtime::Runtime) -> Result<(), Error>) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    f(&rt)
}

/// What a run measures, and for how long.
struct Options {
    quick: bool,
    certificates: usize,
    rounds: usize,
    /// Per server and round, handshake only (two halves, ABBA).
    handshake_window: Duration,
    /// Per server and round, handshake + request.
    request_window: Duration,
    /// Per server and round, h2load.
    h2load_window: Duration,
    warm_up: Duration,
    /// Bytes per stream and download of the throughput rows.
    bulk: u64,
    /// Per server and round, the throughput rows (downloads repeated until it ends).
    bulk_window: Duration,
    /// Connections the load generators keep open at once.
    concurrency: usize,
}

impl Options {
    fn new(quick: bool) -> Self {
        let s = Duration::from_secs;
        if quick {
            Self {
                quick,
                certificates: 1_000,
                rounds: 2,
                handshake_window: s(4),
                request_window: s(2),
                h2load_window: s(2),
                warm_up: s(1),
                bulk: 32 << 20,
                bulk_window: s(2),
                concurrency: 32,
            }
        } else {
            Self {
                quick,
                certificates: 10_000,
                rounds: 5,
                handshake_window: s(30),
                request_window: s(30),
                h2load_window: s(30),
                warm_up: s(2),
                bulk: 256 << 20,
                bulk_window: s(30),
                concurrency: 32,
            }
        }
    }

    /// Seconds the measurement windows take (for the progress line).
    fn estimate_secs(&self, servers: usize) -> f64 {
        let per_round = (self.handshake_window + self.request_window + self.h2load_window).as_secs_f64();
        servers as f64 * (per_round * self.rounds as f64 + 2.0 * self.warm_up.as_secs_f64())
            + self.rounds as f64 * 4.0 * (self.bulk_window.as_secs_f64() + 0.5)
    }
}

// ---------------------------------------------------------------- servers

/// Answers one HTTP request: `GET /bytes/N` → N bytes, anything else → "ok".
async fn respond<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 16 * 1024 {
            return;
        }
    }
    let line = String::from_utf8_lossy(&head);
    let size: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|path| path.strip_prefix("/bytes/"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(2);
    let header = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n");
    if s.write_all(header.as_bytes()).await.is_err() {
        return;
    }
    let chunk = vec![b'x'; 64 * 1024];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len());
        if s.write_all(&chunk[..n]).await.is_err() {
            return;
        }
        left -= n;
    }
    let _ = s.shutdown().await;
}

async fn upstream(port: u16) -> Result<(), Error> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (s, _) = listener.accept().await?;
        let _ = s.set_nodelay(true);
        tokio::spawn(respond(s));
    }
}

fn load_bundle(dir: &Path, stem: &str) -> Result<CertBundle, Error> {
    let chain = std::fs::read_to_string(dir.join(format!("{stem}.pem")))?;
    let key = std::fs::read_to_string(dir.join(format!("{stem}.key")))?;
    Ok(CertBundle::from_pem(&chain, &key, Provenance::LocalCa)?)
}

/// The passthrough backend: terminates TLS with a wildcard certificate itself.
async fn backend(dir: &Path, port: u16) -> Result<(), Error> {
    let resolver = Arc::new(SniResolver::new());
    resolver.insert_bundle(&load_bundle(dir, "wildcard")?)?;
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (s, _) = listener.accept().await?;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            if let Ok(tls) = acceptor.accept(s).await {
                respond(tls).await;
            }
        });
    }
}

/// Our proxy: ports = [terminate, passthrough, upstream, backend]. Logs at
/// `info` to stderr as the edge does (the driver keeps it in a file).
/// `BENCH_OURS_TICKETS` overrides the session tickets (0 here, as every peer).
async fn proxy(dir: &Path, ports: &[u16]) -> Result<(), Error> {
    benches::log_to_stderr();
    let count = std::fs::read_to_string(dir.join("count"))?.trim().parse::<usize>()?;
    let resolver = Arc::new(SniResolver::new());
    let mut entries = Vec::with_capacity(count + 1);
    for name in names(count).into_iter().chain(["localhost".to_owned()]) {
        let bundle = load_bundle(dir, &name)?;
        entries.push((name, sni_proxy::certified_key(&bundle)?));
    }
    resolver.insert_many(entries);
    let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let mut terminate = TlsConfig::new(Arc::clone(&resolver), local(ports[2]));
    terminate.max_connections = 20_000;
    terminate.session_tickets =
        std::env::var("BENCH_OURS_TICKETS").ok().and_then(|t| t.parse().ok()).unwrap_or(0);
    let mut pass = terminate.clone();
    pass.routes = Arc::new(sni_proxy::Routes::new(Route::Terminate(local(ports[2]))));
    pass.routes.set_many(names(count).into_iter().map(|n| (n, Route::Passthrough(local(ports[3])))));
    tracing::info!(names = count + 1, tickets = terminate.session_tickets, "proxy serving");
    let pass_listener = TcpListener::bind(local(ports[1])).await?;
    tokio::spawn(serve_tls(pass_listener, pass));
    serve_tls(TcpListener::bind(local(ports[0])).await?, terminate).await;
    Ok(())
}

fn name(i: usize) -> String {
    format!("h{i}.bench.test")
}

fn names(count: usize) -> Vec<String> {
    (0..count).map(name).collect()
}

// ---------------------------------------------------------------- setup

struct Servers {
    children: Vec<Child>,
}

impl Drop for Servers {
    /// SIGTERM first (nginx's master then stops its workers), SIGKILL after 5 s.
    fn drop(&mut self) {
        for c in &self.children {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for c in &mut self.children {
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `cmd` with stdout and stderr appended to `log`; returns its pid.
fn spawn(servers: &mut Servers, cmd: &mut Command, what: &str, log: &Path) -> Result<u32, Error> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let child = cmd
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .map_err(|e| -> Error { format!("{what} (is its Debian package installed?): {e}").into() })?;
    let pid = child.id();
    servers.children.push(child);
    Ok(pid)
}

async fn wait_listening(addr: SocketAddr, what: &str) -> Result<(), Error> {
    let start = Instant::now();
    while TcpStream::connect(addr).await.is_err() {
        if start.elapsed() > Duration::from_secs(180) {
            return Err(format!("{what} did not start listening on {addr}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// `<name>.pem` / `<name>.key` for every name, `localhost` (for h2load) and
/// the passthrough backend's `wildcard`; returns the CA's root.
async fn write_certificates(dir: &Path, count: usize) -> Result<String, Error> {
    let ca = LocalCaIssuer::new(Arc::new(cert_store::CertStore::new(Arc::new(MemoryStorage::new()))));
    let stems = names(count).into_iter().chain(["localhost".to_owned(), "wildcard".to_owned()]);
    for stem in stems {
        let subject = if stem == "wildcard" { "*.bench.test".to_owned() } else { stem.clone() };
        let bundle = ca.issue(&CertRequest::new([subject])).await?;
        std::fs::write(dir.join(format!("{stem}.pem")), bundle.chain_pem())?;
        std::fs::write(dir.join(format!("{stem}.key")), bundle.key_pem())?;
    }
    std::fs::write(dir.join("count"), count.to_string())?;
    Ok(ca.root_pem().await?)
}

/// nginx's `http` proxy: 2 workers, `reuseport`, one `server` block per
/// name (nginx's way to serve many certificates, loaded once at start),
/// proxy buffers sized for the bulk rows, resumption off.
fn nginx_config(certs: &Path, logs: &Path, count: usize, port: u16, upstream: u16) -> String {
    let (d, l) = (certs.display(), logs.display());
    let mut c = format!(
        "daemon off; master_process on; worker_processes 2; user root; pid {l}/nginx-http.pid;\n\
         error_log {l}/nginx-http-error.log warn; worker_rlimit_nofile 16384;\n\
         events {{ worker_connections 8000; multi_accept on; }}\n\
         http {{\n access_log off;\n client_body_temp_path {l}/nginx-tmp/body; proxy_temp_path {l}/nginx-tmp/proxy;\n\
         fastcgi_temp_path {l}/nginx-tmp/fcgi; uwsgi_temp_path {l}/nginx-tmp/uwsgi; scgi_temp_path {l}/nginx-tmp/scgi;\n\
         server_names_hash_max_size 65536; server_names_hash_bucket_size 128;\n\
         ssl_protocols TLSv1.3; ssl_session_cache off; ssl_session_tickets off;\n\
         proxy_buffering on; proxy_buffer_size 64k; proxy_buffers 16 64k; proxy_busy_buffers_size 128k;\n\
         proxy_max_temp_file_size 0;\n\
         upstream up {{ server 127.0.0.1:{upstream}; }}\n"
    );
    for (i, n) in names(count).iter().chain(&["localhost".to_owned()]).enumerate() {
        let listen = if i == 0 { " default_server reuseport" } else { "" };
        let _ = writeln!(
            c,
            " server {{ listen 127.0.0.1:{port} ssl{listen}; server_name {n}; ssl_certificate {d}/{n}.pem; \
             ssl_certificate_key {d}/{n}.key; location / {{ proxy_pass http://up; }} }}"
        );
    }
    c.push_str("}\n");
    c
}

/// nginx's `stream` module terminating TLS at L4 and splicing to the
/// upstream, the same work as ours. nginx 1.22's stream has no
/// `server_name`: the certificate is named by `$ssl_server_name` (nginx's
/// documented way; it then reads the files at each handshake).
fn nginx_stream_config(certs: &Path, logs: &Path, port: u16, upstream: u16) -> String {
    let (d, l) = (certs.display(), logs.display());
    format!(
        "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n\
         daemon off; master_process on; worker_processes 2; user root; pid {l}/nginx-stream.pid;\n\
         error_log {l}/nginx-stream-error.log warn; worker_rlimit_nofile 16384;\n\
         events {{ worker_connections 8000; multi_accept on; }}\n\
         stream {{\n server {{ listen 127.0.0.1:{port} ssl reuseport; ssl_protocols TLSv1.3;\n\
         ssl_session_cache off; ssl_session_tickets off;\n\
         ssl_certificate {d}/$ssl_server_name.pem; ssl_certificate_key {d}/$ssl_server_name.key;\n\
         proxy_pass 127.0.0.1:{upstream}; }}\n}}\n"
    )
}

/// Caddy by JSON: every certificate through `load_files`, one connection
/// policy, one route, cache capacity twice the certificates, tickets off,
/// its log kept in a file.
fn caddy_config(certs: &Path, logs: &Path, count: usize, port: u16, upstream: u16) -> serde_json::Value {
    let files: Vec<serde_json::Value> = names(count)
        .iter()
        .chain(&["localhost".to_owned()])
        .map(|n| {
            serde_json::json!({
                "certificate": certs.join(format!("{n}.pem")),
                "key": certs.join(format!("{n}.key")),
            })
        })
        .collect();
    serde_json::json!({
        "admin": { "disabled": true },
        "logging": { "logs": { "default": {
            "level": "INFO",
            "writer": { "output": "file", "filename": logs.join("caddy.log") },
        } } },
        "storage": { "module": "file_system", "root": logs.join("caddy-data") },
        "apps": {
            "tls": {
                "certificates": { "load_files": files },
                "cache": { "capacity": 2 * (count + 1) },
                "session_tickets": { "disabled": true },
            },
            "http": {
                "http_port": port + 1,
                "https_port": port,
                "servers": { "bench": {
                    "listen": [format!("127.0.0.1:{port}")],
                    "automatic_https": { "disable": true },
                    "tls_connection_policies": [ {} ],
                    "routes": [ { "handle": [ {
                        "handler": "reverse_proxy",
                        "upstreams": [ { "dial": format!("127.0.0.1:{upstream}") } ],
                    } ] } ],
                } },
            },
        },
    })
}

/// HAProxy in TCP mode: SNI read from the ClientHello, mapped to the TLS
/// backend, spliced in the kernel where it helps (`option splice-auto`).
fn haproxy_config(certs: &Path, port: u16, backend: u16) -> String {
    let d = certs.display();
    format!(
        "global\n  nbthread 2\n  maxconn 4000\n  log stderr format short local0 warning\n\
         defaults\n  mode tcp\n  log global\n  option splice-auto\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
         frontend fe\n  bind 127.0.0.1:{port}\n  tcp-request inspect-delay 5s\n\
         \x20 tcp-request content accept if {{ req_ssl_hello_type 1 }}\n\
         \x20 use_backend %[req.ssl_sni,lower,map({d}/sni.map,be_none)]\n\
         backend be_tls\n  server b 127.0.0.1:{backend}\n\
         backend be_none\n"
    )
}

// ---------------------------------------------------------------- load

/// Accepts any certificate: every side faces the same cheap client. (Each
/// side's certificates are checked against the CA before measuring.)
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A rustls TLS 1.3 client offering `http/1.1` (as browsers do), no resumption.
fn client(root_pem: Option<&str>) -> Result<tokio_rustls::TlsConnector, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let mut config = match root_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(CertificateDer::from_pem_slice(pem.as_bytes())?)?;
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth(),
    };
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Why an attempt failed, in a few words (the failures column).
fn reason(e: &Error) -> String {
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        if let Some(inner) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return format!("tls: {inner}");
        }
        return format!("io: {:?}", io.kind());
    }
    let text = e.to_string();
    text.chars().take(60).collect()
}

async fn handshake(
    connector: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    sni: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Error> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(connector.connect(ServerName::try_from(sni.to_owned())?, tcp).await?)
}

/// One connection: handshake, `GET path`, read the whole body; returns its size.
async fn request(
    connector: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    sni: &str,
    path: &str,
) -> Result<u64, Error> {
    let mut tls = handshake(connector, addr, sni).await?;
    tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut head = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let body_start = loop {
        let n = tls.read(&mut buf).await?;
        if n == 0 {
            return Err("closed before the response head".into());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(p) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let text = String::from_utf8_lossy(&head[..body_start]).to_ascii_lowercase();
    if !text.starts_with("http/1.1 200") {
        return Err(format!("unexpected response: {}", text.lines().next().unwrap_or_default()).into());
    }
    let length: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse()))
        .ok_or("no content-length")??;
    let mut got = (head.len() - body_start) as u64;
    while got < length {
        let n = tls.read(&mut buf).await?;
        if n == 0 {
            return Err("body cut short".into());
        }
        got += n as u64;
    }
    Ok(got)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Work {
    /// Connect, handshake, close.
    Handshake,
    /// Connect, handshake, one request forwarded to the upstream, close.
    Request,
}

/// What one window of load produced.
#[derive(Default, Clone)]
struct Window {
    ok: u64,
    secs: f64,
    failures: BTreeMap<String, u64>,
    /// CPU seconds of the client thread (is the load generator the bottleneck?).
    client_cpu: f64,
}

impl Window {
    fn add(&mut self, other: &Self) {
        self.ok += other.ok;
        self.secs += other.secs;
        self.client_cpu += other.client_cpu;
        for (k, v) in &other.failures {
            *self.failures.entry(k.clone()).or_default() += v;
        }
    }
}

/// `concurrency` connections at a time for `duration`, SNI cycling over
/// `count` names, on the calling thread's runtime (one thread).
async fn load(addr: SocketAddr, count: usize, work: Work, duration: Duration, concurrency: usize) -> Window {
    let Ok(connector) = client(None) else { return Window::default() };
    let next = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let results = std::rc::Rc::new(std::cell::RefCell::new(Window::default()));
    let cpu = thread_ticks();
    let start = Instant::now();
    let local = tokio::task::LocalSet::new();
    for _ in 0..concurrency {
        let (connector, next, results) = (connector.clone(), next.clone(), results.clone());
        local.spawn_local(async move {
            while start.elapsed() < duration {
                let i = next.get();
                next.set(i.wrapping_add(1));
                let sni = name(i % count);
                let attempt = async {
                    match work {
                        Work::Handshake => handshake(&connector, addr, &sni).await.map(drop),
                        Work::Request => request(&connector, addr, &sni, "/").await.map(drop),
                    }
                };
                let outcome = match tokio::time::timeout(Duration::from_secs(10), attempt).await {
                    Ok(r) => r,
                    Err(_) => Err("timed out (10 s)".into()),
                };
                let mut r = results.borrow_mut();
                match outcome {
                    Ok(()) => r.ok += 1,
                    Err(e) => *r.failures.entry(reason(&e)).or_default() += 1,
                }
            }
        });
    }
    local.await;
    let mut window = results.borrow().clone();
    window.secs = start.elapsed().as_secs_f64();
    window.client_cpu = (thread_ticks() - cpu) as f64 / benches::clock_ticks_per_second();
    window
}

/// CPU ticks of the calling thread.
fn thread_ticks() -> u64 {
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|t| {
            let rest = t[t.rfind(')')? + 2..].to_owned();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// h2load (nghttp2): `requests` requests, each on a new connection
/// (`Connection: close`: h2load reconnects), SNI `localhost`; returns the
/// window (ok = 2xx). (h2load's `-D` duration mode does not end with
/// `Connection: close` in 1.52: a request count is given instead, sized from
/// the warm-up's rate; a `timeout` bounds a stuck run.)
/// h2load's CPU time is read by the shell that ran it: once it has waited for
/// `timeout` (which waited for h2load), its own `cutime` + `cstime` in
/// `/proc/<pid>/stat` are h2load's user + system ticks; it prints them as a
/// last line `h2load-cpu-ticks <n>`.
fn h2load(port: u16, requests: u64, limit: Duration, concurrency: usize) -> Window {
    let out = Command::new("sh")
        .args(["-c", H2LOAD_CPU_SCRIPT, "sh", "timeout"])
        .arg(limit.as_secs().max(1).to_string())
        .args(["h2load", "--h1", "-t", "1", "-c", &concurrency.to_string(), "-n", &requests.to_string()])
        .args(["-H", "Connection: close", &format!("https://localhost:{port}/")])
        .output();
    let mut w = Window { secs: limit.as_secs_f64(), ..Window::default() };
    let Ok(out) = out else {
        w.failures.insert("h2load not installed (Debian nghttp2-client)".into(), 1);
        return w;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    // "requests: 100 total, 100 started, 100 done, 98 succeeded, 2 failed, 2 errored, 0 timeout"
    // "status codes: 98 2xx, 0 3xx, 0 4xx, 0 5xx"
    let field = |line: &str, label: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(line))
            .and_then(|l| {
                l.split(',').find(|p| p.trim().ends_with(label)).and_then(|p| {
                    p.trim().trim_start_matches(line).split_whitespace().next().and_then(|n| n.parse().ok())
                })
            })
            .unwrap_or(0)
    };
    w.ok = field("status codes:", "2xx");
    for label in ["failed", "errored", "timeout"] {
        let n = field("requests:", label);
        if n > 0 {
            w.failures.insert(format!("h2load {label}"), n);
        }
    }
    if w.ok == 0 && !out.status.success() {
        w.failures.insert(format!("h2load: {}", String::from_utf8_lossy(&out.stderr).trim()), 1);
    }
    if let Some(ticks) = text.lines().find_map(|l| l.strip_prefix("h2load-cpu-ticks ")) {
        w.client_cpu = ticks.trim().parse::<f64>().unwrap_or(0.0) / benches::clock_ticks_per_second();
    }
    if let Some(line) = text.lines().find(|l| l.starts_with("finished in")) {
        // "finished in 6.00s, 1234.50 req/s, …" or "finished in 147.53ms, …"
        if let Some(t) = line.split_whitespace().nth(2).map(|t| t.trim_end_matches(',')) {
            let secs = match t.strip_suffix("ms") {
                Some(ms) => ms.parse::<f64>().ok().map(|v| v / 1e3),
                None => t.strip_suffix('s').and_then(|v| v.parse().ok()),
            };
            if let Some(secs) = secs {
                w.secs = secs;
            }
        }
    } else {
        w.failures.insert("h2load did not finish (killed by the timeout)".into(), 1);
    }
    w
}

/// Runs its arguments, then prints the CPU ticks of the children it waited
/// for (fields 16 and 17 of its own stat: cutime, cstime) and exits with the
/// command's status.
const H2LOAD_CPU_SCRIPT: &str = r#""$@"; rc=$?; set -- $(sed 's/.*) //' /proc/$$/stat); echo "h2load-cpu-ticks $((${14} + ${15}))"; exit $rc"#;

/// MiB/s downloaded over `streams` connections of `bytes` each.
/// `streams` downloads of `bytes` at once, again and again until `window`
/// has passed (at least once).
async fn throughput(addr: SocketAddr, streams: usize, bytes: u64, window: Duration) -> Result<f64, Error> {
    let connector = client(None)?;
    let start = Instant::now();
    let (mut total, mut batches) = (0, 0);
    while batches == 0 || start.elapsed() < window {
        batches += 1;
        let tasks: Vec<_> = (0..streams)
            .map(|i| {
                let connector = connector.clone();
                tokio::spawn(
                    async move { request(&connector, addr, &name(i), &format!("/bytes/{bytes}")).await },
                )
            })
            .collect();
        for t in tasks {
            total += t.await?.map_err(|e| format!("download from {addr}: {e}"))?;
        }
    }
    Ok(total as f64 / start.elapsed().as_secs_f64() / (1024.0 * 1024.0))
}

// ---------------------------------------------------------------- logs

/// A server's log and where the current window started in it.
struct Log {
    path: PathBuf,
}

impl Log {
    fn len(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// Warnings and errors written since `from`, by reason (digits masked).
    fn failures_since(&self, from: u64) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        let Ok(bytes) = std::fs::read(&self.path) else { return out };
        let text = String::from_utf8_lossy(bytes.get(from as usize..).unwrap_or_default());
        for line in text.lines() {
            let lower = line.to_ascii_lowercase();
            let bad = [" warn ", " error ", "[warn]", "[error]", "[crit]", "[alert]", "[emerg]"]
                .iter()
                .any(|m| lower.contains(m))
                || lower.contains("\"level\":\"error\"")
                || lower.contains("\"level\":\"warn\"")
                || (self.path.to_string_lossy().contains("haproxy") && !line.trim().is_empty());
            if !bad {
                continue;
            }
            // The message without timestamps, addresses and counters.
            let message = line
                .split("\"msg\":\"")
                .nth(1)
                .map_or(line, |m| m.split('"').next().unwrap_or(m))
                .rsplit(['[', ']'])
                .next()
                .unwrap_or(line);
            let masked: String = message
                .chars()
                .map(|c| if c.is_ascii_digit() { '#' } else { c })
                .collect::<String>()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            *out.entry(format!("log: {}", masked.chars().take(70).collect::<String>())).or_default() += 1;
        }
        out
    }
}

// ---------------------------------------------------------------- driver

/// A server under test: its name, port, root process and log.
struct Peer {
    name: &'static str,
    port: u16,
    pid: u32,
    log: Log,
}

/// One server's measurements of one kind of work, per round.
#[derive(Default)]
struct Series {
    rate: Vec<f64>,
    cpu_us: Vec<f64>,
    client_cpu_share: Vec<f64>,
    total: Window,
}

impl Series {
    fn failures(&self) -> String {
        if self.total.failures.is_empty() {
            return "none".into();
        }
        self.total.failures.iter().map(|(k, v)| format!("{k} ×{v}")).collect::<Vec<_>>().join(", ")
    }
}

/// Measures every peer for one kind of work: `rounds` rounds in ABBA order,
/// `window` per peer per round split in two halves.
fn measure(
    peers: &[Peer],
    opts: &Options,
    window: Duration,
    what: &str,
    run: &dyn Fn(&Peer, Duration) -> Window,
) -> Vec<Series> {
    let mut series: Vec<Series> = peers.iter().map(|_| Series::default()).collect();
    for (i, p) in peers.iter().enumerate() {
        let w = run(p, opts.warm_up);
        println!("  warm-up {what}: {} {:.0}/s", p.name, w.ok as f64 / w.secs.max(1e-9));
        let _ = i;
    }
    let ticks = benches::clock_ticks_per_second();
    for round in 0..opts.rounds {
        let forward: Vec<usize> = (0..peers.len()).map(|i| (i + round) % peers.len()).collect();
        let order: Vec<usize> = forward.iter().chain(forward.iter().rev()).copied().collect();
        let mut per_round: Vec<(Window, u64)> = peers.iter().map(|_| (Window::default(), 0)).collect();
        for &i in &order {
            let p = &peers[i];
            let (cpu0, log0) = (benches::tree_cpu_ticks(p.pid), p.log.len());
            let mut w = run(p, window / 2);
            let cpu = benches::tree_cpu_ticks(p.pid).saturating_sub(cpu0);
            for (k, v) in p.log.failures_since(log0) {
                *w.failures.entry(k).or_default() += v;
            }
            per_round[i].0.add(&w);
            per_round[i].1 += cpu;
        }
        let mut line = format!("  round {}/{} {what}:", round + 1, opts.rounds);
        for (i, (w, cpu)) in per_round.iter().enumerate() {
            let s = &mut series[i];
            let rate = w.ok as f64 / w.secs.max(1e-9);
            let cpu_us = *cpu as f64 / ticks * 1e6 / (w.ok.max(1) as f64);
            s.rate.push(rate);
            s.cpu_us.push(cpu_us);
            s.client_cpu_share.push(w.client_cpu / w.secs.max(1e-9));
            s.total.add(w);
            let failed: u64 = w.failures.values().sum();
            let _ = write!(line, " {} {rate:.0}/s {cpu_us:.0} µs/hs ({failed} failed) ·", peers[i].name);
        }
        println!("{}", line.trim_end_matches(" ·"));
    }
    series
}

#[allow(clippy::too_many_lines)]
fn drive(opts: &Options) -> Result<(), Error> {
    let count = opts.certificates;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let dir: PathBuf = std::env::temp_dir().join(format!("proxy-vs-peers-{}", std::process::id()));
    // $BENCH_LOG_DIR is this program's own directory (benches/run makes one per program).
    let logs: PathBuf = std::env::var_os("BENCH_LOG_DIR")
        .map_or_else(|| dir.join("logs").join("proxy-vs-peers"), PathBuf::from);
    let certs = dir.join("certs");
    // This run's logs only.
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(logs.join("nginx-tmp"))?;
    std::fs::create_dir_all(&certs)?;

    println!("crypto floor (ring, this thread) …");
    let floor = benches::measure_crypto_floor(if opts.quick {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(4)
    });
    println!(
        "  ECDSA P-256 sign {:.1} µs + X25519 keygen+agree {:.1} µs = {:.1} µs per handshake",
        floor.sign_us,
        floor.x25519_us,
        floor.total_us()
    );

    println!("writing {count} certificates to {}", certs.display());
    let root_pem = rt.block_on(write_certificates(&certs, count))?;
    let port = || testkit::free_port().map_err(|e| -> Error { e.to_string().into() });
    let (up, back, ours_term, ours_pass) = (port()?, port()?, port()?, port()?);
    let (nginx_port, stream_port, haproxy_port) = (port()?, port()?, port()?);
    // Caddy also wants its (unused) HTTP port free: the one after its HTTPS port.
    let caddy_port = loop {
        let p = port()?;
        if std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            break p;
        }
    };
    std::fs::write(logs.join("nginx-http.conf"), nginx_config(&certs, &logs, count, nginx_port, up))?;
    std::fs::write(logs.join("nginx-stream.conf"), nginx_stream_config(&certs, &logs, stream_port, up))?;
    std::fs::write(
        logs.join("caddy.json"),
        serde_json::to_string_pretty(&caddy_config(&certs, &logs, count, caddy_port, up))?,
    )?;
    std::fs::write(logs.join("haproxy.cfg"), haproxy_config(&certs, haproxy_port, back))?;
    let map: String = names(count).iter().map(|n| format!("{n} be_tls\n")).collect();
    std::fs::write(certs.join("sni.map"), map)?;

    let me = std::env::current_exe()?;
    let mut servers = Servers { children: Vec::new() };
    let log = |name: &str| logs.join(name);
    spawn(
        &mut servers,
        Command::new(&me).args(["upstream", &up.to_string()]),
        "upstream",
        &log("upstream.log"),
    )?;
    let d = certs.to_string_lossy().into_owned();
    spawn(
        &mut servers,
        Command::new(&me).args(["backend", &d, &back.to_string()]),
        "backend",
        &log("backend.log"),
    )?;
    let ports = [ours_term, ours_pass, up, back].map(|p| p.to_string());
    let ours_pid = spawn(
        &mut servers,
        Command::new(&me).arg("proxy").arg(&d).args(&ports),
        "our proxy",
        &log("ours.log"),
    )?;
    let nginx_pid = spawn(
        &mut servers,
        Command::new("nginx").arg("-c").arg(logs.join("nginx-http.conf")).arg("-p").arg(&logs),
        "nginx",
        &log("nginx-http-stderr.log"),
    )?;
    let stream_pid = spawn(
        &mut servers,
        Command::new("nginx").arg("-c").arg(logs.join("nginx-stream.conf")).arg("-p").arg(&logs),
        "nginx (stream)",
        &log("nginx-stream-stderr.log"),
    )?;
    let caddy_pid = spawn(
        &mut servers,
        Command::new("caddy")
            .args(["run", "--config"])
            .arg(logs.join("caddy.json"))
            .env("HOME", &logs)
            .env("XDG_DATA_HOME", logs.join("caddy-data"))
            .env("XDG_CONFIG_HOME", logs.join("caddy-config")),
        "caddy",
        &log("caddy-stderr.log"),
    )?;
    let haproxy_pid = spawn(
        &mut servers,
        Command::new("haproxy").arg("-db").arg("-f").arg(logs.join("haproxy.cfg")),
        "haproxy",
        &log("haproxy.log"),
    )?;

    let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
    rt.block_on(async {
        for (p, what) in [
            (up, "upstream"),
            (back, "backend"),
            (ours_term, "our proxy"),
            (ours_pass, "our proxy"),
            (nginx_port, "nginx"),
            (stream_port, "nginx (stream)"),
            (haproxy_port, "haproxy"),
            (caddy_port, "caddy"),
        ] {
            wait_listening(local(p), what).await?;
        }
        // Each side serves each name's own certificate, verified against the CA.
        let verify = client(Some(&root_pem))?;
        for i in [0, count / 2, count - 1] {
            for p in [ours_term, nginx_port, stream_port, caddy_port] {
                request(&verify, local(p), &name(i), "/")
                    .await
                    .map_err(|e| format!("{} via :{p}: {e}", name(i)))?;
            }
            for p in [ours_pass, haproxy_port] {
                request(&verify, local(p), &name(i), "/")
                    .await
                    .map_err(|e| format!("passthrough {} via :{p}: {e}", name(i)))?;
            }
        }
        Ok::<_, Error>(())
    })?;
    let peers = [
        Peer { name: "ours", port: ours_term, pid: ours_pid, log: Log { path: log("ours.log") } },
        Peer {
            name: "nginx",
            port: nginx_port,
            pid: nginx_pid,
            log: Log { path: log("nginx-http-error.log") },
        },
        Peer {
            name: "nginx-stream",
            port: stream_port,
            pid: stream_pid,
            log: Log { path: log("nginx-stream-error.log") },
        },
        Peer { name: "caddy", port: caddy_port, pid: caddy_pid, log: Log { path: log("caddy.log") } },
    ];
    println!(
        "{count} certificates; every side serves the right one; {} rounds, ABBA; about {:.0} s of measurement\n",
        opts.rounds,
        opts.estimate_secs(peers.len())
    );

    let concurrency = opts.concurrency;
    let rust_client = |work: Work| {
        let rt = &rt;
        move |p: &Peer, d: Duration| rt.block_on(load(local(p.port), count, work, d, concurrency))
    };
    println!("handshake only (rustls client, 1 thread, {concurrency} connections):");
    let handshakes = measure(&peers, opts, opts.handshake_window, "handshake", &rust_client(Work::Handshake));
    println!("handshake + request (rustls client):");
    let requests = measure(&peers, opts, opts.request_window, "request", &rust_client(Work::Request));
    println!("handshake + request (h2load, 1 thread, {concurrency} connections, SNI localhost):");
    // Requests per h2load window: each server's warm-up rate × the window.
    let rates = std::cell::RefCell::new(BTreeMap::<u16, f64>::new());
    let h2 = measure(&peers, opts, opts.h2load_window, "h2load", &|p: &Peer, d: Duration| {
        let rate = rates.borrow().get(&p.port).copied();
        let requests = rate.map_or(1_000, |r| (r * d.as_secs_f64()) as u64).max(200);
        let w = h2load(p.port, requests, d * 4 + Duration::from_secs(10), concurrency);
        if rate.is_none() && w.ok > 0 {
            rates.borrow_mut().insert(p.port, w.ok as f64 / w.secs.max(1e-3));
        }
        w
    });

    println!("bulk throughput (4 streams):");
    let mut bulk: [Vec<f64>; 4] = Default::default();
    let mut bulk_failures = Vec::new();
    for round in 0..opts.rounds {
        let pairs = [(0, ours_term), (1, nginx_port), (2, ours_pass), (3, haproxy_port)];
        let order: Vec<(usize, u16)> =
            if round % 2 == 0 { pairs.to_vec() } else { [pairs[1], pairs[0], pairs[3], pairs[2]].to_vec() };
        for (i, p) in order {
            match rt.block_on(throughput(local(p), 4, opts.bulk, opts.bulk_window)) {
                Ok(v) => bulk[i].push(v),
                Err(e) => bulk_failures.push(e.to_string()),
            }
        }
        println!(
            "  round {}/{}: termination MiB/s ours {:.0} nginx {:.0} · passthrough MiB/s ours {:.0} haproxy {:.0}",
            round + 1,
            opts.rounds,
            bulk[0].last().unwrap_or(&0.0),
            bulk[1].last().unwrap_or(&0.0),
            bulk[2].last().unwrap_or(&0.0),
            bulk[3].last().unwrap_or(&0.0),
        );
    }
    let haproxy_log = Log { path: log("haproxy.log") }.failures_since(0);
    let _ = haproxy_pid;
    println!();

    // ------------------------------------------------------------ rows
    let certs_text = format!("{count} certificates");
    let mut floor_row = benches::reported(
        "crypto floor: ECDSA P-256 sign + X25519 keygen & agreement (ring, one core)",
        "µs",
        &[floor.total_us()],
    );
    floor_row.spread = format!("sign {:.1} µs + X25519 {:.1} µs", floor.sign_us, floor.x25519_us);
    floor_row.failures = "none".into();
    floor_row.record();

    let client_note = |s: &Series| {
        let share = benches::median(&s.client_cpu_share);
        if share == 0.0 {
            "; load generator: h2load, its CPU not sampled".to_owned()
        } else if share > 0.9 {
            format!("; load generator at {:.0}% of a core (the bottleneck)", share * 100.0)
        } else {
            format!("; load generator at {:.0}% of a core", share * 100.0)
        }
    };
    for (work, series, label) in [
        ("handshake only", &handshakes, "rustls client"),
        ("handshake + request", &requests, "rustls client"),
        ("handshake + request, h2load", &h2, "h2load"),
    ] {
        let ours = &series[0];
        for (i, peer) in peers.iter().enumerate().skip(1) {
            let theirs = &series[i];
            let failures = format!("ours: {}; {}: {}", ours.failures(), peer.name, theirs.failures());
            let (rate_target, cpu_target) = if peer.name == "caddy" { (1.0, 0.6) } else { (1.3, 0.75) };
            let mut row = benches::higher_is_better(
                &format!("TLS handshakes/s, {work}, {certs_text} ({label})"),
                "/s",
                peer.name,
                &ours.rate,
                &theirs.rate,
                rate_target,
            );
            row.spread.push_str(&client_note(ours));
            row.failures.clone_from(&failures);
            row.record();
            let mut row = benches::lower_is_better(
                &format!("server CPU per handshake, {work}, {certs_text} ({label})"),
                "µs",
                peer.name,
                &ours.cpu_us,
                &theirs.cpu_us,
                cpu_target,
            );
            row.failures = failures;
            row.record();
        }
        if work == "handshake only" {
            // Each server's CPU per handshake as a multiple of the floor.
            let multiple = |s: &Series| s.cpu_us.iter().map(|c| c / floor.total_us()).collect::<Vec<_>>();
            for (i, peer) in peers.iter().enumerate().skip(1) {
                let mut row = benches::lower_is_better(
                    &format!("server CPU per handshake ÷ crypto floor ({:.0} µs), {work}", floor.total_us()),
                    "× floor",
                    peer.name,
                    &multiple(ours),
                    &multiple(&series[i]),
                    f64::INFINITY,
                );
                row.target = "ours <= 2.5 × floor".into();
                row.met = row.ours <= 2.5;
                row.failures = format!("ours: {}; {}: {}", ours.failures(), peer.name, series[i].failures());
                row.record();
            }
        }
    }
    let bulk_failed = if bulk_failures.is_empty() { "none".to_owned() } else { bulk_failures.join("; ") };
    let mut row = benches::higher_is_better(
        "termination throughput, 4 streams",
        "MiB/s",
        "nginx",
        &bulk[0],
        &bulk[1],
        0.9,
    );
    row.failures.clone_from(&bulk_failed);
    row.record();
    let mut row = benches::higher_is_better(
        "passthrough throughput, 4 streams",
        "MiB/s",
        "haproxy (splice-auto)",
        &bulk[2],
        &bulk[3],
        1.0,
    );
    row.failures =
        if haproxy_log.is_empty() { bulk_failed } else { format!("{bulk_failed}; haproxy {haproxy_log:?}") };
    row.record();
    drop(servers);
    let _ = std::fs::remove_dir_all(dir.join("certs"));
    println!("logs and peer configurations: {}", logs.display());
    Ok(())
}
