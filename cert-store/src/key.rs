//! Validated storage keys.

use std::fmt;

use crate::StorageError;

/// The longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// A validated, `/`-separated storage key such as `certs/shop.example.com`.
///
/// Every segment is non-empty, is not `.` or `..`, does not start with a `.`
/// (names starting with a dot are reserved for backends' own files), and
/// contains no NUL, no `\` and no control character. Keys are never absolute.
/// Backends receive only keys that passed these checks, so a key can always be
/// mapped safely onto a file path.
///
/// ```
/// use cert_store::Key;
/// let key = Key::new("certs/shop.example.com").unwrap();
/// assert_eq!(key.as_str(), "certs/shop.example.com");
/// assert!(Key::new("certs/../etc/passwd").is_err());
/// assert!(Key::new("/absolute").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

impl Key {
    /// Validates `key` and wraps it.
    ///
    /// # Errors
    /// [`StorageError::InvalidKey`] when the key is empty, absolute, too long,
    /// or has an empty, `.`/`..`, dot-prefixed or control-character segment.
    pub fn new(key: impl Into<String>) -> Result<Self, StorageError> {
        let key = key.into();
        validate_path(&key, false)?;
        Ok(Self(key))
    }

    /// Joins `self` and a further validated segment path.
    ///
    /// # Errors
    /// As for [`Key::new`], for the `rest` part.
    pub fn join(&self, rest: &str) -> Result<Self, StorageError> {
        Self::new(format!("{}/{rest}", self.0))
    }

    /// The key as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key's segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// Whether this key lies at or below `prefix` (segment-wise: `certs/a`
    /// is below `certs` but not below `cert`). An empty prefix contains every key.
    #[must_use]
    pub fn is_under(&self, prefix: &Prefix) -> bool {
        let p = prefix.as_str();
        p.is_empty()
            || self.0 == p
            || (self.0.len() > p.len() && self.0.starts_with(p) && self.0.as_bytes()[p.len()] == b'/')
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?})", self.0)
    }
}

impl TryFrom<&str> for Key {
    type Error = StorageError;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl std::borrow::Borrow<str> for Key {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A validated listing prefix: like a [`Key`], but may be empty (everything).
///
/// ```
/// use cert_store::Prefix;
/// assert!(Prefix::new("").is_ok());
/// assert!(Prefix::new("certs").is_ok());
/// assert!(Prefix::new("certs/").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Prefix(String);

impl Prefix {
    /// Validates `prefix`; the empty string selects every key.
    ///
    /// # Errors
    /// [`StorageError::InvalidKey`] on the same grounds as [`Key::new`].
    pub fn new(prefix: impl Into<String>) -> Result<Self, StorageError> {
        let prefix = prefix.into();
        validate_path(&prefix, true)?;
        Ok(Self(prefix))
    }

    /// The prefix as a string slice (empty for "everything").
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for Prefix {
    type Error = StorageError;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Key> for Prefix {
    fn from(key: Key) -> Self {
        Self(key.0)
    }
}

fn validate_path(path: &str, allow_empty: bool) -> Result<(), StorageError> {
    let invalid =
        |reason: &'static str| StorageError::InvalidKey { key: path.chars().take(120).collect(), reason };
    if path.is_empty() {
        return if allow_empty { Ok(()) } else { Err(invalid("empty key")) };
    }
    if path.len() > MAX_KEY_LEN {
        return Err(invalid("longer than 1024 bytes"));
    }
    if path.starts_with('/') {
        return Err(invalid("absolute path"));
    }
    for segment in path.split('/') {
        if segment.is_empty() {
            return Err(invalid("empty segment"));
        }
        if segment == "." || segment == ".." {
            return Err(invalid("`.` or `..` segment"));
        }
        if segment.starts_with('.') {
            return Err(invalid("segment starts with `.` (reserved)"));
        }
        if segment.chars().any(|c| c == '\0') {
            return Err(invalid("NUL byte"));
        }
        if segment.chars().any(|c| c == '\\' || c.is_control()) {
            return Err(invalid("backslash or control character"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_keys() {
        for k in ["a", "certs/shop.example.com", "certs/*.example.com/x", "accounts/a_b-c"] {
            assert!(Key::new(k).is_ok(), "{k}");
        }
    }

    #[test]
    fn rejects_bad_keys() {
        for k in
            ["", "/etc/passwd", "a//b", "a/", "../x", "a/../b", "a/./b", "a/.hidden", "a\0b", "a\\b", "a\nb"]
        {
            assert!(matches!(Key::new(k), Err(StorageError::InvalidKey { .. })), "{k:?}");
        }
        assert!(Key::new("a".repeat(MAX_KEY_LEN + 1)).is_err());
    }

    #[test]
    fn under_is_segment_wise() {
        let k = Key::new("certs/a").unwrap();
        assert!(k.is_under(&Prefix::new("certs").unwrap()));
        assert!(k.is_under(&Prefix::new("certs/a").unwrap()));
        assert!(k.is_under(&Prefix::default()));
        assert!(!k.is_under(&Prefix::new("cert").unwrap()));
        assert!(!k.is_under(&Prefix::new("certs/a/b").unwrap()));
    }
}
