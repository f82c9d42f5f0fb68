//! Error types of the storage layer and the typed certificate layer.

use std::path::PathBuf;

/// An error from below (a parser, a database driver), kept as a source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong in a [`Storage`](crate::Storage) backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The key or prefix is not acceptable (see [`Key`](crate::Key)).
    #[error("invalid storage key {key:?}: {reason}")]
    InvalidKey {
        /// The rejected key (truncated to 120 characters).
        key: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A filesystem operation failed.
    #[error("I/O error at {}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A database or other backend-specific failure (connection lost, query failed …).
    #[error("storage backend error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A stored record could not be decoded.
    #[error("corrupt record at {key}: {reason}")]
    Corrupt {
        /// The key of the record.
        key: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A lease was not obtained before the caller's deadline.
    #[error("lease {name} not acquired in time")]
    LeaseTimeout {
        /// The lease name.
        name: String,
    },
}

impl StorageError {
    /// Wraps a backend-specific error.
    pub fn backend(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(err))
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}

/// Why a certificate bundle or account record was refused or could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The PEM text holds no usable block of the expected kind, or is malformed.
    #[error("malformed PEM: {detail}")]
    MalformedPem {
        /// Which part, and what is wrong with it.
        detail: String,
        /// The PEM parser's error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// A certificate in the chain is not valid DER X.509.
    #[error("certificate {index} of the chain does not parse: {reason}")]
    BadCertificate {
        /// Position in the chain, 0 = leaf.
        index: usize,
        /// The parser's message.
        reason: String,
        /// The parser's error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The private key does not belong to the leaf certificate.
    #[error("the private key does not match the leaf certificate")]
    KeyMismatch,
    /// The key (or the leaf's public key) is of a type this crate does not serve.
    #[error("unsupported key type: {detail}")]
    UnsupportedKey {
        /// The key's type or size.
        detail: String,
        /// The key loader's error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The leaf carries no DNS subject alternative name.
    #[error("the certificate has no DNS subject alternative name")]
    NoSan,
    /// A DNS SAN is not a valid hostname.
    #[error("invalid hostname {name:?} in the certificate: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// Why it is invalid.
        #[source]
        reason: crate::hostname::HostnameError,
    },
    /// A stored bundle's metadata does not describe its certificate (the
    /// record was altered).
    #[error("the stored metadata does not match the certificate")]
    MetaMismatch,
    /// The storage below failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}
