//! Hostname rules for certificate names: the shared [`tls_names`] types,
//! re-exported so `cert_store::hostname::…` paths keep working.
//!
//! ```
//! use cert_store::hostname::{canonical_hostname, lookup_exact_then_wildcard, Hostname, HostnameError};
//! assert_eq!(canonical_hostname("Shop.Example.COM.").unwrap(), "shop.example.com");
//! assert_eq!(canonical_hostname("a.*.example.com"), Err(HostnameError::MisplacedWildcard));
//! assert!(Hostname::parse("*.example.com").unwrap().matches("shop.example.com"));
//! let found = lookup_exact_then_wildcard("shop.example.com", |n| (n == "*.example.com").then_some(n.len()));
//! assert_eq!(found, Some(13));
//! ```

pub use tls_names::{
    Candidates, Hostname, HostnameError, MAX_LABEL_LEN, MAX_NAME_LEN, candidates, canonical_hostname,
    lookup_exact_then_wildcard, name_matches, wildcard_of,
};
