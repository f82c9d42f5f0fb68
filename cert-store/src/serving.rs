//! The serving vocabulary: small traits that a TLS server uses and an issuer
//! implements, so that neither depends on the other.
//!
//! sni-proxy takes these as trait objects; acme-core's `ChallengeResponses`
//! implements [`ChallengeAnswers`] and its `CertManager` implements
//! [`CertSource`] and [`Provision`]. An embedder can implement any of them for
//! its own types (its certificates from elsewhere, its own issuance queue, its
//! own policy), with [`async_trait`](crate::async_trait) re-exported by this crate.
//!
//! | trait | asked by the server | when |
//! |---|---|---|
//! | [`ChallengeAnswers`] | HTTP-01 key authorizations, TLS-ALPN-01 certificates | a CA validates |
//! | [`CertSource`] | the certificate for a server name; updates pushed to a [`CertListener`] | first handshake for a name, issuance, renewal, removal |
//! | [`AskPolicy`] | may this unknown name get a certificate? | on-demand TLS |
//! | [`Provision`] | issue (or load) the certificate for a name now | on-demand TLS, after the policy allowed it |

use std::{net::IpAddr, sync::Arc};

use async_trait::async_trait;
use rustls::sign::CertifiedKey;

use crate::CertBundle;

/// A boxed error kept as the source of a [`ProvisionError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The answers to the CA's HTTP-01 and TLS-ALPN-01 challenges that a server
/// publishes while an order is being validated.
///
/// ```
/// use std::sync::Arc;
/// use cert_store::{ChallengeAnswers, async_trait};
///
/// /// One fixed HTTP-01 answer (a test double).
/// struct One(&'static str, &'static str);
///
/// #[async_trait]
/// impl ChallengeAnswers for One {
///     async fn http01(&self, token: &str) -> Option<String> {
///         (token == self.0).then(|| self.1.to_owned())
///     }
///     async fn tls_alpn01(&self, _server_name: &str) -> Option<Arc<rustls::sign::CertifiedKey>> {
///         None
///     }
/// }
/// ```
#[async_trait]
pub trait ChallengeAnswers: Send + Sync {
    /// The key authorization to serve at `/.well-known/acme-challenge/<token>`.
    async fn http01(&self, token: &str) -> Option<String>;

    /// The challenge certificate (RFC 8737) to present for `server_name`
    /// when the client offers exactly the ALPN protocol `acme-tls/1`.
    async fn tls_alpn01(&self, server_name: &str) -> Option<Arc<CertifiedKey>>;
}

/// No challenge is ever answered: for servers whose certificates come from
/// a local CA, from DNS-01, or from the embedder.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoChallenges;

#[async_trait]
impl ChallengeAnswers for NoChallenges {
    async fn http01(&self, _token: &str) -> Option<String> {
        None
    }

    async fn tls_alpn01(&self, _server_name: &str) -> Option<Arc<CertifiedKey>> {
        None
    }
}

/// Told when the certificate served for names changes (issued, renewed,
/// imported, removed). sni-proxy's `SniResolver` implements it, so a renewed
/// certificate is served from the next handshake on.
pub trait CertListener: Send + Sync {
    /// `bundle` is now the certificate for every name it carries.
    fn updated(&self, bundle: &CertBundle);

    /// `name` (a hostname or `*.parent`) is no longer served from here.
    fn removed(&self, name: &str);
}

/// Where a server finds the certificate for a name it has not loaded yet,
/// and hears about new ones.
#[async_trait]
pub trait CertSource: Send + Sync {
    /// The certificate for a TLS server name: the exact name, else the
    /// single-level wildcard. `None` when there is none (the server then
    /// answers `unrecognized_name`).
    async fn certificate(&self, server_name: &str) -> Option<Arc<CertBundle>>;

    /// Registers `listener` to be told about every certificate issued,
    /// renewed, imported or removed from now on. The default does nothing:
    /// a source that never changes has nothing to tell.
    fn subscribe(&self, listener: Arc<dyn CertListener>) {
        let _ = listener;
    }
}

/// Decides whether a certificate may be issued for a name seen in a
/// handshake (on-demand TLS). Implementations should answer quickly and fail
/// closed.
#[async_trait]
pub trait AskPolicy: Send + Sync {
    /// Whether `name`, asked for by `client`, may get a certificate.
    async fn allow(&self, name: &str, client: IpAddr) -> bool;
}

/// Issues (or loads) the certificate for a name, while a handshake waits.
#[async_trait]
pub trait Provision: Send + Sync {
    /// The certificate for `name`, issuing it if needed.
    ///
    /// # Errors
    /// [`ProvisionError`]: temporary (try again later) or permanent, with
    /// the issuer's own error as its source.
    async fn provision(&self, name: &str) -> Result<Arc<CertBundle>, ProvisionError>;
}

/// Why [`Provision::provision`] produced no certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisionError {
    /// The issuer failed for a reason that may pass (CA down, rate limit,
    /// DNS not there yet); a later handshake may succeed.
    #[error("no certificate for {name} yet (temporary)")]
    Temporary {
        /// The name asked for.
        name: String,
        /// The issuer's error.
        #[source]
        source: BoxError,
    },
    /// The issuer refused or failed in a way that needs a person.
    #[error("no certificate for {name}")]
    Permanent {
        /// The name asked for.
        name: String,
        /// The issuer's error.
        #[source]
        source: BoxError,
    },
}

impl ProvisionError {
    /// The name asked for.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::Temporary { name, .. } | Self::Permanent { name, .. } => name,
        }
    }

    /// Whether a later attempt may succeed.
    #[must_use]
    pub fn is_temporary(&self) -> bool {
        matches!(self, Self::Temporary { .. })
    }
}
