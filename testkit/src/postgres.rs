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
        let server = Self { dir, bin, port: free_port()? };
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
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
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

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
