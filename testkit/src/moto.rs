//! moto's AWS emulator in server mode (PyPI `moto[server]`), for Route 53.

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{TestkitError, free_port};

/// `moto_server` on a free loopback port. Killed on drop. It does not
/// check SigV4 signatures and does not answer DNS.
#[derive(Debug)]
pub struct MotoServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
}

impl MotoServer {
    /// Starts it; returns once it answers HTTP.
    ///
    /// # Errors
    /// [`TestkitError::MissingBinary`] without `moto_server`;
    /// [`TestkitError::NotReady`] with its log.
    pub fn start() -> Result<Self, TestkitError> {
        let dir = tempfile::Builder::new().prefix("testkit-moto-").tempdir()?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.path().join("moto.log"))?;
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => TestkitError::MissingBinary {
                    binary: "moto_server".into(),
                    package: "moto[server] (PyPI)",
                },
                _ => TestkitError::Io(e),
            })?;
        let mut server = Self { child: Some(child), dir, port };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            if let Some(child) = server.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(TestkitError::NotReady {
                    server: "moto_server",
                    seconds: 0,
                    detail: format!("{status}: {}", server.log()),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(TestkitError::NotReady { server: "moto_server", seconds: 60, detail: server.log() })
    }

    /// Its base URL (`http://127.0.0.1:PORT`).
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates the Route 53 hosted zone `zone`; returns its id (`Z…`).
    ///
    /// # Errors
    /// When moto does not answer with an id.
    pub fn create_hosted_zone(&self, zone: &str) -> Result<String, TestkitError> {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CreateHostedZoneRequest \
             xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Name>{zone}.</Name>\
             <CallerReference>testkit-{:x}</CallerReference></CreateHostedZoneRequest>",
            rand::random::<u64>()
        );
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "POST /2013-04-01/hostedzone HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/xml\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/route53/aws4_request, \
             SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let id = answer
            .split("<Id>")
            .nth(1)
            .and_then(|rest| rest.split("</Id>").next())
            .map(|id| id.trim_start_matches("/hostedzone/").to_owned());
        id.ok_or_else(|| TestkitError::CommandFailed {
            command: format!("CreateHostedZone {zone}"),
            detail: answer.chars().take(500).collect(),
        })
    }

    /// Its log so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
