//! The TLS listener: terminates TLS with the certificate [`SniResolver`]
//! picks and forwards the plaintext to an upstream; answers TLS-ALPN-01.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use cert_store::{CertSource, ChallengeAnswers, NoChallenges};
use rustls::{
    ServerConfig,
    server::{Acceptor, ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};
use tokio_rustls::LazyConfigAcceptor;

use crate::{Route, Routes, SniResolver};

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Settings of the TLS listener.
#[derive(Clone)]
pub struct TlsConfig {
    /// Certificates by SNI.
    pub resolver: Arc<SniResolver>,
    /// TLS-ALPN-01 answers (acme-core's `ChallengeResponses`); none by default.
    pub answers: Arc<dyn ChallengeAnswers>,
    /// Per SNI: terminate and forward the plaintext to an upstream, or pass
    /// the TLS stream through to a backend. Changeable while serving.
    pub routes: Arc<Routes>,
    /// Time allowed for the ClientHello, and again for the rest of the
    /// handshake (an on-demand pass in between — storage read, ask, wait for
    /// an issuance permit, issuance — is bounded by [`OnDemand::timeout`](crate::OnDemand::timeout)).
    pub handshake_timeout: Duration,
    /// Connections served at once; further ones wait in the accept queue.
    pub max_connections: usize,
    /// Loads certificates missing from the resolver at their first handshake
    /// (start-up is instant however many the store holds). Set only by
    /// [`TlsConfig::from_source`], which also subscribes the resolver to it,
    /// so that a renewed certificate is never left unserved.
    source: Option<Arc<dyn CertSource>>,
    /// Issue certificates for unknown names during the handshake (off by default).
    pub on_demand: Option<crate::OnDemand>,
    /// A connection with no bytes in either direction for this long is
    /// closed (default 5 min).
    pub idle_timeout: Duration,
    /// ALPN protocols offered to clients, in preference order: what the
    /// upstreams speak (default `http/1.1`; add `h2` first when they speak
    /// HTTP/2 in cleartext, since bytes are forwarded unchanged).
    pub alpn_protocols: Vec<Vec<u8>>,
    /// TLS 1.3 session tickets sent after each full handshake (default 1,
    /// as Go's `crypto/tls`): stateless, sealed with a key rustls rotates
    /// every 6 hours, so resumption needs no server-side cache. 0 turns
    /// resumption off (no ticket is made or sent: one encryption and about
    /// 250 bytes less per handshake, for fleets whose clients never resume).
    /// rustls's own default is 2 tickets backed by a locked 256-entry cache.
    pub session_tickets: usize,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig").field("routes", &self.routes).finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Serves the certificates inserted into `resolver` (by hand, see
    /// [`SniResolver::insert_bundle`]); every name terminated and forwarded to
    /// `upstream` (add routes with [`Routes::set`]); no challenge answers (add
    /// them with [`with_answers`](Self::with_answers)); 10 s handshake
    /// timeout, 5 min idle timeout, 10,000 connections. Names the resolver
    /// does not have get the `unrecognized_name` alert.
    #[must_use]
    pub fn new(resolver: Arc<SniResolver>, upstream: SocketAddr) -> Self {
        Self {
            resolver,
            answers: Arc::new(NoChallenges),
            routes: Arc::new(Routes::new(Route::Terminate(upstream))),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            source: None,
            on_demand: None,
            idle_timeout: Duration::from_secs(300),
            alpn_protocols: vec![b"http/1.1".to_vec()],
            session_tickets: 1,
        }
    }

    /// Serves what `source` has (e.g. acme-core's `CertManager`): a
    /// certificate is loaded at its name's first handshake into a resolver
    /// holding up to [`DEFAULT_CACHED_NAMES`] names, and replaced or dropped
    /// as soon as the source says it was issued, renewed or removed.
    /// Otherwise as [`new`](Self::new).
    #[must_use]
    pub fn from_source(source: Arc<dyn CertSource>, upstream: SocketAddr) -> Self {
        Self::from_source_with(Arc::new(SniResolver::with_capacity(DEFAULT_CACHED_NAMES)), source, upstream)
    }

    /// [`from_source`](Self::from_source) with a resolver of your own (its
    /// capacity, or names inserted by hand beside the source's).
    #[must_use]
    pub fn from_source_with(
        resolver: Arc<SniResolver>,
        source: Arc<dyn CertSource>,
        upstream: SocketAddr,
    ) -> Self {
        source.subscribe(Arc::clone(&resolver) as Arc<dyn cert_store::CertListener>);
        let mut config = Self::new(resolver, upstream);
        config.source = Some(source);
        config
    }

    /// The certificate source, when the configuration was made by
    /// [`from_source`](Self::from_source). Without one, only the names
    /// inserted into the resolver are served (the listener logs this at start).
    #[must_use]
    pub fn source(&self) -> Option<&Arc<dyn CertSource>> {
        self.source.as_ref()
    }

    /// Answers TLS-ALPN-01 challenges from `answers` (acme-core's
    /// `ChallengeResponses`).
    #[must_use]
    pub fn with_answers(mut self, answers: Arc<dyn ChallengeAnswers>) -> Self {
        self.answers = answers;
        self
    }

    /// Issues certificates for unknown names during the handshake.
    #[must_use]
    pub fn with_on_demand(mut self, on_demand: crate::OnDemand) -> Self {
        self.on_demand = Some(on_demand);
        self
    }
}

/// Names kept in memory by [`TlsConfig::from_source`]'s resolver; others
/// are loaded again from the source at their next handshake.
pub const DEFAULT_CACHED_NAMES: usize = 100_000;

/// Presents one TLS-ALPN-01 challenge certificate.
#[derive(Debug)]
struct ChallengeResolver(Arc<CertifiedKey>);

impl ResolvesServerCert for ChallengeResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// ring's cipher suites with AES-128-GCM first in each protocol version,
/// chosen by the server whatever order the client lists them in (what Go's
/// `crypto/tls` does on hardware with AES instructions): its SHA-256
/// transcript and key schedule cost a fraction of AES-256-GCM-SHA384's
/// SHA-384 (SHA-256 has CPU instructions here, SHA-512 has none), and
/// AES-128 is as secure for TLS.
fn provider() -> rustls::crypto::CryptoProvider {
    use rustls::CipherSuite as S;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|suite| match suite.suite() {
        S::TLS13_AES_128_GCM_SHA256 => 0,
        S::TLS13_AES_256_GCM_SHA384 => 1,
        S::TLS13_CHACHA20_POLY1305_SHA256 => 2,
        S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 3,
        _ => 4,
    });
    provider
}

/// The rustls configuration of terminated connections: server's cipher
/// order (see [`provider`]), `tickets` stateless TLS 1.3 tickets (0: no
/// resumption at all).
fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
    alpn: Vec<Vec<u8>>,
    tickets: usize,
) -> Option<Arc<ServerConfig>> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .ok()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn;
    config.ignore_client_order = true;
    config.send_tls13_tickets = tickets;
    if tickets == 0 {
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    } else {
        config.ticketer = rustls::crypto::ring::Ticketer::new().ok()?;
    }
    Some(Arc::new(config))
}

/// A fatal `unrecognized_name` alert (RFC 6066 §3, code 112) as a plaintext
/// TLS record: what a client is told when no certificate is served for the
/// name it asked for.
const UNRECOGNIZED_NAME_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112];

/// Why a handshake ended without a connection to serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
enum HandshakeError {
    /// The client sent no complete ClientHello in time.
    #[error("timed out waiting for the ClientHello")]
    ClientHelloTimeout,
    /// The handshake did not complete in time.
    #[error("handshake timed out")]
    Timeout,
    /// No certificate for the requested name: `unrecognized_name` was sent.
    #[error("no certificate for {sni:?}: sent unrecognized_name")]
    UnrecognizedName {
        /// The server name asked for (empty: none).
        sni: String,
    },
    /// The TLS exchange or the connection failed.
    #[error("TLS handshake failed")]
    Io(#[source] std::io::Error),
}

impl HandshakeError {
    /// The `result` label of [`crate::metrics::HANDSHAKES`]: a name on-demand
    /// issuance refused is `refused`, any other name without a certificate `unknown_name`.
    fn metric_result(&self, config: &TlsConfig) -> &'static str {
        use crate::metrics::result;
        match self {
            Self::ClientHelloTimeout | Self::Timeout => result::TIMEOUT,
            Self::UnrecognizedName { sni } => {
                if config.on_demand.as_ref().is_some_and(|on_demand| on_demand.refused.contains(sni)) {
                    result::REFUSED
                } else {
                    result::UNKNOWN_NAME
                }
            }
            Self::Io(_) => result::ERROR,
        }
    }
}

/// Serves `listener` until the task is dropped (see [`serve_tls_until`] for a
/// graceful stop).
pub async fn serve_tls(listener: TcpListener, config: TlsConfig) {
    serve_tls_until(listener, config, std::future::pending::<()>(), Duration::ZERO).await;
}

/// Like [`serve_tls`], until `shutdown` completes: then stops accepting (the
/// listener is closed) and waits up to `drain` for the connections in flight
/// to finish; returns how many were still open when it gave up.
pub async fn serve_tls_until(
    listener: TcpListener,
    config: TlsConfig,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> usize {
    let terminate =
        server_config(config.resolver.clone(), config.alpn_protocols.clone(), config.session_tickets);
    let Some(terminate) = terminate else {
        tracing::error!("cannot build the TLS configuration");
        return 0;
    };
    if config.source.is_none() && config.on_demand.is_none() {
        tracing::info!(
            names = config.resolver.len(),
            "TLS listener has no certificate source: only names inserted into its resolver are served, \
             others get unrecognized_name (TlsConfig::from_source connects a CertManager)"
        );
    }
    let config = Arc::new(config);
    let max = config.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = async {
                let permit = Arc::clone(&permits).acquire_owned().await.ok()?;
                let (tcp, peer) = listener.accept().await.ok()?;
                Some((permit, tcp, peer))
            } => accepted,
        };
        let Some((permit, tcp, peer)) = accepted else {
            // accept() failed (e.g. out of file descriptors): do not spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (config, terminate) = (Arc::clone(&config), Arc::clone(&terminate));
        tokio::spawn(async move {
            // The permit is returned when the connection is done, however it ends.
            let _permit = permit;
            let _open = crate::metrics::OpenConnection::open();
            serve_connection(tcp, peer, &config, &terminate).await;
        });
    }
    drop(listener);
    // Drained when every connection has returned its permit.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    match tokio::time::timeout(drain, permits.acquire_many(all)).await {
        Ok(_) => 0,
        Err(_) => max - permits.available_permits(),
    }
}

/// One accepted connection: passed through, answered as a TLS-ALPN-01
/// challenge, or terminated and forwarded, as its route says.
async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    config: &TlsConfig,
    terminate: &Arc<ServerConfig>,
) {
    let started = tokio::time::Instant::now();
    if config.routes.has_passthrough() {
        let Ok(sni) = tokio::time::timeout(config.handshake_timeout, peek_sni(&tcp)).await else {
            tracing::debug!(%peer, "timed out waiting for the ClientHello");
            crate::metrics::handshake(crate::metrics::result::TIMEOUT, crate::metrics::route::TERMINATE);
            return;
        };
        let sni = sni.unwrap_or_default();
        if let Route::Passthrough(backend) = config.routes.route(&sni) {
            crate::metrics::handshake(crate::metrics::result::OK, crate::metrics::route::PASSTHROUGH);
            passthrough(tcp, peer, &sni, backend, started, config.idle_timeout).await;
            return;
        }
    }
    let handshaken = handshake(tcp, peer, config, terminate).await;
    let (result, route) = match &handshaken {
        Err(e) => (e.metric_result(config), crate::metrics::route::TERMINATE),
        Ok(Handshaken::Challenge { .. }) => (crate::metrics::result::OK, crate::metrics::route::CHALLENGE),
        Ok(Handshaken::Terminated { .. }) => (crate::metrics::result::OK, crate::metrics::route::TERMINATE),
    };
    crate::metrics::handshake(result, route);
    match handshaken {
        Err(e) => {
            let error = &e as &(dyn std::error::Error + 'static);
            tracing::debug!(%peer, error, "handshake failed");
        }
        Ok(Handshaken::Challenge { sni }) => tracing::info!(%peer, %sni, "answered TLS-ALPN-01"),
        Ok(Handshaken::Terminated { sni, mut tls }) => {
            let Route::Terminate(upstream) = config.routes.route(&sni) else {
                // The route became passthrough during the handshake: too late for this one.
                let _ = tls.shutdown().await;
                return;
            };
            // HTTP clients speak first: the upstream connection waits for
            // their first bytes, so a client that only handshakes (or goes
            // away) costs the upstream nothing. Other protocols may have the
            // server speak first: connected at once.
            let mut first = Vec::new();
            if client_speaks_first(tls.get_ref().1.alpn_protocol()) {
                use tokio::io::AsyncReadExt;
                first.reserve(SPLICE_BUFFER);
                match tokio::time::timeout(config.idle_timeout, tls.read_buf(&mut first)).await {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => {
                        tracing::debug!(%peer, %sni, route = "terminate", duration = ?started.elapsed(), "closed before a request");
                        let _ = tls.shutdown().await;
                        return;
                    }
                }
            }
            match TcpStream::connect(upstream).await {
                Ok(mut upstream) => {
                    let _ = upstream.set_nodelay(true);
                    if !first.is_empty() && upstream.write_all(&first).await.is_err() {
                        let _ = tls.shutdown().await;
                        return;
                    }
                    drop(first);
                    let copied = splice(*tls, upstream, config.idle_timeout).await;
                    tracing::debug!(%peer, %sni, route = "terminate", ?copied, duration = ?started.elapsed(), "connection closed");
                }
                Err(e) => {
                    tracing::warn!(%peer, %sni, error = %e, "upstream unreachable");
                    let _ = tls.shutdown().await;
                }
            }
        }
    }
}

/// Whether the negotiated protocol has the client send the first bytes
/// (HTTP/1.x and HTTP/2 do; without ALPN nothing is known).
fn client_speaks_first(alpn: Option<&[u8]>) -> bool {
    matches!(alpn, Some(b"http/1.1" | b"http/1.0" | b"h2"))
}

/// Brings the certificate for `sni` into the resolver: from the store, else
/// (when enabled and allowed) by on-demand issuance. With [`OnDemand`](crate::OnDemand),
/// the store read is part of its pass (shared by concurrent handshakes for the
/// name, skipped for a name refused recently, bounded by its timeout).
async fn load_or_issue(config: &TlsConfig, sni: &str, peer: SocketAddr) {
    let bundle = match (&config.on_demand, &config.source) {
        (Some(on_demand), source) => on_demand.resolve(sni, peer.ip(), source.as_ref()).await,
        (None, Some(source)) => source.certificate(sni).await,
        (None, None) => None,
    };
    if let Some(bundle) = bundle
        && let Err(e) = config.resolver.insert_bundle(&bundle)
    {
        let error = &e as &(dyn std::error::Error + 'static);
        tracing::warn!(%sni, error, "stored certificate could not be loaded");
    }
}

/// Bytes read at once per direction: large enough that bulk transfers make
/// few system calls, small enough for many thousands of connections.
const SPLICE_BUFFER: usize = 32 * 1024;

/// Copies both ways until both sides are done, an error, or `idle` passes
/// with no byte in either direction. Returns (client→upstream, upstream→client).
async fn splice<A, B>(a: A, b: B, idle: Duration) -> (u64, u64)
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = tokio::io::split(b);
    splice_halves((ar, aw), (br, bw), idle).await
}

/// [`splice`] on the two halves of each side (TCP streams split without a lock).
async fn splice_halves<AR, AW, BR, BW>(a: (AR, AW), b: (BR, BW), idle: Duration) -> (u64, u64)
where
    AR: tokio::io::AsyncRead + Unpin,
    AW: tokio::io::AsyncWrite + Unpin,
    BR: tokio::io::AsyncRead + Unpin,
    BW: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncReadExt;
    let ((mut ar, mut aw), (mut br, mut bw)) = (a, b);
    // Not zeroed: read_buf fills spare capacity (no memset per connection).
    let (mut abuf, mut bbuf) = (Vec::with_capacity(SPLICE_BUFFER), Vec::with_capacity(SPLICE_BUFFER));
    let (mut a_open, mut b_open) = (true, true);
    let (mut up, mut down) = (0u64, 0u64);
    while a_open || b_open {
        tokio::select! {
            read = { abuf.clear(); ar.read_buf(&mut abuf) }, if a_open => match read {
                Ok(0) | Err(_) => {
                    a_open = false;
                    let _ = bw.shutdown().await;
                }
                Ok(n) => {
                    if bw.write_all(&abuf[..n]).await.is_err() {
                        break;
                    }
                    up += n as u64;
                }
            },
            read = { bbuf.clear(); br.read_buf(&mut bbuf) }, if b_open => match read {
                Ok(0) | Err(_) => {
                    b_open = false;
                    let _ = aw.shutdown().await;
                }
                Ok(n) => {
                    if aw.write_all(&bbuf[..n]).await.is_err() {
                        break;
                    }
                    down += n as u64;
                }
            },
            () = tokio::time::sleep(idle) => {
                tracing::debug!("closing an idle connection");
                break;
            }
        }
    }
    (up, down)
}

/// What the first bytes of a connection say about its server name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientHelloSni {
    /// A whole ClientHello: its server name, if it sent one.
    Complete(Option<String>),
    /// The bytes so far are a valid start: more are needed.
    Incomplete,
    /// Not a TLS ClientHello.
    Invalid,
}

/// Parses the SNI out of the bytes a client sent first, with rustls's own
/// ClientHello parser (the same one the handshake uses); never panics, for
/// any bytes. Pure: the listener feeds it what `peek` returned.
///
/// ```
/// use sni_proxy::{ClientHelloSni, sni_from_client_hello};
/// assert_eq!(sni_from_client_hello(b"GET / HTTP/1.1\r\n\r\n"), ClientHelloSni::Invalid);
/// assert_eq!(sni_from_client_hello(&[0x16, 0x03, 0x01]), ClientHelloSni::Incomplete);
/// ```
#[must_use]
pub fn sni_from_client_hello(bytes: &[u8]) -> ClientHelloSni {
    let mut acceptor = Acceptor::default();
    let mut rest = bytes;
    while !rest.is_empty() {
        match acceptor.read_tls(&mut rest) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => return ClientHelloSni::Invalid,
        }
    }
    match acceptor.accept() {
        Ok(Some(accepted)) => {
            ClientHelloSni::Complete(accepted.client_hello().server_name().map(str::to_owned))
        }
        Ok(None) => ClientHelloSni::Incomplete,
        Err(_) => ClientHelloSni::Invalid,
    }
}

/// The SNI of the ClientHello waiting on `tcp`, read with `peek` (nothing is
/// consumed) and parsed by [`sni_from_client_hello`].
async fn peek_sni(tcp: &TcpStream) -> Option<String> {
    let mut buf = vec![0u8; 16 * 1024 + 5];
    let mut seen = 0;
    loop {
        let n = tcp.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        match sni_from_client_hello(&buf[..n]) {
            ClientHelloSni::Complete(sni) => return sni,
            ClientHelloSni::Incomplete if n < buf.len() => {
                // More of the ClientHello is on its way: wait for new bytes.
                if n == seen {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                seen = n;
            }
            _ => return None,
        }
    }
}

/// Splices the untouched TLS stream to `backend`.
async fn passthrough(
    mut tcp: TcpStream,
    peer: SocketAddr,
    sni: &str,
    backend: SocketAddr,
    started: tokio::time::Instant,
    idle: Duration,
) {
    match TcpStream::connect(backend).await {
        Ok(mut upstream) => {
            let _ = upstream.set_nodelay(true);
            let copied = splice_halves(tcp.split(), upstream.split(), idle).await;
            tracing::debug!(%peer, %sni, route = "passthrough", ?copied, duration = ?started.elapsed(), "connection closed");
        }
        Err(e) => tracing::warn!(%peer, %sni, error = %e, "passthrough backend unreachable"),
    }
}

enum Handshaken {
    Challenge { sni: String },
    Terminated { sni: String, tls: Box<tokio_rustls::server::TlsStream<TcpStream>> },
}

/// Reads the ClientHello and completes the handshake, each step within
/// `handshake_timeout`; an on-demand issuance in between has its own bound.
/// A name with no certificate gets `unrecognized_name`.
async fn handshake(
    tcp: TcpStream,
    peer: SocketAddr,
    config: &TlsConfig,
    terminate: &Arc<ServerConfig>,
) -> Result<Handshaken, HandshakeError> {
    let deadline = config.handshake_timeout;
    let mut start = tokio::time::timeout(deadline, LazyConfigAcceptor::new(Acceptor::default(), tcp))
        .await
        .map_err(|_| HandshakeError::ClientHelloTimeout)?
        .map_err(HandshakeError::Io)?;
    let hello = start.client_hello();
    let sni = hello.server_name().unwrap_or_default().to_owned();
    let is_challenge = hello
        .alpn()
        .is_some_and(|mut protocols| protocols.next() == Some(ACME_TLS_ALPN) && protocols.next().is_none());
    let server_config = if is_challenge {
        let answer = if sni.is_empty() { None } else { config.answers.tls_alpn01(&sni).await };
        answer
            .and_then(|key| server_config(Arc::new(ChallengeResolver(key)), vec![ACME_TLS_ALPN.to_vec()], 0))
    } else {
        if !sni.is_empty() && config.resolver.lookup(&sni).is_none() {
            load_or_issue(config, &sni, peer).await;
        }
        config.resolver.serves(&sni).then(|| Arc::clone(terminate))
    };
    let Some(server_config) = server_config else {
        // rustls would answer a missing certificate with access_denied.
        let _ = start.io.write_all(&UNRECOGNIZED_NAME_ALERT).await;
        let _ = start.io.shutdown().await;
        return Err(HandshakeError::UnrecognizedName { sni });
    };
    let mut tls = tokio::time::timeout(deadline, start.into_stream(server_config))
        .await
        .map_err(|_| HandshakeError::Timeout)?
        .map_err(HandshakeError::Io)?;
    if is_challenge {
        let _ = tls.shutdown().await;
        return Ok(Handshaken::Challenge { sni });
    }
    Ok(Handshaken::Terminated { sni, tls: Box::new(tls) })
}
