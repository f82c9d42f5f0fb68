//! A throwaway authoritative DNS server: BIND's `named` in the foreground.

use std::{
    fmt::Write as _,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{TestkitError, free_port};

/// Name of the TSIG key every testkit DNS server accepts for RFC 2136 updates.
pub const TSIG_KEY_NAME: &str = "testkit-key";

/// One zone served by a [`DnsServer`].
#[derive(Debug, Clone)]
pub struct Zone {
    origin: String,
    records: String,
    unloadable: bool,
    ns_address: std::net::Ipv4Addr,
}

impl Zone {
    /// A zone `origin` (e.g. `example.test`) with the given records in zone-file
    /// syntax, relative to the origin (e.g. `www IN A 127.0.0.1`). SOA, NS
    /// (`ns1.<origin>`) and `ns1 A 127.0.0.1` are added.
    #[must_use]
    pub fn new(origin: &str, records: &str) -> Self {
        Self {
            origin: origin.trim_end_matches('.').to_owned(),
            records: records.to_owned(),
            unloadable: false,
            ns_address: std::net::Ipv4Addr::LOCALHOST,
        }
    }

    /// Gives `ns1.<origin>` (the zone's only name server) the address `ip`
    /// instead of 127.0.0.1: a checker that discovers the zone's servers
    /// asks `ip` (e.g. 127.0.0.2, where nothing answers: a dead server).
    #[must_use]
    pub fn nameserver_address(mut self, ip: std::net::Ipv4Addr) -> Self {
        self.ns_address = ip;
        self
    }

    /// A zone BIND is configured for but cannot load (a broken zone file):
    /// it answers SERVFAIL for every name in it, as a real authoritative
    /// server with a broken zone does.
    #[must_use]
    pub fn unloadable(origin: &str) -> Self {
        Self { unloadable: true, ..Self::new(origin, "this-line-is-not-a-record\n") }
    }

    fn file_text(&self) -> String {
        let o = &self.origin;
        format!(
            "$ORIGIN {o}.\n$TTL 60\n@ IN SOA ns1.{o}. hostmaster.{o}. 1 3600 600 86400 60\n@ IN NS ns1.{o}.\nns1 IN A {}\n{}\n",
            self.ns_address, self.records
        )
    }
}

/// Builder for a [`DnsServer`].
#[derive(Debug, Default)]
pub struct DnsServerBuilder {
    zones: Vec<Zone>,
    recursion: bool,
}

impl DnsServerBuilder {
    /// Serves `zone` (updatable with the TSIG key).
    #[must_use]
    pub fn zone(mut self, zone: Zone) -> Self {
        self.zones.push(zone);
        self
    }

    /// Answers recursive queries from 127.0.0.1 (needed by pebble, which
    /// treats its DNS server as a resolver and does not chase CNAMEs).
    #[must_use]
    pub fn recursion(mut self, on: bool) -> Self {
        self.recursion = on;
        self
    }

    /// Writes the configuration and starts `named`; returns once it runs.
    ///
    /// # Errors
    /// [`TestkitError::MissingBinary`] without `bind9`; [`TestkitError::NotReady`]
    /// with named's log when it does not start.
    pub fn start(self) -> Result<DnsServer, TestkitError> {
        let named = ["/usr/sbin/named", "/usr/bin/named"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .ok_or(TestkitError::MissingBinary { binary: "named".into(), package: "bind9" })?;
        let dir = tempfile::Builder::new().prefix("testkit-dns-").tempdir()?;
        let port = free_port()?;
        let secret = random_base64_secret();
        let d = dir.path().display();
        let recursion =
            if self.recursion { "recursion yes; allow-recursion { 127.0.0.1; };" } else { "recursion no;" };
        let mut conf = format!(
            "options {{\n  directory \"{d}\";\n  listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n  \
             pid-file \"{d}/named.pid\";\n  {recursion}\n  dnssec-validation no;\n  check-names primary ignore;\n  notify no;\n  allow-transfer {{ any; }};\n}};\n\
             controls {{ }};\nkey \"{TSIG_KEY_NAME}\" {{ algorithm hmac-sha256; secret \"{secret}\"; }};\n"
        );
        for zone in &self.zones {
            let file = dir.path().join(format!("{}.zone", zone.origin));
            std::fs::write(&file, zone.file_text())?;
            let _ = writeln!(
                conf,
                "zone \"{}\" {{ type primary; file \"{}\"; allow-update {{ key \"{TSIG_KEY_NAME}\"; }}; }};",
                zone.origin,
                file.display()
            );
        }
        let conf_path = dir.path().join("named.conf");
        std::fs::write(&conf_path, conf)?;
        let log_path = dir.path().join("named.log");
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(named)
            .args(["-g", "-c"])
            .arg(&conf_path)
            .args(["-u", "root", "-n", "1"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let unloadable_zones = self.zones.iter().filter(|z| z.unloadable).count();
        let mut server = DnsServer { child: Some(child), dir, port, secret, log_path, unloadable_zones };
        server.wait_running()?;
        Ok(server)
    }
}

fn random_base64_secret() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// BIND serving test zones on 127.0.0.1 (UDP and TCP) on a free port, with
/// the TSIG key [`TSIG_KEY_NAME`] allowed to update every zone. Killed on drop.
///
/// ```no_run
/// use testkit::{DnsServer, Zone};
/// let dns = DnsServer::builder().zone(Zone::new("example.test", "www IN A 127.0.0.1")).start().unwrap();
/// println!("127.0.0.1:{}", dns.port());
/// ```
#[derive(Debug)]
pub struct DnsServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    secret: String,
    log_path: PathBuf,
    unloadable_zones: usize,
}

impl DnsServer {
    /// A builder with no zones and recursion off.
    #[must_use]
    pub fn builder() -> DnsServerBuilder {
        DnsServerBuilder::default()
    }

    fn wait_running(&mut self) -> Result<(), TestkitError> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            let broken = log.matches("not loaded due to errors").count();
            if broken > self.unloadable_zones {
                return Err(TestkitError::NotReady { server: "named", seconds: 0, detail: log });
            }
            if log.contains("running") && self.answers_queries() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(TestkitError::NotReady {
                    server: "named",
                    seconds: 0,
                    detail: format!("{status}: {log}"),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(TestkitError::NotReady {
            server: "named",
            seconds: 30,
            detail: std::fs::read_to_string(&self.log_path).unwrap_or_default(),
        })
    }

    /// Whether a UDP query (`. SOA`) gets any answer right now.
    fn answers_queries(&self) -> bool {
        const ROOT_SOA_QUERY: [u8; 17] = [0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1];
        let Ok(socket) = std::net::UdpSocket::bind("127.0.0.1:0") else { return false };
        let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
        let mut buf = [0u8; 512];
        socket.send_to(&ROOT_SOA_QUERY, self.addr()).is_ok() && socket.recv(&mut buf).is_ok_and(|n| n >= 12)
    }

    /// The port on 127.0.0.1.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    #[must_use]
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The TSIG secret (base64) of [`TSIG_KEY_NAME`].
    #[must_use]
    pub fn tsig_secret_base64(&self) -> &str {
        &self.secret
    }

    /// The server's directory (zone files, journal, log).
    #[must_use]
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// named's log so far (for failure messages).
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Kills the server; it stays stopped (for "server unreachable" tests).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
