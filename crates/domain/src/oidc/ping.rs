//! CIBA's ping mode (OpenID Connect CIBA Core 1.0 §10.2): the token the client gives with each
//! request to authenticate our notification, what the notification carries, and when a failed
//! one is tried again. The sending is `authority`'s; the rules are here.

use crate::UnixTime;

/// The longest `client_notification_token`, characters (CIBA Core §7.1).
pub const NOTIFICATION_TOKEN_MAX: usize = 1024;

/// Whether a `client_notification_token` may be taken (CIBA Core §7.1): 1 to
/// [`NOTIFICATION_TOKEN_MAX`] characters of RFC 6750 §2.1's `b64token` (letters, digits,
/// `-._~+/`, then `=` padding only at the end), so that it can be sent back as
/// `Authorization: Bearer` as it is.
pub fn notification_token_ok(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && token.len() <= NOTIFICATION_TOKEN_MAX
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// A ping-mode client's `client_notification_token`: a bearer credential of the client's, sent
/// back with the notification. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct NotificationToken(String);

impl NotificationToken {
    /// The token, if [`notification_token_ok`].
    pub fn parse(token: &str) -> Option<Self> {
        notification_token_ok(token).then(|| Self(token.to_owned()))
    }

    /// The token as given (for the `Authorization` header, and the store).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for NotificationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NotificationToken([redacted])")
    }
}

/// The notification a ping-mode request owes its client (CIBA Core §10.2), kept with the
/// request until it is delivered or given up: the `auth_req_id` itself (the store keeps only
/// its hash otherwise) and the client's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CibaPing {
    /// The request's `auth_req_id`, the notification's body.
    pub auth_req_id: String,
    /// Sent as `Authorization: Bearer`.
    pub token: NotificationToken,
}

/// Attempts after which a notification is given up.
pub const PING_ATTEMPTS: i64 = 8;

/// When to try a notification again after its `attempts`-th failed attempt (1 for the first):
/// 10 s after the first, doubling up to 5 minutes; `None`, give up: after [`PING_ATTEMPTS`], or once the
/// request ended ten minutes ago (its answer can no longer be fetched, and the client has
/// long learned of its end by its own clock).
pub fn ping_retry(attempts: i64, expires_at: UnixTime, now: UnixTime) -> Option<UnixTime> {
    if attempts >= PING_ATTEMPTS || now.0 >= expires_at.0 + 600 {
        return None;
    }
    let wait = (5i64 << attempts.clamp(0, 6)).min(300);
    Some(now.plus_seconds(wait))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_notification_token_is_a_bearer_credential_of_at_most_1024_characters() {
        for good in [
            "abc",
            "a-b.c_d~e+f/g",
            "dG9rZW4=",
            "dG9r==",
            &"x".repeat(1024),
        ] {
            assert!(notification_token_ok(good), "{good}");
            assert!(NotificationToken::parse(good).is_some(), "{good}");
        }
        for bad in [
            "",
            "=",
            "==",
            &"x".repeat(1025),
            "a b",
            "a=b",
            "tok\u{7}en",
            "tok\nen",
            "токен",
            "a,b",
            "\"a\"",
        ] {
            assert!(!notification_token_ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_notification_token_never_shows_in_debug() {
        let token = NotificationToken::parse("s3cret-token").unwrap();
        assert!(!format!("{token:?}").contains("s3cret"));
        assert_eq!(token.as_str(), "s3cret-token");
    }

    #[test]
    fn a_failed_notification_is_tried_again_sooner_then_later_and_then_given_up() {
        let expires = UnixTime(1000);
        let at = |attempts, now| ping_retry(attempts, expires, UnixTime(now)).map(|t| t.0 - now);
        assert_eq!(at(1, 900), Some(10));
        assert_eq!(at(2, 900), Some(20));
        assert_eq!(at(5, 900), Some(160));
        assert_eq!(at(6, 900), Some(300));
        assert_eq!(at(7, 900), Some(300));
        assert_eq!(at(8, 900), None, "after eight attempts");
        assert_eq!(at(1, 1599), Some(10));
        assert_eq!(at(1, 1600), None, "ten minutes after the request ended");
    }
}
