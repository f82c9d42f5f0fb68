//! chromedriver driving headless Chromium (Debian `chromium` + `chromium-driver`).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{TestkitError, free_port};

/// chromedriver on loopback (a free port),
/// ready for WebDriver sessions of headless Chromium. Killed on drop.
///
/// ```no_run
/// let driver = testkit::ChromeDriver::start().unwrap();
/// let capabilities = driver.capabilities(360, 740);
/// println!("{} {capabilities:?}", driver.url());
/// ```
#[derive(Debug)]
pub struct ChromeDriver {
    child: Child,
    port: u16,
    chromium: PathBuf,
    dir: tempfile::TempDir,
}

fn find(candidates: &[&str], binary: &str, package: &'static str) -> Result<PathBuf, TestkitError> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or(TestkitError::MissingBinary { binary: binary.into(), package })
}

impl ChromeDriver {
    /// Starts chromedriver and waits until its `/status` says it is ready.
    ///
    /// # Errors
    /// [`TestkitError::MissingBinary`] without `chromium` or
    /// `chromium-driver`; [`TestkitError::NotReady`] with its log when it
    /// does not start within 30 s.
    pub fn start() -> Result<Self, TestkitError> {
        let chromium = find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"], "chromium", "chromium")?;
        let driver = find(&["/usr/bin/chromedriver"], "chromedriver", "chromium-driver")?;
        let dir = tempfile::Builder::new().prefix("testkit-chromedriver-").tempdir()?;
        let port = free_port()?;
        let log = dir.path().join("chromedriver.log");
        // Its own process group, so the browsers it starts are killed with it.
        let child = Command::new(driver)
            .process_group(0)
            // Without --allowed-ips it listens on loopback only (127.0.0.1 and ::1).
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut driver = Self { child, port, chromium, dir };
        driver.wait_ready()?;
        Ok(driver)
    }

    fn wait_ready(&mut self) -> Result<(), TestkitError> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if self.status().is_some_and(|s| s.contains("\"ready\":true")) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(TestkitError::NotReady {
                    server: "chromedriver",
                    seconds: 0,
                    detail: format!("{status}: {}", self.log()),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(TestkitError::NotReady { server: "chromedriver", seconds: 30, detail: self.log() })
    }

    /// The body of `GET /status`, if chromedriver answers.
    fn status(&self) -> Option<String> {
        let mut s = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(500)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
        // It may keep the connection open: read until the JSON's end, EOF or the timeout.
        let mut out = Vec::new();
        let mut chunk = [0u8; 2048];
        while let Ok(n @ 1..) = s.read(&mut chunk) {
            out.extend_from_slice(&chunk[..n]);
            if out.ends_with(b"}}") {
                break;
            }
        }
        Some(String::from_utf8_lossy(&out).replace(' ', ""))
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The WebDriver URL (`http://127.0.0.1:<port>`).
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Capabilities of a headless Chromium session with a window of
    /// `width` × `height` CSS pixels, its profile in this driver's
    /// directory, no sandbox (tests run as root), no first-run UI, and no
    /// network but what the page asks for.
    #[must_use]
    pub fn capabilities(&self, width: u32, height: u32) -> serde_json::Map<String, serde_json::Value> {
        let profile = self.dir.path().join(format!("profile-{}", rand::random::<u64>()));
        let options = serde_json::json!({
            "binary": self.chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                format!("--window-size={width},{height}"),
                format!("--user-data-dir={}", profile.display()),
            ],
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), "chrome".into());
        capabilities.insert("goog:chromeOptions".into(), options);
        capabilities
    }

    /// chromedriver's log so far (for failure messages).
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("chromedriver.log")
    }

    /// The driver's directory (its log, the browser profiles).
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The group: chromedriver and every Chromium process it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
