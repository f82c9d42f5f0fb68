//! A domain's certificate names: the hostname, `*.hostname` (by default for
//! a registrable domain), and the additional SANs a customer adds — and the
//! records each of them needs.

use dns_verify::{Expectation, Hostname, Requirements};

use crate::Error;

/// The most names one certificate carries (the CA's limit, e.g. Let's Encrypt's).
pub const MAX_SANS: usize = 100;

/// Whether `host` is a registrable domain (`customer.com`, `shop.co.uk`):
/// one label under its public suffix, per the Public Suffix List (a name
/// under a suffix the list does not know, such as `.test`, counts its last
/// label as the suffix).
///
/// ```
/// use control_plane::is_registrable_domain;
/// assert!(is_registrable_domain("customer.com"));
/// assert!(is_registrable_domain("customer.co.uk"));
/// assert!(!is_registrable_domain("shop.customer.com"));
/// assert!(!is_registrable_domain("co.uk"));
/// ```
#[must_use]
pub fn is_registrable_domain(host: &str) -> bool {
    psl::domain_str(host).is_some_and(|domain| domain.eq_ignore_ascii_case(host))
}

/// The names of one domain's certificate, parsed and checked: the hostname
/// first (the certificate's primary name), then `*.hostname` if included,
/// then the additional SANs in the order given (duplicates dropped).
///
/// ```
/// use control_plane::SanSet;
/// let apex = SanSet::parse("customer.com", None, &["sub.shop.customer.com".into()]).unwrap();
/// assert_eq!(apex.names(), ["customer.com", "*.customer.com", "sub.shop.customer.com"]);
/// let sub = SanSet::parse("shop.customer.com", None, &[]).unwrap();
/// assert_eq!(sub.names(), ["shop.customer.com"], "a subdomain keeps one SAN unless asked");
/// assert!(SanSet::parse("customer.com", None, &["bad name".into()]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SanSet {
    hostname: Hostname,
    wildcard: bool,
    additional: Vec<Hostname>,
}

fn parse_name(name: &str) -> Result<Hostname, Error> {
    Hostname::parse(name).map_err(|source| Error::InvalidHostname { name: name.to_owned(), source })
}

impl SanSet {
    /// The names of `hostname` (not a wildcard) with `*.hostname` when
    /// `include_wildcard` says so (default: when `hostname` is a registrable
    /// domain) and `additional` SANs (wildcards allowed).
    ///
    /// # Errors
    /// [`Error::InvalidHostname`] naming the first bad name,
    /// [`Error::WildcardNotOffered`] for a wildcard hostname,
    /// [`Error::InvalidRequest`] beyond [`MAX_SANS`] names.
    pub fn parse(
        hostname: &str,
        include_wildcard: Option<bool>,
        additional: &[String],
    ) -> Result<Self, Error> {
        let host = parse_name(hostname)?;
        if host.is_wildcard() {
            return Err(Error::WildcardNotOffered { name: host.as_str().to_owned() });
        }
        let wildcard = include_wildcard.unwrap_or_else(|| is_registrable_domain(host.as_str()))
            && Hostname::parse(&format!("*.{}", host.as_str())).is_ok();
        let mut set = Self { hostname: host, wildcard, additional: Vec::new() };
        for name in additional {
            set.add(name)?;
        }
        Ok(set)
    }

    /// The set as stored on a connection.
    ///
    /// # Errors
    /// As [`parse`](Self::parse) (a stored connection always parses).
    pub fn of(connection: &crate::Connection) -> Result<Self, Error> {
        Self::parse(&connection.hostname, Some(connection.include_wildcard), &connection.additional_sans)
    }

    /// Adds one SAN; `Ok(false)` when the set already has it.
    ///
    /// # Errors
    /// [`Error::InvalidHostname`] naming it, [`Error::InvalidRequest`]
    /// beyond [`MAX_SANS`] names.
    pub fn add(&mut self, name: &str) -> Result<bool, Error> {
        let host = parse_name(name)?;
        if self.names().iter().any(|n| n == host.as_str()) {
            return Ok(false);
        }
        if self.len() >= MAX_SANS {
            return Err(Error::InvalidRequest {
                reason: format!("a certificate carries at most {MAX_SANS} names; {name} would be one more"),
            });
        }
        self.additional.push(host);
        Ok(true)
    }

    /// Removes one SAN (`*.hostname` included); `Ok(false)` when the set
    /// does not have it.
    ///
    /// # Errors
    /// [`Error::InvalidHostname`] for a bad name, [`Error::InvalidRequest`]
    /// for the hostname itself (archive the connection instead).
    pub fn remove(&mut self, name: &str) -> Result<bool, Error> {
        let host = parse_name(name)?;
        if host == self.hostname {
            return Err(Error::InvalidRequest {
                reason: format!("{name} is the connection's hostname: archive the connection to remove it"),
            });
        }
        if self.wildcard && host.is_wildcard() && host.base() == self.hostname.as_str() {
            self.wildcard = false;
            return Ok(true);
        }
        let before = self.additional.len();
        self.additional.retain(|h| *h != host);
        Ok(self.additional.len() != before)
    }

    /// The hostname (primary name).
    #[must_use]
    pub fn hostname(&self) -> &Hostname {
        &self.hostname
    }

    /// Whether `*.hostname` is included.
    #[must_use]
    pub fn includes_wildcard(&self) -> bool {
        self.wildcard
    }

    /// The additional SANs.
    #[must_use]
    pub fn additional(&self) -> Vec<String> {
        self.additional.iter().map(|h| h.as_str().to_owned()).collect()
    }

    /// How many names.
    #[must_use]
    pub fn len(&self) -> usize {
        1 + usize::from(self.wildcard) + self.additional.len()
    }

    /// Never empty: the hostname is always there.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Every name, the hostname first.
    #[must_use]
    pub fn hosts(&self) -> Vec<Hostname> {
        let mut out = vec![self.hostname.clone()];
        if self.wildcard
            && let Ok(w) = Hostname::parse(&format!("*.{}", self.hostname.as_str()))
        {
            out.push(w);
        }
        out.extend(self.additional.iter().cloned());
        out
    }

    /// Every name as a string, the hostname first.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        self.hosts().iter().map(|h| h.as_str().to_owned()).collect()
    }

    /// Whether `host` proves its ownership with its own TXT record: the
    /// hostname does, and so does a SAN outside it (another domain); a SAN
    /// under the hostname is covered by the hostname's.
    fn owns_txt(&self, host: &Hostname) -> bool {
        let base = host.base();
        base == self.hostname.as_str() && !host.is_wildcard()
            || !(base == self.hostname.as_str() || base.ends_with(&format!(".{}", self.hostname.as_str())))
    }

    /// The records the names need, each once: per SAN its `_acme-challenge`
    /// delegation (a wildcard shares its base name's), the ownership TXT
    /// (see above) and routing (not for wildcards, which name no host).
    /// `target` gives each SAN's delegation target.
    #[must_use]
    pub fn expectations(
        &self,
        requirements: &Requirements,
        token: &str,
        target: impl Fn(&Hostname) -> String,
    ) -> Vec<Expectation> {
        let mut out: Vec<Expectation> = Vec::new();
        for host in self.hosts() {
            let token = self.owns_txt(&host).then_some(token);
            for e in requirements.for_host(&host, token) {
                let e = match e {
                    Expectation::AcmeDelegation { host, .. } => {
                        let target = target(&host);
                        Expectation::AcmeDelegation { host, target }
                    }
                    Expectation::Routing { .. } if host.is_wildcard() => continue,
                    other => other,
                };
                let duplicate = out
                    .iter()
                    .any(|o| o.record_name() == e.record_name() && o.record_type() == e.record_type());
                if !duplicate {
                    out.push(e);
                }
            }
        }
        out
    }

    /// Whether `e` concerns SAN `host`: its delegation (by record name,
    /// shared by a wildcard and its base), its routing, and the ownership
    /// TXT proving it.
    #[must_use]
    pub fn concerns(&self, host: &Hostname, e: &Expectation) -> bool {
        match e {
            Expectation::AcmeDelegation { host: of, .. } => of.base() == host.base(),
            Expectation::Routing { host: of, .. } => of == host,
            Expectation::OwnershipTxt { host: of, .. } => {
                if self.owns_txt(host) {
                    of.base() == host.base()
                } else {
                    *of == self.hostname
                }
            }
            _ => false,
        }
    }

    /// Whether SAN `host` needs `e` (one it [`concerns`](Self::concerns)):
    /// its delegation only when it is validated by DNS-01 (`dns01`, or a
    /// wildcard); every other record always.
    #[must_use]
    pub fn needs(&self, host: &Hostname, e: &Expectation, dns01: bool) -> bool {
        self.concerns(host, e)
            && (dns01 || host.is_wildcard() || !matches!(e, Expectation::AcmeDelegation { .. }))
    }

    /// Whether the delegation of `e` is needed: with DNS-01 for every
    /// name, else only where a wildcard SAN is validated (always DNS-01).
    #[must_use]
    pub fn is_required(&self, e: &Expectation, dns01: bool) -> bool {
        match e {
            Expectation::AcmeDelegation { host, .. } => {
                dns01 || self.hosts().iter().any(|h| h.is_wildcard() && h.base() == host.base())
            }
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn req() -> Requirements {
        Requirements::delegating_to("acme.edge.test").routing_cname("edge.edge.test")
    }

    #[test]
    fn an_apex_gets_its_wildcard_by_default_and_a_subdomain_does_not() {
        assert!(SanSet::parse("customer.com", None, &[]).unwrap().includes_wildcard());
        assert!(!SanSet::parse("customer.com", Some(false), &[]).unwrap().includes_wildcard());
        assert!(!SanSet::parse("shop.customer.com", None, &[]).unwrap().includes_wildcard());
        assert!(SanSet::parse("shop.customer.com", Some(true), &[]).unwrap().includes_wildcard());
    }

    #[test]
    fn a_bad_san_is_named_and_the_limit_holds() {
        let e =
            SanSet::parse("customer.com", None, &["ok.customer.com".into(), "bad_name!".into()]).unwrap_err();
        assert!(matches!(&e, Error::InvalidHostname { name, .. } if name == "bad_name!"), "{e}");
        let many: Vec<String> = (0..98).map(|i| format!("n{i}.customer.com")).collect();
        assert_eq!(SanSet::parse("customer.com", None, &many).unwrap().len(), MAX_SANS);
        let more: Vec<String> = (0..99).map(|i| format!("n{i}.customer.com")).collect();
        assert!(matches!(SanSet::parse("customer.com", None, &more), Err(Error::InvalidRequest { .. })));
        assert!(matches!(SanSet::parse("*.customer.com", None, &[]), Err(Error::WildcardNotOffered { .. })));
    }

    #[test]
    fn each_san_has_its_delegation_and_a_wildcard_shares_its_base() {
        let set = SanSet::parse("customer.com", None, &["sub.shop.customer.com".into(), "other.net".into()])
            .unwrap();
        let es = set.expectations(&req(), "tok", |h| format!("{}.t", h.base()));
        let names: Vec<(String, &str)> = es.iter().map(|e| (e.record_name(), e.kind())).collect();
        assert_eq!(
            names,
            [
                ("_acme-challenge.customer.com".to_owned(), "acme_delegation"),
                ("_customdomain-challenge.customer.com".to_owned(), "ownership_txt"),
                ("customer.com".to_owned(), "routing"),
                ("_acme-challenge.sub.shop.customer.com".to_owned(), "acme_delegation"),
                ("sub.shop.customer.com".to_owned(), "routing"),
                ("_acme-challenge.other.net".to_owned(), "acme_delegation"),
                ("_customdomain-challenge.other.net".to_owned(), "ownership_txt"),
                ("other.net".to_owned(), "routing"),
            ]
        );
        let wild = Hostname::parse("*.customer.com").unwrap();
        assert!(set.is_required(&es[0], false), "the wildcard needs DNS-01");
        assert!(!set.is_required(&es[3], false), "HTTP-01 for a plain name");
        assert!(set.is_required(&es[3], true));
        let concerns: Vec<String> =
            es.iter().filter(|e| set.concerns(&wild, e)).map(Expectation::record_name).collect();
        assert_eq!(concerns, ["_acme-challenge.customer.com", "_customdomain-challenge.customer.com"]);
    }

    #[test]
    fn sans_are_added_once_and_removed() {
        let mut set = SanSet::parse("customer.com", None, &[]).unwrap();
        assert!(set.add("x.shop.customer.com").unwrap());
        assert!(!set.add("X.Shop.customer.com.").unwrap());
        assert!(set.remove("*.customer.com").unwrap());
        assert!(set.remove("x.shop.customer.com").unwrap());
        assert!(!set.remove("y.customer.com").unwrap());
        assert!(set.remove("customer.com").is_err());
        assert_eq!(set.names(), ["customer.com"]);
    }
}
