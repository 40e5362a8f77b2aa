//! Rules of the qualified certificate in the cloud (the seed's steps 8-13): when it may be
//! issued, renewed (only in the last days before it expires) and revoked, and how fresh the
//! ConsentID login behind such an action must be.

use crate::time::{UnixTime, DAY};

/// Seconds a ConsentID login stays fresh enough to issue, renew or revoke.
pub const FRESH_LOGIN: i64 = 15 * 60;

/// A user's current cloud certificate, as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloudCertificate {
    /// End of validity.
    pub not_after: UnixTime,
}

/// Why a cloud-certificate action is refused (rendered by the portal in the user's language).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CloudRefusal {
    /// An active certificate exists: renew or revoke it instead.
    #[error("an active cloud certificate exists")]
    AlreadyActive,
    /// There is no active certificate to renew or revoke.
    #[error("there is no active cloud certificate")]
    NoneActive,
    /// Renewal opens later.
    #[error("renewal opens on {opens_on:?}")]
    RenewalWindowClosed {
        /// When the window opens.
        opens_on: UnixTime,
    },
    /// The certificate has expired: issue a new one.
    #[error("the certificate has expired")]
    Expired,
    /// The action needs a ConsentID login no older than [`FRESH_LOGIN`].
    #[error("a recent ConsentID login is needed")]
    LoginNotFresh,
}

/// An operation on the citizen's cloud certificate. Each is approved in ConsentID as a request
/// of its own (issue 22): a login alone, however fresh, never issues, renews or revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateOperation {
    /// **Прихвати** after **Издај**: a new certificate and the accepted agreement.
    Issue,
    /// **Обнови**: a new certificate, the old one revoked as superseded.
    Renew,
    /// **Опозови**: the cloud certificate revoked; ConsentID stays.
    Revoke,
    /// **Опозови све сертификате**: every certificate of the citizen revoked, ConsentID
    /// deactivated, every session and API token ended.
    RevokeAll,
}

impl CertificateOperation {
    /// The stored name, also the one in the app's request.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issue => "issue",
            Self::Renew => "renew",
            Self::Revoke => "revoke",
            Self::RevokeAll => "revoke_all",
        }
    }

    /// The operation of a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Issue, Self::Renew, Self::Revoke, Self::RevokeAll]
            .into_iter()
            .find(|operation| operation.as_str() == name)
    }

    /// Whether the citizen accepts an agreement with it (issue and renewal).
    pub fn has_agreement(self) -> bool {
        matches!(self, Self::Issue | Self::Renew)
    }
}

/// Where a certificate operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationStatus {
    /// Waiting for the citizen's answer in ConsentID.
    Pending,
    /// Approved and carried out.
    Done,
    /// Denied, expired, or refused when it was to be carried out (the hint says why).
    Failed,
}

impl OperationStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    /// The status of a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Pending, Self::Done, Self::Failed]
            .into_iter()
            .find(|status| status.as_str() == name)
    }
}

/// An active certificate is one whose validity has not ended (revoked ones are not passed in).
fn active(current: Option<CloudCertificate>, now: UnixTime) -> Option<CloudCertificate> {
    current.filter(|c| now <= c.not_after)
}

/// **Издај**: only without an active certificate.
pub fn may_issue(current: Option<CloudCertificate>, now: UnixTime) -> Result<(), CloudRefusal> {
    match active(current, now) {
        Some(_) => Err(CloudRefusal::AlreadyActive),
        None => Ok(()),
    }
}

/// When renewal of a certificate valid until `not_after` opens.
pub fn renewal_opens(not_after: UnixTime, window_days: i64) -> UnixTime {
    not_after.plus_seconds(-window_days * DAY)
}

/// **Обнови**: only within the last `window_days` days of validity (both ends included: the
/// window opens exactly `window_days` days before `notAfter`, and `notAfter` itself is still
/// within validity, RFC 5280 §4.1.2.5).
pub fn may_renew(
    current: Option<CloudCertificate>,
    now: UnixTime,
    window_days: i64,
) -> Result<(), CloudRefusal> {
    let Some(certificate) = current else {
        return Err(CloudRefusal::NoneActive);
    };
    if now > certificate.not_after {
        return Err(CloudRefusal::Expired);
    }
    let opens_on = renewal_opens(certificate.not_after, window_days);
    if now < opens_on {
        return Err(CloudRefusal::RenewalWindowClosed { opens_on });
    }
    Ok(())
}

/// **Опозови**: only with an active certificate.
pub fn may_revoke_cloud(
    current: Option<CloudCertificate>,
    now: UnixTime,
) -> Result<(), CloudRefusal> {
    match active(current, now) {
        Some(_) => Ok(()),
        None => Err(CloudRefusal::NoneActive),
    }
}

/// Is this session's login fresh and by ConsentID?
pub fn login_is_fresh(
    by_consentid: bool,
    authenticated_at: Option<UnixTime>,
    now: UnixTime,
) -> Result<(), CloudRefusal> {
    match authenticated_at {
        Some(at) if by_consentid && now.0 - at.0 <= FRESH_LOGIN => Ok(()),
        _ => Err(CloudRefusal::LoginNotFresh),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_and_statuses_round_trip_their_stored_names() {
        for operation in [
            CertificateOperation::Issue,
            CertificateOperation::Renew,
            CertificateOperation::Revoke,
            CertificateOperation::RevokeAll,
        ] {
            assert_eq!(
                CertificateOperation::parse(operation.as_str()),
                Some(operation)
            );
        }
        assert_eq!(CertificateOperation::parse("Issue"), None);
        for status in [
            OperationStatus::Pending,
            OperationStatus::Done,
            OperationStatus::Failed,
        ] {
            assert_eq!(OperationStatus::parse(status.as_str()), Some(status));
        }
        assert!(CertificateOperation::Renew.has_agreement());
        assert!(!CertificateOperation::RevokeAll.has_agreement());
    }

    const NOT_AFTER: UnixTime = UnixTime(2_000_000_000);

    fn days_before(days: i64) -> UnixTime {
        NOT_AFTER.plus_seconds(-days * DAY)
    }

    #[test]
    fn renewal_opens_thirty_days_before_expiry_at_its_edges() {
        let current = Some(CloudCertificate {
            not_after: NOT_AFTER,
        });
        assert_eq!(
            may_renew(current, days_before(31), 30),
            Err(CloudRefusal::RenewalWindowClosed {
                opens_on: days_before(30)
            })
        );
        assert_eq!(
            may_renew(current, days_before(30).plus_seconds(-1), 30),
            Err(CloudRefusal::RenewalWindowClosed {
                opens_on: days_before(30)
            })
        );
        assert_eq!(may_renew(current, days_before(30), 30), Ok(()));
        assert_eq!(may_renew(current, days_before(1), 30), Ok(()));
        assert_eq!(may_renew(current, days_before(0), 30), Ok(()));
        assert_eq!(
            may_renew(current, NOT_AFTER.plus_seconds(1), 30),
            Err(CloudRefusal::Expired)
        );
        assert_eq!(
            may_renew(None, days_before(1), 30),
            Err(CloudRefusal::NoneActive)
        );
    }

    #[test]
    fn issue_and_revoke_need_the_opposite_states() {
        let current = Some(CloudCertificate {
            not_after: NOT_AFTER,
        });
        assert_eq!(
            may_issue(current, days_before(1)),
            Err(CloudRefusal::AlreadyActive)
        );
        assert_eq!(may_issue(current, NOT_AFTER.plus_seconds(1)), Ok(()));
        assert_eq!(may_issue(None, days_before(1)), Ok(()));
        assert_eq!(may_revoke_cloud(current, days_before(1)), Ok(()));
        assert_eq!(
            may_revoke_cloud(None, days_before(1)),
            Err(CloudRefusal::NoneActive)
        );
    }

    #[test]
    fn only_a_recent_consentid_login_is_fresh() {
        let now = UnixTime(10_000);
        assert_eq!(
            login_is_fresh(true, Some(UnixTime(10_000 - 900)), now),
            Ok(())
        );
        assert_eq!(
            login_is_fresh(true, Some(UnixTime(10_000 - 901)), now),
            Err(CloudRefusal::LoginNotFresh)
        );
        assert_eq!(
            login_is_fresh(false, Some(now), now),
            Err(CloudRefusal::LoginNotFresh)
        );
        assert_eq!(
            login_is_fresh(true, None, now),
            Err(CloudRefusal::LoginNotFresh)
        );
    }
}
