//! Our proxy vs Debian's nginx (TLS termination) and HAProxy (TCP-mode SNI
//! passthrough), in one run on loopback, with the same 10,000 ECDSA P-256
//! certificates and the same load generator.
//!
//! - **handshakes/s**: new TLS 1.3 connection per request (no resumption),
//!   SNI round-robin over the 10,000 names, one small HTTP request answered
//!   by the same plain upstream (target ≥ 1.3× nginx);
//! - **termination throughput**: 4 connections each downloading 256 MiB from
//!   the upstream through the terminating proxy (target ≥ 0.9× nginx);
//! - **passthrough throughput**: the same through SNI passthrough to a TLS
//!   backend (target ≥ 1.0× HAProxy).
//!
//! Every server is its own process (ours: this binary's `proxy` mode with a
//! 2-thread runtime; nginx: 2 workers; HAProxy: 2 threads); rounds
//! alternate us and the peer; the median ratio is printed.
//!
//! `cargo run --release -p benches --bin proxy-vs-peers [-- --quick]`
//! (needs Debian's `nginx` and `haproxy`).

use std::{
    fmt::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
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
        _ => drive(args.iter().any(|a| a == "--quick")),
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

/// Our proxy: ports = [terminate, passthrough, upstream, backend].
async fn proxy(dir: &Path, ports: &[u16]) -> Result<(), Error> {
    let count = std::fs::read_to_string(dir.join("count"))?.trim().parse::<usize>()?;
    let resolver = Arc::new(SniResolver::new());
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let bundle = load_bundle(dir, &format!("h{i}"))?;
        entries.push((name(i), sni_proxy::certified_key(&bundle)?));
    }
    resolver.insert_many(entries);
    let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let mut terminate = TlsConfig::new(Arc::clone(&resolver), local(ports[2]));
    terminate.max_connections = 20_000;
    let mut pass = terminate.clone();
    pass.routes = Arc::new(sni_proxy::Routes::new(Route::Terminate(local(ports[2]))));
    pass.routes.set_many((0..count).map(|i| (name(i), Route::Passthrough(local(ports[3])))));
    let pass_listener = TcpListener::bind(local(ports[1])).await?;
    tokio::spawn(serve_tls(pass_listener, pass));
    serve_tls(TcpListener::bind(local(ports[0])).await?, terminate).await;
    Ok(())
}

fn name(i: usize) -> String {
    format!("h{i}.bench.test")
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

fn spawn(cmd: &mut Command, what: &str) -> Result<Child, Error> {
    cmd.stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("{what} (is its Debian package installed?): {e}").into())
}

async fn wait_listening(addr: SocketAddr, what: &str) -> Result<(), Error> {
    let start = Instant::now();
    while TcpStream::connect(addr).await.is_err() {
        if start.elapsed() > Duration::from_secs(120) {
            return Err(format!("{what} did not start listening on {addr}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn write_certificates(dir: &Path, count: usize) -> Result<String, Error> {
    let ca = LocalCaIssuer::new(Arc::new(cert_store::CertStore::new(Arc::new(MemoryStorage::new()))));
    for i in 0..=count {
        let (stem, subject) = if i == count {
            ("wildcard".to_owned(), "*.bench.test".to_owned())
        } else {
            (format!("h{i}"), name(i))
        };
        let bundle = ca.issue(&CertRequest::new([subject])).await?;
        std::fs::write(dir.join(format!("{stem}.pem")), bundle.chain_pem())?;
        std::fs::write(dir.join(format!("{stem}.key")), bundle.key_pem())?;
    }
    std::fs::write(dir.join("count"), count.to_string())?;
    Ok(ca.root_pem().await?)
}

fn nginx_config(dir: &Path, count: usize, port: u16, upstream: u16) -> String {
    let d = dir.display();
    let mut c = format!(
        "daemon off; master_process on; worker_processes 2; user root; pid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log warn; worker_rlimit_nofile 16384;\n\
         events {{ worker_connections 8000; }}\n\
         http {{\n access_log off;\n client_body_temp_path {d}/nginx-tmp/body; proxy_temp_path {d}/nginx-tmp/proxy;\n\
         fastcgi_temp_path {d}/nginx-tmp/fcgi; uwsgi_temp_path {d}/nginx-tmp/uwsgi; scgi_temp_path {d}/nginx-tmp/scgi;\n\
         server_names_hash_max_size 65536; server_names_hash_bucket_size 128;\n\
         ssl_protocols TLSv1.3; ssl_session_cache off; ssl_session_tickets off;\n\
         proxy_buffering on; proxy_max_temp_file_size 0;\n\
         upstream up {{ server 127.0.0.1:{upstream}; }}\n"
    );
    for i in 0..count {
        let default = if i == 0 { " default_server" } else { "" };
        let _ = writeln!(
            c,
            " server {{ listen 127.0.0.1:{port} ssl{default}; server_name {n}; ssl_certificate {d}/h{i}.pem; \
             ssl_certificate_key {d}/h{i}.key; location / {{ proxy_pass http://up; }} }}",
            n = name(i)
        );
    }
    c.push_str("}\n");
    c
}

fn caddy_config(dir: &Path, count: usize, port: u16, upstream: u16) -> String {
    let d = dir.display();
    let mut c = format!(
        "{{\n  admin off\n  auto_https disable_redirects\n  https_port {port}\n  http_port {}\n  \
         storage file_system {{\n    root {d}/caddy-data\n  }}\n}}\n",
        port + 1
    );
    for i in 0..count {
        let _ = writeln!(
            c,
            "{n}:{port} {{\n  tls {d}/h{i}.pem {d}/h{i}.key\n  reverse_proxy 127.0.0.1:{upstream}\n}}",
            n = name(i)
        );
    }
    c
}

fn haproxy_config(dir: &Path, port: u16, backend: u16) -> String {
    let d = dir.display();
    format!(
        "global\n  nbthread 2\n  maxconn 8000\n\
         defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
         frontend fe\n  bind 127.0.0.1:{port}\n  tcp-request inspect-delay 5s\n\
         \x20 tcp-request content accept if {{ req_ssl_hello_type 1 }}\n\
         \x20 use_backend %[req.ssl_sni,lower,map({d}/sni.map,be_none)]\n\
         backend be_tls\n  server b 127.0.0.1:{backend}\n\
         backend be_none\n"
    )
}

// ---------------------------------------------------------------- load

/// Accepts any certificate: both sides face the same cheap client. (Each
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
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// One connection: handshake, `GET path`, read the whole body; returns its size.
async fn request(
    connector: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    sni: &str,
    path: &str,
) -> Result<u64, Error> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut tls = connector.connect(ServerName::try_from(sni.to_owned())?, tcp).await?;
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

/// New connections per second for `duration`, `concurrency` at once.
async fn handshakes(
    addr: SocketAddr,
    count: usize,
    duration: Duration,
    concurrency: usize,
) -> Result<f64, Error> {
    let connector = client(None)?;
    let next = Arc::new(AtomicU64::new(0));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (connector, next, done, failed) =
                (connector.clone(), Arc::clone(&next), Arc::clone(&done), Arc::clone(&failed));
            tokio::spawn(async move {
                while start.elapsed() < duration {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize % count;
                    match request(&connector, addr, &name(i), "/").await {
                        Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    let secs = start.elapsed().as_secs_f64();
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        eprintln!("  ({failed} connections failed to {addr})");
    }
    Ok(done.load(Ordering::Relaxed) as f64 / secs)
}

/// MiB/s downloaded over `streams` connections of `bytes` each.
async fn throughput(addr: SocketAddr, streams: usize, bytes: u64) -> Result<f64, Error> {
    let connector = client(None)?;
    let start = Instant::now();
    let tasks: Vec<_> = (0..streams)
        .map(|i| {
            let connector = connector.clone();
            tokio::spawn(async move { request(&connector, addr, &name(i), &format!("/bytes/{bytes}")).await })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await?.map_err(|e| format!("download from {addr}: {e}"))?;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64() / (1024.0 * 1024.0))
}

// ---------------------------------------------------------------- driver

fn drive(quick: bool) -> Result<(), Error> {
    let count = if quick { 1_000 } else { 10_000 };
    let (rounds, duration, bulk) =
        if quick { (3, Duration::from_secs(2), 64 << 20) } else { (5, Duration::from_secs(5), 256 << 20) };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let dir: PathBuf = std::env::temp_dir().join(format!("proxy-vs-peers-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("nginx-tmp"))?;
    println!("writing {count} certificates to {}", dir.display());
    let root_pem = rt.block_on(write_certificates(&dir, count))?;
    let port = || testkit::free_port().map_err(|e| -> Error { e.to_string().into() });
    let (up, back, ours_term, ours_pass, nginx_port, haproxy_port) =
        (port()?, port()?, port()?, port()?, port()?, port()?);
    // Caddy also wants its (unused) HTTP port free: the one after its HTTPS port.
    let caddy_port = loop {
        let p = port()?;
        if std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            break p;
        }
    };
    std::fs::write(dir.join("Caddyfile"), caddy_config(&dir, count, caddy_port, up))?;
    std::fs::write(dir.join("nginx.conf"), nginx_config(&dir, count, nginx_port, up))?;
    std::fs::write(dir.join("haproxy.cfg"), haproxy_config(&dir, haproxy_port, back))?;
    let map: String = (0..count).map(|i| format!("{} be_tls\n", name(i))).collect();
    std::fs::write(dir.join("sni.map"), map)?;

    let me = std::env::current_exe()?;
    let mut servers = Servers { children: Vec::new() };
    servers.children.push(spawn(Command::new(&me).args(["upstream", &up.to_string()]), "upstream")?);
    let d = dir.to_string_lossy().into_owned();
    servers.children.push(spawn(Command::new(&me).args(["backend", &d, &back.to_string()]), "backend")?);
    let ports = [ours_term, ours_pass, up, back].map(|p| p.to_string());
    servers.children.push(spawn(Command::new(&me).arg("proxy").arg(&d).args(&ports), "our proxy")?);
    let nginx_conf = dir.join("nginx.conf");
    servers
        .children
        .push(spawn(Command::new("nginx").arg("-c").arg(&nginx_conf).arg("-p").arg(&dir), "nginx")?);
    servers.children.push(spawn(
        Command::new("caddy")
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(dir.join("Caddyfile"))
            .env("HOME", &dir)
            .env("XDG_DATA_HOME", dir.join("caddy-data"))
            .env("XDG_CONFIG_HOME", dir.join("caddy-config"))
            .stderr(Stdio::null()),
        "caddy",
    )?);
    servers
        .children
        .push(spawn(Command::new("haproxy").arg("-db").arg("-f").arg(dir.join("haproxy.cfg")), "haproxy")?);

    let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
    rt.block_on(async {
        for (p, what) in [
            (up, "upstream"),
            (back, "backend"),
            (ours_term, "our proxy"),
            (ours_pass, "our proxy"),
            (nginx_port, "nginx"),
            (haproxy_port, "haproxy"),
            (caddy_port, "caddy"),
        ] {
            wait_listening(local(p), what).await?;
        }
        // Each side serves each name's own certificate, verified against the CA.
        let verify = client(Some(&root_pem))?;
        for i in [0, count / 2, count - 1] {
            for p in [ours_term, nginx_port, caddy_port] {
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
    println!("{count} certificates; every side serves the right one; {rounds} alternating rounds\n");

    let mut m: [Vec<f64>; 7] = Default::default();
    for round in 1..=rounds {
        rt.block_on(async {
            let c = 64;
            m[0].push(handshakes(local(ours_term), count, duration, c).await?);
            m[1].push(handshakes(local(nginx_port), count, duration, c).await?);
            m[2].push(handshakes(local(caddy_port), count, duration, c).await?);
            m[3].push(throughput(local(ours_term), 4, bulk).await?);
            m[4].push(throughput(local(nginx_port), 4, bulk).await?);
            m[5].push(throughput(local(ours_pass), 4, bulk).await?);
            m[6].push(throughput(local(haproxy_port), 4, bulk).await?);
            Ok::<_, Error>(())
        })?;
        let last: Vec<String> = m.iter().map(|v| format!("{:.0}", v[v.len() - 1])).collect();
        println!(
            "round {round}: handshakes/s ours {} nginx {} caddy {} · termination MiB/s ours {} nginx {} · passthrough MiB/s ours {} haproxy {}",
            last[0], last[1], last[2], last[3], last[4], last[5], last[6]
        );
    }
    println!();
    let certs = format!("{count} certificates");
    benches::higher_is_better(&format!("TLS handshakes/s, {certs}"), "/s", "nginx", &m[0], &m[1], 1.3)
        .record();
    benches::higher_is_better(&format!("TLS handshakes/s, {certs}"), "/s", "caddy", &m[0], &m[2], 1.0)
        .record();
    benches::higher_is_better("termination throughput, 4 streams", "MiB/s", "nginx", &m[3], &m[4], 0.9)
        .record();
    benches::higher_is_better("passthrough throughput, 4 streams", "MiB/s", "haproxy", &m[5], &m[6], 1.0)
        .record();
    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
