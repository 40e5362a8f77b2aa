//! Issuing end-entity certificates: one transaction each (DESIGN §8). The order matters:
//! 1. the key is generated in the backend, before the transaction (crate::ca::keys: a token's key
//!    is recorded `generating` first, so that a crash cannot orphan it);
//! 2. in the transaction, the key's record and the serial are stored before anything is
//!    signed: the serial's row (its primary key) makes it unique before a signature exists;
//! 3. the to-be-signed certificate is built, checked against its profile and signed;
//! 4. the certificate, its audit entry (and the agreement) are stored, and all of it commits.
//!
//! The certificate leaves the process only after that commit, which stores it together with
//! its serial and key record: a process that dies before the commit has handed out nothing,
//! so there is nothing to revoke, and it leaves no row behind. CA, OCSP-signer and TSA
//! certificates are made the same way. (Issuance used to commit the serial alone first, then
//! the certificate: two commits, and `reserved` rows after a crash; rows still `reserved` from
//! that time are abandoned by [`Ca::abandon_stale_reservations`], their keys destroyed.)

use serde_json::json;

use domain::records::{KeyId, NewCertificate};
use domain::{CertificateKind, Serial, UnixTime, UserId};
use pki::profile::{self, CertificateDer, CertificateRequest, Issuer, Person};
use store::{AuditLog as _, CertificateStore as _, Transaction as _};

use crate::ca::keys::PreparedKey;
use crate::ca::random_serial;
use crate::ca::CaDb;
use crate::settings::{CaName, CloudValidity};
use crate::{Ca, Error};

/// Reservations older than this are considered dead (seconds): no signature takes so long.
const RESERVATION_TIMEOUT: i64 = 120;

/// A cloud certificate's key pair, generated before the transaction that certifies it, and the
/// serial its label names.
pub(crate) struct CloudKey {
    serial: Serial,
    /// The key in the backend.
    pub(crate) key: PreparedKey,
}

/// A certificate just issued.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    /// Its serial.
    pub serial: Serial,
    /// The certificate.
    pub der: CertificateDer,
    /// Our key for it, when we hold the key.
    pub key_id: Option<KeyId>,
    /// Start of validity.
    pub not_before: UnixTime,
    /// End of validity.
    pub not_after: UnixTime,
}

impl<D: CaDb> Ca<D> {
    /// The end of validity of a cloud certificate issued at `now`.
    pub fn cloud_not_after(&self, now: UnixTime) -> UnixTime {
        match self.settings.cloud_validity {
            CloudValidity::CalendarYears(years) => now.plus_calendar_years(years),
            CloudValidity::Days(days) => now.plus_days(days),
        }
    }

    /// Issues a qualified cloud signing certificate for `person`, with a new key pair generated
    /// in the key backend (DESIGN §5): the officer's `cert issue`. A citizen's goes through a
    /// certificate operation approved in ConsentID (`ra::operations`), with the same steps.
    pub async fn issue_cloud_certificate(
        &self,
        person: &Person,
        email: Option<&str>,
        actor: &str,
    ) -> Result<IssuedCertificate, Error> {
        let key = self.prepare_cloud_key().await?;
        let issued = async {
            let mut tx = self.store.begin().await?;
            let issued = self
                .issue_cloud_in(&mut tx, &key, person, email, actor, None)
                .await?;
            tx.commit().await?;
            Ok(issued)
        }
        .await;
        if issued.is_err() {
            self.discard_key(key.key).await;
        }
        issued
    }

    /// Step 1 of a cloud certificate: its key pair, generated in the key backend before the
    /// transaction that certifies it ([`Self::issue_cloud_in`]). If that transaction does not
    /// commit, the caller hands the key to [`Self::discard_key`].
    pub(crate) async fn prepare_cloud_key(&self) -> Result<CloudKey, Error> {
        let serial = random_serial();
        let key = self
            .prepare_key(
                &format!("eidportal-cloud-{}", serial.to_hex()),
                self.settings.key_algorithm,
            )
            .await?;
        Ok(CloudKey { serial, key })
    }

    /// Steps 2 to 4 for a prepared key, inside the caller's transaction: the key's record and
    /// the serial, the certificate, the agreement and the audit entry. The caller commits, and
    /// hands the certificate out only after that.
    pub(crate) async fn issue_cloud_in(
        &self,
        tx: &mut D::Tx,
        key: &CloudKey,
        person: &Person,
        email: Option<&str>,
        actor: &str,
        agreement: Option<(&UserId, &str, &str)>,
    ) -> Result<IssuedCertificate, Error> {
        let subject = person.name()?;
        let CloudKey { serial, key } = key;
        let serial = *serial;
        let now = self.clock.now();
        let not_after = self.cloud_not_after(now);
        // 2. The key's record, then the serial, before any signature.
        self.record_key(tx, key).await?;
        // 3. Build, check, sign. A failure rolls the transaction back: nothing was signed.
        let request = CertificateRequest {
            kind: CertificateKind::CloudSigning,
            serial,
            subject,
            public_key: key.public_key(),
            not_before: now,
            not_after,
        };
        let der = self
            .issue_in(tx, CaName::Qualified, &request, email, Some(key.id()), now)
            .await?;
        // 4. The agreement and the audit entry, committed by the caller with the rest.
        if let Some((user_id, number, text)) = agreement {
            tx.insert_agreement(number, user_id, &serial, text, now)
                .await?;
        }
        tx.audit(
            now,
            actor,
            "certificate.issued",
            json!({ "serial": serial.to_hex(), "kind": "cloud_signing", "key": key.id().0 }),
        )
        .await?;
        Ok(IssuedCertificate {
            serial,
            der,
            key_id: Some(key.id().clone()),
            not_before: now,
            not_after,
        })
    }

    /// Issues a certificate inside the caller's transaction, the way every certificate below a
    /// CA is made (steps 2 to 4 above): its serial reserved, then signed by
    /// [`Ca::sign_certificate`], then stored. The caller commits it with the rest of its use
    /// case, and hands the certificate out only after that commit.
    pub(crate) async fn issue_in(
        &self,
        tx: &mut D::Tx,
        ca: CaName,
        request: &CertificateRequest<'_>,
        email: Option<&str>,
        key_id: Option<&KeyId>,
        now: UnixTime,
    ) -> Result<CertificateDer, Error> {
        tx.reserve_certificate(&NewCertificate {
            serial: request.serial,
            authority: ca.as_str().to_owned(),
            kind: request.kind,
            subject: profile::name_to_string(&request.subject),
            email: email.map(str::to_owned),
            key_id: key_id.cloned(),
            not_before: request.not_before,
            not_after: request.not_after,
            reserved_at: now,
        })
        .await?;
        let der = self.sign_certificate(ca, request)?;
        tx.complete_certificate(&request.serial, &der.0, now)
            .await?;
        Ok(der)
    }

    /// Signs a certificate with one of the hierarchy's CAs: the one issue function, its URLs
    /// in the certificate, and `profile::issue` checks the profile before anything is signed.
    /// The caller has reserved the serial in its transaction ([`Ca::issue_in`] does both).
    pub(crate) fn sign_certificate(
        &self,
        ca: CaName,
        request: &CertificateRequest<'_>,
    ) -> Result<CertificateDer, Error> {
        let loaded = self.ca(ca)?;
        let issuer = Issuer::from_certificate(
            &loaded.certificate,
            Some(self.settings.urls_of(ca)),
            loaded.signer.as_ref(),
        )?;
        Ok(profile::issue(request, &issuer, &self.settings.policy)?)
    }

    /// Marks one reserved serial abandoned, destroying its key.
    async fn abandon(&self, serial: &Serial, actor: &str) -> Result<(), Error> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let abandoned = tx.abandon_reserved(serial).await?;
        if let Some(key_id) = abandoned {
            self.destroy_key_in(&mut tx, &key_id, now).await?;
        }
        tx.audit(
            now,
            actor,
            "certificate.abandoned",
            json!({ "serial": serial.to_hex() }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn destroy_key_in(
        &self,
        tx: &mut D::Tx,
        key_id: &KeyId,
        now: UnixTime,
    ) -> Result<(), Error> {
        let record = tx.key(key_id).await?;
        self.keys.destroy(&pki::KeyReference(record.reference))?;
        tx.destroy_key(key_id, now).await?;
        Ok(())
    }

    /// Recovery after a crash: serials reserved longer than a signature can take belong to a
    /// process that died. They are marked abandoned and their keys destroyed.
    pub async fn abandon_stale_reservations(&self) -> Result<Vec<Serial>, Error> {
        let now = self.clock.now();
        let stale = self
            .store
            .reserved_before(now.plus_seconds(-RESERVATION_TIMEOUT))
            .await?;
        for serial in &stale {
            self.abandon(serial, "system").await?;
        }
        Ok(stale)
    }
}
