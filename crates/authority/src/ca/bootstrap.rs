//! The CA hierarchy: created on the first start (root, then the qualified and ConsentID CAs
//! under it), loaded and checked on every start, and its delegated OCSP signers renewed.

use std::sync::Arc;

use der::Encode;
use serde_json::json;

use domain::records::NewCertificate;
use domain::{CertificateKind, Serial};
use pki::ocsp::IssuerHashes;
use pki::profile::{self, CertificateDer, CertificateRequest, Issuer};
use store::{AuditLog as _, CertificateStore as _, Transaction as _};

use crate::ca::keys::PreparedKey;
use crate::ca::{random_serial, CaDb, LoadedCa};
use crate::settings::CaName;
use crate::{parse_certificate, Ca, Error};

/// Root CA validity, years.
const ROOT_YEARS: i64 = 25;
/// Issuing CA validity, years: outlives every 5-year certificate issued in its first 15 years.
const ISSUING_YEARS: i64 = 20;

impl<D: CaDb> Ca<D> {
    /// Creates whichever CAs are missing, in one transaction (on PostgreSQL under a lock, so
    /// that two servers starting at once do not both create a hierarchy).
    ///
    /// 1. A key and a serial for each CA that is missing, prepared before the transaction
    ///    (crate::ca::keys); two servers starting at once both prepare keys;
    /// 2. under the lock, each CA still missing is created with its key, the serial stored
    ///    before its certificate is signed; the root signs itself, the others are signed by it;
    /// 3. the keys of CAs another process created meanwhile are discarded, as are all of them
    ///    when the transaction fails.
    pub(crate) async fn ensure_hierarchy(&self) -> Result<(), Error> {
        if self
            .store
            .authority(CaName::ConsentId.as_str())
            .await?
            .is_some()
        {
            return Ok(());
        }
        let mut prepared = Vec::new();
        for ca in CaName::ALL {
            if self.store.authority(ca.as_str()).await?.is_none() {
                let serial = random_serial();
                let label = format!("eidportal-ca-{}-{}", ca.as_str(), serial.to_hex());
                match self.prepare_key(&label, self.settings.key_algorithm).await {
                    Ok(key) => prepared.push(Some((ca, serial, key))),
                    Err(error) => {
                        self.discard_keys(prepared).await;
                        return Err(error);
                    }
                }
            }
        }
        let mut used = Vec::new();
        let result = self.create_cas(&mut prepared, &mut used).await;
        if result.is_err() {
            // Nothing was committed: every key goes.
            prepared.extend(used.into_iter().map(Some));
        }
        self.discard_keys(prepared).await;
        result
    }

    async fn discard_keys(&self, prepared: Vec<Option<(CaName, Serial, PreparedKey)>>) {
        for (_, _, key) in prepared.into_iter().flatten() {
            self.discard_key(key).await;
        }
    }

    /// Step 2: moves the keys it uses from `prepared` to `used`.
    async fn create_cas(
        &self,
        prepared: &mut [Option<(CaName, Serial, PreparedKey)>],
        used: &mut Vec<(CaName, Serial, PreparedKey)>,
    ) -> Result<(), Error> {
        let mut tx = self.store.begin().await?;
        tx.lock_bootstrap().await?;
        let now = self.clock.now();
        // The root signs itself; the issuing CAs are signed by the root.
        let mut root: Option<(CertificateDer, Arc<dyn pki::KeySigner>)> =
            match tx.authority(CaName::Root.as_str()).await? {
                Some(record) => {
                    let signer = self
                        .keys
                        .open(&pki::KeyReference(tx.key(&record.key_id).await?.reference))?;
                    Some((CertificateDer(record.certificate), signer))
                }
                None => None,
            };
        for slot in prepared.iter_mut() {
            let Some((ca, _, _)) = slot.as_ref() else {
                continue;
            };
            if tx.authority(ca.as_str()).await?.is_some() {
                continue;
            }
            let Some((ca, serial, key)) = slot.take() else {
                continue;
            };
            self.record_key(&mut tx, &key).await?;
            let key_id = key.id().clone();
            let public_key = key.public_key().clone();
            let signer = self.keys.open(key.reference())?;
            used.push((ca, serial, key));
            let subject = self.settings.ca_name(ca).name()?;
            let (kind, years) = if ca == CaName::Root {
                (CertificateKind::RootCa, ROOT_YEARS)
            } else {
                (CertificateKind::IntermediateCa, ISSUING_YEARS)
            };
            let request = CertificateRequest {
                kind,
                serial,
                subject: subject.clone(),
                public_key: &public_key,
                not_before: now,
                not_after: now.plus_calendar_years(years),
            };
            // The serial is stored (in this transaction) before the certificate is signed.
            tx.reserve_certificate(&NewCertificate {
                serial,
                authority: CaName::Root.as_str().to_owned(),
                kind,
                subject: profile::name_to_string(&subject),
                email: None,
                key_id: Some(key_id.clone()),
                not_before: request.not_before,
                not_after: request.not_after,
                reserved_at: now,
            })
            .await?;
            let der = match &root {
                None => {
                    let issuer = Issuer {
                        name: subject.clone(),
                        key_identifier: Vec::new(),
                        not_after: request.not_after,
                        urls: None,
                        signer: signer.as_ref(),
                    };
                    profile::issue(&request, &issuer, &self.settings.policy)?
                }
                Some((root_der, root_signer)) => {
                    let root_certificate = root_der.parse()?;
                    let urls = Some(self.settings.urls_of(CaName::Root));
                    let issuer =
                        Issuer::from_certificate(&root_certificate, urls, root_signer.as_ref())?;
                    profile::issue(&request, &issuer, &self.settings.policy)?
                }
            };
            tx.complete_certificate(&serial, &der.0, now).await?;
            tx.insert_authority(ca.as_str(), &serial, &key_id, &der.0)
                .await?;
            tx.audit(now, "system", "ca.created", json!({ "ca": ca.as_str(), "serial": serial.to_hex(), "key_backend": self.keys.name() }))
                .await?;
            if ca == CaName::Root {
                root = Some((der, signer));
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Loads every CA and checks that each key matches its certificate.
    pub(crate) async fn load_hierarchy(&self) -> Result<(), Error> {
        for ca in CaName::ALL {
            self.reload_ca(ca).await?;
        }
        Ok(())
    }

    pub(crate) async fn reload_ca(&self, ca: CaName) -> Result<(), Error> {
        let record = self
            .store
            .authority(ca.as_str())
            .await?
            .ok_or_else(|| Error::Inconsistent(format!("authority {} missing", ca.as_str())))?;
        let certificate = parse_certificate(&record.certificate)?;
        let signer = self.open_key(&record.key_id).await?;
        profile::check_key_matches(
            &certificate,
            signer.as_ref(),
            &format!("the {} CA", ca.as_str()),
        )?;
        let responder = match &record.ocsp_signer {
            Some((_, key_id, der, _)) => {
                let responder_certificate = parse_certificate(der)?;
                let responder_signer = self.open_key(key_id).await?;
                profile::check_key_matches(
                    &responder_certificate,
                    responder_signer.as_ref(),
                    &format!("the {} OCSP signer", ca.as_str()),
                )?;
                Some((responder_certificate, responder_signer))
            }
            None => None,
        };
        let tsa = crate::ca::TsaUnit::load(self, &record).await?;
        let loaded = LoadedCa {
            hashes: IssuerHashes::of(&certificate)?,
            der: CertificateDer(certificate.to_der()?),
            certificate,
            signer,
            responder,
            tsa,
        };
        let mut cas = self
            .cas
            .write()
            .map_err(|_| Error::Inconsistent("CA table lock poisoned".into()))?;
        cas.insert(ca, Arc::new(loaded));
        Ok(())
    }

    /// Issues a new delegated OCSP signer for each issuing CA whose signer is missing or near
    /// its end (id-kp-OCSPSigning, ocsp-nocheck, short-lived: reference/pki-profiles.md §6.3).
    /// True when a CA's responder changed, so that answers signed by the old one are dropped.
    pub(crate) async fn renew_ocsp_signers(&self) -> Result<bool, Error> {
        let mut changed = false;
        for ca in CaName::ISSUING {
            let now = self.clock.now();
            let current = self.store.authority(ca.as_str()).await?;
            let due = match current.as_ref().and_then(|r| r.ocsp_signer.as_ref()) {
                Some((_, _, _, not_after)) => {
                    self.settings.ocsp.signer_needs_renewal(*not_after, now)
                }
                None => true,
            };
            if !due {
                // Another process may have renewed it: use the signer the store names.
                let stored = current
                    .as_ref()
                    .and_then(|r| r.ocsp_signer.as_ref())
                    .map(|(serial, ..)| *serial);
                let loaded = self.ca(ca)?;
                let in_use = loaded.responder.as_ref().and_then(|(c, _)| {
                    Serial::from_integer_bytes(c.tbs_certificate.serial_number.as_bytes())
                });
                if stored != in_use {
                    self.reload_ca(ca).await?;
                    changed = true;
                }
                continue;
            }
            // 1. The key, before the transaction (crate::ca::keys).
            let serial = random_serial();
            let label = format!("eidportal-ocsp-{}-{}", ca.as_str(), serial.to_hex());
            let key = self
                .prepare_key(&label, self.settings.key_algorithm)
                .await?;
            match self.certify_ocsp_key(ca, serial, &key, now).await {
                Ok(true) => {
                    self.reload_ca(ca).await?;
                    changed = true;
                }
                // Another process renewed it while we waited for the lock.
                Ok(false) => self.discard_key(key).await,
                Err(error) => {
                    self.discard_key(key).await;
                    return Err(error);
                }
            }
        }
        Ok(changed)
    }

    /// Step 2 of an OCSP signer's renewal, under the CA row's lock unless another process
    /// renewed the signer meanwhile: the key's record and the serial, stored before the
    /// certificate is signed; the certificate and the CA's new signer; one commit. False when
    /// nothing was due any more.
    async fn certify_ocsp_key(
        &self,
        ca: CaName,
        serial: Serial,
        key: &PreparedKey,
        now: domain::UnixTime,
    ) -> Result<bool, Error> {
        let mut tx = self.store.begin().await?;
        let record = tx.authority_for_update(ca.as_str()).await?;
        if let Some((_, _, _, not_after)) = &record.ocsp_signer {
            if !self.settings.ocsp.signer_needs_renewal(*not_after, now) {
                return Ok(false);
            }
        }
        let loaded = self.ca(ca)?;
        self.record_key(&mut tx, key).await?;
        let key_id = key.id().clone();
        let mut subject_name = self.settings.ca_name(ca);
        subject_name.common_name = format!("{} OCSP", subject_name.common_name);
        let subject = subject_name.name()?;
        let not_after = now
            .plus_seconds(self.settings.ocsp.signer_lifetime)
            .min(loaded_not_after(&loaded));
        let request = CertificateRequest {
            kind: CertificateKind::OcspSigner,
            serial,
            subject,
            public_key: key.public_key(),
            not_before: now,
            not_after,
        };
        let der = self
            .issue_in(&mut tx, ca, &request, None, Some(&key_id), now)
            .await?;
        tx.store_ocsp_signer(ca.as_str(), &serial, &key_id, &der.0, not_after)
            .await?;
        tx.audit(
            now,
            "system",
            "ocsp_signer.renewed",
            json!({ "ca": ca.as_str(), "serial": serial.to_hex() }),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

fn loaded_not_after(ca: &LoadedCa) -> domain::UnixTime {
    profile::unix_time(&ca.certificate.tbs_certificate.validity.not_after)
}
