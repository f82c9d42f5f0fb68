//! TLS termination and passthrough by SNI.
//!
//! - [`Proxy`] puts the listeners together: [`Proxy::bind`] binds them all,
//!   then [`BoundProxy::serve_then`] starts serving and only then runs the
//!   provisioning, so challenges always find a listener;
//! - [`Routes`]: per SNI, terminate and forward to an upstream, or pass the
//!   TLS stream through to a backend;
//! - [`SniResolver`], the lock-free certificate table that rustls asks
//!   during each handshake;
//! - [`serve_http80`], the plain-HTTP listener that answers HTTP-01
//!   challenges (from this process or, through the store, any node) and
//!   redirects everything else to HTTPS with 308;
//! - [`serve_tls`], the TLS listener: terminates with the certificate the
//!   resolver picks and forwards the plaintext to an upstream, passes chosen
//!   names through untouched (SNI read with `peek`, parsed by rustls),
//!   answers TLS-ALPN-01 (`acme-tls/1`) from acme-core's challenge
//!   responses, and with [`OnDemand`] issues certificates for unknown names
//!   that an [`AskPolicy`] allows.
//!
//! [`serve_tls_until`] stops accepting on a signal and drains the
//! connections in flight within a deadline.
//!
//! Connections idle (no byte either way) for `idle_timeout` are closed.
//!
//! With a [`CertSource`] (e.g. acme-core's `CertManager`) certificates load
//! from the store at their first handshake, so start-up does not depend on
//! how many there are; [`SniResolver::with_capacity`] bounds memory.

mod http80;
mod names;
mod on_demand;
mod proxy;
mod resolver;
mod routes;
mod tls;

pub use http80::{Http80Config, serve_http80};
pub use on_demand::{
    AskLimits, AskPolicy, CertSource, HttpAskPolicy, OnDemand, Provision, Rate, plausible_public_name,
};
pub use proxy::{BindError, BoundProxy, Proxy, RunningProxy};
pub use resolver::{SniResolver, certified_key};
pub use routes::{Route, Routes};
pub use tls::{ACME_TLS_ALPN, ClientHelloSni, TlsConfig, serve_tls, serve_tls_until, sni_from_client_hello};
