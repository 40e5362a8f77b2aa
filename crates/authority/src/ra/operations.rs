//! Certificate operations approved on the phone (issue 22). **Прихвати** (issue), **Обнови**,
//! **Опозови** and **Опозови све сертификате** each become a ConsentID request of their own,
//! naming the operation and, for an issue or a renewal, the agreement's number and a short
//! fingerprint of its hash. A login alone, however fresh, never issues, renews or revokes: a
//! session taken over by relaying a QR code still needs the citizen's PIN for each of them.
//!
//! The steps, and why their order matters:
//! 1. [`Ra::request_operation`] checks the rule (a fresh ConsentID login, and the
//!    operation's own: none active to issue, the renewal window, one to revoke), writes the
//!    agreement's text and number now (the phone shows its hash, so the text cannot change
//!    after the approval), makes the ConsentID request and stores the operation, bound to the
//!    browser session that asked: one transaction.
//! 2. The citizen approves on the phone (`login::consentid`); the device's signed approval is
//!    kept with the request.
//! 3. [`Ra::operation`], which the waiting page asks every two seconds, carries the operation
//!    out once the request is approved, in one transaction: the request is consumed (once), the
//!    rule checked again, the certificate issued or revoked, the agreement stored with the
//!    device's approval as evidence, sessions and API tokens ended for revoke-everything, and
//!    the operation marked done. A denied or expired request fails the operation and changes
//!    nothing else.
//! 4. After the commit: revoked keys destroyed in the backend, OCSP told, and the e-mail.

use serde_json::json;
use sha2::{Digest as _, Sha256};

use domain::cloud::{self, CertificateOperation, CloudCertificate, OperationStatus};
use domain::login::effective_status;
use domain::records::{AgreementApproval, CertificateOperationRecord};
use domain::{CertificateKind, CertificateStatus, RevocationReason, Serial, TransactionStatus};
use proto::app::{CertificateDetails, RequestContext, RequestKind};
use store::{
    AuditLog as _, LoginStore as _, OidcStore as _, OperationStore as _, SigningStore as _,
    Transaction as _,
};

use crate::ca::issuance::CloudKey;
use crate::login::consentid::RequestDetails;
use crate::login::{Session, PORTAL_NAME};
use crate::ra::agreement::{agreement_text, fill};
use crate::ra::cloud::{person_of, serbian_date};
use crate::ra::RaDb;
use crate::va::revocation::Revoked;
use crate::{Account, Error, Ra};

/// What the portal tells the phone about an operation it asks for.
#[derive(Debug, Clone)]
pub struct OperationRequest {
    /// The operation in the citizen's language, e.g. "Издавање квалификованог електронског
    /// сертификата у клауду" (from the portal's catalogue).
    pub title: String,
    /// Where the browser is (shown on the phone).
    pub context: RequestContext,
}

/// Where an operation is, as the waiting page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationProgress {
    /// Waiting for the phone.
    Pending {
        /// Seconds until the request expires.
        seconds_left: i64,
    },
    /// Approved and carried out.
    Done,
    /// Not carried out: `denied`, `expired`, `failed` (the request failed, e.g. a locked PIN)
    /// or a refusal's code when the rule no longer held (`already_active`, `none_active`,
    /// `renewal_closed`).
    Failed(String),
}

/// An operation as the portal shows it.
#[derive(Debug, Clone)]
pub struct OperationView {
    /// Its id.
    pub id: String,
    /// Which operation.
    pub operation: CertificateOperation,
    /// For an issue or a renewal: the agreement's number and the fingerprint of its hash, the
    /// same the phone shows.
    pub agreement: Option<(String, String)>,
    /// Where it is.
    pub progress: OperationProgress,
}

/// SHA-256 of an agreement's text, the hash the phone shows and the device's approval covers.
pub fn agreement_hash(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// The code of a refusal that ends an operation (the portal's message key names it).
fn refusal_hint(refusal: cloud::CloudRefusal) -> &'static str {
    match refusal {
        cloud::CloudRefusal::AlreadyActive => "already_active",
        cloud::CloudRefusal::NoneActive => "none_active",
        cloud::CloudRefusal::RenewalWindowClosed { .. } => "renewal_closed",
        cloud::CloudRefusal::Expired => "expired_certificate",
        cloud::CloudRefusal::LoginNotFresh => "login_not_fresh",
    }
}

/// What was done, for the mail after the commit.
enum Outcome {
    Issued {
        serial: Serial,
        not_after: domain::UnixTime,
        agreement: (String, String),
    },
    Renewed {
        serial: Serial,
        not_after: domain::UnixTime,
        old: Serial,
        agreement: (String, String),
    },
    Revoked(Serial),
    RevokedAll,
}

impl<D: RaDb> Ra<D> {
    /// The certificate an operation acts on, and the rule's answer for it now.
    async fn check_operation(
        &self,
        user: &Account,
        operation: CertificateOperation,
    ) -> Result<Option<Serial>, Error> {
        let state = self.cloud_state(user).await?;
        let now = self.clock.now();
        let current = state.current.as_ref();
        let view = current.map(|c| CloudCertificate {
            not_after: c.not_after,
        });
        match operation {
            CertificateOperation::Issue => cloud::may_issue(view, now)?,
            CertificateOperation::Renew => {
                cloud::may_renew(view, now, self.settings.renewal_window_days)?;
            }
            CertificateOperation::Revoke => cloud::may_revoke_cloud(view, now)?,
            CertificateOperation::RevokeAll => {}
        }
        Ok(current.map(|c| c.serial))
    }

    /// Step 1: asks the citizen's ConsentID to approve `operation`; returns the operation's
    /// id, which the portal's waiting page follows. Nothing changes before the approval.
    pub async fn request_operation(
        &self,
        session: &Session,
        operation: CertificateOperation,
        request: OperationRequest,
    ) -> Result<String, Error> {
        let user = self.fresh_user(session)?;
        let current = self.check_operation(&user, operation).await?;
        let now = self.clock.now();
        let agreement = operation.has_agreement().then(|| {
            let (y, _, _) = now.date();
            let number = format!(
                "{y}-{}",
                hex::encode(rand::random::<[u8; 5]>()).to_uppercase()
            );
            let text = agreement_text(
                &self.settings.provider,
                &format!("{} {}", user.given_name, user.surname),
                &user.jmbg,
                &serbian_date(now),
                Some(&number),
                &self.settings.agreement_words,
            );
            (number, text)
        });
        let details = CertificateDetails {
            operation: operation.as_str().to_owned(),
            title: request.title,
            agreement_number: agreement.as_ref().map(|(number, _)| number.clone()),
            agreement_hash: agreement
                .as_ref()
                .map(|(_, text)| proto::b64(&agreement_hash(text))),
            certificate_serial: match operation {
                CertificateOperation::Renew | CertificateOperation::Revoke => {
                    current.map(|serial| serial.to_hex())
                }
                _ => None,
            },
        };
        let mut tx = self.store.begin().await?;
        let txn = self
            .login
            .create_transaction(
                &mut tx,
                Some((&user.id, format!("{} {}", user.given_name, user.surname))),
                RequestKind::Certificate,
                PORTAL_NAME,
                &session.record.id_hash,
                request.context,
                Some(RequestDetails::Certificate(details)),
                None,
            )
            .await?;
        let record = CertificateOperationRecord {
            id: hex::encode(rand::random::<[u8; 16]>()),
            user_id: user.id.clone(),
            operation,
            txn_id: txn.id,
            session_binding: session.record.id_hash.clone(),
            agreement,
            certificate_serial: current.filter(|_| {
                matches!(
                    operation,
                    CertificateOperation::Renew | CertificateOperation::Revoke
                )
            }),
            status: OperationStatus::Pending,
            hint: "outstanding".into(),
            result_serial: None,
            created_at: now,
            finished_at: None,
        };
        tx.insert_certificate_operation(&record).await?;
        tx.audit(
            now,
            &format!("user:{}", user.id),
            "certificate_operation.requested",
            json!({
                "operation": operation.as_str(),
                "id": record.id,
                "txn": record.txn_id,
                "agreement": record.agreement.as_ref().map(|(number, _)| number),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(record.id)
    }

    /// Step 3: an operation of this browser session, carried out if the phone approved it.
    pub async fn operation(&self, session: &Session, id: &str) -> Result<OperationView, Error> {
        let user = session
            .user
            .clone()
            .ok_or(Error::Rejected(crate::Rejection::NotFound))?;
        let mut record = self.own_operation(session, &user, id).await?;
        if record.status == OperationStatus::Pending {
            let txn = self
                .store
                .transaction(&record.txn_id)
                .await?
                .ok_or_else(|| Error::Inconsistent(format!("operation {id} has no request")))?;
            let now = self.clock.now();
            let status = effective_status(txn.status, txn.expires_at, now);
            if status != TransactionStatus::Pending {
                self.carry_out(&user, &record).await?;
                record = self.own_operation(session, &user, id).await?;
            } else {
                return Ok(Self::view(
                    record,
                    OperationProgress::Pending {
                        seconds_left: (txn.expires_at.0 - now.0).max(0),
                    },
                ));
            }
        }
        let progress = match record.status {
            OperationStatus::Done => OperationProgress::Done,
            _ => OperationProgress::Failed(record.hint.clone()),
        };
        Ok(Self::view(record, progress))
    }

    fn view(record: CertificateOperationRecord, progress: OperationProgress) -> OperationView {
        OperationView {
            agreement: record.agreement.map(|(number, text)| {
                let fingerprint = proto::crypto::fingerprint(&agreement_hash(&text));
                (number, fingerprint)
            }),
            id: record.id,
            operation: record.operation,
            progress,
        }
    }

    /// An operation this browser session asked for; any other is as absent as an unknown one.
    async fn own_operation(
        &self,
        session: &Session,
        user: &Account,
        id: &str,
    ) -> Result<CertificateOperationRecord, Error> {
        self.store
            .certificate_operation(id)
            .await?
            .filter(|r| r.user_id == user.id && r.session_binding == session.record.id_hash)
            .ok_or(Error::Rejected(crate::Rejection::NotFound))
    }

    /// Carries out an answered operation in one transaction (the module's step 3), then does
    /// what waits for the commit (step 4).
    async fn carry_out(
        &self,
        user: &Account,
        record: &CertificateOperationRecord,
    ) -> Result<(), Error> {
        // The rule, checked again now that time has passed (a refusal fails the operation, any
        // other error is the caller's); the certificate it acts on must be the one the phone
        // was shown.
        let rule = match self.check_operation(user, record.operation).await {
            Ok(current) => match (record.operation, record.certificate_serial) {
                (CertificateOperation::Renew | CertificateOperation::Revoke, Some(shown))
                    if current != Some(shown) =>
                {
                    Err(cloud::CloudRefusal::NoneActive)
                }
                _ => Ok(current),
            },
            Err(Error::Cloud(refusal)) => Err(refusal),
            Err(other) => return Err(other),
        };
        // A new key is made before the transaction, as for every issuance (crate::ca::keys).
        let key = match (&rule, record.operation.has_agreement()) {
            (Ok(_), true) => Some(self.ca.prepare_cloud_key().await?),
            _ => None,
        };
        let (outcome, revoked) = match self
            .carry_out_in_one_transaction(user, record, rule, key.as_ref())
            .await
        {
            Ok(Some(done)) => done,
            nothing_made => {
                if let Some(key) = key {
                    self.ca.discard_key(key.key).await;
                }
                return nothing_made.map(|_| ());
            }
        };
        if let Some(revoked) = revoked {
            self.va.after_commit(revoked).await?;
        }
        self.mail_outcome(user, outcome).await;
        Ok(())
    }

    /// The transaction of [`Self::carry_out`]: `None` when nothing was made (the operation
    /// failed, or another call carried it out first), else what was done.
    async fn carry_out_in_one_transaction(
        &self,
        user: &Account,
        record: &CertificateOperationRecord,
        rule: Result<Option<Serial>, cloud::CloudRefusal>,
        key: Option<&CloudKey>,
    ) -> Result<Option<(Outcome, Option<Revoked>)>, Error> {
        let now = self.clock.now();
        let actor = format!("user:{}", user.id);
        let mut tx = self.store.begin().await?;
        // 1. The operation, still pending: a second waiting page finds it done.
        let Some(current) = tx.certificate_operation_for_update(&record.id).await? else {
            return Ok(None);
        };
        if current.status != OperationStatus::Pending {
            return Ok(None);
        }
        // 2. The request, approved and consumed here, once.
        let txn = tx
            .transaction_for_update(&record.txn_id)
            .await?
            .ok_or_else(|| {
                Error::Inconsistent(format!("operation {} has no request", record.id))
            })?;
        let status = effective_status(txn.status, txn.expires_at, now);
        let failed = match status {
            TransactionStatus::Pending => return Ok(None),
            TransactionStatus::Approved => rule.err().map(refusal_hint),
            TransactionStatus::Denied => Some("denied"),
            TransactionStatus::Expired => Some("expired"),
            _ => Some("failed"),
        };
        if let Some(hint) = failed {
            if status == TransactionStatus::Approved {
                // Approved, but the rule no longer holds: the approval is spent all the same.
                tx.move_transaction(
                    &txn.id,
                    TransactionStatus::Approved,
                    TransactionStatus::Consumed,
                    "refused",
                    None,
                    now,
                )
                .await?;
            }
            tx.finish_certificate_operation(&record.id, OperationStatus::Failed, hint, None, now)
                .await?;
            tx.audit(
                now,
                &actor,
                "certificate_operation.failed",
                json!({ "operation": record.operation.as_str(), "id": record.id, "hint": hint }),
            )
            .await?;
            tx.commit().await?;
            return Ok(None);
        }
        if !tx
            .move_transaction(
                &txn.id,
                TransactionStatus::Approved,
                TransactionStatus::Consumed,
                "consumed",
                None,
                now,
            )
            .await?
        {
            return Ok(None);
        }
        let (approval, signature) = tx.approval_of(&txn.id).await?.ok_or_else(|| {
            Error::Inconsistent(format!("approved request {} keeps no approval", txn.id))
        })?;
        let device_id = txn.device_id.clone().ok_or_else(|| {
            Error::Inconsistent(format!("approved request {} names no device", txn.id))
        })?;
        let evidence = AgreementApproval {
            payload: txn.payload.clone(),
            approval,
            signature,
            device_id,
        };
        // 3. The operation itself.
        let current_serial = rule.ok().flatten();
        let (outcome, revoked, result_serial) = match record.operation {
            CertificateOperation::Issue | CertificateOperation::Renew => {
                let (number, text) = record.agreement.clone().ok_or_else(|| {
                    Error::Inconsistent(format!("operation {} has no agreement", record.id))
                })?;
                let key = key.ok_or_else(|| Error::Inconsistent("no key prepared".into()))?;
                let issued = self
                    .ca
                    .issue_cloud_in(
                        &mut tx,
                        key,
                        &person_of(user)?,
                        Some(&user.email),
                        &actor,
                        Some((&user.id, &number, &text)),
                    )
                    .await?;
                tx.keep_agreement_approval(&number, &evidence).await?;
                match (record.operation, current_serial) {
                    (CertificateOperation::Renew, Some(old)) => {
                        let revoked = self
                            .va
                            .revoke_many_in(
                                &mut tx,
                                &[old],
                                RevocationReason::Superseded,
                                &actor,
                                now,
                            )
                            .await?;
                        (
                            Outcome::Renewed {
                                serial: issued.serial,
                                not_after: issued.not_after,
                                old,
                                agreement: (number, text),
                            },
                            Some(revoked),
                            Some(issued.serial),
                        )
                    }
                    _ => (
                        Outcome::Issued {
                            serial: issued.serial,
                            not_after: issued.not_after,
                            agreement: (number, text),
                        },
                        None,
                        Some(issued.serial),
                    ),
                }
            }
            CertificateOperation::Revoke => {
                let serial = current_serial.ok_or(cloud::CloudRefusal::NoneActive)?;
                let revoked = self
                    .va
                    .revoke_many_in(
                        &mut tx,
                        &[serial],
                        RevocationReason::CessationOfOperation,
                        &actor,
                        now,
                    )
                    .await?;
                (Outcome::Revoked(serial), Some(revoked), None)
            }
            CertificateOperation::RevokeAll => {
                let revoked = self.revoke_everything_in(&mut tx, user, &actor).await?;
                (Outcome::RevokedAll, Some(revoked), None)
            }
        };
        // 4. Done, with the request's approval in the audit entry.
        tx.finish_certificate_operation(
            &record.id,
            OperationStatus::Done,
            "done",
            result_serial.as_ref(),
            now,
        )
        .await?;
        tx.audit(
            now,
            &actor,
            "certificate_operation.done",
            json!({
                "operation": record.operation.as_str(),
                "id": record.id,
                "txn": txn.id,
                "device": evidence.device_id,
                "serial": result_serial.map(|s| s.to_hex()),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(Some((outcome, revoked)))
    }

    /// **Опозови све сертификате** inside `tx`: the cloud certificate and every ConsentID device
    /// certificate of the user (the devices deactivated, their pending requests failed), and
    /// every session and API token of the user ended.
    async fn revoke_everything_in(
        &self,
        tx: &mut D::Tx,
        user: &Account,
        actor: &str,
    ) -> Result<Revoked, Error> {
        let now = self.clock.now();
        let mut serials: Vec<Serial> = self
            .store
            .certificates(Some(&user.email))
            .await?
            .into_iter()
            .filter(|c| {
                c.status == CertificateStatus::Issued
                    && matches!(
                        c.kind,
                        CertificateKind::CloudSigning | CertificateKind::Device
                    )
            })
            .map(|c| c.serial)
            .collect();
        serials.sort();
        serials.dedup();
        let revoked = self
            .va
            .revoke_many_in(
                tx,
                &serials,
                RevocationReason::CessationOfOperation,
                actor,
                now,
            )
            .await?;
        let sessions = tx.end_sessions_of_user(&user.id, now).await?;
        let tokens = tx.revoke_api_tokens_of_user(&user.id, now).await?;
        // Every service that logged the citizen in is told the sessions ended.
        tx.queue_oidc_logouts(store::LogoutScope::User(&user.id), now)
            .await?;
        tx.audit(
            now,
            actor,
            "certificates.revoked_all",
            json!({ "count": serials.len(), "sessions_ended": sessions, "api_tokens_revoked": tokens }),
        )
        .await?;
        Ok(revoked)
    }

    /// Step 4's e-mail: what was done, with the agreement after an issue or a renewal.
    async fn mail_outcome(&self, user: &Account, outcome: Outcome) {
        let mails = &self.settings.cloud_mails;
        match outcome {
            Outcome::Issued {
                serial,
                not_after,
                agreement: (number, text),
            } => {
                let name = format!("{} {}", user.given_name, user.surname);
                let (serial, until) = (serial.to_string(), serbian_date(not_after));
                let body = fill(
                    &mails.issued_body,
                    &[
                        ("name", &name),
                        ("serial", &serial),
                        ("until", &until),
                        ("number", &number),
                        ("agreement", &text),
                    ],
                );
                self.notify(user, &mails.issued_subject, &body, Some((&number, &text)))
                    .await;
            }
            Outcome::Renewed {
                serial,
                not_after,
                old,
                agreement: (number, text),
            } => {
                let (serial, until, old) =
                    (serial.to_string(), serbian_date(not_after), old.to_string());
                let body = fill(
                    &mails.renewed_body,
                    &[("serial", &serial), ("until", &until), ("old", &old)],
                );
                self.notify(user, &mails.renewed_subject, &body, Some((&number, &text)))
                    .await;
            }
            Outcome::Revoked(serial) => {
                let body = fill(&mails.revoked_body, &[("serial", &serial.to_string())]);
                self.notify(user, &mails.revoked_subject, &body, None).await;
            }
            Outcome::RevokedAll => {
                self.notify(
                    user,
                    &mails.revoked_all_subject,
                    &mails.revoked_all_body,
                    None,
                )
                .await;
            }
        }
    }
}
