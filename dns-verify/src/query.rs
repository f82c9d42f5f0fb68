//! Sending one query to one server: hickory's wire format over a shared,
//! ID-demultiplexed UDP socket per server, hickory's TCP client when the
//! answer is truncated, a per-query timeout, no cache.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures_util::StreamExt;
use hickory_net::{DnsHandle, NetError, client::Client, runtime::TokioRuntimeProvider, tcp::TcpClientStream};
use hickory_proto::{
    op::{DnsRequestOptions, Edns, Message, Query, ResponseCode},
    rr::{Name, RecordType},
};
use tokio::{net::UdpSocket, sync::oneshot, task::JoinHandle};

/// The error below a [`LookupError`] (I/O, wire format, hickory), shared so
/// that the error stays cheap to clone.
pub type SharedError = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why a query got no usable answer. Always temporary from the checker's
/// point of view: it becomes `LookupFailed`, never `Missing`.
///
/// ```
/// use std::error::Error as _;
/// use dns_verify::LookupError;
/// let err = LookupError::network("send failed")
///     .with_source(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
/// assert!(matches!(err, LookupError::Network { .. }));
/// assert!(err.source().is_some());
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// No answer within the per-query timeout.
    #[error("timeout after {0:?}")]
    Timeout(Duration),
    /// The server answered with an error code (SERVFAIL, REFUSED, NOTAUTH …).
    #[error("server answered {0}")]
    ServerError(String),
    /// Sending or receiving failed (connection refused, unreachable …).
    #[error("network error: {detail}")]
    Network {
        /// What failed.
        detail: String,
        /// The error below, if any.
        #[source]
        source: Option<SharedError>,
    },
    /// No authoritative server could be found for the name.
    #[error("no authoritative server found: {detail}")]
    NoAuthority {
        /// Why not.
        detail: String,
        /// The error below, if any.
        #[source]
        source: Option<SharedError>,
    },
}

impl LookupError {
    /// [`LookupError::Network`] without a source.
    ///
    /// ```
    /// let err = dns_verify::LookupError::network("socket closed");
    /// assert_eq!(err.to_string(), "network error: socket closed");
    /// ```
    pub fn network(detail: impl Into<String>) -> Self {
        Self::Network { detail: detail.into(), source: None }
    }

    /// [`LookupError::NoAuthority`] without a source.
    ///
    /// ```
    /// let err = dns_verify::LookupError::no_authority("no SOA above example.test.");
    /// assert!(err.to_string().starts_with("no authoritative server found"));
    /// ```
    pub fn no_authority(detail: impl Into<String>) -> Self {
        Self::NoAuthority { detail: detail.into(), source: None }
    }

    /// The same error with `source` attached (only [`Network`](LookupError::Network)
    /// and [`NoAuthority`](LookupError::NoAuthority) carry one; others are
    /// returned unchanged).
    ///
    /// ```
    /// use std::error::Error as _;
    /// let err = dns_verify::LookupError::no_authority("bad name").with_source(std::fmt::Error);
    /// assert!(err.source().is_some());
    /// ```
    #[must_use]
    pub fn with_source(mut self, error: impl std::error::Error + Send + Sync + 'static) -> Self {
        if let Self::Network { source, .. } | Self::NoAuthority { source, .. } = &mut self {
            *source = Some(Arc::new(error));
        }
        self
    }
}

/// Queries sent on one UDP socket before it is replaced by a fresh one on a
/// new OS-chosen port (bounds what an off-path spoofer can learn).
const QUERIES_PER_SOCKET: u32 = 20_000;
/// Age after which a UDP socket is replaced.
const SOCKET_MAX_AGE: Duration = Duration::from_secs(30);
/// EDNS payload size we advertise (DNS flag day 2020).
const EDNS_PAYLOAD: u16 = 1232;

type Pending = Arc<Mutex<HashMap<u16, oneshot::Sender<Message>>>>;

/// One connected UDP socket to one server, shared by many concurrent
/// queries and demultiplexed by message ID. hickory encodes and decodes every
/// message; this only moves datagrams. The socket is `connect`ed, so the
/// kernel drops datagrams from any other address.
struct UdpChannel {
    socket: Arc<UdpSocket>,
    pending: Pending,
    receiver: JoinHandle<()>,
    born: std::time::Instant,
    uses: u32,
}

impl Drop for UdpChannel {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

impl UdpChannel {
    async fn open(server: SocketAddr) -> std::io::Result<Self> {
        let bind: SocketAddr =
            if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let socket = Arc::new(UdpSocket::bind(bind).await?);
        socket.connect(server).await?;
        let pending: Pending = Arc::default();
        let receiver = tokio::spawn(Self::receive(Arc::clone(&socket), Arc::clone(&pending)));
        Ok(Self { socket, pending, receiver, born: std::time::Instant::now(), uses: 0 })
    }

    /// Hands each answer to the query waiting for its ID; drops the rest
    /// (late answers, garbage: a peer's bytes never panic us).
    async fn receive(socket: Arc<UdpSocket>, pending: Pending) {
        let mut buf = vec![0u8; 65_535];
        loop {
            // Errors (an ICMP "port unreachable" surfaces as ConnectionRefused)
            // are not fatal: the waiters resend once and then time out.
            let Ok(len) = socket.recv(&mut buf).await else { continue };
            let Ok(message) = Message::from_vec(&buf[..len]) else { continue };
            let waiter = pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&message.metadata.id);
            if let Some(waiter) = waiter {
                let _ = waiter.send(message);
            }
        }
    }

    fn is_fresh(&self) -> bool {
        self.uses < QUERIES_PER_SOCKET && self.born.elapsed() < SOCKET_MAX_AGE && !self.receiver.is_finished()
    }
}

/// A shared, cloneable query engine: per server one [`UdpChannel`], rotated
/// every [`QUERIES_PER_SOCKET`] queries or [`SOCKET_MAX_AGE`]; TCP (hickory's
/// client) when an answer is truncated.
#[derive(Clone)]
pub(crate) struct Querier {
    timeout: Duration,
    channels: Arc<Mutex<HashMap<SocketAddr, UdpChannel>>>,
}

impl Querier {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self { timeout, channels: Arc::default() }
    }

    async fn channel(&self, server: SocketAddr) -> Result<(Arc<UdpSocket>, Pending), LookupError> {
        {
            let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(channel) = channels.get_mut(&server)
                && channel.is_fresh()
            {
                channel.uses += 1;
                return Ok((Arc::clone(&channel.socket), Arc::clone(&channel.pending)));
            }
        }
        let channel =
            UdpChannel::open(server).await.map_err(|e| LookupError::network(e.to_string()).with_source(e))?;
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        // Another query may have opened one meanwhile: use the fresh one.
        if let Some(existing) = channels.get_mut(&server)
            && existing.is_fresh()
        {
            existing.uses += 1;
            return Ok((Arc::clone(&existing.socket), Arc::clone(&existing.pending)));
        }
        let handles = (Arc::clone(&channel.socket), Arc::clone(&channel.pending));
        // A replaced (stale) channel keeps answering its in-flight queries
        // until the last of them is done.
        if let Some(old) = channels.insert(server, channel) {
            tokio::spawn(async move {
                tokio::time::sleep(SOCKET_MAX_AGE).await;
                drop(old);
            });
        }
        Ok(handles)
    }

    async fn query_udp(
        &self,
        server: SocketAddr,
        query: &Query,
        recursion: bool,
    ) -> Result<Message, LookupError> {
        let (socket, pending) = self.channel(server).await?;
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut pending = pending.lock().unwrap_or_else(PoisonError::into_inner);
            let mut id: u16 = rand::random();
            while pending.contains_key(&id) {
                id = rand::random();
            }
            pending.insert(id, tx);
            id
        };
        let mut request = Message::query();
        request.metadata.id = id;
        request.metadata.recursion_desired = recursion;
        request.queries.push(query.clone());
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        request.edns = Some(edns);
        let forget = || pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        let bytes = request.to_vec().map_err(|e| {
            forget();
            LookupError::network(e.to_string()).with_source(e)
        })?;
        // A send error is usually an earlier ICMP "port unreachable" reported
        // late on this shared socket: treat it like a lost datagram.
        if let Err(e) = socket.send(&bytes).await {
            tracing::debug!(%server, error = %e, "send failed; will resend once");
        }
        // One resend at half the timeout covers a lost datagram.
        let mut rx = rx;
        let half = self.timeout / 2;
        let answer = match tokio::time::timeout(half, &mut rx).await {
            Ok(answer) => Ok(answer),
            Err(_) => {
                let _ = socket.send(&bytes).await;
                tokio::time::timeout(self.timeout - half, &mut rx).await
            }
        };
        match answer {
            Ok(Ok(answer)) if answer.queries.first().is_some_and(|q| same_question(q, query)) => Ok(answer),
            Ok(Ok(_)) => Err(LookupError::network("answer for another question")),
            Ok(Err(_)) => Err(LookupError::network("socket closed")),
            Err(_) => {
                forget();
                Err(LookupError::Timeout(self.timeout))
            }
        }
    }

    /// Sends `name`/`rtype` to `server` with RD set to `recursion`. NXDOMAIN
    /// is an answer (returned as a message); other error codes are errors.
    pub(crate) async fn query(
        &self,
        server: SocketAddr,
        name: &Name,
        rtype: RecordType,
        recursion: bool,
    ) -> Result<Message, LookupError> {
        let mut options = DnsRequestOptions::default();
        options.recursion_desired = recursion;
        options.use_edns = true;
        let query = Query::query(name.clone(), rtype);
        let message = self.query_udp(server, &query, recursion).await?;
        let message =
            if message.metadata.truncation { self.query_tcp(server, query, options).await? } else { message };
        match message.metadata.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => Ok(message),
            // BIND answers a CNAME loop with SERVFAIL plus the loop itself:
            // keep the records so the caller can name the loop.
            ResponseCode::ServFail if !message.answers.is_empty() => Ok(message),
            code => Err(LookupError::ServerError(code.to_string())),
        }
    }

    async fn query_tcp(
        &self,
        server: SocketAddr,
        query: Query,
        options: DnsRequestOptions,
    ) -> Result<Message, LookupError> {
        let provider = TokioRuntimeProvider::default();
        let (connect, sender) = TcpClientStream::new(server, None, Some(self.timeout), provider);
        let stream = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| LookupError::Timeout(self.timeout))?
            .map_err(|e| net_error(e, self.timeout))?;
        let (client, background) = Client::<TokioRuntimeProvider>::with_timeout(stream, sender, self.timeout);
        let task = tokio::spawn(background);
        let result = self.first(client.lookup(query, options)).await;
        task.abort();
        result
    }

    async fn first<S>(&self, mut responses: S) -> Result<Message, LookupError>
    where
        S: futures_util::Stream<Item = Result<hickory_proto::op::DnsResponse, NetError>> + Unpin,
    {
        let started = tokio::time::Instant::now();
        match tokio::time::timeout(self.timeout + Duration::from_millis(100), responses.next()).await {
            Err(_) => Err(LookupError::Timeout(self.timeout)),
            // hickory's UDP stream ends without an item when its own timer fires.
            Ok(None) if started.elapsed() >= self.timeout => Err(LookupError::Timeout(self.timeout)),
            Ok(None) => Err(LookupError::network("connection closed without an answer")),
            Ok(Some(Err(e))) => Err(net_error(e, self.timeout)),
            Ok(Some(Ok(response))) => Ok(response.into_message()),
        }
    }
}

/// Servers may change the case of the question: compare case-insensitively.
fn same_question(a: &Query, b: &Query) -> bool {
    a.query_type() == b.query_type() && a.name() == b.name()
}

fn net_error(e: NetError, timeout: Duration) -> LookupError {
    match e {
        NetError::Timeout => LookupError::Timeout(timeout),
        NetError::Dns(hickory_net::DnsError::ResponseCode(code)) => {
            LookupError::ServerError(code.to_string())
        }
        other => LookupError::network(other.to_string()).with_source(other),
    }
}
