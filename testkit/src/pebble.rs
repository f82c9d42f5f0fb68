//! A throwaway ACME CA: Debian's `pebble`.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{TestkitError, free_port, process::run};

/// Builder for a [`PebbleServer`].
#[derive(Debug, Clone)]
pub struct PebbleBuilder {
    dns_server: Option<std::net::SocketAddr>,
    nonce_reject_percent: u8,
    http_port: Option<u16>,
    tls_port: Option<u16>,
    certificate_validity: Option<Duration>,
}

impl PebbleBuilder {
    /// The DNS server pebble resolves names through (a testkit [`DnsServer`](crate::DnsServer)
    /// with recursion on, so that CNAME delegation is followed).
    #[must_use]
    pub fn dns_server(mut self, addr: std::net::SocketAddr) -> Self {
        self.dns_server = Some(addr);
        self
    }

    /// Percentage of nonces pebble rejects with `badNonce` (default 0).
    #[must_use]
    pub fn nonce_reject_percent(mut self, percent: u8) -> Self {
        self.nonce_reject_percent = percent.min(100);
        self
    }

    /// The port pebble connects to for HTTP-01 validation (default: a free one).
    #[must_use]
    pub fn http_port(mut self, port: u16) -> Self {
        self.http_port = Some(port);
        self
    }

    /// The port pebble connects to for TLS-ALPN-01 validation (default: a free one).
    #[must_use]
    pub fn tls_port(mut self, port: u16) -> Self {
        self.tls_port = Some(port);
        self
    }

    /// How long the certificates pebble issues are valid (default: pebble's
    /// five years). Short lifetimes make renewals happen within a test.
    #[must_use]
    pub fn certificate_validity(mut self, validity: Duration) -> Self {
        self.certificate_validity = Some(validity);
        self
    }

    /// Generates pebble's TLS certificate, writes its config and starts it;
    /// returns once the directory answers.
    ///
    /// # Errors
    /// [`TestkitError::MissingBinary`] without `pebble`; [`TestkitError::NotReady`]
    /// with its log when it does not start.
    pub fn start(self) -> Result<PebbleServer, TestkitError> {
        let pebble = Path::new("/usr/bin/pebble");
        if !pebble.exists() {
            return Err(TestkitError::MissingBinary { binary: "pebble".into(), package: "pebble" });
        }
        let dir = tempfile::Builder::new().prefix("testkit-pebble-").tempdir()?;
        let key = rcgen::KeyPair::generate().map_err(|e| TestkitError::Io(std::io::Error::other(e)))?;
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(|e| TestkitError::Io(std::io::Error::other(e)))?;
        let cert = params.self_signed(&key).map_err(|e| TestkitError::Io(std::io::Error::other(e)))?;
        let cert_path = dir.path().join("pebble.crt");
        std::fs::write(&cert_path, cert.pem())?;
        std::fs::write(dir.path().join("pebble.key"), key.serialize_pem())?;
        let (port, management_port) = (free_port()?, free_port()?);
        let http_port = match self.http_port {
            Some(p) => p,
            None => free_port()?,
        };
        let tls_port = match self.tls_port {
            Some(p) => p,
            None => free_port()?,
        };
        let config = format!(
            r#"{{"pebble":{{"listenAddress":"127.0.0.1:{port}","managementListenAddress":"127.0.0.1:{management_port}","certificate":"{}","privateKey":"{}","httpPort":{http_port},"tlsPort":{tls_port},"ocspResponderURL":"","externalAccountBindingRequired":false{validity}}}}}"#,
            cert_path.display(),
            dir.path().join("pebble.key").display(),
            validity = self
                .certificate_validity
                .map(|v| format!(r#","certificateValidityPeriod":{}"#, v.as_secs().max(1)))
                .unwrap_or_default(),
        );
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config)?;
        let log_path = dir.path().join("pebble.log");
        let log = std::fs::File::create(&log_path)?;
        let mut cmd = Command::new(pebble);
        cmd.arg("-config").arg(&config_path);
        if let Some(dns) = self.dns_server {
            cmd.arg("-dnsserver").arg(dns.to_string());
        }
        let child = cmd
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", self.nonce_reject_percent.to_string())
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut server = PebbleServer {
            child: Some(child),
            dir,
            port,
            management_port,
            http_port,
            tls_port,
            cert_path,
            log_path,
        };
        server.wait_ready()?;
        Ok(server)
    }
}

/// pebble on 127.0.0.1 with free ports, its own TLS certificate (made with
/// rcgen), `PEBBLE_VA_NOSLEEP=1`, authorization reuse off, and DNS through
/// the given server. Killed on drop.
#[derive(Debug)]
pub struct PebbleServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    management_port: u16,
    http_port: u16,
    tls_port: u16,
    cert_path: PathBuf,
    log_path: PathBuf,
}

impl PebbleServer {
    /// A builder with defaults.
    #[must_use]
    pub fn builder() -> PebbleBuilder {
        PebbleBuilder {
            dns_server: None,
            nonce_reject_percent: 0,
            http_port: None,
            tls_port: None,
            certificate_validity: None,
        }
    }

    fn wait_ready(&mut self) -> Result<(), TestkitError> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && TcpStream::connect(("127.0.0.1", self.management_port)).is_ok()
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(TestkitError::NotReady {
                    server: "pebble",
                    seconds: 0,
                    detail: format!("{status}: {}", self.log()),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(TestkitError::NotReady { server: "pebble", seconds: 30, detail: self.log() })
    }

    /// The ACME directory URL.
    #[must_use]
    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// The ACME API port (for fault injectors in front of it).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PEM file of pebble's own TLS certificate: the root to trust for
    /// the ACME API.
    #[must_use]
    pub fn tls_root_path(&self) -> &Path {
        &self.cert_path
    }

    /// The private key (PEM file) of pebble's TLS certificate, for test
    /// proxies that stand in front of pebble.
    #[must_use]
    pub fn tls_key_path(&self) -> PathBuf {
        self.dir.path().join("pebble.key")
    }

    /// The port pebble validates HTTP-01 on.
    #[must_use]
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The port pebble validates TLS-ALPN-01 on.
    #[must_use]
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// The root that signs issued certificates (PEM), from the management
    /// port. Every pebble start makes a new one.
    ///
    /// # Errors
    /// When `curl` fails.
    pub fn issuing_root_pem(&self) -> Result<String, TestkitError> {
        run(Command::new("curl")
            .args(["-sS", "--fail", "--cacert"])
            .arg(&self.cert_path)
            .arg(format!("https://127.0.0.1:{}/roots/0", self.management_port)))
    }

    /// pebble's log so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The temporary directory (config, certificate, log).
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PebbleServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
