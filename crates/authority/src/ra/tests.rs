//! The RA's own contract, on a temporary store: registration and enrolment refuse what they
//! must without leaving a row, and a cloud certificate is issued only to a fresh ConsentID
//! login.

use zeroize::Zeroizing;

use domain::cloud::{CloudRefusal, FRESH_LOGIN};
use store::{AccountQueries as _, CertificateQueries as _};

use crate::ra::accounts::{NewUser, Registration};
use crate::test_support::{authorities, consentid_login, enrol, person, App, PASSWORD};
use crate::{Error, Rejection};

fn registration(email: &str, jmbg: &str) -> Registration {
    Registration {
        email: email.into(),
        password: Zeroizing::new(PASSWORD.into()),
        given_name: "Јована".into(),
        surname: "Јовановић".into(),
        jmbg: jmbg.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_refuses_a_bad_jmbg_and_an_existing_address_gets_no_second_account() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        // A JMBG whose check digit is wrong (the valid one ends in 8).
        let audit = t.audit_len().await;
        assert!(
            matches!(
                t.ra.register(
                    registration("jovana@example.rs", "0101990710009"),
                    "192.0.2.1"
                )
                .await,
                Err(Error::Rejected(Rejection::Invalid("jmbg")))
            ),
            "{name}"
        );
        assert!(
            t.store
                .user_by_email("jovana@example.rs")
                .await
                .unwrap()
                .is_none(),
            "{name}: no row"
        );
        assert_eq!(t.audit_len().await, audit, "{name}: nothing audited");
        assert_eq!(t.mails(), 0, "{name}: no mail");

        // A good one makes an unverified basic account and mails its link.
        t.ra.register(
            registration("jovana@example.rs", "0101990710008"),
            "192.0.2.1",
        )
        .await
        .unwrap();
        let user = t
            .store
            .user_by_email("jovana@example.rs")
            .await
            .unwrap()
            .unwrap();
        assert!(!user.email_verified, "{name}");
        assert_eq!(user.assurance, domain::AssuranceLevel::Basic, "{name}");
        assert_eq!(t.mails(), 1, "{name}");

        // An enrolled (verified) address: the same answer, no new account, a notice instead.
        let (enrolled, _) = enrol(&t, "petar@example.rs").await;
        t.ra.register(
            registration("Petar@Example.rs", "0101990710008"),
            "192.0.2.1",
        )
        .await
        .unwrap();
        let still = t
            .store
            .user_by_email("petar@example.rs")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(still.id, enrolled.id.as_str(), "{name}: the same account");
        assert!(still.email_verified, "{name}: untouched");
        assert_eq!(t.mails(), 2, "{name}: the notice");
        assert_eq!(
            t.audit_events().await.last().map(String::as_str),
            Some("registration.existing_address"),
            "{name}"
        );

        // The officer cannot enrol a verified address twice.
        let person = person();
        let again = NewUser {
            email: "PETAR@example.rs".into(),
            given_name: person.given_name,
            surname: person.surname,
            jmbg: person.jmbg,
            password: None,
        };
        let audit = t.audit_len().await;
        assert!(
            matches!(
                t.ra.add_user(again, "officer").await,
                Err(Error::Rejected(Rejection::AlreadyExists))
            ),
            "{name}"
        );
        assert_eq!(t.audit_len().await, audit, "{name}");
        assert_eq!(
            t.store
                .user_by_email("petar@example.rs")
                .await
                .unwrap()
                .unwrap()
                .id,
            enrolled.id.as_str(),
            "{name}"
        );
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_certificate_needs_a_fresh_consentid_login_and_none_active() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let (user, code) = enrol(&t, "petar@example.rs").await;
        let app = App::activate(&t, &code).await.unwrap();

        // A password session sees the account but cannot have a certificate issued.
        let (_, browser) = t.login.new_session();
        let (_, by_password) = t
            .login
            .password_login(&browser, "petar@example.rs", PASSWORD, "127.0.0.1")
            .await
            .unwrap();
        assert!(
            matches!(
                t.ra.may_issue_cloud(&by_password).await,
                Err(Error::Cloud(CloudRefusal::LoginNotFresh))
            ),
            "{name}: password session"
        );
        assert!(
            matches!(
                t.ra.may_issue_cloud(&browser).await,
                Err(Error::Cloud(CloudRefusal::LoginNotFresh))
            ),
            "{name}: anonymous session"
        );

        // A ConsentID login: fresh for FRESH_LOGIN seconds, then no longer.
        let session = consentid_login(&t, &app, "petar@example.rs").await;
        assert_eq!(
            t.ra.may_issue_cloud(&session).await.unwrap().id,
            user.id,
            "{name}: the session's own account"
        );
        t.clock.advance(FRESH_LOGIN);
        assert!(t.ra.may_issue_cloud(&session).await.is_ok(), "{name}");
        t.clock.advance(1);
        assert!(
            matches!(
                t.ra.may_issue_cloud(&session).await,
                Err(Error::Cloud(CloudRefusal::LoginNotFresh))
            ),
            "{name}: a stale ConsentID login"
        );
        let certificates = t.store.certificates(Some(&user.email)).await.unwrap().len();
        assert!(
            matches!(
                t.ra.issue_cloud(&session).await,
                Err(Error::Cloud(CloudRefusal::LoginNotFresh))
            ),
            "{name}: nor issue"
        );
        assert_eq!(
            t.store.certificates(Some(&user.email)).await.unwrap().len(),
            certificates,
            "{name}: nothing issued"
        );

        // Once one is active, a fresh login may not have a second one issued.
        let session = consentid_login(&t, &app, "petar@example.rs").await;
        let (issued, _) = t.ra.issue_cloud(&session).await.unwrap();
        assert!(
            matches!(
                t.ra.may_issue_cloud(&session).await,
                Err(Error::Cloud(CloudRefusal::AlreadyActive))
            ),
            "{name}"
        );
        assert_eq!(
            t.ra.cloud_state(&user)
                .await
                .unwrap()
                .current
                .map(|c| c.serial),
            Some(issued.serial),
            "{name}"
        );
        t.close().await;
    }
}
