//! Logins without a username (issue 10, reference/mobile-auth.md): the browser shows a QR code
//! that changes every second, or, on the phone itself, a link that opens ConsentID.
//!
//! Both carry a QR login's id and a MAC made with the login's own secret (32 random bytes the
//! server keeps with it), as Swedish BankID's animated QR does:
//!
//! - QR text: `CID1.<id>.<t>.<mac>`, `t` the whole seconds since the login started and `mac`
//!   the first 16 bytes of HMAC-SHA256(secret, `CONSENTID-QR-V1\n<id>\n<t>`), base64url. A
//!   frame is accepted from [`QR_EARLY`] s before to [`QR_MAX_AGE`] s after the second it
//!   stands for, so a screenshot relayed to someone else goes stale on the way.
//! - Link token: `L1.<id>.<mac>` with `mac` over `CONSENTID-LINK-V1\n<id>`; it needs no
//!   freshness of its own (the login's lifetime bounds it), but it only works from the address
//!   that started the login ([`link_from_same_address`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::time::UnixTime;

/// Seconds after the second a QR frame stands for within which it is accepted.
pub const QR_MAX_AGE: i64 = 5;
/// Seconds before it (a frame made by a server whose clock is slightly ahead).
pub const QR_EARLY: i64 = 1;
/// Seconds a QR login waits for a phone to scan it or open its link.
pub const QR_LOGIN_LIFETIME: i64 = 120;
/// Bytes of MAC in a QR text or link token.
const MAC_LEN: usize = 16;
/// The longest id accepted (the server makes 32 hex digits).
const MAX_ID_LEN: usize = 64;
/// The largest `t` accepted: a QR login lives [`QR_LOGIN_LIFETIME`] seconds.
const MAX_T: i64 = 86_400;

/// A QR login's secret: 32 random bytes. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct QrSecret(pub [u8; 32]);

impl std::fmt::Debug for QrSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QrSecret([redacted])")
    }
}

impl QrSecret {
    fn mac(&self, message: &str) -> [u8; MAC_LEN] {
        // INVARIANT: HMAC takes a key of any length.
        #[allow(clippy::expect_used)]
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .expect("HMAC accepts any key length")
            .chain_update(message.as_bytes())
            .finalize()
            .into_bytes();
        let mut out = [0u8; MAC_LEN];
        for (o, m) in out.iter_mut().zip(mac.iter()) {
            *o = *m;
        }
        out
    }

    fn verify(&self, message: &str, given: &[u8; MAC_LEN]) -> bool {
        // Constant time: `hmac` compares the truncated tag itself.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .map(|m| m.chain_update(message.as_bytes()))
            .is_ok_and(|m| m.verify_truncated_left(given).is_ok())
    }
}

fn qr_message(id: &str, t: i64) -> String {
    format!("CONSENTID-QR-V1\n{id}\n{t}")
}

fn link_message(id: &str) -> String {
    format!("CONSENTID-LINK-V1\n{id}")
}

/// The QR text of login `id` for the second `t` after its start.
pub fn qr_text(secret: &QrSecret, id: &str, t: i64) -> String {
    let mac = URL_SAFE_NO_PAD.encode(secret.mac(&qr_message(id, t)));
    format!("CID1.{id}.{t}.{mac}")
}

/// The link token of login `id`.
pub fn link_token(secret: &QrSecret, id: &str) -> String {
    let mac = URL_SAFE_NO_PAD.encode(secret.mac(&link_message(id)));
    format!("L1.{id}.{mac}")
}

/// The second a QR frame shown at `now` stands for.
pub fn qr_second(started_at: UnixTime, now: UnixTime) -> i64 {
    (now.0 - started_at.0).clamp(0, MAX_T)
}

/// Why a scanned QR text or an opened link is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QrRefusal {
    /// Not a ConsentID QR text or link token (or its MAC is wrong).
    #[error("not a ConsentID login code")]
    Invalid,
    /// A real frame, but too old (or too far ahead): the code on the screen now is another.
    #[error("the QR code is stale")]
    Stale,
    /// The login is over: expired, already taken by a phone, or ended.
    #[error("the login is no longer open")]
    Closed,
    /// A link opened from another address than the browser's.
    #[error("the link was opened elsewhere")]
    OtherAddress,
}

/// A QR text as scanned, parsed but not yet checked against its login's secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedQr {
    /// The QR login's id.
    pub id: String,
    /// The second of the login it stands for.
    pub t: i64,
    mac: [u8; MAC_LEN],
}

/// A link token as opened, parsed but not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedLink {
    /// The QR login's id.
    pub id: String,
    mac: [u8; MAC_LEN],
}

fn parse_id(id: &str) -> Result<String, QrRefusal> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then(|| id.to_owned()).ok_or(QrRefusal::Invalid)
}

fn parse_mac(text: &str) -> Result<[u8; MAC_LEN], QrRefusal> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| QrRefusal::Invalid)?;
    bytes.try_into().map_err(|_| QrRefusal::Invalid)
}

/// Parses `CID1.<id>.<t>.<mac>` (a scanned text: anything at all may arrive).
pub fn parse_qr(text: &str) -> Result<ScannedQr, QrRefusal> {
    let mut parts = text.trim().split('.');
    let (Some("CID1"), Some(id), Some(t), Some(mac), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(QrRefusal::Invalid);
    };
    let digits = !t.is_empty() && t.len() <= 6 && t.bytes().all(|b| b.is_ascii_digit());
    let t: i64 = t
        .parse()
        .ok()
        .filter(|t| digits && *t <= MAX_T)
        .ok_or(QrRefusal::Invalid)?;
    Ok(ScannedQr {
        id: parse_id(id)?,
        t,
        mac: parse_mac(mac)?,
    })
}

/// Parses `L1.<id>.<mac>`.
pub fn parse_link(token: &str) -> Result<OpenedLink, QrRefusal> {
    let mut parts = token.trim().split('.');
    let (Some("L1"), Some(id), Some(mac), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(QrRefusal::Invalid);
    };
    Ok(OpenedLink {
        id: parse_id(id)?,
        mac: parse_mac(mac)?,
    })
}

/// Is this scanned frame genuine (its MAC is the login's) and fresh at `now`?
pub fn check_qr(
    scanned: &ScannedQr,
    secret: &QrSecret,
    started_at: UnixTime,
    now: UnixTime,
) -> Result<(), QrRefusal> {
    if !secret.verify(&qr_message(&scanned.id, scanned.t), &scanned.mac) {
        return Err(QrRefusal::Invalid);
    }
    let age = now.0 - (started_at.0 + scanned.t);
    if !(-QR_EARLY..=QR_MAX_AGE).contains(&age) {
        return Err(QrRefusal::Stale);
    }
    Ok(())
}

/// Is this link token the login's?
pub fn check_link(opened: &OpenedLink, secret: &QrSecret) -> Result<(), QrRefusal> {
    if secret.verify(&link_message(&opened.id), &opened.mac) {
        Ok(())
    } else {
        Err(QrRefusal::Invalid)
    }
}

/// A link hands the login to the app on the same phone: the app must call from the address
/// the browser started from. A link forwarded to someone else (to approve a login in the
/// sender's browser) comes from another address and is refused.
pub fn link_from_same_address(browser_address: &str, app_address: &str) -> Result<(), QrRefusal> {
    if browser_address == app_address {
        Ok(())
    } else {
        Err(QrRefusal::OtherAddress)
    }
}

/// May a phone still take this QR login at `now`: not yet taken, not expired?
pub fn may_take(taken: bool, expires_at: UnixTime, now: UnixTime) -> Result<(), QrRefusal> {
    if taken || now >= expires_at {
        Err(QrRefusal::Closed)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn secret() -> QrSecret {
        QrSecret([7; 32])
    }

    #[test]
    fn a_frame_is_accepted_only_around_its_own_second() {
        let start = UnixTime(1_000);
        let text = qr_text(&secret(), ID, 10);
        let scanned = parse_qr(&text).unwrap();
        assert_eq!(scanned.id, ID);
        assert_eq!(scanned.t, 10);
        for now in [1_009, 1_010, 1_012, 1_015] {
            assert_eq!(
                check_qr(&scanned, &secret(), start, UnixTime(now)),
                Ok(()),
                "{now}"
            );
        }
        for now in [1_008, 1_016, 1_020] {
            assert_eq!(
                check_qr(&scanned, &secret(), start, UnixTime(now)),
                Err(QrRefusal::Stale),
                "{now}"
            );
        }
    }

    #[test]
    fn a_frame_of_another_secret_or_second_is_invalid() {
        let start = UnixTime(1_000);
        let other = QrSecret([8; 32]);
        let scanned = parse_qr(&qr_text(&other, ID, 10)).unwrap();
        assert_eq!(
            check_qr(&scanned, &secret(), start, UnixTime(1_010)),
            Err(QrRefusal::Invalid)
        );
        // The second changed by hand: the MAC no longer fits.
        let text = qr_text(&secret(), ID, 10).replace(".10.", ".11.");
        let forged = parse_qr(&text).unwrap();
        assert_eq!(
            check_qr(&forged, &secret(), start, UnixTime(1_011)),
            Err(QrRefusal::Invalid)
        );
    }

    #[test]
    fn the_text_is_fixed_by_the_contract() {
        let text = qr_text(&secret(), ID, 3);
        let mut parts = text.split('.');
        assert_eq!(parts.next(), Some("CID1"));
        assert_eq!(parts.next(), Some(ID));
        assert_eq!(parts.next(), Some("3"));
        // 16 bytes in base64url without padding.
        assert_eq!(parts.next().map(str::len), Some(22));
        assert_ne!(qr_text(&secret(), ID, 3), qr_text(&secret(), ID, 4));
    }

    #[test]
    fn anything_else_is_not_a_qr_text() {
        let good = qr_text(&secret(), ID, 3);
        let mac = good.rsplit('.').next().unwrap().to_owned();
        for text in [
            "",
            "CID1",
            "https://example.com/",
            &format!("CID2.{ID}.3.{mac}"),
            &format!("CID1.{ID}.-3.{mac}"),
            &format!("CID1.{ID}.+3.{mac}"),
            &format!("CID1.{ID}.9999999.{mac}"),
            &format!("CID1.{ID}.3.{mac}.x"),
            &format!("CID1.{ID}.3.{mac}A"),
            &format!("CID1.{ID}.3.!!"),
            &format!("CID1.../.3.{mac}"),
            &format!("CID1..3.{mac}"),
            &format!("CID1.{}.3.{mac}", "a".repeat(65)),
        ] {
            assert_eq!(parse_qr(text), Err(QrRefusal::Invalid), "{text}");
        }
    }

    #[test]
    fn a_link_is_the_logins_own_and_from_the_same_address() {
        let token = link_token(&secret(), ID);
        let opened = parse_link(&token).unwrap();
        assert_eq!(opened.id, ID);
        assert_eq!(check_link(&opened, &secret()), Ok(()));
        assert_eq!(
            check_link(&opened, &QrSecret([9; 32])),
            Err(QrRefusal::Invalid)
        );
        // A QR text is not a link, nor the other way round.
        assert_eq!(
            parse_link(&qr_text(&secret(), ID, 1)),
            Err(QrRefusal::Invalid)
        );
        assert_eq!(parse_qr(&token), Err(QrRefusal::Invalid));
        assert_eq!(link_from_same_address("10.0.0.1", "10.0.0.1"), Ok(()));
        assert_eq!(
            link_from_same_address("10.0.0.1", "10.0.0.2"),
            Err(QrRefusal::OtherAddress)
        );
    }

    #[test]
    fn a_login_is_taken_once_and_before_it_expires() {
        assert_eq!(may_take(false, UnixTime(10), UnixTime(9)), Ok(()));
        assert_eq!(
            may_take(false, UnixTime(10), UnixTime(10)),
            Err(QrRefusal::Closed)
        );
        assert_eq!(
            may_take(true, UnixTime(10), UnixTime(9)),
            Err(QrRefusal::Closed)
        );
        assert_eq!(qr_second(UnixTime(100), UnixTime(103)), 3);
        assert_eq!(qr_second(UnixTime(100), UnixTime(99)), 0);
    }
}
