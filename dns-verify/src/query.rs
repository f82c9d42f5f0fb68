//! Sending one query to one server: hickory's client over UDP, TCP when the
//! answer is truncated, a per-query timeout, no cache.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures_util::StreamExt;
use hickory_net::{
    DnsHandle, NetError, client::Client, runtime::TokioRuntimeProvider, tcp::TcpClientStream,
    udp::UdpClientStream,
};
use hickory_proto::{
    op::{DnsRequestOptions, Message, Query, ResponseCode},
    rr::{Name, RecordType},
};

/// Why a query got no usable answer. Always temporary from the checker's
/// point of view: it becomes `LookupFailed`, never `Missing`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// No answer within the per-query timeout.
    #[error("timeout after {0:?}")]
    Timeout(Duration),
    /// The server answered with an error code (SERVFAIL, REFUSED, NOTAUTH …).
    #[error("server answered {0}")]
    ServerError(String),
    /// Sending or receiving failed (connection refused, unreachable …).
    #[error("network error: {0}")]
    Network(String),
    /// No authoritative server could be found for the name.
    #[error("no authoritative server found: {0}")]
    NoAuthority(String),
}

/// A shared, cloneable query engine: one multiplexed UDP client per server.
#[derive(Clone)]
pub(crate) struct Querier {
    timeout: Duration,
    clients: Arc<Mutex<HashMap<SocketAddr, Client<TokioRuntimeProvider>>>>,
}

impl Querier {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self { timeout, clients: Arc::default() }
    }

    fn udp_client(&self, server: SocketAddr) -> Client<TokioRuntimeProvider> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients
            .entry(server)
            .or_insert_with(|| {
                let stream = UdpClientStream::builder(server, TokioRuntimeProvider::default())
                    .with_timeout(Some(self.timeout))
                    .build();
                let (client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
                tokio::spawn(background);
                client
            })
            .clone()
    }

    fn forget(&self, server: SocketAddr) {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner).remove(&server);
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
        let client = self.udp_client(server);
        let message = match self.first(client.lookup(query.clone(), options)).await {
            Ok(m) => m,
            Err(e) => {
                if !matches!(e, LookupError::Timeout(_)) {
                    self.forget(server);
                }
                return Err(e);
            }
        };
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
            Ok(None) => Err(LookupError::Network("connection closed without an answer".into())),
            Ok(Some(Err(e))) => Err(net_error(e, self.timeout)),
            Ok(Some(Ok(response))) => Ok(response.into_message()),
        }
    }
}

fn net_error(e: NetError, timeout: Duration) -> LookupError {
    match e {
        NetError::Timeout => LookupError::Timeout(timeout),
        NetError::Dns(hickory_net::DnsError::ResponseCode(code)) => {
            LookupError::ServerError(code.to_string())
        }
        other => LookupError::Network(other.to_string()),
    }
}
