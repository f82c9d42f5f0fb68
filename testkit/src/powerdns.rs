//! PowerDNS Authoritative (Debian `pdns-server` + `pdns-backend-sqlite3`)
//! with its HTTP API, on 127.0.0.1.

use std::{
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{TestkitError, free_port, process::run};

const SCHEMA: &str = "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql";

/// `pdns_server` in the foreground with the gsqlite3 backend, its API on
/// (`api-key` random), caches off (a change is answered at once), DNS and
/// API on free loopback ports. Killed on drop.
#[derive(Debug)]
pub struct PowerDnsServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    dns_port: u16,
    api_port: u16,
    api_key: String,
}

impl PowerDnsServer {
    /// Starts it; returns once DNS and the API accept connections.
    ///
    /// # Errors
    /// [`TestkitError::MissingBinary`] without `pdns_server`, its sqlite3
    /// backend or `sqlite3`; [`TestkitError::NotReady`] with its log.
    pub fn start() -> Result<Self, TestkitError> {
        for (binary, package) in [
            ("/usr/sbin/pdns_server", "pdns-server"),
            (SCHEMA, "pdns-backend-sqlite3"),
            ("/usr/bin/sqlite3", "sqlite3"),
        ] {
            if !Path::new(binary).exists() {
                return Err(TestkitError::MissingBinary { binary: binary.into(), package });
            }
        }
        let dir = tempfile::Builder::new().prefix("testkit-pdns-").tempdir()?;
        let db = dir.path().join("pdns.sqlite3");
        run(Command::new("/usr/bin/sqlite3").arg(&db).arg(format!(".read {SCHEMA}")))?;
        let (dns_port, api_port) = (free_port()?, free_port()?);
        let api_key: String = format!("testkit-{:016x}", rand::random::<u64>());
        let config = format!(
            "launch=gsqlite3\ngsqlite3-database={db}\nlocal-address=127.0.0.1\nlocal-port={dns_port}\n\
             api=yes\napi-key={api_key}\nwebserver=yes\nwebserver-address=127.0.0.1\nwebserver-port={api_port}\n\
             webserver-allow-from=127.0.0.1\nsocket-dir={dir}\nguardian=no\ndaemon=no\ndisable-syslog=yes\n\
             cache-ttl=0\nnegquery-cache-ttl=0\nquery-cache-ttl=0\nzone-cache-refresh-interval=0\nloglevel=6\n",
            db = db.display(),
            dir = dir.path().display(),
        );
        std::fs::write(dir.path().join("pdns.conf"), config)?;
        let log = std::fs::File::create(dir.path().join("pdns.log"))?;
        let child = Command::new("/usr/sbin/pdns_server")
            .arg(format!("--config-dir={}", dir.path().display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut server = Self { child: Some(child), dir, dns_port, api_port, api_key };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<(), TestkitError> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if TcpStream::connect(("127.0.0.1", self.api_port)).is_ok()
                && TcpStream::connect(("127.0.0.1", self.dns_port)).is_ok()
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(TestkitError::NotReady {
                    server: "pdns_server",
                    seconds: 0,
                    detail: format!("{status}: {}", self.log()),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(TestkitError::NotReady { server: "pdns_server", seconds: 30, detail: self.log() })
    }

    /// Creates the native zone `zone` (SOA + NS `ns1.<zone>`) with `pdnsutil`.
    ///
    /// # Errors
    /// When `pdnsutil` fails.
    pub fn create_zone(&self, zone: &str) -> Result<(), TestkitError> {
        run(Command::new("/usr/bin/pdnsutil")
            .arg(format!("--config-dir={}", self.dir.path().display()))
            .arg("create-zone")
            .arg(zone)
            .arg(format!("ns1.{zone}")))?;
        Ok(())
    }

    /// Where it answers DNS (UDP and TCP).
    #[must_use]
    pub fn dns_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.dns_port))
    }

    /// The HTTP API's base URL (`http://127.0.0.1:PORT`).
    #[must_use]
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// The API key (`X-API-Key`).
    #[must_use]
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// Its log so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pdns.log")).unwrap_or_default()
    }
}

impl Drop for PowerDnsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
