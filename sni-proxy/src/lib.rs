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
//!   challenges and redirects everything else to HTTPS with 308;
//! - [`serve_tls`], the TLS listener: terminates with the certificate the
//!   resolver picks and forwards the plaintext to an upstream, passes chosen
//!   names through untouched (SNI read with `peek`, parsed by rustls),
//!   answers TLS-ALPN-01 (`acme-tls/1`), and with [`OnDemand`] issues
//!   certificates for unknown names that an [`AskPolicy`] allows
//!   ([`HttpAskPolicy`]: an HTTP or HTTPS endpoint answering
//!   `{"allow": true}`), behind [`AskLimits`] and a cache of
//!   [`RefusedNames`]. A name it has no certificate for gets the
//!   `unrecognized_name` alert.
//!
//! [`serve_tls_until`] stops accepting on a signal and drains the
//! connections in flight within a deadline.
//!
//! Connections idle (no byte either way) for `idle_timeout` are closed.
//!
//! This crate does not depend on any issuer. What it needs from one are the
//! small traits of `cert_store::serving`, re-exported here:
//! [`CertSource`] (certificates by name, with updates pushed to the
//! resolver, a [`CertListener`]), [`ChallengeAnswers`], [`AskPolicy`] and
//! [`Provision`]. acme-core's `CertManager` and `ChallengeResponses`
//! implement them; [`TlsConfig::from_source`] connects a `CertManager` in one
//! call: certificates load at their first handshake (start-up does not
//! depend on how many there are) and are replaced as soon as they are
//! renewed.
//!
//! The order that lets the CA reach the challenge listeners: bind, serve,
//! then provision. With acme-core, `source` is the `CertManager`, `answers`
//! its issuer's `ChallengeResponses` and provisioning starts with
//! `manager.start_background()` (acme-core's crate docs show that program
//! whole).
//!
//! ```no_run
//! # async fn run(
//! #     source: std::sync::Arc<dyn sni_proxy::CertSource>,
//! #     answers: std::sync::Arc<dyn sni_proxy::ChallengeAnswers>,
//! #     provisioning: impl Future<Output = ()> + Send + 'static,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! use sni_proxy::{Http80Config, Proxy, TlsConfig};
//!
//! // 1. bind every listener: nothing is provisioned yet
//! let tls = TlsConfig::from_source(source, "127.0.0.1:3000".parse()?).with_answers(answers.clone());
//! let bound = Proxy::new("0.0.0.0:443".parse()?, tls)
//!     .with_http("0.0.0.0:80".parse()?, Http80Config::new(answers))
//!     .bind()
//!     .await?;
//! // 2. serve, 3. then provision (renewals, the names you need)
//! let running = bound.serve_then(provisioning);
//! // … on shutdown:
//! running.shutdown().await;
//! # Ok(()) }
//! ```

mod http80;
pub mod metrics;
mod names;
mod on_demand;
mod proxy;
mod resolver;
mod routes;
mod tls;

pub use cert_store::serving::{
    AskPolicy, CertListener, CertSource, ChallengeAnswers, NoChallenges, Provision, ProvisionError,
};
/// The certificate type the serving traits hand over, and the attribute
/// that implements them: an embedder implementing a trait of this crate
/// needs no other dependency.
pub use cert_store::{CertBundle, async_trait};
pub use http80::{Http80Config, serve_http80};
pub use on_demand::{
    AskLimits, AskRefusal, AskRootError, AskUrlError, ExtraRoot, HttpAskPolicy, OnDemand, Rate, RefusedNames,
    plausible_public_name,
};
pub use proxy::{BindError, BoundProxy, Proxy, RunningProxy};
pub use resolver::{LoadError, SniResolver, certified_key};
pub use routes::{Route, Routes};
/// rustls, whose `CertifiedKey` a [`ChallengeAnswers`] returns.
pub use rustls;
pub use tls::{
    ACME_TLS_ALPN, ClientHelloSni, DEFAULT_CACHED_NAMES, TlsConfig, serve_tls, serve_tls_until,
    sni_from_client_hello,
};

/// The README's example, compiled and run as a doc test so it
/// stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
