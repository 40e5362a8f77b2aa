//! Finding 4 of issue 22, on a temporary store: what strangers who know a username can do to
//! its owner. Their login starts and wrong passwords, spread over many networks, neither lock
//! the owner out nor end her pending login; they ring her phone only a few times; IPv6 is
//! counted per /48; and the counters are forgotten once their window has ended.

use domain::{RateLimit, TransactionStatus, TxnId};
use proto::app::{Decision, ResponseOutcome};
use store::AccountQueries as _;

use crate::test_support::{authorities, enrol, App, TestAuthority, PASSWORD};
use crate::{Error, Rejection};

const OWNER: &str = "petar@example.rs";

fn rate_limited<T>(result: &Result<T, Error>) -> bool {
    matches!(result, Err(Error::Rejected(Rejection::RateLimited)))
}

/// The `n`-th stranger's address: one per network.
fn stranger(n: u32) -> String {
    format!("198.51.100.{n}")
}

/// How many login requests were made without ringing the phone.
async fn withheld(t: &TestAuthority) -> usize {
    t.audit_events()
        .await
        .iter()
        .filter(|e| *e == "login.push_withheld")
        .count()
}

/// Approves the login request `txn` in the app, with its verification code and the PIN.
async fn approve(t: &TestAuthority, app: &App, txn: &TxnId, code: &str) -> ResponseOutcome {
    let device = app.authenticated(t, "/inbox", b"").await.unwrap();
    let inbox = t
        .login
        .inbox(&device, &app.caller(), std::time::Duration::ZERO)
        .await
        .unwrap();
    let envelope = inbox
        .items
        .into_iter()
        .find(|envelope| {
            let payload: proto::app::RequestPayload =
                serde_json::from_slice(&proto::crypto::unb64(&envelope.payload).unwrap()).unwrap();
            payload.txn_id == txn.as_str()
        })
        .expect("the request in the inbox");
    let (txn, answer) = app.answer(&envelope, Decision::Approve, code, Some(&app.pin), t.now());
    app.send(t, &txn, &answer).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_login_starts_neither_lock_out_the_owner_nor_end_her_login() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let (_, code) = enrol(&t, OWNER).await;
        let mut app = App::activate(&t, &code).await.unwrap();
        // The owner's browser is on another network than her phone: she confirms being at it.
        app.at_computer = true;
        // The owner's login waits for her phone.
        let (_, own) = t.login.new_session();
        let first = t
            .login
            .login_start(&own, OWNER, "192.0.2.10", "b")
            .await
            .unwrap();

        // 20 strangers' networks start 5 logins each for her username, then are refused.
        for n in 0..20 {
            let (_, theirs) = t.login.new_session();
            for i in 0..RateLimit::LOGIN_PER_USER.limit {
                t.login
                    .login_start(&theirs, OWNER, &stranger(n), "b")
                    .await
                    .unwrap_or_else(|e| panic!("{name}: stranger {n}, start {i}: {e}"));
            }
            assert!(
                rate_limited(&t.login.login_start(&theirs, OWNER, &stranger(n), "b").await),
                "{name}: a network is limited per user"
            );
            if n == 0 {
                // One network rang the phone only twice.
                assert_eq!(
                    withheld(&t).await,
                    (RateLimit::LOGIN_PER_USER.limit
                        - RateLimit::LOGIN_PUSHES_PER_USER_NETWORK.limit)
                        as usize,
                    "{name}"
                );
            }
        }
        // The phone rang at most LOGIN_PUSHES_PER_USER times for all 101 requests.
        assert_eq!(
            withheld(&t).await,
            (1 + 20 * RateLimit::LOGIN_PER_USER.limit - RateLimit::LOGIN_PUSHES_PER_USER.limit)
                as usize,
            "{name}"
        );

        // Her own login was not superseded by any of theirs: she approves and completes it.
        let state = t.login.login_state(&own, &first.txn_id).await.unwrap();
        assert_eq!(state.status, TransactionStatus::Pending, "{name}");
        assert_eq!(
            approve(&t, &app, &first.txn_id, &first.verification_code).await,
            ResponseOutcome::Approved,
            "{name}"
        );
        t.login.login_complete(&own, &first.txn_id).await.unwrap();

        // From a network that took no part she starts again at once, and logs in.
        let (_, fresh) = t.login.new_session();
        let again = t
            .login
            .login_start(&fresh, OWNER, "203.0.113.7", "b")
            .await
            .unwrap_or_else(|e| panic!("{name}: the owner was locked out: {e}"));
        assert_eq!(
            approve(&t, &app, &again.txn_id, &again.verification_code).await,
            ResponseOutcome::Approved,
            "{name}"
        );
        t.login.login_complete(&fresh, &again.txn_id).await.unwrap();

        // A new login from the same browser session still replaces its own earlier one.
        let (_, same) = t.login.new_session();
        let older = t
            .login
            .login_start(&same, OWNER, "203.0.113.8", "b")
            .await
            .unwrap();
        t.login
            .login_start(&same, OWNER, "203.0.113.8", "b")
            .await
            .unwrap();
        let state = t.login.login_state(&same, &older.txn_id).await.unwrap();
        assert_eq!(
            (state.status, state.hint.as_str()),
            (TransactionStatus::Cancelled, "superseded"),
            "{name}"
        );
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_wrong_passwords_do_not_lock_out_the_owners_right_one() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        enrol(&t, OWNER).await;
        // 100 wrong passwords from 20 networks, 5 each; a sixth from one of them is refused.
        for n in 0..20 {
            for _ in 0..RateLimit::PASSWORD_PER_USER.limit {
                assert!(
                    matches!(
                        t.signing
                            .api_login(OWNER, "wrong password", &stranger(n))
                            .await,
                        Err(Error::Rejected(Rejection::BadSignature))
                    ),
                    "{name}: stranger {n}"
                );
            }
        }
        assert!(
            rate_limited(&t.signing.api_login(OWNER, PASSWORD, &stranger(0)).await),
            "{name}: a network's own budget"
        );

        // The owner, from a network that took no part, logs in at once (API and portal).
        t.signing
            .api_login(OWNER, PASSWORD, "203.0.113.7")
            .await
            .unwrap_or_else(|e| panic!("{name}: the owner was locked out: {e}"));
        let (_, browser) = t.login.new_session();
        t.login
            .password_login(&browser, OWNER, PASSWORD, "203.0.113.8")
            .await
            .unwrap_or_else(|e| panic!("{name}: the owner was locked out: {e}"));

        // Past the ceiling the account is under attack: each further network gets one try,
        // so guessing from many networks is slowed to one guess per network per window.
        assert!(
            matches!(
                t.signing
                    .api_login(OWNER, "wrong again", "192.0.2.50")
                    .await,
                Err(Error::Rejected(Rejection::BadSignature))
            ),
            "{name}"
        );
        assert!(
            rate_limited(&t.signing.api_login(OWNER, PASSWORD, "192.0.2.50").await),
            "{name}: the second try from a network under attack"
        );
        // After the window everything is as before.
        t.clock.advance(RateLimit::PASSWORD_PER_USER.window);
        t.signing
            .api_login(OWNER, PASSWORD, &stranger(0))
            .await
            .unwrap();
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_is_counted_per_48() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        enrol(&t, OWNER).await;
        let (_, theirs) = t.login.new_session();
        for i in 0..RateLimit::LOGIN_PER_USER.limit {
            // Each start from another /64 of the same /48.
            t.login
                .login_start(&theirs, OWNER, &format!("2001:db8:1:{i:x}::/64"), "b")
                .await
                .unwrap();
        }
        assert!(
            rate_limited(
                &t.login
                    .login_start(&theirs, OWNER, "2001:db8:1:ffff::/64", "b")
                    .await
            ),
            "{name}: a new /64 of the same /48 bought a fresh budget"
        );
        t.login
            .login_start(&theirs, OWNER, "2001:db8:2:1::/64", "b")
            .await
            .unwrap();
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upkeep_forgets_counters_whose_window_has_ended() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        enrol(&t, OWNER).await;
        let (_, browser) = t.login.new_session();
        t.login
            .login_start(&browser, OWNER, "192.0.2.1", "b")
            .await
            .unwrap();
        let counters = t.store.rate_limit_counters().await.unwrap();
        assert!(counters > 0, "{name}");
        t.maintain().await.unwrap();
        assert_eq!(
            t.store.rate_limit_counters().await.unwrap(),
            counters,
            "{name}: windows still open are kept"
        );
        t.clock.advance(RateLimit::LONGEST_WINDOW);
        t.maintain().await.unwrap();
        assert_eq!(t.store.rate_limit_counters().await.unwrap(), 0, "{name}");
        t.close().await;
    }
}
