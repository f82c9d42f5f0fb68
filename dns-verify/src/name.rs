//! Hostname input: normalisation and validation.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a hostname was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostnameError {
    /// Empty input.
    #[error("empty hostname")]
    Empty,
    /// Longer than 253 characters after conversion to punycode.
    #[error("hostname longer than 253 characters")]
    TooLong,
    /// Two dots in a row or a leading dot.
    #[error("hostname has an empty label")]
    EmptyLabel,
    /// A label over 63 characters.
    #[error("label {0:?} is longer than 63 characters")]
    LabelTooLong(String),
    /// A character not allowed in a hostname (underscores included: they
    /// belong to service labels such as `_acme-challenge`, not to hostnames).
    #[error("character {0:?} is not allowed in a hostname")]
    InvalidChar(char),
    /// A label that starts or ends with `-`.
    #[error("label {0:?} starts or ends with '-'")]
    HyphenAtEdge(String),
    /// A wildcard anywhere but as the whole first label.
    #[error("'*' is allowed only as the whole first label")]
    MisplacedWildcard,
    /// The input is an IP address.
    #[error("an IP address is not a hostname")]
    IpAddress,
    /// A single label (`localhost`, `intranet`): not a public name.
    #[error("a single-label name is not a public hostname")]
    SingleLabel,
    /// Internationalised input that IDNA rejects.
    #[error("invalid internationalised name: {0}")]
    Idna(String),
}

/// A normalised hostname: lowercase ASCII (IDNs converted to punycode), no
/// trailing dot, at least two labels, LDH labels of 1–63 characters; a
/// wildcard only as the whole first label.
///
/// ```
/// use dns_verify::Hostname;
/// assert_eq!(Hostname::parse("Shop.Example.COM.").unwrap().as_str(), "shop.example.com");
/// assert_eq!(Hostname::parse("bücher.example").unwrap().as_str(), "xn--bcher-kva.example");
/// assert!(Hostname::parse("bad_name.example.com").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Hostname(String);

impl Hostname {
    /// Normalises and validates `input`.
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
        for label in ascii.split('.') {
            if label.is_empty() {
                return Err(HostnameError::EmptyLabel);
            }
            if label.len() > 63 {
                return Err(HostnameError::LabelTooLong(label.chars().take(20).collect::<String>() + "…"));
            }
            if let Some(c) = label.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-')) {
                return Err(HostnameError::InvalidChar(c));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(HostnameError::HyphenAtEdge(label.to_owned()));
            }
        }
        if !ascii.contains('.') {
            return Err(HostnameError::SingleLabel);
        }
        let name = if wildcard { format!("*.{ascii}") } else { ascii };
        if name.len() > 253 {
            return Err(HostnameError::TooLong);
        }
        Ok(Self(name))
    }

    /// The normalised name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a wildcard (`*.example.com`).
    #[must_use]
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    /// The name without a leading `*.`: where a wildcard's `_acme-challenge`
    /// record lives.
    #[must_use]
    pub fn base(&self) -> &str {
        self.0.strip_prefix("*.").unwrap_or(&self.0)
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Hostname {
    type Error = HostnameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Hostname> for String {
    fn from(value: Hostname) -> Self {
        value.0
    }
}

impl std::str::FromStr for Hostname {
    type Err = HostnameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(Hostname::parse("WWW.Example.Com.").unwrap().as_str(), "www.example.com");
        assert_eq!(Hostname::parse("  a.example.com ").unwrap().as_str(), "a.example.com");
        assert_eq!(Hostname::parse("*.Example.com").unwrap().as_str(), "*.example.com");
        assert_eq!(Hostname::parse("münchen.de").unwrap().as_str(), "xn--mnchen-3ya.de");
        assert_eq!(Hostname::parse("*.example.com").unwrap().base(), "example.com");
    }

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
    }
}
