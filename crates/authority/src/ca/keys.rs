//! Keys in the backend and their records, so that a crash at any moment leaves neither a key
//! object without its record nor a record without its key (DESIGN §8).
//!
//! A software key lives only in its reference (sealed under the master key), which the store
//! keeps: generated in memory and recorded in the use case's transaction, it cannot outlive a
//! crash unrecorded. A PKCS#11 token keeps objects of its own, which a crash between the
//! generation and the commit would orphan. So for such a backend:
//! 1. the key's record (`generating`, with a label no other key has) is committed first;
//! 2. the token generates the key under that label;
//! 3. the use case's transaction makes the record `active`, with the reference and public key,
//!    and commits together with whatever the key is for (a certificate, a CA).
//!
//! A process that dies after 1 leaves a `generating` record; the upkeep
//! ([`Ca::finish_keys_left_half_way`]) marks it `abandoned` once it is older than any
//! generation takes, and destroys whatever the token holds under its label. A use case that
//! fails after 2 does the same at once ([`Ca::discard_key`]).
//!
//! Destruction runs the other way: a revocation commits the key `destroying` (its reference
//! kept), the token destroys it, then the record becomes `destroyed`; a crash in between
//! leaves a `destroying` record that the upkeep finishes.
//!
//! A cloud key opened to sign is kept opened ([`OpenedKeys`]): opening a sealed software key
//! costs about as much as a sixth of a 100-hash signHash call. The database stays the truth:
//! every signature starts from the key's record read for that call, only an `active` record
//! signs, and a kept signer serves only the very reference it was opened from. A revocation or
//! destruction in this process also drops the kept signer at once.

use domain::records::{KeyId, KeyRecord, KeyState};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use der::Encode as _;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate;

use pki::profile;
use pki::{GeneratedKey, KeyAlgorithm, KeyReference, KeySigner, PublicKeyDer};
use store::{AuditLog as _, CertificateStore as _, Transaction as _};

use crate::ca::CaDb;
use crate::{Ca, Error};

/// At most this many opened keys are kept (one per cloud certificate that signed lately).
const OPENED_KEYS_KEPT: usize = 1024;

/// An opened key and the SHA-256 of the reference it was opened from.
type OpenedKey = ([u8; 32], Arc<dyn KeySigner>);

/// Opened signing keys, by key id.
#[derive(Default)]
pub(crate) struct OpenedKeys(Mutex<HashMap<KeyId, OpenedKey>>);

impl OpenedKeys {
    fn kept(&self, id: &KeyId, reference: &[u8; 32]) -> Option<Arc<dyn KeySigner>> {
        let keys = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        keys.get(id)
            .filter(|(opened_from, _)| opened_from == reference)
            .map(|(_, signer)| Arc::clone(signer))
    }

    fn keep(&self, id: &KeyId, reference: [u8; 32], signer: &Arc<dyn KeySigner>) {
        let mut keys = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.len() >= OPENED_KEYS_KEPT && !keys.contains_key(id) {
            // Not worth an LRU: a dropped key is opened again on its next call.
            keys.clear();
        }
        keys.insert(id.clone(), (reference, Arc::clone(signer)));
    }

    /// Drops the opened key of `id`, if kept.
    pub(crate) fn forget(&self, id: &KeyId) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    /// Whether an opened key of `id` is kept (for tests).
    #[cfg(test)]
    fn holds(&self, id: &KeyId) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(id)
    }
}

/// A `generating` record older than this belongs to a process that died (seconds): a token
/// generates a key, and its use case commits, well within it.
const GENERATION_TIMEOUT: i64 = 120;

pub(crate) fn random_key_id() -> KeyId {
    KeyId(hex::encode(rand::random::<[u8; 16]>()))
}

/// A key generated for a use case that has not committed yet. Taken by value by
/// [`Ca::discard_key`] when the use case fails; recorded by [`Ca::record_key`].
pub(crate) struct PreparedKey {
    id: KeyId,
    label: String,
    algorithm: KeyAlgorithm,
    generated: GeneratedKey,
    /// Whether its record was committed `generating` before the backend made it.
    recorded_before: bool,
}

impl PreparedKey {
    /// The id its record has, or will have.
    pub(crate) fn id(&self) -> &KeyId {
        &self.id
    }

    /// Its public key.
    pub(crate) fn public_key(&self) -> &PublicKeyDer {
        &self.generated.public_key
    }

    /// How the backend finds it.
    pub(crate) fn reference(&self) -> &KeyReference {
        &self.generated.reference
    }
}

impl<D: CaDb> Ca<D> {
    /// Before a key signs for a certificate: is it the key the certificate certifies? Its
    /// public key must be the certificate's SubjectPublicKeyInfo, and it must make a signature
    /// that verifies under it (`profile::check_key_matches`). A match is remembered per key id
    /// (with the SPKI it matched), so later calls only compare the public key. Without this
    /// check, a certificate row pointed at another key (a CA's) would make that key sign.
    pub(crate) async fn check_key_binding(
        &self,
        key_id: &KeyId,
        certificate: &Certificate,
        signer: &Arc<dyn KeySigner>,
    ) -> Result<(), Error> {
        let spki = certificate
            .tbs_certificate
            .subject_public_key_info
            .to_der()?;
        let fingerprint: [u8; 32] = Sha256::digest(&spki).into();
        let known = self
            .key_bindings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key_id)
            == Some(&fingerprint);
        if known && signer.public_key().0 == spki {
            return Ok(());
        }
        let (checked, certified) = (Arc::clone(signer), certificate.clone());
        tokio::task::spawn_blocking(move || profile::check_key_matches(&certified, checked.as_ref(), "the signing certificate"))
            .await
            .map_err(|e| Error::Inconsistent(format!("the key check thread failed: {e}")))?
            .inspect_err(|e| tracing::error!(key = %key_id.0, error = %e, "a key does not match the certificate it is to sign for"))?;
        self.key_bindings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key_id.clone(), fingerprint);
        Ok(())
    }

    /// The signer of a key as its record, read for this signature, says: `None` unless the
    /// record is `active` (a revoked certificate's key is `destroying` or `destroyed`, and is
    /// forgotten here too). A signer opened before from the same reference is reused.
    pub(crate) fn signing_key(
        &self,
        record: &KeyRecord,
    ) -> Result<Option<Arc<dyn KeySigner>>, Error> {
        if record.state != KeyState::Active {
            self.opened_keys.forget(&record.id);
            return Ok(None);
        }
        let reference: [u8; 32] = Sha256::digest(&record.reference).into();
        if let Some(signer) = self.opened_keys.kept(&record.id, &reference) {
            return Ok(Some(signer));
        }
        let signer = self.keys.open(&KeyReference(record.reference.clone()))?;
        self.opened_keys.keep(&record.id, reference, &signer);
        Ok(Some(signer))
    }

    /// Steps 1 and 2: a key for a use case, generated before its transaction begins (a token
    /// may take its time, and no write lock is held meanwhile). `label` must be unique (callers
    /// put a serial or a random id in it): the upkeep destroys by label.
    pub(crate) async fn prepare_key(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<PreparedKey, Error> {
        self.prepare_key_for(label, algorithm, false).await
    }

    /// [`Ca::prepare_key`] for a P-256 key that also does key agreement (ECDH).
    pub(crate) async fn prepare_agreement_key(&self, label: &str) -> Result<PreparedKey, Error> {
        self.prepare_key_for(label, KeyAlgorithm::EcdsaP256, true)
            .await
    }

    async fn prepare_key_for(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
        agreement: bool,
    ) -> Result<PreparedKey, Error> {
        let id = random_key_id();
        let recorded_before = self.keys.keeps_objects();
        if recorded_before {
            let mut tx = self.store.begin().await?;
            tx.insert_key(&KeyRecord {
                id: id.clone(),
                backend: self.keys.name().to_owned(),
                label: label.to_owned(),
                algorithm: algorithm.as_str().to_owned(),
                reference: Vec::new(),
                public_key: Vec::new(),
                state: KeyState::Generating,
                created_at: self.clock.now(),
            })
            .await?;
            tx.commit().await?;
        }
        let generated = if agreement {
            self.keys.generate_agreement_key(label)
        } else {
            self.keys.generate(label, algorithm)
        };
        let generated = match generated {
            Ok(generated) => generated,
            Err(error) => {
                // The token may hold part of it; the record says where to look.
                if recorded_before {
                    self.abandon_by_label(&id, label).await;
                }
                return Err(error.into());
            }
        };
        Ok(PreparedKey {
            id,
            label: label.to_owned(),
            algorithm,
            generated,
            recorded_before,
        })
    }

    /// The key of a service role (the ConsentID channel's keys, the Web Push key), opened;
    /// created on first use, a P-256 key that also does key agreement when `agreement`.
    pub(crate) async fn service_key(
        &self,
        role: &str,
        agreement: bool,
    ) -> Result<Arc<dyn KeySigner>, Error> {
        if self.store.service_key(role).await?.is_none() {
            // The key before the transaction (steps 1 and 2); discarded when another process
            // created this role's key meanwhile, or when the transaction fails.
            let label = format!(
                "eidportal-{role}-{}",
                hex::encode(rand::random::<[u8; 8]>())
            );
            let key = if agreement {
                self.prepare_agreement_key(&label).await?
            } else {
                self.prepare_key(&label, KeyAlgorithm::EcdsaP256).await?
            };
            match self.record_service_key(role, &key).await {
                Ok(true) => {}
                Ok(false) => self.discard_key(key).await,
                Err(error) => {
                    self.discard_key(key).await;
                    return Err(error);
                }
            }
        }
        let id = self
            .store
            .service_key(role)
            .await?
            .ok_or_else(|| Error::Inconsistent(format!("service key {role} missing")))?;
        self.open_key(&id).await
    }

    /// Records `key` as the service key of `role` unless another process created one first
    /// (false then).
    async fn record_service_key(&self, role: &str, key: &PreparedKey) -> Result<bool, Error> {
        let mut tx = self.store.begin().await?;
        tx.lock_bootstrap().await?;
        if tx.service_key(role).await?.is_some() {
            return Ok(false);
        }
        self.record_key(&mut tx, key).await?;
        tx.insert_service_key(role, key.id()).await?;
        tx.audit(
            self.clock.now(),
            "system",
            "service_key.created",
            json!({ "role": role }),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Step 3, inside the use case's transaction: the key's record, `active`.
    pub(crate) async fn record_key(&self, tx: &mut D::Tx, key: &PreparedKey) -> Result<(), Error> {
        if key.recorded_before {
            tx.activate_key(
                &key.id,
                &key.generated.reference.0,
                &key.generated.public_key.0,
            )
            .await?;
        } else {
            tx.insert_key(&KeyRecord {
                id: key.id.clone(),
                backend: self.keys.name().to_owned(),
                label: key.label.clone(),
                algorithm: key.algorithm.as_str().to_owned(),
                reference: key.generated.reference.0.clone(),
                public_key: key.generated.public_key.0.clone(),
                state: KeyState::Active,
                created_at: self.clock.now(),
            })
            .await?;
        }
        Ok(())
    }

    /// A use case that prepared `key` failed: unless its record became `active` (a commit
    /// that reported an error but happened), the key is destroyed and its record abandoned.
    /// Never fails: what it cannot do, the upkeep does later.
    pub(crate) async fn discard_key(&self, key: PreparedKey) {
        if !key.recorded_before {
            // A software key that was not committed exists nowhere but in this value.
            return;
        }
        if let Err(error) = self.try_discard(&key).await {
            tracing::error!(%error, key = %key.id.0, "a prepared key could not be discarded; the upkeep will");
        }
    }

    async fn try_discard(&self, key: &PreparedKey) -> Result<(), Error> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let state = tx.key(&key.id).await?.state;
        // `abandoned` too: an upkeep that took a slow generation for dead may have looked for
        // it by label before the token made it.
        if matches!(state, KeyState::Generating | KeyState::Abandoned) {
            self.keys.destroy(&key.generated.reference)?;
            if tx.abandon_generating_key(&key.id, now).await? {
                tx.audit(
                    now,
                    "system",
                    "key.abandoned",
                    json!({ "key": key.id.0, "label": key.label }),
                )
                .await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }

    /// A generation failed: whatever the token made under `label` goes, and the record is
    /// abandoned (or left for the upkeep when that fails too).
    async fn abandon_by_label(&self, id: &KeyId, label: &str) {
        let result = async {
            let now = self.clock.now();
            let mut tx = self.store.begin().await?;
            if tx.abandon_generating_key(id, now).await? {
                let objects = self.keys.destroy_labelled(label)?;
                tx.audit(
                    now,
                    "system",
                    "key.abandoned",
                    json!({ "key": id.0, "label": label, "objects": objects }),
                )
                .await?;
            }
            tx.commit().await?;
            Ok::<_, Error>(())
        }
        .await;
        if let Err(error) = result {
            tracing::error!(%error, key = %id.0, "a failed key generation could not be cleaned up; the upkeep will");
        }
    }

    /// Recovery after a crash (part of the upkeep): keys `generating` for longer than any
    /// generation takes are abandoned and whatever the backend holds under their label is
    /// destroyed; keys left `destroying` by a revocation are destroyed. Returns how many
    /// records it finished. A key it cannot finish is logged and tried again next time.
    pub async fn finish_keys_left_half_way(&self) -> Result<usize, Error> {
        let now = self.clock.now();
        let mut finished = 0;
        for record in self
            .store
            .keys_left_half_way(now.plus_seconds(-GENERATION_TIMEOUT))
            .await?
        {
            if record.backend != self.keys.name() {
                tracing::warn!(key = %record.id.0, backend = %record.backend, "a key of another backend is left half-way");
                continue;
            }
            match self.finish_key(&record, now).await {
                Ok(()) => finished += 1,
                Err(error) => {
                    tracing::error!(%error, key = %record.id.0, label = %record.label, "a key left half-way could not be finished")
                }
            }
        }
        Ok(finished)
    }

    async fn finish_key(&self, record: &KeyRecord, now: domain::UnixTime) -> Result<(), Error> {
        let mut tx = self.store.begin().await?;
        match record.state {
            // The record is abandoned first, under the transaction's lock: a use case that is
            // merely slow then fails to activate it, rather than certify a destroyed key.
            KeyState::Generating => {
                if tx.abandon_generating_key(&record.id, now).await? {
                    let objects = self.keys.destroy_labelled(&record.label)?;
                    tx.audit(
                        now,
                        "system",
                        "key.abandoned",
                        json!({ "key": record.id.0, "label": record.label, "objects": objects }),
                    )
                    .await?;
                }
            }
            KeyState::Destroying => {
                self.opened_keys.forget(&record.id);
                self.keys.destroy(&KeyReference(record.reference.clone()))?;
                tx.destroy_key(&record.id, now).await?;
            }
            KeyState::Active | KeyState::Destroyed | KeyState::Abandoned => {}
        }
        tx.commit().await?;
        Ok(())
    }

    /// After a revocation's commit: destroys the key in the backend, then (for a backend with
    /// objects of its own) records it `destroyed`. A failure is logged; the upkeep retries.
    pub(crate) async fn destroy_revoked_key(&self, id: &KeyId, reference: &KeyReference) {
        // Its certificate is revoked: no kept signer may outlive the commit.
        self.opened_keys.forget(id);
        let result = async {
            self.keys.destroy(reference)?;
            if self.keys.keeps_objects() {
                let mut tx = self.store.begin().await?;
                tx.destroy_key(id, self.clock.now()).await?;
                tx.commit().await?;
            }
            Ok::<_, Error>(())
        }
        .await;
        if let Err(error) = result {
            tracing::error!(%error, key = %id.0, "a revoked certificate's key could not be destroyed; the upkeep will retry");
        }
    }
}

#[cfg(test)]
mod tests {
    //! The kept signers: a revoked or destroyed key is never served from them.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use domain::records::{KeyId, KeyState};
    use domain::{Jmbg, RevocationReason, Serial, UnixTime};
    use pki::{Digest, KeySigner, MasterKey, RsaPadding, SoftwareKeyBackend};
    use store::{CertificateQueries as _, CertificateStore as _, Store};

    use crate::{Authority, ManualClock, Settings};

    async fn authority(url: &str) -> Authority {
        Authority::open(
            Store::connect(url).await.unwrap(),
            Arc::new(SoftwareKeyBackend::new(MasterKey::generate())),
            Arc::new(ManualClock::new(UnixTime(1_750_000_000))),
            Settings::new("http://127.0.0.1:8080"),
        )
        .await
        .unwrap()
    }

    /// A cloud certificate's serial and key.
    async fn cloud_key(authority: &Authority) -> (Serial, KeyId) {
        let person = pki::profile::Person {
            given_name: "Петар".into(),
            surname: "Петровић".into(),
            jmbg: Jmbg::parse("0101990710008").unwrap(),
        };
        let issued = authority
            .ca
            .issue_cloud_certificate(&person, Some("petar@example.rs"), "officer")
            .await
            .unwrap();
        let record = authority
            .store()
            .certificate(&issued.serial)
            .await
            .unwrap()
            .unwrap();
        (issued.serial, record.key_id.unwrap())
    }

    /// Opens and keeps the key, as a signature does; checks that it is kept.
    async fn signs_and_is_kept(authority: &Authority, key_id: &KeyId) -> Arc<dyn KeySigner> {
        let record = authority.store().key(key_id).await.unwrap();
        let first = authority
            .ca
            .signing_key(&record)
            .unwrap()
            .expect("an active key signs");
        let again = authority.ca.signing_key(&record).unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the opened key is kept");
        first
            .sign_digest(&Digest::Sha256([7; 32]), RsaPadding::Pkcs1v15)
            .unwrap();
        assert!(authority.ca.opened_keys.holds(key_id));
        first
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revoked_certificates_key_is_dropped_and_signs_no_more() {
        let dir = tempfile::tempdir().unwrap();
        for db in store::test_support::databases(dir.path()).await {
            let authority = authority(&db.url).await;
            let (serial, key_id) = cloud_key(&authority).await;
            signs_and_is_kept(&authority, &key_id).await;

            authority
                .va
                .revoke(&serial, RevocationReason::KeyCompromise, "officer")
                .await
                .unwrap();
            assert!(
                !authority.ca.opened_keys.holds(&key_id),
                "{}: dropped at the revocation",
                db.name
            );
            let record = authority.store().key(&key_id).await.unwrap();
            assert_ne!(record.state, KeyState::Active, "{}", db.name);
            assert!(
                authority.ca.signing_key(&record).unwrap().is_none(),
                "{}: a revoked certificate's key signs nothing",
                db.name
            );
            authority.store().close().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_key_destroyed_behind_the_authoritys_back_is_not_served_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        for db in store::test_support::databases(dir.path()).await {
            let authority = authority(&db.url).await;
            let (_, key_id) = cloud_key(&authority).await;
            let kept = signs_and_is_kept(&authority, &key_id).await;

            // Another record's reference under this id (a row rewritten): not the kept key.
            let (_, other_id) = cloud_key(&authority).await;
            let mut rewritten = authority.store().key(&key_id).await.unwrap();
            rewritten.reference = authority.store().key(&other_id).await.unwrap().reference;
            let opened = authority.ca.signing_key(&rewritten).unwrap().unwrap();
            assert_ne!(opened.public_key().0, kept.public_key().0, "{}", db.name);

            // Another process (the officer's CLI) destroys the key: the next record read says
            // so, and the kept signer goes.
            signs_and_is_kept(&authority, &key_id).await;
            let mut tx = authority.store().begin().await.unwrap();
            tx.destroy_key(&key_id, UnixTime(1_750_000_001))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            let record = authority.store().key(&key_id).await.unwrap();
            assert!(
                authority.ca.signing_key(&record).unwrap().is_none(),
                "{}",
                db.name
            );
            assert!(!authority.ca.opened_keys.holds(&key_id), "{}", db.name);
            authority.store().close().await;
        }
    }
}
