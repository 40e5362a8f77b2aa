//! The RA's own contract, on a temporary store: registration and enrolment refuse what they
//! must without leaving a row, and a cloud certificate is issued only to a fresh ConsentID
//! login.

use zeroize::Zeroizing;

use der::Encode as _;
use domain::cloud::{CertificateOperation, CloudRefusal, FRESH_LOGIN};
use domain::records::CertificateRecord;
use domain::{CertificateKind, CertificateStatus, Serial};
use proto::app::{Decision, RequestContext, RequestKind, RequestPayload, ResponseOutcome};
use proto::crypto;
use store::{
    AccountQueries as _, CertificateQueries as _, LoginQueries as _, OperationQueries as _,
};

use crate::login::Session;
use crate::ra::accounts::{NewUser, Registration};
use crate::ra::operations::{OperationProgress, OperationRequest};
use crate::test_support::{
    authorities, authorities_with, consentid_login, enrol, person, App, PASSWORD,
};
use crate::{Authority, Error, Rejection};

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
                t.ra.request_operation(&session, CertificateOperation::Issue, request())
                    .await,
                Err(Error::Cloud(CloudRefusal::LoginNotFresh))
            ),
            "{name}: nor ask the phone to approve an issue"
        );
        assert_eq!(
            t.store.certificates(Some(&user.email)).await.unwrap().len(),
            certificates,
            "{name}: nothing issued"
        );

        // Once one is active, a fresh login may not have a second one issued.
        let session = consentid_login(&t, &app, "petar@example.rs").await;
        let issued = approved(&t, &app, &session, CertificateOperation::Issue).await;
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
            Some(issued),
            "{name}"
        );
        t.close().await;
    }
}

fn request() -> OperationRequest {
    OperationRequest {
        title: "Издавање квалификованог електронског сертификата у клауду".into(),
        context: RequestContext {
            browser: "Chrome / Windows".into(),
            ip: "127.0.0.1".into(),
        },
    }
}

/// Asks for `operation`, approves it on the phone, carries it out; the certificate it made.
async fn approved(
    t: &Authority,
    app: &App,
    session: &Session,
    operation: CertificateOperation,
) -> Serial {
    let id =
        t.ra.request_operation(session, operation, request())
            .await
            .unwrap();
    assert_eq!(app.approve_next(t).await, ResponseOutcome::Approved);
    let view = t.ra.operation(session, &id).await.unwrap();
    assert_eq!(view.progress, OperationProgress::Done);
    t.store
        .certificate_operation(&id)
        .await
        .unwrap()
        .unwrap()
        .result_serial
        .expect("the certificate it made")
}

fn cloud_serials(records: &[CertificateRecord]) -> Vec<(Serial, CertificateStatus)> {
    records
        .iter()
        .filter(|c| c.kind == CertificateKind::CloudSigning)
        .map(|c| (c.serial, c.status))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_operation_waits_for_its_own_approval_and_keeps_the_device_signature() {
    let dir = tempfile::tempdir().unwrap();
    for t in authorities(dir.path()).await {
        let name = t.name;
        let (user, code) = enrol(&t, "petar@example.rs").await;
        let app = App::activate(&t, &code).await.unwrap();
        let session = consentid_login(&t, &app, "petar@example.rs").await;
        let other = consentid_login(&t, &app, "petar@example.rs").await;
        let cloud = |t: &Authority| {
            let email = user.email.clone();
            let store = t.store.clone();
            async move { cloud_serials(&store.certificates(Some(&email)).await.unwrap()) }
        };

        // 1. A fresh login alone issues nothing: the phone is asked, and until it answers the
        //    operation waits.
        let id =
            t.ra.request_operation(&session, CertificateOperation::Issue, request())
                .await
                .unwrap();
        let (_, payload) = app.next_request(&t).await;
        assert_eq!(payload.kind, RequestKind::Certificate, "{name}");
        let details = payload.certificate.clone().unwrap();
        assert_eq!(details.operation, "issue", "{name}");
        assert_eq!(details.title, request().title, "{name}");
        assert!(
            matches!(
                t.ra.operation(&session, &id).await.unwrap().progress,
                OperationProgress::Pending { .. }
            ),
            "{name}"
        );
        assert!(
            cloud(&t).await.is_empty(),
            "{name}: nothing before the approval"
        );

        // 2. Another browser session of the same citizen cannot follow or carry it out.
        assert!(
            matches!(
                t.ra.operation(&other, &id).await,
                Err(Error::Rejected(Rejection::NotFound))
            ),
            "{name}: only the session that asked"
        );

        // 3. A denial issues nothing, and says so.
        let (envelope, payload) = app.next_request(&t).await;
        let code = crypto::verification_code(&crypto::unb64(&payload.challenge).unwrap());
        let (txn, answer) = app.answer(&envelope, Decision::Deny, &code, None, t.now());
        assert_eq!(
            app.send(&t, &txn, &answer).await.unwrap(),
            ResponseOutcome::Denied
        );
        assert_eq!(
            t.ra.operation(&session, &id).await.unwrap().progress,
            OperationProgress::Failed("denied".into()),
            "{name}"
        );
        assert!(cloud(&t).await.is_empty(), "{name}: nothing after a denial");

        // 4. Approved: issued, and the agreement keeps the device's signature over the request
        //    that carried the agreement's hash.
        let id =
            t.ra.request_operation(&session, CertificateOperation::Issue, request())
                .await
                .unwrap();
        let (_, payload) = app.next_request(&t).await;
        let shown = payload.certificate.unwrap();
        assert_eq!(app.approve_next(&t).await, ResponseOutcome::Approved);
        let view = t.ra.operation(&session, &id).await.unwrap();
        assert_eq!(view.progress, OperationProgress::Done, "{name}");
        let issued = cloud(&t).await;
        assert_eq!(issued.len(), 1, "{name}");
        assert_eq!(
            t.ra.operation(&session, &id).await.unwrap().progress,
            OperationProgress::Done,
            "{name}: carried out once"
        );
        assert_eq!(cloud(&t).await, issued, "{name}: once");

        let number = shown.agreement_number.unwrap();
        let (_, _, text, _) = t
            .store
            .agreements_of(&user.id)
            .await
            .unwrap()
            .into_iter()
            .find(|(n, ..)| *n == number)
            .unwrap();
        assert_eq!(
            shown.agreement_hash.as_deref(),
            Some(crypto::b64(&crate::ra::operations::agreement_hash(&text)).as_str()),
            "{name}: the phone was shown the hash of the stored text"
        );
        let evidence = t.store.agreement_approval(&number).await.unwrap().unwrap();
        let device = t
            .store
            .device(&app.device_id.as_str().into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(evidence.device_id, device.id, "{name}");
        let pem =
            t.ca.certificate_pem(&device.certificate_serial, false)
                .await
                .unwrap();
        let certificate = x509_cert::Certificate::load_pem_chain(pem.as_bytes()).unwrap();
        let spki = certificate[0]
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .unwrap();
        crypto::verify(&spki, evidence.approval.as_bytes(), &evidence.signature)
            .expect("the device certificate's key signed the approval");
        assert!(
            evidence.approval.contains(&format!(
                "\nctx={}\n",
                crypto::b64(&crypto::sha256(&evidence.payload))
            )),
            "{name}: the approval covers the kept request"
        );
        let kept: RequestPayload = serde_json::from_slice(&evidence.payload).unwrap();
        assert_eq!(
            kept.certificate.unwrap().agreement_hash,
            shown.agreement_hash,
            "{name}: the kept request names the agreement's hash"
        );
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_and_revoke_everything_are_one_approved_transaction_each() {
    let dir = tempfile::tempdir().unwrap();
    // Certificates of 40 days: the renewal window (30 days) opens after 10.
    let short = |settings: &mut crate::Settings| {
        settings.cloud_validity = crate::CloudValidity::Days(40);
    };
    for t in authorities_with(dir.path(), short).await {
        let name = t.name;
        let (user, code) = enrol(&t, "petar@example.rs").await;
        let app = App::activate(&t, &code).await.unwrap();
        let session = consentid_login(&t, &app, "petar@example.rs").await;
        let first = approved(&t, &app, &session, CertificateOperation::Issue).await;

        // Renewal: the new certificate and the old one's revocation, approved once.
        let state = t.ra.cloud_state(&user).await.unwrap();
        let not_after = state.current.unwrap().not_after;
        t.clock.advance(not_after.0 - t.now().0 - 20 * 86_400);
        let session = consentid_login(&t, &app, "petar@example.rs").await;
        let id =
            t.ra.request_operation(&session, CertificateOperation::Renew, request())
                .await
                .unwrap();
        let (_, payload) = app.next_request(&t).await;
        let shown = payload.certificate.unwrap();
        assert_eq!(shown.certificate_serial, Some(first.to_hex()), "{name}");
        assert!(shown.agreement_number.is_some(), "{name}");
        let before = cloud_serials(&t.store.certificates(Some(&user.email)).await.unwrap());
        assert_eq!(before, vec![(first, CertificateStatus::Issued)], "{name}");
        assert_eq!(app.approve_next(&t).await, ResponseOutcome::Approved);
        assert_eq!(
            t.ra.operation(&session, &id).await.unwrap().progress,
            OperationProgress::Done,
            "{name}"
        );
        let after = cloud_serials(&t.store.certificates(Some(&user.email)).await.unwrap());
        assert_eq!(after.len(), 2, "{name}");
        assert!(
            after.contains(&(first, CertificateStatus::Revoked)),
            "{name}"
        );

        // Revoke everything: every certificate, every session and every API token of the user.
        let (token, _) = t
            .signing
            .api_login("petar@example.rs", PASSWORD, "127.0.0.1")
            .await
            .unwrap();
        let id =
            t.ra.request_operation(&session, CertificateOperation::RevokeAll, request())
                .await
                .unwrap();
        assert_eq!(app.approve_next(&t).await, ResponseOutcome::Approved);
        assert_eq!(
            t.ra.operation(&session, &id).await.unwrap().progress,
            OperationProgress::Done,
            "{name}"
        );
        assert!(
            t.store
                .certificates(Some(&user.email))
                .await
                .unwrap()
                .iter()
                .filter(|c| matches!(
                    c.kind,
                    CertificateKind::CloudSigning | CertificateKind::Device
                ))
                .all(|c| c.status == CertificateStatus::Revoked),
            "{name}"
        );
        let ended = t
            .store
            .session(&session.record.id_hash)
            .await
            .unwrap()
            .unwrap();
        assert!(ended.ended_at.is_some(), "{name}: the session ended");
        assert!(
            t.signing.api_caller(&token).await.unwrap().is_none(),
            "{name}: the token ended"
        );
        t.close().await;
    }
}
