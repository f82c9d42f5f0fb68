//! [`Proxy`]: the listeners together, bound before anything is provisioned.

use std::{io, net::SocketAddr, time::Duration};

use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::{Http80Config, TlsConfig, serve_http80, serve_tls_until};

/// A listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// Why (address in use, permission denied …).
    #[source]
    pub source: io::Error,
}

/// The TLS listener and, optionally, the `:80` listener, configured but not
/// bound yet.
///
/// The order matters: [`bind`](Self::bind) binds every listener first, and
/// only [`BoundProxy::serve_then`] starts provisioning, so that the CA's
/// HTTP-01 and TLS-ALPN-01 validations always find a listener.
///
/// ```no_run
/// # async fn run(tls: sni_proxy::TlsConfig, http: sni_proxy::Http80Config,
/// #     provisioning: impl Future<Output = ()> + Send + 'static) {
/// use sni_proxy::Proxy;
/// let bound = Proxy::new("0.0.0.0:443".parse().unwrap(), tls)
///     .with_http("0.0.0.0:80".parse().unwrap(), http)
///     .bind()
///     .await
///     .expect("ports free");
/// // e.g. `async move { manager.start_background() }` with acme-core's CertManager
/// let running = bound.serve_then(provisioning);
/// // … later:
/// running.shutdown().await;
/// # }
/// ```
#[derive(Debug)]
pub struct Proxy {
    tls_addr: SocketAddr,
    tls: TlsConfig,
    http: Option<(SocketAddr, Http80Config)>,
    drain: Duration,
}

impl Proxy {
    /// A proxy with the TLS listener on `tls_addr`; drains for 30 s on shutdown.
    #[must_use]
    pub fn new(tls_addr: SocketAddr, tls: TlsConfig) -> Self {
        Self { tls_addr, tls, http: None, drain: Duration::from_secs(30) }
    }

    /// Adds the plain-HTTP listener (HTTP-01 answers, redirects to HTTPS).
    #[must_use]
    pub fn with_http(mut self, addr: SocketAddr, config: Http80Config) -> Self {
        self.http = Some((addr, config));
        self
    }

    /// How long [`RunningProxy::shutdown`] waits for open connections.
    #[must_use]
    pub fn drain_timeout(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    /// Binds every listener; nothing is accepted or provisioned yet.
    ///
    /// # Errors
    /// [`BindError`] naming the first address that could not be bound.
    pub async fn bind(self) -> Result<BoundProxy, BindError> {
        let listen = |addr: SocketAddr| async move {
            TcpListener::bind(addr).await.map_err(|source| BindError { addr, source })
        };
        let tls_listener = listen(self.tls_addr).await?;
        let http = match self.http {
            Some((addr, config)) => Some((listen(addr).await?, config)),
            None => None,
        };
        Ok(BoundProxy { tls_listener, tls: self.tls, http, drain: self.drain })
    }
}

/// Every listener bound (connections queue in the kernel until served).
#[derive(Debug)]
pub struct BoundProxy {
    tls_listener: TcpListener,
    tls: TlsConfig,
    http: Option<(TcpListener, Http80Config)>,
    drain: Duration,
}

impl BoundProxy {
    /// The bound TLS address (useful with port 0).
    #[must_use]
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_listener.local_addr().ok()
    }

    /// The bound `:80` address, when there is one.
    #[must_use]
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Starts serving.
    #[must_use]
    pub fn serve(self) -> RunningProxy {
        self.serve_then(async {})
    }

    /// Starts serving, then runs `provisioning` (e.g. starting
    /// `CertManager`'s background task, or `ensure` of the configured names):
    /// it cannot run before the listeners accept.
    #[must_use]
    pub fn serve_then(self, provisioning: impl Future<Output = ()> + Send + 'static) -> RunningProxy {
        let (stop, stopped) = oneshot::channel::<()>();
        let http = self.http.map(|(listener, config)| tokio::spawn(serve_http80(listener, config)));
        let tls = tokio::spawn(serve_tls_until(
            self.tls_listener,
            self.tls,
            async {
                let _ = stopped.await;
            },
            self.drain,
        ));
        let provisioning = tokio::spawn(provisioning);
        RunningProxy { stop, tls, http, provisioning }
    }
}

/// A serving proxy; dropping it leaves the tasks running until the runtime
/// ends, [`shutdown`](Self::shutdown) stops them.
#[derive(Debug)]
pub struct RunningProxy {
    stop: oneshot::Sender<()>,
    tls: JoinHandle<usize>,
    http: Option<JoinHandle<()>>,
    provisioning: JoinHandle<()>,
}

impl RunningProxy {
    /// Stops accepting, waits (up to the drain timeout) for TLS connections
    /// in flight, stops the provisioning task; returns how many TLS
    /// connections were still open when it gave up.
    pub async fn shutdown(self) -> usize {
        if let Some(http) = &self.http {
            http.abort();
        }
        let _ = self.stop.send(());
        let left = self.tls.await.unwrap_or(0);
        self.provisioning.abort();
        left
    }
}
