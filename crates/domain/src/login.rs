//! ConsentID rules (DESIGN §3-§4, reference/mobile-auth.md §7): assurance levels, the states of
//! a login or signing transaction, PIN lockout, activation codes and rate-limit windows.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::certificate::UnknownName;
use crate::time::UnixTime;

/// How strongly an account's identity is established (DESIGN §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssuranceLevel {
    /// Self-registered with a verified e-mail: sees the account, cannot issue or sign.
    Basic,
    /// Identity proofed by a registration officer: may activate ConsentID.
    High,
}

impl AssuranceLevel {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Basic => "basic",
            Self::High => "high",
        }
    }
}

impl FromStr for AssuranceLevel {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "basic" => Ok(Self::Basic),
            "high" => Ok(Self::High),
            _ => Err(UnknownName(s.to_owned())),
        }
    }
}

/// A ConsentID device's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Usable.
    Active,
    /// Locked after [`MAX_PIN_FAILURES`] wrong PINs in a row; re-activation needed.
    PinLocked,
    /// Revoked; its certificate too.
    Revoked,
}

impl DeviceState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::PinLocked => "pin_locked",
            Self::Revoked => "revoked",
        }
    }
}

impl FromStr for DeviceState {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "pin_locked" => Ok(Self::PinLocked),
            "revoked" => Ok(Self::Revoked),
            _ => Err(UnknownName(s.to_owned())),
        }
    }
}

/// Wrong PINs in a row that lock a device.
pub const MAX_PIN_FAILURES: u8 = 5;

/// The device state after one more wrong PIN, and the tries left.
pub fn after_wrong_pin(failures_before: u8) -> (DeviceState, u8) {
    let failures = failures_before.saturating_add(1);
    if failures >= MAX_PIN_FAILURES {
        (DeviceState::PinLocked, 0)
    } else {
        (DeviceState::Active, MAX_PIN_FAILURES - failures)
    }
}

/// Seconds a login or signing request stays open.
pub const TRANSACTION_LIFETIME: i64 = 120;
/// Seconds an activation code is valid.
pub const ACTIVATION_LIFETIME: i64 = 600;
/// Wrong codes for one activation before it is dead.
pub const ACTIVATION_TRIES: u8 = 5;
/// Seconds a device request's timestamp may differ from the server's clock.
pub const CLOCK_SKEW: i64 = 60;

/// Where a transaction is (reference/mobile-auth.md §7.8). Terminal states never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionStatus {
    /// Waiting for the user.
    Pending,
    /// Approved in ConsentID; the browser may complete it once.
    Approved,
    /// Completed: the session was created.
    Consumed,
    /// Denied in ConsentID.
    Denied,
    /// Not answered in time.
    Expired,
    /// Cancelled by the browser or superseded by a newer request.
    Cancelled,
    /// Failed: wrong verification code, PIN locked, device revoked, no device.
    Failed,
}

impl TransactionStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Consumed => "consumed",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
        }
    }

    /// Whether the state can still change by a user's answer.
    pub fn is_open(self) -> bool {
        self == Self::Pending
    }
}

impl FromStr for TransactionStatus {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "consumed" => Self::Consumed,
            "denied" => Self::Denied,
            "expired" => Self::Expired,
            "cancelled" => Self::Cancelled,
            "failed" => Self::Failed,
            _ => return Err(UnknownName(s.to_owned())),
        })
    }
}

/// The status a stored transaction shows at `now`: a pending one past its expiry is expired.
pub fn effective_status(
    status: TransactionStatus,
    expires_at: UnixTime,
    now: UnixTime,
) -> TransactionStatus {
    if status == TransactionStatus::Pending && now >= expires_at {
        TransactionStatus::Expired
    } else {
        status
    }
}

/// Why an answer from a device is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnswerRefusal {
    /// The transaction is no longer pending (answered, expired, superseded...).
    #[error("the request is no longer open")]
    NotPending,
    /// The device is not one of the transaction's user's active devices.
    #[error("this device may not answer this request")]
    WrongDevice,
    /// The device is locked or revoked.
    #[error("the device is not active")]
    DeviceInactive,
    /// The signed time is too far from the server's clock.
    #[error("the answer's time is outside the allowed skew")]
    ClockSkew,
}

/// May this device answer this transaction now?
pub fn may_answer(
    status: TransactionStatus,
    expires_at: UnixTime,
    device: DeviceState,
    device_is_users: bool,
    issued_at: UnixTime,
    now: UnixTime,
) -> Result<(), AnswerRefusal> {
    if effective_status(status, expires_at, now) != TransactionStatus::Pending {
        return Err(AnswerRefusal::NotPending);
    }
    if !device_is_users {
        return Err(AnswerRefusal::WrongDevice);
    }
    if device != DeviceState::Active {
        return Err(AnswerRefusal::DeviceInactive);
    }
    if (issued_at.0 - now.0).abs() > CLOCK_SKEW {
        return Err(AnswerRefusal::ClockSkew);
    }
    Ok(())
}

/// Seconds within which an approved login must be completed by its browser. The browser
/// polls every two seconds and completes at once; an approval left lying longer is not a fresh
/// ConsentID login any more.
pub const LOGIN_COMPLETION_WINDOW: i64 = 60;

/// A stored request, as a browser session asks about it as its own login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginRequest<'a> {
    /// The request's kind (`login`, `sign`).
    pub kind: &'a str,
    /// The browser session (hash) it is bound to.
    pub bound_to: &'a str,
    /// Its stored status.
    pub status: TransactionStatus,
    /// When it was answered.
    pub decided_at: Option<UnixTime>,
}

/// Why a browser may not complete a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoginRefusal {
    /// Not a login request of this browser session (another session's, or a signing request):
    /// to this browser it does not exist.
    #[error("no such login request")]
    NotFound,
    /// Not approved (pending, denied, consumed...).
    #[error("the login was not approved")]
    NotApproved,
    /// Approved too long ago ([`LOGIN_COMPLETION_WINDOW`]).
    #[error("the approval is older than {LOGIN_COMPLETION_WINDOW} s")]
    TooLate,
}

/// Whether `request` is a login request of the browser session `session` (its state may be
/// shown, it may be cancelled or completed there).
pub fn is_login_of(request: &LoginRequest<'_>, session: &str) -> bool {
    request.kind == "login" && request.bound_to == session
}

/// May the browser session `session` complete this login at `now`? Only its own login
/// request, approved, at most [`LOGIN_COMPLETION_WINDOW`] seconds after the approval.
pub fn may_complete_login(
    request: &LoginRequest<'_>,
    session: &str,
    now: UnixTime,
) -> Result<(), LoginRefusal> {
    if !is_login_of(request, session) {
        return Err(LoginRefusal::NotFound);
    }
    if request.status != TransactionStatus::Approved {
        return Err(LoginRefusal::NotApproved);
    }
    match request.decided_at {
        Some(approved) if now.0 - approved.0 <= LOGIN_COMPLETION_WINDOW => Ok(()),
        _ => Err(LoginRefusal::TooLate),
    }
}

/// May the browser that started this login cancel it now (its status as of now, see
/// [`effective_status`])? While it waits for the phone and after the phone approved it, until
/// the browser completes it: a citizen who presses cancel after approving does not want to be
/// logged in. Denied, expired, completed or cancelled requests have nothing left to cancel.
pub fn may_cancel_login(status: TransactionStatus) -> bool {
    matches!(
        status,
        TransactionStatus::Pending | TransactionStatus::Approved
    )
}

/// A fixed-window rate limit: at most `limit` events per `window` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Events allowed per window.
    pub limit: u32,
    /// Window length, seconds.
    pub window: i64,
}

impl RateLimit {
    /// Login starts per user and network ([`network`]; reference/mobile-auth.md §7.5): a
    /// stranger who knows the username uses up only the budget of their own network, never
    /// the owner's. There is no per-user ceiling on starts: whatever strangers do, the owner
    /// starting from a network that took no part logs in at once (finding 4 of issue 22).
    pub const LOGIN_PER_USER: Self = Self {
        limit: 5,
        window: 600,
    };
    /// Login requests per user and network whose notification is pushed to the user's phone:
    /// a stranger's network rings the phone at most this often.
    pub const LOGIN_PUSHES_PER_USER_NETWORK: Self = Self {
        limit: 2,
        window: 600,
    };
    /// Login requests per user, from all networks together, whose notification is pushed:
    /// past it a login request is still made (and shown in the app's inbox), only the phone
    /// is not rung again.
    pub const LOGIN_PUSHES_PER_USER: Self = Self {
        limit: 10,
        window: 600,
    };
    /// Login starts and password attempts per network, whatever the account.
    pub const LOGIN_PER_ADDRESS: Self = Self {
        limit: 20,
        window: 600,
    };
    /// Activation attempts per address.
    pub const ACTIVATION_PER_ADDRESS: Self = Self {
        limit: 10,
        window: 600,
    };
    /// Password attempts (portal and CSC `auth/login`) per account and network: a stranger's
    /// wrong passwords do not use up the owner's.
    pub const PASSWORD_PER_USER: Self = Self {
        limit: 5,
        window: 900,
    };
    /// Password attempts per account from all networks together before the account is
    /// treated as under attack. It refuses nobody by itself (refusing would lock the owner
    /// out, finding 4 of issue 22): past it, each network gets only
    /// [`Self::PASSWORD_PER_USER_NETWORK_UNDER_ATTACK`] attempts.
    pub const PASSWORD_PER_USER_CEILING: Self = Self {
        limit: 100,
        window: 900,
    };
    /// Password attempts per account and network while the account is under attack (past
    /// [`Self::PASSWORD_PER_USER_CEILING`]): one, enough for the owner's own correct password
    /// from a network of her own, and guessing is slowed to one try per network per window.
    pub const PASSWORD_PER_USER_NETWORK_UNDER_ATTACK: Self = Self {
        limit: 1,
        window: 900,
    };
    /// Registrations per address.
    pub const REGISTER_PER_ADDRESS: Self = Self {
        limit: 5,
        window: 3600,
    };
    /// Signing requests per account: each one rings the user's phone.
    pub const SIGN_REQUESTS_PER_USER: Self = Self {
        limit: 30,
        window: 600,
    };
    /// CIBA requests per service (OpenID CIBA Core: a counter's or call centre's server asks
    /// for citizens' logins): each one may ring a citizen's phone.
    pub const CIBA_PER_CLIENT: Self = Self {
        limit: 300,
        window: 600,
    };
    /// CIBA requests per citizen from all services together, counted by the e-mail address
    /// asked for whether or not an account has it (so the answers are the same either way):
    /// services together ring a phone at most this often.
    pub const CIBA_PER_USER: Self = Self {
        limit: 10,
        window: 600,
    };
    /// Time-stamp tokens per client address in one second (`POST /tsa` and the CSC
    /// `signatures/timestamp`): each costs a signature, an audit row and an fsync.
    pub const TSA_PER_ADDRESS: Self = Self {
        limit: 20,
        window: 1,
    };
    /// Time-stamp tokens per second from all public callers together.
    pub const TSA_GLOBAL: Self = Self {
        limit: 200,
        window: 1,
    };
    /// Time-stamp tokens per CSC API user in one second, whatever their addresses.
    pub const TSA_PER_API_USER: Self = Self {
        limit: 10,
        window: 1,
    };

    /// Every limit counted in the database (the TSA's are counted in memory).
    pub const STORED: [Self; 12] = [
        Self::LOGIN_PER_USER,
        Self::LOGIN_PUSHES_PER_USER_NETWORK,
        Self::LOGIN_PUSHES_PER_USER,
        Self::LOGIN_PER_ADDRESS,
        Self::ACTIVATION_PER_ADDRESS,
        Self::PASSWORD_PER_USER,
        Self::PASSWORD_PER_USER_CEILING,
        Self::PASSWORD_PER_USER_NETWORK_UNDER_ATTACK,
        Self::REGISTER_PER_ADDRESS,
        Self::SIGN_REQUESTS_PER_USER,
        Self::CIBA_PER_CLIENT,
        Self::CIBA_PER_USER,
    ];

    /// The longest window of the limits counted in the database: a counter whose window
    /// started this long ago has ended whatever its limit, and the upkeep deletes it.
    pub const LONGEST_WINDOW: i64 = 3600;

    /// Given the stored window start and count, is one more event allowed at `now`, and what
    /// are the new window start and count?
    pub fn check(
        &self,
        window_start: UnixTime,
        count: u32,
        now: UnixTime,
    ) -> (bool, UnixTime, u32) {
        if now.0 - window_start.0 >= self.window {
            (true, now, 1)
        } else if count < self.limit {
            (true, window_start, count + 1)
        } else {
            (false, window_start, count)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_may_be_cancelled_until_it_completes() {
        assert!(may_cancel_login(TransactionStatus::Pending));
        assert!(may_cancel_login(TransactionStatus::Approved));
        for status in [
            TransactionStatus::Denied,
            TransactionStatus::Expired,
            TransactionStatus::Consumed,
            TransactionStatus::Cancelled,
        ] {
            assert!(!may_cancel_login(status), "{status:?}");
        }
    }

    #[test]
    fn the_fifth_wrong_pin_locks() {
        assert_eq!(after_wrong_pin(0), (DeviceState::Active, 4));
        assert_eq!(after_wrong_pin(3), (DeviceState::Active, 1));
        assert_eq!(after_wrong_pin(4), (DeviceState::PinLocked, 0));
    }

    #[test]
    fn answers_are_refused_when_not_allowed() {
        let now = UnixTime(1000);
        let ok =
            |s, exp, dev, mine, iat| may_answer(s, UnixTime(exp), dev, mine, UnixTime(iat), now);
        assert_eq!(
            ok(
                TransactionStatus::Pending,
                1100,
                DeviceState::Active,
                true,
                1000
            ),
            Ok(())
        );
        assert_eq!(
            ok(
                TransactionStatus::Pending,
                1000,
                DeviceState::Active,
                true,
                1000
            ),
            Err(AnswerRefusal::NotPending)
        );
        assert_eq!(
            ok(
                TransactionStatus::Approved,
                1100,
                DeviceState::Active,
                true,
                1000
            ),
            Err(AnswerRefusal::NotPending)
        );
        assert_eq!(
            ok(
                TransactionStatus::Pending,
                1100,
                DeviceState::Active,
                false,
                1000
            ),
            Err(AnswerRefusal::WrongDevice)
        );
        assert_eq!(
            ok(
                TransactionStatus::Pending,
                1100,
                DeviceState::Revoked,
                true,
                1000
            ),
            Err(AnswerRefusal::DeviceInactive)
        );
        assert_eq!(
            ok(
                TransactionStatus::Pending,
                1100,
                DeviceState::Active,
                true,
                1061
            ),
            Err(AnswerRefusal::ClockSkew)
        );
    }

    #[test]
    fn only_the_own_login_approved_within_a_minute_completes() {
        let approved = LoginRequest {
            kind: "login",
            bound_to: "s1",
            status: TransactionStatus::Approved,
            decided_at: Some(UnixTime(1000)),
        };
        assert_eq!(may_complete_login(&approved, "s1", UnixTime(1000)), Ok(()));
        assert_eq!(may_complete_login(&approved, "s1", UnixTime(1060)), Ok(()));
        assert_eq!(
            may_complete_login(&approved, "s1", UnixTime(1061)),
            Err(LoginRefusal::TooLate)
        );
        assert_eq!(
            may_complete_login(&approved, "s1", UnixTime(1065)),
            Err(LoginRefusal::TooLate)
        );
        let undated = LoginRequest {
            decided_at: None,
            ..approved
        };
        assert_eq!(
            may_complete_login(&undated, "s1", UnixTime(1000)),
            Err(LoginRefusal::TooLate)
        );
        assert_eq!(
            may_complete_login(&approved, "s2", UnixTime(1000)),
            Err(LoginRefusal::NotFound)
        );
        let signing = LoginRequest {
            kind: "sign",
            ..approved
        };
        assert_eq!(
            may_complete_login(&signing, "s1", UnixTime(1000)),
            Err(LoginRefusal::NotFound)
        );
        for status in [
            TransactionStatus::Pending,
            TransactionStatus::Consumed,
            TransactionStatus::Denied,
        ] {
            let other = LoginRequest { status, ..approved };
            assert_eq!(
                may_complete_login(&other, "s1", UnixTime(1000)),
                Err(LoginRefusal::NotApproved),
                "{status:?}"
            );
        }
    }

    #[test]
    fn a_login_belongs_to_its_own_session_only() {
        let login = LoginRequest {
            kind: "login",
            bound_to: "s1",
            status: TransactionStatus::Pending,
            decided_at: None,
        };
        assert!(is_login_of(&login, "s1"));
        assert!(!is_login_of(&login, "s2"));
        assert!(!is_login_of(
            &LoginRequest {
                kind: "sign",
                ..login
            },
            "s1"
        ));
    }

    #[test]
    fn rate_limits_reset_with_the_window() {
        let limit = RateLimit {
            limit: 2,
            window: 10,
        };
        assert_eq!(
            limit.check(UnixTime(0), 0, UnixTime(1)),
            (true, UnixTime(0), 1)
        );
        assert_eq!(
            limit.check(UnixTime(0), 2, UnixTime(5)),
            (false, UnixTime(0), 2)
        );
        assert_eq!(
            limit.check(UnixTime(0), 2, UnixTime(10)),
            (true, UnixTime(10), 1)
        );
    }

    #[test]
    fn the_longest_window_covers_every_stored_limit() {
        for limit in RateLimit::STORED {
            assert!(limit.window <= RateLimit::LONGEST_WINDOW, "{limit:?}");
        }
        assert!(RateLimit::STORED
            .iter()
            .any(|l| l.window == RateLimit::LONGEST_WINDOW));
    }
}
