//! Widget tokens: let a customer's browser check and verify one connection
//! for 60 minutes, without an API key.

use time::OffsetDateTime;

/// How long a widget token is valid.
pub const WIDGET_TOKEN_LIFETIME: time::Duration = time::Duration::minutes(60);

/// Signs and checks widget tokens (`<id>.<expiry unix>.<hex HMAC-SHA256 of
/// "<id>.<expiry>">`). A fleet shares the secret.
///
/// ```
/// use control_plane::WidgetKey;
/// use time::{Duration, OffsetDateTime};
/// let key = WidgetKey::new(b"fleet secret");
/// let now = OffsetDateTime::now_utc();
/// let (token, expires) = key.sign("ab12", now);
/// assert_eq!(key.check(&token, now).as_deref(), Some("ab12"));
/// assert_eq!(key.check(&token, expires + Duration::SECOND), None);
/// ```
#[derive(Clone)]
pub struct WidgetKey(ring::hmac::Key);

impl std::fmt::Debug for WidgetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WidgetKey(..)")
    }
}

impl WidgetKey {
    /// A key from the fleet's secret.
    #[must_use]
    pub fn new(secret: &[u8]) -> Self {
        Self(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret))
    }

    /// A random key (tokens die with the process).
    #[must_use]
    pub fn random() -> Self {
        Self::new(&rand::random::<[u8; 32]>())
    }

    /// A token for connection `id`, and when it expires.
    #[must_use]
    pub fn sign(&self, id: &str, now: OffsetDateTime) -> (String, OffsetDateTime) {
        let expires = now + WIDGET_TOKEN_LIFETIME;
        let payload = format!("{id}.{}", expires.unix_timestamp());
        let tag = ring::hmac::sign(&self.0, payload.as_bytes());
        (format!("{payload}.{}", hex::encode(tag.as_ref())), expires)
    }

    /// The connection a token grants, if its signature holds (checked in
    /// constant time) and it has not expired at `now`.
    #[must_use]
    pub fn check(&self, token: &str, now: OffsetDateTime) -> Option<String> {
        self.grant(token, now).map(|g| g.connection_id)
    }

    /// What a token grants (the connection, until when), if its signature
    /// holds (checked in constant time) and it has not expired at `now`.
    #[must_use]
    pub fn grant(&self, token: &str, now: OffsetDateTime) -> Option<WidgetGrant> {
        let (payload, tag) = token.rsplit_once('.')?;
        let tag = hex::decode(tag).ok()?;
        ring::hmac::verify(&self.0, payload.as_bytes(), &tag).ok()?;
        let (id, expires) = payload.split_once('.')?;
        let expires = OffsetDateTime::from_unix_timestamp(expires.parse().ok()?).ok()?;
        (now < expires).then(|| WidgetGrant { connection_id: id.to_owned(), expires_at: expires })
    }
}

/// What a valid widget token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WidgetGrant {
    /// The one connection it may check and verify.
    pub connection_id: String,
    /// When it stops being accepted.
    pub expires_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widget_tokens_expire_after_an_hour_and_refuse_tampering() {
        let key = WidgetKey::new(b"secret");
        let now = OffsetDateTime::now_utc();
        let (token, expires) = key.sign("abc123", now);
        assert_eq!(expires - now, time::Duration::minutes(60));
        assert_eq!(key.check(&token, now).as_deref(), Some("abc123"));
        assert_eq!(key.check(&token, now + time::Duration::minutes(59)).as_deref(), Some("abc123"));
        assert_eq!(key.check(&token, now + time::Duration::minutes(61)), None);
        let grant = key.grant(&token, now).unwrap();
        assert_eq!(grant.connection_id, "abc123");
        assert_eq!(grant.expires_at.unix_timestamp(), expires.unix_timestamp());
        assert_eq!(key.grant(&token, grant.expires_at), None);
        assert_eq!(WidgetKey::new(b"other").check(&token, now), None);
        // Another id or a later expiry with the same signature.
        let (_, rest) = token.split_once('.').unwrap();
        assert_eq!(key.check(&format!("abc124.{rest}"), now), None);
        let (payload, tag) = token.rsplit_once('.').unwrap();
        let later = payload
            .replace(&expires.unix_timestamp().to_string(), &(expires.unix_timestamp() + 9999).to_string());
        assert_eq!(key.check(&format!("{later}.{tag}"), now), None);
        for junk in ["", ".", "a.b.c", "abc123.1.zz"] {
            assert_eq!(key.check(junk, now), None);
        }
    }
}
