//! The expiry index: which certificates need attention before a given time.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
};

use time::OffsetDateTime;

/// One certificate in the [`ExpiryIndex`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The bundle's primary name.
    pub name: String,
    /// When it needs attention ([`CertMeta::attention_at`](crate::CertMeta::attention_at)).
    pub attention_at: OffsetDateTime,
    /// When it expires.
    pub not_after: OffsetDateTime,
}

/// An in-memory index of certificates ordered by attention time.
///
/// `due_before(t)` is a range scan: its cost depends on how many entries are
/// due, not on how many are indexed. It is stored as one compact text record
/// (`<attention_unix> <not_after_unix> <name>` per line), so finding what is
/// due reads one record instead of every certificate.
///
/// ```
/// use cert_store::ExpiryIndex;
/// use time::macros::datetime;
/// let mut index = ExpiryIndex::default();
/// index.upsert("a.example.com", datetime!(2030-01-01 0:00 UTC), datetime!(2030-02-01 0:00 UTC));
/// index.upsert("b.example.com", datetime!(2031-01-01 0:00 UTC), datetime!(2031-02-01 0:00 UTC));
/// let due: Vec<_> = index.due_before(datetime!(2030-06-01 0:00 UTC)).map(|e| e.0).collect();
/// assert_eq!(due, ["a.example.com"]);
/// ```
#[derive(Debug, Default, Clone)]
pub struct ExpiryIndex {
    // Names are shared between both maps: one allocation per certificate.
    by_time: BTreeSet<(i64, Arc<str>)>,
    by_name: HashMap<Arc<str>, (i64, i64)>,
    generation: Option<IndexGeneration>,
}

/// Which write of the stored expiry index a record is: a number that every
/// update raises by one, plus a random tag that tells apart two writes of one
/// number (a writer that lost its lease while stalled).
///
/// [`CertStore`](crate::CertStore) writes it twice per update: first into the
/// small record [`keys::expiry_generation`](crate::keys::expiry_generation),
/// then as the first line of the index record. A reader compares the small
/// record with the generation of the index it cached and reads the index only
/// when they differ; a size or timestamp comparison could not tell two
/// same-size writes within one clock tick apart.
///
/// ```
/// use cert_store::IndexGeneration;
/// let first = IndexGeneration::after(None);
/// let second = IndexGeneration::after(Some(first));
/// assert_eq!((first.number(), second.number()), (1, 2));
/// assert_eq!(IndexGeneration::parse(&second.to_string()), Some(second));
/// assert_eq!(IndexGeneration::parse("garbage"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IndexGeneration {
    number: u64,
    tag: u64,
}

impl IndexGeneration {
    /// The generation after `previous` (the first one after `None`), with a
    /// fresh random tag.
    #[must_use]
    pub fn after(previous: Option<Self>) -> Self {
        use rand::Rng;
        let number = previous.map_or(0, |p| p.number).saturating_add(1);
        Self { number, tag: rand::rng().random() }
    }

    /// The write number: 1 for the first index write, one more for each update.
    #[must_use]
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Reads the form [`Display`](std::fmt::Display) writes (`<number> <tag in hex>`);
    /// `None` when `text` (surrounding whitespace aside) is not that.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let (number, tag) = text.trim().split_once(' ')?;
        if tag.len() != 16 {
            return None;
        }
        Some(Self { number: number.parse().ok()?, tag: u64::from_str_radix(tag, 16).ok()? })
    }
}

impl std::fmt::Display for IndexGeneration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:016x}", self.number, self.tag)
    }
}

/// The first line of a stored index that carries its generation.
const GENERATION_LINE: &str = "#generation ";

impl ExpiryIndex {
    /// Adds or moves `name`.
    pub fn upsert(&mut self, name: &str, attention_at: OffsetDateTime, not_after: OffsetDateTime) {
        self.remove(name);
        let at = attention_at.unix_timestamp();
        let name: Arc<str> = Arc::from(name);
        self.by_time.insert((at, Arc::clone(&name)));
        self.by_name.insert(name, (at, not_after.unix_timestamp()));
    }

    /// Removes `name`; returns whether it was present.
    pub fn remove(&mut self, name: &str) -> bool {
        match self.by_name.remove_entry(name) {
            Some((name, (at, _))) => self.by_time.remove(&(at, name)),
            None => false,
        }
    }

    /// Names whose attention time is before `t`, earliest first, with that time.
    pub fn due_before(&self, t: OffsetDateTime) -> impl Iterator<Item = (&str, OffsetDateTime)> {
        self.by_time.range(..(t.unix_timestamp(), Arc::from(""))).map(|(at, name)| (&**name, from_unix(*at)))
    }

    /// The entry for `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<IndexEntry> {
        self.by_name.get(name).map(|(at, na)| IndexEntry {
            name: name.to_owned(),
            attention_at: from_unix(*at),
            not_after: from_unix(*na),
        })
    }

    /// Every indexed certificate as (name, attention time, `not_after`), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, OffsetDateTime, OffsetDateTime)> + '_ {
        self.by_name.iter().map(|(name, (at, not_after))| (&**name, from_unix(*at), from_unix(*not_after)))
    }

    /// How many certificates are indexed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether the index is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The generation this index was stored as (read from its record), or
    /// set with [`set_generation`](Self::set_generation); `None` for an index
    /// built in memory or stored before generations existed.
    #[must_use]
    pub fn generation(&self) -> Option<IndexGeneration> {
        self.generation
    }

    /// Sets the generation [`encode`](Self::encode) writes in the header line.
    pub fn set_generation(&mut self, generation: Option<IndexGeneration>) {
        self.generation = generation;
    }

    /// The stored form: a `#generation <number> <tag>` line when the index
    /// has a generation, then `<attention_unix> <not_after_unix> <name>` per
    /// certificate, earliest first.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        use std::fmt::Write;
        let mut out = String::with_capacity(self.by_time.len() * 48 + 40);
        if let Some(generation) = self.generation {
            let _ = writeln!(out, "{GENERATION_LINE}{generation}");
        }
        for (at, name) in &self.by_time {
            let not_after = self.by_name.get(&**name).map_or(*at, |v| v.1);
            let _ = writeln!(out, "{at} {not_after} {name}");
        }
        out.into_bytes()
    }

    /// Reads the stored form. Lines starting with `#` other than a first
    /// `#generation` line are skipped (room for later headers).
    ///
    /// ```
    /// use cert_store::{ExpiryIndex, IndexDecodeError};
    /// assert_eq!(ExpiryIndex::decode(b"1 2 a.example.com\n").unwrap().len(), 1);
    /// let stored = ExpiryIndex::decode(b"#generation 7 00000000000000ff\n1 2 a.example.com\n").unwrap();
    /// assert_eq!(stored.generation().map(|g| g.number()), Some(7));
    /// assert!(matches!(ExpiryIndex::decode(b"garbage"), Err(IndexDecodeError::MissingField { line: 1 })));
    /// ```
    ///
    /// # Errors
    /// An [`IndexDecodeError`] for the first malformed line.
    pub fn decode(bytes: &[u8]) -> Result<Self, IndexDecodeError> {
        let text = std::str::from_utf8(bytes).map_err(IndexDecodeError::NotUtf8)?;
        let mut entries = Vec::with_capacity(text.len() / 40);
        let mut generation = None;
        for (n, line) in text.lines().enumerate() {
            let line_no = n + 1;
            if let Some(header) = line.strip_prefix('#') {
                if n == 0
                    && let Some(value) = header.strip_prefix(GENERATION_LINE.trim_start_matches('#'))
                {
                    generation = Some(IndexGeneration::parse(value).ok_or(IndexDecodeError::BadGeneration)?);
                }
                continue;
            }
            let mut parts = line.splitn(3, ' ');
            let (Some(at), Some(na), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(IndexDecodeError::MissingField { line: line_no });
            };
            let time = |t: &str| {
                t.parse::<i64>().map_err(|source| IndexDecodeError::BadTime { line: line_no, source })
            };
            let (at, na) = (time(at)?, time(na)?);
            entries.push((at, Arc::<str>::from(name), na));
        }
        let mut by_name = HashMap::with_capacity(entries.len());
        for (at, name, na) in &entries {
            by_name.insert(Arc::clone(name), (*at, *na));
        }
        // Stored sorted, so collecting is a bulk build.
        let by_time = entries.into_iter().map(|(at, name, _)| (at, name)).collect();
        Ok(Self { by_time, by_name, generation })
    }
}

/// Why a stored [`ExpiryIndex`] record could not be read.
///
/// ```
/// use cert_store::{ExpiryIndex, IndexDecodeError};
/// let err = ExpiryIndex::decode(b"soon 2 a.example.com").unwrap_err();
/// assert!(matches!(err, IndexDecodeError::BadTime { line: 1, .. }));
/// assert!(std::error::Error::source(&err).is_some());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IndexDecodeError {
    /// The record is not UTF-8.
    #[error("the expiry index is not UTF-8")]
    NotUtf8(#[source] std::str::Utf8Error),
    /// A line without its three fields (`<attention> <not_after> <name>`).
    #[error("line {line}: expected three fields")]
    MissingField {
        /// The line, counted from 1.
        line: usize,
    },
    /// A `#generation` line whose value is not `<number> <16 hex digits>`.
    #[error("line 1: bad generation")]
    BadGeneration,
    /// A time field that is not a Unix timestamp.
    #[error("line {line}: bad time")]
    BadTime {
        /// The line, counted from 1.
        line: usize,
        /// The parser's error.
        #[source]
        source: std::num::ParseIntError,
    },
}

fn from_unix(t: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn round_trip_and_move() {
        let mut index = ExpiryIndex::default();
        index.upsert("a", datetime!(2030-01-01 0:00 UTC), datetime!(2030-02-01 0:00 UTC));
        index.upsert("b", datetime!(2029-01-01 0:00 UTC), datetime!(2029-02-01 0:00 UTC));
        index.upsert("a", datetime!(2028-01-01 0:00 UTC), datetime!(2028-02-01 0:00 UTC));
        let decoded = ExpiryIndex::decode(&index.encode()).unwrap();
        assert_eq!(decoded.len(), 2);
        let due: Vec<_> = decoded.due_before(datetime!(2029-06-01 0:00 UTC)).map(|e| e.0).collect();
        assert_eq!(due, ["a", "b"]);
        assert_eq!(decoded.get("a").unwrap().not_after, datetime!(2028-02-01 0:00 UTC));
        assert!(ExpiryIndex::decode(b"garbage").is_err());
    }

    #[test]
    fn generation_header_round_trips_and_is_checked() {
        let mut index = ExpiryIndex::default();
        index.upsert("a", datetime!(2030-01-01 0:00 UTC), datetime!(2030-02-01 0:00 UTC));
        assert!(!String::from_utf8(index.encode()).unwrap().contains('#'), "no generation, no header");
        let generation = IndexGeneration::after(Some(IndexGeneration::after(None)));
        index.set_generation(Some(generation));
        let decoded = ExpiryIndex::decode(&index.encode()).unwrap();
        assert_eq!(decoded.generation(), Some(generation));
        assert_eq!(decoded.len(), 1);
        assert_eq!(
            ExpiryIndex::decode(b"#generation x\n1 2 a\n").unwrap_err(),
            IndexDecodeError::BadGeneration
        );
        // Other comment lines are skipped.
        assert_eq!(ExpiryIndex::decode(b"#later 1\n1 2 a\n").unwrap().len(), 1);
    }
}
