//! A throwaway PostgreSQL server.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::{TestkitError, free_port, process::run};

/// A PostgreSQL server in a temporary directory on 127.0.0.1, trust auth,
/// user `postgres`. Stopped (immediate mode) and deleted on drop.
///
/// [`PostgresServer::builder`]`().with_tls()` starts it with `ssl=on`, a
/// server certificate for `localhost` and `127.0.0.1` issued by a fresh test
/// CA ([`tls_ca_pem`](Self::tls_ca_pem)), and only `hostssl` connections
/// allowed, so a client that connects at all used TLS.
///
/// `initdb` refuses to run as root, so the cluster is created and run as
/// the `postgres` system user (via `runuser`) when the tests run as root.
///
/// ```no_run
/// let pg = testkit::PostgresServer::start().unwrap();
/// println!("{}", pg.connection_string());
/// ```
pub struct PostgresServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// The test CA's certificate (PEM) when started with TLS.
    tls_ca_pem: Option<String>,
}

/// Options for [`PostgresServer`]; start with [`start`](Self::start).
#[derive(Debug, Default, Clone)]
pub struct PostgresBuilder {
    tls: bool,
}

impl PostgresBuilder {
    /// Serve TLS only (`ssl=on`, `hostssl` in `pg_hba.conf`), with a server
    /// certificate from a test CA made with rcgen.
    #[must_use]
    pub fn with_tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Creates the cluster and starts it; returns once it accepts connections.
    ///
    /// # Errors
    /// As [`PostgresServer::start`]; also when the certificates cannot be
    /// made or written.
    pub fn start(self) -> Result<PostgresServer, TestkitError> {
        PostgresServer::start_with(&self)
    }
}

/// A test CA and a server certificate for `localhost` + `127.0.0.1` issued by
/// it: (CA PEM, server certificate PEM, server key PEM).
fn test_ca_and_server_cert() -> Result<(String, String, String), TestkitError> {
    let err = |e: rcgen::Error| TestkitError::Io(std::io::Error::other(e));
    let ca_key = rcgen::KeyPair::generate().map_err(err)?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "testkit PostgreSQL CA");
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).map_err(err)?;
    let key = rcgen::KeyPair::generate().map_err(err)?;
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).map_err(err)?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca).map_err(err)?;
    Ok((ca.pem(), cert.pem(), key.serialize_pem()))
}

impl std::fmt::Debug for PostgresServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresServer").field("port", &self.port).finish_non_exhaustive()
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with an `initdb`.
fn find_bin_dir() -> Result<PathBuf, TestkitError> {
    let missing = || TestkitError::MissingBinary { binary: "initdb".into(), package: "postgresql" };
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| missing())?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(missing)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A command that runs `program` as `postgres` when we are root.
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

impl PostgresServer {
    /// Creates a cluster and starts it; returns once it accepts connections.
    ///
    /// # Errors
    /// [`TestkitError::MissingBinary`] when PostgreSQL is not installed;
    /// [`TestkitError::NotReady`] with the server log when it does not start.
    pub fn start() -> Result<Self, TestkitError> {
        Self::start_with(&PostgresBuilder::default())
    }

    /// Options: [`PostgresBuilder::with_tls`].
    #[must_use]
    pub fn builder() -> PostgresBuilder {
        PostgresBuilder::default()
    }

    fn start_with(options: &PostgresBuilder) -> Result<Self, TestkitError> {
        let bin = find_bin_dir()?;
        let dir = tempfile::Builder::new().prefix("testkit-pg-").tempdir()?;
        if is_root() {
            run(Command::new("chown").arg("postgres:").arg(dir.path()))?;
        }
        let data = dir.path().join("data");
        run(as_postgres(&bin.join("initdb")).arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ]))?;
        let tls_ca_pem = if options.tls { Some(write_tls_files(&data)?) } else { None };
        let server = Self { dir, bin, port: free_port()?, tls_ca_pem };
        server.restart()?;
        Ok(server)
    }

    fn wait_ready(&self, log: &Path) -> Result<(), TestkitError> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(TestkitError::NotReady {
            server: "postgresql",
            seconds: 60,
            detail: std::fs::read_to_string(log).unwrap_or_default(),
        })
    }

    /// The test CA's certificate (PEM) that issued the server certificate,
    /// when started [`with_tls`](PostgresBuilder::with_tls).
    #[must_use]
    pub fn tls_ca_pem(&self) -> Option<&str> {
        self.tls_ca_pem.as_deref()
    }

    /// The TCP port on 127.0.0.1.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A libpq connection string for the `postgres` database.
    #[must_use]
    pub fn connection_string(&self) -> String {
        format!("host=127.0.0.1 port={} user=postgres dbname=postgres", self.port)
    }

    /// A `postgres://` URL for the `postgres` database.
    #[must_use]
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (immediate shutdown) without deleting its data, so a
    /// test can restart it with [`restart`](Self::restart).
    ///
    /// # Errors
    /// When `pg_ctl stop` fails.
    pub fn stop(&self) -> Result<(), TestkitError> {
        run(as_postgres(&self.bin.join("pg_ctl")).arg("-D").arg(self.dir.path().join("data")).args([
            "-m",
            "immediate",
            "-w",
            "stop",
        ]))
        .map(drop)
    }

    /// Starts the server (again, after [`stop`](Self::stop)) on its port.
    ///
    /// # Errors
    /// When `pg_ctl start` fails.
    pub fn restart(&self) -> Result<(), TestkitError> {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        if self.tls_ca_pem.is_some() {
            // Relative to the data directory.
            options.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        let log = self.dir.path().join("log");
        run(as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-o", &options, "-l"])
            .arg(&log)
            .args(["-w", "-t", "60", "start"]))?;
        self.wait_ready(&log)
    }
}

/// Writes `server.crt` and `server.key` (`0600`: PostgreSQL refuses a key
/// others can read; owned by `postgres` when we are root) into the data
/// directory and lets only TLS connections in; returns the CA's PEM.
fn write_tls_files(data: &Path) -> Result<String, TestkitError> {
    use std::os::unix::fs::PermissionsExt;
    let (ca, cert, key) = test_ca_and_server_cert()?;
    let (crt_path, key_path) = (data.join("server.crt"), data.join("server.key"));
    std::fs::write(&crt_path, cert)?;
    std::fs::write(&key_path, key)?;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))?;
    // Only TLS over TCP; the Unix socket (pg_ctl's readiness check) stays open.
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
    )?;
    if is_root() {
        for path in [&crt_path, &key_path, &data.join("pg_hba.conf")] {
            run(Command::new("chown").arg("postgres:").arg(path))?;
        }
    }
    Ok(ca)
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
