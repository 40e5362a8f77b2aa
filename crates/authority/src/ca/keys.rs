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

use std::sync::{Arc, PoisonError};

use der::Encode as _;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate;

use pki::profile;
use pki::{GeneratedKey, KeyAlgorithm, KeyReference, KeySigner, PublicKeyDer};
use store::{KeyId, KeyRecord, KeyState, Tx};

use crate::{Ca, Error};

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

impl Ca {
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

    /// Step 3, inside the use case's transaction: the key's record, `active`.
    pub(crate) async fn record_key(&self, tx: &mut Tx, key: &PreparedKey) -> Result<(), Error> {
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
