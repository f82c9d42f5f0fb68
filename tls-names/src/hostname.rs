//! [`Hostname`], [`canonical_hostname`] and their one error type.

use std::fmt;

/// The longest DNS name, in bytes (without the trailing dot).
///
/// ```
/// assert_eq!(tls_names::MAX_NAME_LEN, 253);
/// ```
pub const MAX_NAME_LEN: usize = 253;

/// The longest DNS label, in bytes.
///
/// ```
/// assert_eq!(tls_names::MAX_LABEL_LEN, 63);
/// ```
pub const MAX_LABEL_LEN: usize = 63;

/// Why a name is not a valid hostname.
///
/// ```
/// use tls_names::{Hostname, HostnameError};
/// assert_eq!(Hostname::parse("a.*.example.com"), Err(HostnameError::MisplacedWildcard));
/// assert_eq!(Hostname::parse("localhost"), Err(HostnameError::SingleLabel));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostnameError {
    /// Empty input (or only a dot).
    #[error("empty hostname")]
    Empty,
    /// Longer than 253 characters (after conversion to punycode).
    #[error("hostname longer than 253 characters")]
    TooLong,
    /// Two dots in a row, or a leading dot.
    #[error("hostname has an empty label")]
    EmptyLabel,
    /// A label over 63 characters (its first 20 characters and `…`).
    #[error("label {0:?} is longer than 63 characters")]
    LabelTooLong(String),
    /// A character outside letters, digits and `-` (underscores included:
    /// they belong to service labels such as `_acme-challenge`, not to
    /// hostnames; non-ASCII letters are refused by [`canonical_hostname`],
    /// which expects punycode).
    #[error("character {0:?} is not allowed in a hostname")]
    InvalidChar(char),
    /// A label that starts or ends with `-`.
    #[error("label {0:?} starts or ends with '-'")]
    HyphenAtEdge(String),
    /// `*` anywhere but as the whole first label of a name with at least two
    /// more labels (`*.example.com`; never `*.com`, `*`, `a*.example.com` or
    /// `a.*.example.com`).
    #[error("'*' is allowed only as the whole first label of a name with at least two more labels")]
    MisplacedWildcard,
    /// The input is an IP address, not a hostname.
    #[error("an IP address is not a hostname")]
    IpAddress,
    /// A single label (`localhost`, `intranet`): not a public name
    /// ([`Hostname::parse`] only).
    #[error("a single-label name is not a public hostname")]
    SingleLabel,
    /// Internationalised input that IDNA (UTS #46, strict) rejects.
    #[error("invalid internationalised name: {0}")]
    Idna(String),
}

/// A normalised hostname: lowercase ASCII (IDNs converted to punycode), no
/// trailing dot, at least two labels, LDH labels of 1–63 characters, at most
/// 253 characters; a wildcard only as the whole first label of a name with at
/// least two more labels.
///
/// Every value went through [`Hostname::parse`] (also when deserialized, with
/// the `serde` feature), so a `Hostname` in hand is always valid.
///
/// ```
/// use tls_names::Hostname;
/// assert_eq!(Hostname::parse("Shop.Example.COM.").unwrap().as_str(), "shop.example.com");
/// assert_eq!(Hostname::parse("bücher.example").unwrap().as_str(), "xn--bcher-kva.example");
/// assert!(Hostname::parse("bad_name.example.com").is_err());
/// let wild: Hostname = "*.example.com".parse().unwrap();
/// assert!(wild.is_wildcard());
/// assert_eq!(wild.to_string(), "*.example.com");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hostname(String);

impl Hostname {
    /// Normalises and validates `input` (surrounding whitespace and one
    /// trailing dot are ignored; internationalised names become punycode).
    ///
    /// ```
    /// use tls_names::{Hostname, HostnameError};
    /// assert_eq!(Hostname::parse("  *.Example.com ").unwrap().as_str(), "*.example.com");
    /// assert_eq!(Hostname::parse("münchen.de").unwrap().as_str(), "xn--mnchen-3ya.de");
    /// assert_eq!(Hostname::parse("*.com"), Err(HostnameError::MisplacedWildcard));
    /// assert_eq!(Hostname::parse("192.0.2.1"), Err(HostnameError::IpAddress));
    /// ```
    ///
    /// # Errors
    /// The first rule broken, as a [`HostnameError`].
    pub fn parse(input: &str) -> Result<Self, HostnameError> {
        let trimmed = input.trim();
        let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Err(HostnameError::Empty);
        }
        if trimmed.parse::<std::net::IpAddr>().is_ok() {
            return Err(HostnameError::IpAddress);
        }
        let (wildcard, rest) = match trimmed.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        if rest.split('.').any(str::is_empty) {
            return Err(HostnameError::EmptyLabel);
        }
        if let Some(c) = rest.chars().find(|c| matches!(c, '_' | '*' | ' ' | '/' | '@' | ':')) {
            return Err(if c == '*' {
                HostnameError::MisplacedWildcard
            } else {
                HostnameError::InvalidChar(c)
            });
        }
        let ascii = if rest.is_ascii() {
            rest.to_ascii_lowercase()
        } else {
            idna::domain_to_ascii_strict(rest).map_err(|e| HostnameError::Idna(e.to_string()))?
        };
        // IDNA maps some input onto digits and dots (fullwidth `１.２.３.４`).
        if ascii.parse::<std::net::IpAddr>().is_ok() {
            return Err(HostnameError::IpAddress);
        }
        for label in ascii.split('.') {
            check_label(label)?;
        }
        if !ascii.contains('.') {
            return Err(if wildcard { HostnameError::MisplacedWildcard } else { HostnameError::SingleLabel });
        }
        let name = if wildcard { format!("*.{ascii}") } else { ascii };
        if name.len() > MAX_NAME_LEN {
            return Err(HostnameError::TooLong);
        }
        Ok(Self(name))
    }

    /// The normalised name.
    ///
    /// ```
    /// let host = tls_names::Hostname::parse("WWW.Example.Com.").unwrap();
    /// assert_eq!(host.as_str(), "www.example.com");
    /// ```
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a wildcard (`*.example.com`).
    ///
    /// ```
    /// use tls_names::Hostname;
    /// assert!(Hostname::parse("*.example.com").unwrap().is_wildcard());
    /// assert!(!Hostname::parse("example.com").unwrap().is_wildcard());
    /// ```
    #[must_use]
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    /// The name without a leading `*.`: where a wildcard's `_acme-challenge`
    /// record lives. A name that is not a wildcard is its own base.
    ///
    /// ```
    /// use tls_names::Hostname;
    /// assert_eq!(Hostname::parse("*.example.com").unwrap().base(), "example.com");
    /// assert_eq!(Hostname::parse("shop.example.com").unwrap().base(), "shop.example.com");
    /// ```
    #[must_use]
    pub fn base(&self) -> &str {
        self.0.strip_prefix("*.").unwrap_or(&self.0)
    }

    /// Whether this name, used as a certificate name, covers the server name
    /// `name`: equal, or a single-level wildcard over it (see
    /// [`name_matches`](crate::name_matches)).
    ///
    /// ```
    /// use tls_names::Hostname;
    /// let wild = Hostname::parse("*.example.com").unwrap();
    /// assert!(wild.matches("shop.example.com"));
    /// assert!(!wild.matches("a.shop.example.com"));
    /// assert!(!wild.matches("example.com"));
    /// ```
    #[must_use]
    pub fn matches(&self, name: &str) -> bool {
        crate::name_matches(&self.0, name)
    }

    /// The single-level wildcard that covers this name (`a.example.com` →
    /// `*.example.com`); `None` for a wildcard or a name with fewer than three
    /// labels.
    ///
    /// ```
    /// use tls_names::Hostname;
    /// let host = Hostname::parse("shop.example.com").unwrap();
    /// assert_eq!(host.wildcard().unwrap().as_str(), "*.example.com");
    /// assert!(Hostname::parse("example.com").unwrap().wildcard().is_none());
    /// ```
    #[must_use]
    pub fn wildcard(&self) -> Option<Self> {
        crate::wildcard_of(&self.0).map(Self)
    }
}

/// Checks one label that is not `*`: 1–63 characters, LDH, no `-` at either end.
fn check_label(label: &str) -> Result<(), HostnameError> {
    if label.is_empty() {
        return Err(HostnameError::EmptyLabel);
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(HostnameError::LabelTooLong(label.chars().take(20).collect::<String>() + "…"));
    }
    if let Some(c) = label.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-')) {
        return Err(if c == '*' { HostnameError::MisplacedWildcard } else { HostnameError::InvalidChar(c) });
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(HostnameError::HyphenAtEdge(label.to_owned()));
    }
    Ok(())
}

/// Checks that `name` is a DNS hostname fit for a certificate SAN or a TLS
/// server name and returns it in canonical form (lowercase, no trailing dot).
///
/// The label rules of [`Hostname`], for names that should already be ASCII:
/// letters, digits and `-` only (IDNs must already be in punycode, `xn--…`;
/// use [`Hostname::parse`] for user input); labels 1–63 characters, not
/// starting or ending with `-`; at most 253 characters; a wildcard only as
/// the whole first label of a name with at least two more labels. Unlike
/// [`Hostname::parse`] it accepts single-label names (`localhost`), which
/// certificates may carry, and does not trim whitespace.
///
/// ```
/// use tls_names::{canonical_hostname, HostnameError};
/// assert_eq!(canonical_hostname("Shop.Example.COM.").unwrap(), "shop.example.com");
/// assert_eq!(canonical_hostname("*.example.com").unwrap(), "*.example.com");
/// assert_eq!(canonical_hostname("a.*.example.com"), Err(HostnameError::MisplacedWildcard));
/// assert_eq!(canonical_hostname("under_score.example.com"), Err(HostnameError::InvalidChar('_')));
/// ```
///
/// # Errors
/// The first rule the name breaks, as a [`HostnameError`].
pub fn canonical_hostname(name: &str) -> Result<String, HostnameError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err(HostnameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(HostnameError::TooLong);
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err(HostnameError::IpAddress);
    }
    let labels = name.split('.').count();
    for (i, label) in name.split('.').enumerate() {
        if label == "*" {
            if i != 0 || labels < 3 {
                return Err(HostnameError::MisplacedWildcard);
            }
            continue;
        }
        check_label(label)?;
    }
    Ok(name.to_ascii_lowercase())
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Hostname {
    type Err = HostnameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Hostname {
    type Error = HostnameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl TryFrom<&str> for Hostname {
    type Error = HostnameError;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Hostname> for String {
    fn from(value: Hostname) -> Self {
        value.0
    }
}

impl AsRef<str> for Hostname {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Hostname {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Hostname {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Hostname {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Hostname {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Hostname {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;

    // Moved from cert-store's `hostname` module.
    #[test]
    fn canonical_rules() {
        assert_eq!(canonical_hostname(""), Err(HostnameError::Empty));
        assert_eq!(canonical_hostname("."), Err(HostnameError::Empty));
        assert_eq!(canonical_hostname("a..b"), Err(HostnameError::EmptyLabel));
        assert!(matches!(
            canonical_hostname(&format!("{}.com", "a".repeat(64))),
            Err(HostnameError::LabelTooLong(_))
        ));
        assert_eq!(canonical_hostname(&"a.".repeat(128)), Err(HostnameError::TooLong));
        assert!(matches!(canonical_hostname("-a.com"), Err(HostnameError::HyphenAtEdge(_))));
        assert_eq!(canonical_hostname("*.com"), Err(HostnameError::MisplacedWildcard));
        assert_eq!(canonical_hostname("*"), Err(HostnameError::MisplacedWildcard));
        assert_eq!(canonical_hostname("a*.b.com"), Err(HostnameError::MisplacedWildcard));
        assert_eq!(canonical_hostname("10.0.0.1"), Err(HostnameError::IpAddress));
        assert_eq!(canonical_hostname("xn--bcher-kva.example").as_deref(), Ok("xn--bcher-kva.example"));
        assert_eq!(canonical_hostname("bücher.example"), Err(HostnameError::InvalidChar('ü')));
        assert_eq!(canonical_hostname("localhost").as_deref(), Ok("localhost"));
    }

    // Moved from dns-verify's `name` module.
    #[test]
    fn normalises() {
        assert_eq!(Hostname::parse("WWW.Example.Com.").unwrap().as_str(), "www.example.com");
        assert_eq!(Hostname::parse("  a.example.com ").unwrap().as_str(), "a.example.com");
        assert_eq!(Hostname::parse("*.Example.com").unwrap().as_str(), "*.example.com");
        assert_eq!(Hostname::parse("münchen.de").unwrap().as_str(), "xn--mnchen-3ya.de");
        assert_eq!(Hostname::parse("*.example.com").unwrap().base(), "example.com");
    }

    // Moved from dns-verify's `name` module.
    #[test]
    fn rejects() {
        use HostnameError as E;
        assert_eq!(Hostname::parse(""), Err(E::Empty));
        assert_eq!(Hostname::parse("."), Err(E::Empty));
        assert_eq!(Hostname::parse("a..example.com"), Err(E::EmptyLabel));
        assert_eq!(Hostname::parse(".example.com"), Err(E::EmptyLabel));
        assert!(matches!(Hostname::parse(&format!("{}.com", "a".repeat(64))), Err(E::LabelTooLong(_))));
        assert_eq!(Hostname::parse(&format!("{}com", "abcdefghi.".repeat(26))), Err(E::TooLong));
        assert_eq!(Hostname::parse("_acme-challenge.example.com"), Err(E::InvalidChar('_')));
        assert_eq!(Hostname::parse("a.*.example.com"), Err(E::MisplacedWildcard));
        assert!(matches!(Hostname::parse("-a.example.com"), Err(E::HyphenAtEdge(_))));
        assert_eq!(Hostname::parse("192.0.2.1"), Err(E::IpAddress));
        assert_eq!(Hostname::parse("localhost"), Err(E::SingleLabel));
        assert_eq!(Hostname::parse("a b.example.com"), Err(E::InvalidChar(' ')));
        assert_eq!(Hostname::parse("*.com"), Err(E::MisplacedWildcard));
        assert_eq!(Hostname::parse("*"), Err(E::MisplacedWildcard));
        assert_eq!(Hostname::parse("１.２.３.４"), Err(E::IpAddress));
    }

    #[test]
    fn both_agree_on_what_they_both_accept() {
        for name in ["shop.example.com", "*.example.com", "xn--bcher-kva.example", "a-b.c-d.example"] {
            assert_eq!(Hostname::parse(name).unwrap().as_str(), canonical_hostname(name).unwrap());
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserializing_validates() {
        let host: Hostname = serde_json::from_str("\"Shop.Example.com\"").unwrap();
        assert_eq!(host.as_str(), "shop.example.com");
        assert_eq!(serde_json::to_string(&host).unwrap(), "\"shop.example.com\"");
        assert!(serde_json::from_str::<Hostname>("\"a.*.example.com\"").is_err());
        assert!(serde_json::from_str::<Hostname>("\"localhost\"").is_err());
    }
}
