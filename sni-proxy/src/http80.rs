//! The plain-HTTP listener: answers HTTP-01 challenges, redirects the rest
//! to HTTPS with 308.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use cert_store::ChallengeAnswers;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Incoming, header, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Semaphore};

const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Settings of the :80 listener.
#[derive(Clone)]
pub struct Http80Config {
    /// The HTTP-01 answers (acme-core's `ChallengeResponses`, which can also
    /// read answers another node published in a shared store).
    pub answers: Arc<dyn ChallengeAnswers>,
    /// The HTTPS port redirects point to (443 → no port in the URL).
    pub https_port: u16,
    /// Connections served at once; further ones wait in the accept queue.
    pub max_connections: usize,
    /// Time allowed for a client to send its request head.
    pub header_timeout: Duration,
}

impl std::fmt::Debug for Http80Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http80Config").field("https_port", &self.https_port).finish_non_exhaustive()
    }
}

impl Http80Config {
    /// Answers from `answers`; HTTPS on 443, 10,000 connections, 10 s for
    /// the request head.
    #[must_use]
    pub fn new(answers: Arc<dyn ChallengeAnswers>) -> Self {
        Self { answers, https_port: 443, max_connections: 10_000, header_timeout: Duration::from_secs(10) }
    }
}

fn response(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

/// The answer to one request.
async fn answer(config: &Http80Config, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if let Some(token) = path.strip_prefix(CHALLENGE_PREFIX) {
        return match config.answers.http01(token).await {
            Some(key_authorization) => {
                let mut r = response(StatusCode::OK, key_authorization);
                r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain"));
                r
            }
            None => response(StatusCode::NOT_FOUND, "no such challenge\n"),
        };
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| {
            h.rsplit_once(':')
                .map_or(h, |(name, port)| if port.chars().all(|c| c.is_ascii_digit()) { name } else { h })
        })
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'));
    let Some(host) = host else {
        return response(StatusCode::BAD_REQUEST, "missing or invalid Host header\n");
    };
    let port = if config.https_port == 443 { String::new() } else { format!(":{}", config.https_port) };
    let path_and_query = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{host}{port}{path_and_query}");
    let mut r = response(StatusCode::PERMANENT_REDIRECT, "");
    if let Ok(value) = header::HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, value);
    }
    r
}

/// Serves `listener` until the task is dropped: one request per connection
/// (no keep-alive), a bounded number of connections, a deadline for the
/// request head.
pub async fn serve_http80(listener: TcpListener, config: Http80Config) {
    let config = Arc::new(config);
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { return };
        let (stream, peer): (_, SocketAddr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                continue;
            }
        };
        let config = Arc::clone(&config);
        tokio::spawn(async move {
            let service = service_fn(|request: Request<Incoming>| {
                let config = Arc::clone(&config);
                async move { Ok::<_, Infallible>(answer(&config, &request).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(config.header_timeout)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "http connection ended with an error");
            }
            drop(permit);
        });
    }
}
