//! [`FaultProxy`]: an HTTPS proxy in front of an ACME server (pebble) that
//! injects faults and keeps a journal of every exchange.
//!
//! Each request draws one [`Fault`] from the [`FaultPlan`] (seeded, so a
//! failing run can be replayed): dropped connections before or after the
//! upstream saw the request, 500 `serverInternal`, 503, 429 `rateLimited`
//! with `Retry-After`, or a slow answer. Everything else is forwarded
//! unchanged, `Host` included, so the CA builds its URLs with the proxy's
//! address and the client never learns the upstream's.

use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::{
    Request, Response, StatusCode,
    body::{Bytes, Incoming},
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use rand::{Rng, SeedableRng, rngs::StdRng};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use tokio::net::{TcpListener, TcpStream};

use crate::TestkitError;

/// How often each fault is injected (probabilities per request, summing to
/// at most 1), to which requests, and the seed of the draw.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    /// The connection is closed before the request reaches the upstream.
    pub drop_before: f64,
    /// The upstream processes the request; its answer is lost.
    pub drop_after: f64,
    /// 500 with an ACME `serverInternal` problem.
    pub server_error: f64,
    /// 503 with `Retry-After`.
    pub unavailable: f64,
    /// 429 with an ACME `rateLimited` problem and `Retry-After`.
    pub rate_limited: f64,
    /// The answer is delayed by [`slow_by`](Self::slow_by), then forwarded.
    pub slow: f64,
    /// The delay of a slow answer.
    pub slow_by: Duration,
    /// No answer at all: the connection is held open until the client gives up.
    pub stall: f64,
    /// Only requests whose path contains this are touched (`None`: all).
    pub only_path: Option<String>,
    /// Seed of the draw.
    pub seed: u64,
}

impl FaultPlan {
    /// No faults: a transparent proxy.
    #[must_use]
    pub fn none() -> Self {
        Self {
            drop_before: 0.0,
            drop_after: 0.0,
            server_error: 0.0,
            unavailable: 0.0,
            rate_limited: 0.0,
            slow: 0.0,
            slow_by: Duration::ZERO,
            stall: 0.0,
            only_path: None,
            seed: 0,
        }
    }

    fn draw(&self, path: &str, rng: &mut StdRng) -> Fault {
        let x: f64 = rng.random();
        if self.only_path.as_deref().is_some_and(|only| !path.contains(only)) {
            return Fault::None;
        }
        let mut edge = 0.0;
        for (p, fault) in [
            (self.drop_before, Fault::DropBefore),
            (self.drop_after, Fault::DropAfter),
            (self.server_error, Fault::ServerError),
            (self.unavailable, Fault::Unavailable),
            (self.rate_limited, Fault::RateLimited),
            (self.slow, Fault::Slow),
            (self.stall, Fault::Stall),
        ] {
            edge += p;
            if x < edge {
                return fault;
            }
        }
        Fault::None
    }
}

/// What the proxy did to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Forwarded unchanged.
    None,
    /// Connection closed; the upstream never saw the request.
    DropBefore,
    /// Forwarded; the connection closed instead of the upstream's answer.
    DropAfter,
    /// 500 `serverInternal`, not forwarded.
    ServerError,
    /// 503, not forwarded.
    Unavailable,
    /// 429 `rateLimited`, not forwarded.
    RateLimited,
    /// Forwarded after a delay.
    Slow,
    /// Never answered (the connection stays open).
    Stall,
    /// Not injected: the upstream could not be reached or broke the
    /// exchange, and the client's connection was closed.
    UpstreamFailed,
}

impl Fault {
    /// Whether the client got no usable answer.
    #[must_use]
    pub fn is_failure(self) -> bool {
        !matches!(self, Self::None | Self::Slow)
    }
}

/// One request through the proxy.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// `GET`, `HEAD`, `POST` …
    pub method: String,
    /// The path, e.g. `/order-plz`.
    pub path: String,
    /// The fault injected.
    pub fault: Fault,
    /// The decoded JWS payload of a POST, when it is JSON (`None` for POST-as-GET).
    pub payload: Option<serde_json::Value>,
    /// The upstream's status, when the request reached it.
    pub upstream_status: Option<u16>,
    /// The upstream's `Location` header.
    pub location: Option<String>,
    /// The upstream's body, when it is JSON.
    pub body: Option<serde_json::Value>,
    /// Why the upstream exchange failed ([`Fault::UpstreamFailed`]).
    pub upstream_error: Option<String>,
    /// When the request arrived.
    pub started: Instant,
    /// When the proxy was done with it.
    pub ended: Instant,
}

struct State {
    upstream: SocketAddr,
    upstream_tls: tokio_rustls::TlsConnector,
    plan: Mutex<(FaultPlan, StdRng)>,
    journal: Mutex<Vec<Exchange>>,
}

/// A fault-injecting HTTPS proxy on 127.0.0.1; stops with the runtime (or on drop).
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn io_err(e: impl std::fmt::Display) -> TestkitError {
    TestkitError::Io(std::io::Error::other(e.to_string()))
}

impl FaultProxy {
    /// Starts a proxy for `upstream` (HTTPS, trusted through `upstream_root`)
    /// presenting `cert`/`key` (PEM files) to clients.
    ///
    /// # Errors
    /// Unreadable PEM files or no loopback port.
    pub async fn start(
        upstream: SocketAddr,
        upstream_root: &Path,
        cert: &Path,
        key: &Path,
        plan: FaultPlan,
    ) -> Result<Self, TestkitError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(cert).map_err(io_err)?.collect::<Result<_, _>>().map_err(io_err)?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(io_err)?;
        let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(io_err)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(io_err)?;
        let mut roots = rustls::RootCertStore::empty();
        for root in CertificateDer::pem_file_iter(upstream_root).map_err(io_err)? {
            roots.add(root.map_err(io_err)?).map_err(io_err)?;
        }
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io_err)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let state = Arc::new(State {
            upstream,
            upstream_tls: tokio_rustls::TlsConnector::from(Arc::new(client)),
            plan: Mutex::new((plan.clone(), StdRng::seed_from_u64(plan.seed))),
            journal: Mutex::default(),
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let serving = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (acceptor, state) = (acceptor.clone(), Arc::clone(&serving));
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = service_fn(move |req| handle(Arc::clone(&state), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, state, task })
    }

    /// A proxy in front of `pebble`, presenting pebble's own TLS certificate
    /// (so clients trusting pebble trust the proxy).
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub async fn in_front_of(pebble: &crate::PebbleServer, plan: FaultPlan) -> Result<Self, TestkitError> {
        let upstream = SocketAddr::from(([127, 0, 0, 1], pebble.port()));
        let root = pebble.tls_root_path();
        Self::start(upstream, root, root, &pebble.tls_key_path(), plan).await
    }

    /// The proxy's address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The directory URL through the proxy (pebble's `/dir`).
    #[must_use]
    pub fn directory_url(&self) -> String {
        format!("https://{}/dir", self.addr)
    }

    /// Replaces the plan (the draw continues from the new plan's seed).
    pub fn set_plan(&self, plan: FaultPlan) {
        let rng = StdRng::seed_from_u64(plan.seed);
        *self.state.plan.lock().unwrap_or_else(PoisonError::into_inner) = (plan, rng);
    }

    /// Every exchange so far, in arrival order.
    #[must_use]
    pub fn journal(&self) -> Vec<Exchange> {
        self.state.journal.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// The error returned to hyper to close a connection without an answer.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fault injected: connection dropped")
    }
}

impl std::error::Error for Dropped {}

type Answer = Result<Response<Full<Bytes>>, Dropped>;

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Answer {
    let started = Instant::now();
    let (fault, slow_by) = {
        let mut plan = state.plan.lock().unwrap_or_else(PoisonError::into_inner);
        let (plan, rng) = &mut *plan;
        (plan.draw(req.uri().path(), rng), plan.slow_by)
    };
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut exchange = Exchange {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        fault,
        payload: jws_payload(&body),
        upstream_status: None,
        location: None,
        body: None,
        upstream_error: None,
        started,
        ended: started,
    };
    let answer = match fault {
        Fault::DropBefore | Fault::UpstreamFailed => Err(Dropped),
        Fault::Stall => {
            state.journal.lock().unwrap_or_else(PoisonError::into_inner).push(exchange);
            return std::future::pending().await;
        }
        Fault::ServerError => Ok(problem(500, "urn:ietf:params:acme:error:serverInternal")),
        Fault::Unavailable => Ok(problem(503, "about:blank")),
        Fault::RateLimited => Ok(problem(429, "urn:ietf:params:acme:error:rateLimited")),
        Fault::None | Fault::Slow | Fault::DropAfter => {
            if fault == Fault::Slow {
                tokio::time::sleep(slow_by).await;
            }
            match forward(&state, Request::from_parts(parts, Full::new(body))).await {
                Ok(response) => {
                    exchange.upstream_status = Some(response.status().as_u16());
                    exchange.location = response
                        .headers()
                        .get(hyper::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let (parts, body) = response.into_parts();
                    exchange.body = serde_json::from_slice(&body).ok();
                    if fault == Fault::DropAfter {
                        Err(Dropped)
                    } else {
                        Ok(Response::from_parts(parts, Full::new(body)))
                    }
                }
                Err(e) => {
                    exchange.fault = Fault::UpstreamFailed;
                    exchange.upstream_error = Some(e.to_string());
                    Err(Dropped)
                }
            }
        }
    };
    exchange.ended = Instant::now();
    state.journal.lock().unwrap_or_else(PoisonError::into_inner).push(exchange);
    answer
}

/// Sends one request to the upstream on a new connection; the whole answer.
async fn forward(state: &State, req: Request<Full<Bytes>>) -> Result<Response<Bytes>, TestkitError> {
    let tcp = TcpStream::connect(state.upstream).await?;
    let name = ServerName::IpAddress(state.upstream.ip().into());
    let tls = state.upstream_tls.connect(name, tcp).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(io_err)?;
    tokio::spawn(connection);
    let response = sender.send_request(req).await.map_err(io_err)?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(io_err)?.to_bytes();
    Ok(Response::from_parts(parts, body))
}

fn problem(status: u16, problem_type: &str) -> Response<Full<Bytes>> {
    let body = format!(r#"{{"type":"{problem_type}","detail":"injected fault","status":{status}}}"#);
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/problem+json")
        .header("retry-after", "1")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// The JSON payload of a JWS (flattened JSON serialization) body.
fn jws_payload(body: &[u8]) -> Option<serde_json::Value> {
    let jws: serde_json::Value = serde_json::from_slice(body).ok()?;
    let payload = jws.get("payload")?.as_str()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}
