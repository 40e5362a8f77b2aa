//! The login service's own contract, on a temporary store: sessions end when they expire, and
//! a login request is seen, cancelled and completed only by the browser that started it, and
//! completed only once approved; the app and the browser that wait are woken at once.

use std::time::Duration;

use domain::TransactionStatus;
use store::{Change, Database as _};
use tokio::time::Instant;

use crate::login::{SessionToken, ANONYMOUS_LIFETIME, LOGGED_IN_LIFETIME};
use crate::test_support::{authorities, enrol, App, PASSWORD};
use crate::{Error, Rejection};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_refused_once_they_expire() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        // An anonymous session: not stored, valid for ANONYMOUS_LIFETIME seconds.
        let (token, session) = t.login.new_session();
        assert!(session.user.is_none(), "{name}");
        assert!(t.login.session(&token).await.unwrap().is_some(), "{name}");
        t.clock.advance(ANONYMOUS_LIFETIME - 1);
        let still = t.login.session(&token).await.unwrap().unwrap();
        assert_eq!(still.csrf_token(), session.csrf_token(), "{name}");
        t.clock.advance(1);
        assert!(
            t.login.session(&token).await.unwrap().is_none(),
            "{name}: expired"
        );
        // A token the client made up is no session.
        let made_up = SessionToken(format!("a.{}", proto::b64(&[7u8; 56])));
        assert!(t.login.session(&made_up).await.unwrap().is_none(), "{name}");

        // A password session: stored, valid for LOGGED_IN_LIFETIME seconds, ended by logout.
        let user_email = "petar@example.rs";
        enrol(&t, user_email).await;
        let (_, browser) = t.login.new_session();
        let (token, session) = t
            .login
            .password_login(&browser, user_email, PASSWORD, "127.0.0.1")
            .await
            .unwrap();
        assert!(!session.by_consentid(), "{name}");
        assert_eq!(session.authenticated_at(), Some(t.now()), "{name}");
        t.clock.advance(LOGGED_IN_LIFETIME - 1);
        assert!(t.login.session(&token).await.unwrap().is_some(), "{name}");
        t.clock.advance(1);
        assert!(
            t.login.session(&token).await.unwrap().is_none(),
            "{name}: expired"
        );
        let (_, browser) = t.login.new_session();
        let (token, session) = t
            .login
            .password_login(&browser, user_email, PASSWORD, "127.0.0.1")
            .await
            .unwrap();
        t.login.logout(&session).await.unwrap();
        assert!(
            t.login.session(&token).await.unwrap().is_none(),
            "{name}: logged out"
        );
        // A wrong password is refused like an unknown account.
        let (_, browser) = t.login.new_session();
        for (email, password) in [
            (user_email, "wrong horse battery"),
            ("nobody@example.rs", PASSWORD),
        ] {
            assert!(
                matches!(
                    t.login
                        .password_login(&browser, email, password, "127.0.0.1")
                        .await,
                    Err(Error::Rejected(Rejection::BadSignature))
                ),
                "{name}: {email}"
            );
        }
        t.close().await;
    }
}

fn not_found<T>(result: Result<T, Error>) -> bool {
    matches!(result, Err(Error::Rejected(Rejection::NotFound)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_request_belongs_to_its_browser_and_completes_once_approved() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let (user, code) = enrol(&t, "petar@example.rs").await;
        let app = App::activate(&t, &code).await.unwrap();
        let (_, first) = t.login.new_session();
        let (_, other) = t.login.new_session();
        let started = t
            .login
            .login_start(&first, "petar@example.rs", "127.0.0.1", "test browser")
            .await
            .unwrap();
        let txn = &started.txn_id;

        // Another browser sees nothing and can cancel nothing.
        assert!(not_found(t.login.login_state(&other, txn).await), "{name}");
        assert!(not_found(t.login.login_cancel(&other, txn).await), "{name}");
        assert!(
            not_found(t.login.login_complete(&other, txn).await),
            "{name}"
        );
        assert!(
            not_found(
                t.login
                    .login_state(&first, &domain::TxnId::from("no-such-request"))
                    .await
            ),
            "{name}"
        );
        let state = t.login.login_state(&first, txn).await.unwrap();
        assert_eq!(state.status, TransactionStatus::Pending, "{name}");
        assert_eq!(state.verification_code, started.verification_code, "{name}");

        // Not approved yet: nothing to complete.
        assert!(
            matches!(
                t.login.login_complete(&first, txn).await,
                Err(Error::Rejected(Rejection::NotPending))
            ),
            "{name}: before approval"
        );
        assert_eq!(
            t.login.login_state(&first, txn).await.unwrap().status,
            TransactionStatus::Pending,
            "{name}: still pending"
        );

        // Approved: it completes in its own browser, once, with a fresh session id.
        app.approve_next(&t).await;
        assert_eq!(
            t.login.login_state(&first, txn).await.unwrap().status,
            TransactionStatus::Approved,
            "{name}"
        );
        assert!(
            not_found(t.login.login_complete(&other, txn).await),
            "{name}: approved, still not the other browser's"
        );
        let (token, session) = t.login.login_complete(&first, txn).await.unwrap();
        assert!(session.by_consentid(), "{name}");
        assert_eq!(
            session.user.as_ref().map(|u| &u.id),
            Some(&user.id),
            "{name}"
        );
        assert_ne!(session.record.id_hash, first.record.id_hash, "{name}");
        assert!(t.login.session(&token).await.unwrap().is_some(), "{name}");
        assert!(
            matches!(
                t.login.login_complete(&first, txn).await,
                Err(Error::Rejected(Rejection::NotPending))
            ),
            "{name}: once"
        );

        // A request cancelled by its browser cannot be approved into a login.
        let started = t
            .login
            .login_start(&first, "petar@example.rs", "127.0.0.1", "test browser")
            .await
            .unwrap();
        t.login.login_cancel(&first, &started.txn_id).await.unwrap();
        assert_eq!(
            t.login
                .login_state(&first, &started.txn_id)
                .await
                .unwrap()
                .status,
            TransactionStatus::Cancelled,
            "{name}"
        );
        assert!(
            matches!(
                t.login.login_complete(&first, &started.txn_id).await,
                Err(Error::Rejected(Rejection::NotPending))
            ),
            "{name}: cancelled"
        );
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_after_the_approval_stops_the_login_and_a_late_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let (_, code) = enrol(&t, "mila@example.rs").await;
        let app = App::activate(&t, &code).await.unwrap();
        let (_, browser) = t.login.new_session();
        let started = t
            .login
            .login_start(&browser, "mila@example.rs", "127.0.0.1", "test browser")
            .await
            .unwrap();
        let txn = &started.txn_id;

        // Approved on the phone, then cancelled in the browser: it no longer completes.
        app.approve_next(&t).await;
        t.login.login_cancel(&browser, txn).await.unwrap();
        assert_eq!(
            t.login.login_state(&browser, txn).await.unwrap().status,
            TransactionStatus::Cancelled,
            "{name}"
        );
        assert!(
            matches!(
                t.login.login_complete(&browser, txn).await,
                Err(Error::Rejected(Rejection::NotPending))
            ),
            "{name}: a cancelled login does not complete"
        );

        // Cancelling what is over is refused and audits nothing.
        let audited = t.audit_len().await;
        assert!(
            matches!(
                t.login.login_cancel(&browser, txn).await,
                Err(Error::Rejected(Rejection::NotPending))
            ),
            "{name}: twice"
        );
        assert_eq!(t.audit_len().await, audited, "{name}: no second entry");
        t.close().await;
    }
}

/// Well within the 25 s the waiters below may wait, and within the 30 s a watcher that is not
/// woken goes without looking again on PostgreSQL once its listener is connected: an answer
/// this soon is a wake.
const WOKEN_WITHIN: Duration = Duration::from_secs(10);

/// On PostgreSQL, until the store's listener is connected, waiters look again every second:
/// waits until it is, so that a quick answer can only be a wake.
async fn listener_connected(t: &crate::test_support::TestAuthority) {
    if t.name == "sqlite" {
        return;
    }
    let probe = t.store.watch(&Change::Mail);
    let deadline = Instant::now() + Duration::from_secs(10);
    while probe.recheck() < Duration::from_secs(30) {
        assert!(
            Instant::now() < deadline,
            "{}: the listener never connected",
            t.name
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiting_app_and_the_waiting_browser_are_woken_by_the_request_and_its_answer() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let (_, code) = enrol(&t, "mila@example.rs").await;
        let app = App::activate(&t, &code).await.unwrap();
        listener_connected(&t).await;
        let (_, browser) = t.login.new_session();

        // The app waits on an empty inbox; a login request arrives.
        let device = app.authenticated(&t, "/inbox", b"").await.unwrap();
        let caller = app.caller();
        let started = Instant::now();
        let (inbox, login) = tokio::join!(
            t.login.inbox(&device, &caller, Duration::from_secs(25)),
            async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                t.login
                    .login_start(&browser, "mila@example.rs", "127.0.0.1", "test browser")
                    .await
                    .unwrap()
            }
        );
        assert_eq!(inbox.unwrap().items.len(), 1, "{name}");
        assert!(
            started.elapsed() < WOKEN_WITHIN,
            "{name}: the inbox was not woken"
        );

        // The browser waits on the pending request; the phone approves it.
        let started = Instant::now();
        let (state, _) = tokio::join!(
            t.login
                .login_state_waiting(&browser, &login.txn_id, Duration::from_secs(25)),
            async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                app.approve_next(&t).await
            }
        );
        assert_eq!(state.unwrap().status, TransactionStatus::Approved, "{name}");
        assert!(
            started.elapsed() < WOKEN_WITHIN,
            "{name}: the browser was not woken"
        );

        // Without a wait, the state comes at once.
        let state = t
            .login
            .login_state_waiting(&browser, &login.txn_id, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(state.status, TransactionStatus::Approved, "{name}");
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_waiting_on_a_qr_login_is_woken_by_the_scan_and_by_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let (_, code) = enrol(&t, "vesna@example.rs").await;
        let app = App::activate(&t, &code).await.unwrap();
        listener_connected(&t).await;
        let (_, browser) = t.login.new_session();
        let qr = t
            .login
            .qr_login_start(&browser, "127.0.0.1", "test browser")
            .await
            .unwrap();

        // The browser waits while its code is shown; a phone scans it.
        let started = Instant::now();
        let (state, taken) = tokio::join!(
            t.login
                .qr_login_state_waiting(&browser, &qr.id, Duration::from_secs(25)),
            async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let frame = t.login.qr_frame(&browser, &qr.id).await.unwrap();
                let device = app.authenticated(&t, "/login/qr", b"").await.unwrap();
                t.login.qr_login_take(&device, &app.caller(), &frame).await
            }
        );
        taken.unwrap();
        let state = state.unwrap();
        assert_eq!(state.status, TransactionStatus::Pending, "{name}");
        assert_ne!(state.hint, "waiting", "{name}: a phone has it");
        assert!(
            started.elapsed() < WOKEN_WITHIN,
            "{name}: the browser was not woken by the scan"
        );

        // It waits again, now on the phone's request; the phone approves it.
        let started = Instant::now();
        let (state, _) = tokio::join!(
            t.login
                .qr_login_state_waiting(&browser, &qr.id, Duration::from_secs(25)),
            async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                app.approve_next(&t).await
            }
        );
        assert_eq!(state.unwrap().status, TransactionStatus::Approved, "{name}");
        assert!(
            started.elapsed() < WOKEN_WITHIN,
            "{name}: the browser was not woken by the approval"
        );

        // Another browser waits for nothing: the login is not its own.
        let (_, other) = t.login.new_session();
        assert!(
            not_found(
                t.login
                    .qr_login_state_waiting(&other, &qr.id, Duration::from_secs(25))
                    .await
            ),
            "{name}"
        );
        t.close().await;
    }
}
