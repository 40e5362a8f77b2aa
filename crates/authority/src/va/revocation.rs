//! Revocation and CRLs (RFC 5280 §5). A revocation and the CRL that lists it are one
//! transaction: when `revoke` returns, the CRL served says so, and OCSP in this process too
//! (other processes see the status revision within their next sync).

use serde_json::json;

use domain::records::KeyId;
use domain::{may_revoke, RevocationReason, Serial, UnixTime};
use pki::crl::RevokedEntry;
use store::Change;
use store::{AuditLog as _, CertificateStore as _, LoginStore as _, Transaction as _};

use crate::settings::CaName;
use crate::va::VaDb;
use crate::{Error, Va};

/// Revocations made inside a transaction, with what is left to do after its commit
/// ([`Va::after_commit`]).
#[must_use = "the revoked keys are destroyed only by Va::after_commit"]
pub(crate) struct Revoked {
    keys_to_destroy: Vec<(KeyId, pki::KeyReference)>,
}

impl<D: VaDb> Va<D> {
    /// Revokes a certificate and re-issues its CA's CRL at once.
    pub async fn revoke(
        &self,
        serial: &Serial,
        reason: RevocationReason,
        actor: &str,
    ) -> Result<(), Error> {
        self.revoke_all_of(&[*serial], reason, actor).await
    }

    /// Revokes several certificates in one transaction, re-issuing each affected CA's CRL once.
    pub(crate) async fn revoke_all_of(
        &self,
        serials: &[Serial],
        reason: RevocationReason,
        actor: &str,
    ) -> Result<(), Error> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let revoked = self
            .revoke_many_in(&mut tx, serials, reason, actor, now)
            .await?;
        tx.commit().await?;
        self.after_commit(revoked).await
    }

    /// Revokes several certificates inside the caller's transaction and re-issues each affected
    /// CA's CRL once. Once the caller has committed, it hands the result to
    /// [`Self::after_commit`].
    pub(crate) async fn revoke_many_in(
        &self,
        tx: &mut D::Tx,
        serials: &[Serial],
        reason: RevocationReason,
        actor: &str,
        now: UnixTime,
    ) -> Result<Revoked, Error> {
        let mut affected = Vec::new();
        let mut keys_to_destroy = Vec::new();
        for serial in serials {
            let (ca, key) = self.revoke_in(tx, serial, reason, actor, now).await?;
            if !affected.contains(&ca) {
                affected.push(ca);
            }
            keys_to_destroy.extend(key);
        }
        for ca in affected {
            self.reissue_crl(tx, ca, now).await?;
        }
        Ok(Revoked { keys_to_destroy })
    }

    /// After a revocation's commit: the revoked certificates' keys are destroyed in the
    /// backend, and this process's OCSP answers learn the new statuses. Destroyed only once the
    /// revocation is committed: a failed commit must not leave an issued certificate without
    /// its key. A crash before this leaves a key recorded `destroying`, which the upkeep
    /// destroys (crate::ca::keys).
    pub(crate) async fn after_commit(&self, revoked: Revoked) -> Result<(), Error> {
        for (key_id, reference) in revoked.keys_to_destroy {
            self.ca.destroy_revoked_key(&key_id, &reference).await;
        }
        self.sync_status().await?;
        Ok(())
    }

    /// Revokes one certificate inside `tx` (the caller re-issues the CRL); returns its CA and
    /// the key to destroy after the commit, if we hold one.
    async fn revoke_in(
        &self,
        tx: &mut D::Tx,
        serial: &Serial,
        reason: RevocationReason,
        actor: &str,
        now: UnixTime,
    ) -> Result<(CaName, Option<(KeyId, pki::KeyReference)>), Error> {
        let record = tx
            .certificate(serial)
            .await?
            .ok_or(Error::UnknownSerial(*serial))?;
        may_revoke(record.kind, record.status)?;
        if !tx.revoke_certificate(serial, now, reason).await? {
            return Err(Error::Inconsistent(format!(
                "certificate {serial} changed while being revoked"
            )));
        }
        tx.audit(
            now,
            actor,
            "certificate.revoked",
            json!({ "serial": serial.to_hex(), "kind": record.kind.as_str(), "reason": reason.as_str() }),
        )
        .await?;
        // A device certificate revoked: the device is deactivated with it, its pending requests
        // fail and the sessions it created end (DESIGN §4, Revocation).
        if record.kind == domain::CertificateKind::Device {
            if let Some(device) = tx.device_by_certificate(serial).await? {
                tx.publish(Change::Requests(device.user_id.clone()));
                tx.update_device(
                    &device.id,
                    domain::DeviceState::Revoked,
                    device.pin_failures,
                    now,
                )
                .await?;
                let failed = tx
                    .end_pending_of(
                        &device.user_id,
                        domain::TransactionStatus::Failed,
                        "device_revoked",
                        now,
                    )
                    .await?;
                let sessions = tx.end_sessions_of_device(&device.id, now).await?;
                tx.audit(
                    now,
                    actor,
                    "device.revoked",
                    json!({ "device": device.id, "failed_requests": failed, "ended_sessions": sessions }),
                )
                .await?;
            }
        }
        // A cloud signing key we hold is destroyed: nothing can sign with it again. A software
        // key's record is its only copy, erased here; a token's key stays `destroying` (its
        // reference kept) until the token has destroyed it after the commit.
        let mut key_to_destroy = None;
        if let (Some(key_id), domain::CertificateKind::CloudSigning) = (&record.key_id, record.kind)
        {
            let key = tx.key(key_id).await?;
            if self.ca.keys.keeps_objects() {
                tx.mark_key_destroying(key_id, now).await?;
            } else {
                tx.destroy_key(key_id, now).await?;
            }
            tx.audit(
                now,
                actor,
                "key.destroyed",
                json!({ "key": key_id.0, "serial": serial.to_hex() }),
            )
            .await?;
            key_to_destroy = Some((key_id.clone(), pki::KeyReference(key.reference)));
        }
        let ca = CaName::parse(&record.authority).ok_or_else(|| {
            Error::Inconsistent(format!("unknown authority {}", record.authority))
        })?;
        Ok((ca, key_to_destroy))
    }

    /// Signs a new CRL for `ca` with the next CRL number, inside `tx`.
    async fn reissue_crl(&self, tx: &mut D::Tx, ca: CaName, now: UnixTime) -> Result<(), Error> {
        let record = tx.authority_for_update(ca.as_str()).await?;
        let revoked = tx
            .revoked_by(ca.as_str())
            .await?
            .into_iter()
            .map(|r| RevokedEntry {
                serial: r.serial,
                revoked_at: r.revoked_at,
                reason: r.reason,
            })
            .collect::<Vec<_>>();
        let number = record.crl_number + 1;
        let next_update = now.plus_seconds(self.settings.crl.lifetime);
        let crl = self.ca.sign_crl(
            ca,
            &revoked,
            u64::try_from(number).unwrap_or(0),
            now,
            next_update,
        )?;
        tx.store_crl(ca.as_str(), number, &crl.0, next_update)
            .await?;
        tx.audit(
            now,
            "system",
            "crl.issued",
            json!({ "ca": ca.as_str(), "number": number, "entries": revoked.len() }),
        )
        .await?;
        Ok(())
    }

    /// Re-issues each CA's CRL that is missing or near its nextUpdate: the issuing CAs' and
    /// the root's (the ARL, where the intermediates' status is: RFC 5280 §5).
    pub(crate) async fn refresh_crls(&self) -> Result<(), Error> {
        for ca in CaName::ALL {
            let now = self.clock.now();
            let due = |next: Option<UnixTime>| {
                next.is_none_or(|n| self.settings.crl.needs_refresh(n, now))
            };
            let current = self.store.authority(ca.as_str()).await?;
            if !due(current.and_then(|r| r.crl_next_update)) {
                continue;
            }
            let mut tx = self.store.begin().await?;
            // Re-check under the lock: another process may have just done it.
            if !due(tx.authority_for_update(ca.as_str()).await?.crl_next_update) {
                continue;
            }
            self.reissue_crl(&mut tx, ca, now).await?;
            tx.commit().await?;
        }
        Ok(())
    }
}
