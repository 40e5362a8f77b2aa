//! The ID-token signing keys: opened from the key backend, rolled over
//! (`eidportal oidc keys rotate`, `domain::oidc::key_schedule`), published in the JWKS.

use super::*;

/// A signing key, opened once, with its `kid` and public JWK.
pub(super) struct SigningKey {
    pub(super) key: Arc<dyn KeySigner>,
    pub(super) kid: String,
    pub(super) jwk: Value,
}

/// Every ID-token key generation, opened.
pub(super) struct KeySet {
    pub(super) keys: Vec<(KeyGeneration, Arc<SigningKey>)>,
}

impl KeySet {
    fn generations(&self) -> Vec<KeyGeneration> {
        self.keys.iter().map(|(g, _)| g.clone()).collect()
    }
}

impl<D: OidcDb> Oidc<D> {
    /// Opens the ID-token keys: the first is made on first start, in the key backend; the
    /// later ones come from `eidportal oidc keys rotate`. The upkeep calls it again every
    /// minute, so that every instance learns of a rotation made elsewhere.
    pub async fn refresh_signing_keys(&self) -> Result<(), Error> {
        let mut generations = vec![KeyGeneration {
            generation: 0,
            role: SIGNING_KEY.to_owned(),
            published_at: UnixTime(0),
            signs_from: UnixTime(0),
        }];
        generations.extend(self.store.oidc_keys().await?);
        let known = self
            .key
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut keys = Vec::new();
        for generation in generations {
            let open = known
                .as_ref()
                .and_then(|set| set.keys.iter().find(|(g, _)| *g == generation))
                .map(|(_, key)| key.clone());
            let key = match open {
                Some(key) => key,
                None => {
                    let signer = self.ca.service_key(&generation.role, false).await?;
                    let jwk = jose::public_jwk(signer.as_ref()).map_err(Error::Inconsistent)?;
                    let kid = jwk
                        .get("kid")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    Arc::new(SigningKey {
                        key: signer,
                        kid,
                        jwk,
                    })
                }
            };
            keys.push((generation, key));
        }
        *self
            .key
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(KeySet { keys }));
        Ok(())
    }

    /// The key set as opened.
    pub(super) fn key_set(&self) -> Result<Arc<KeySet>, Error> {
        self.key
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or_else(|| Error::Inconsistent("the ID-token keys are not open".into()))
    }

    /// The key that signs now.
    pub(super) fn signing_key(&self) -> Result<Arc<SigningKey>, Error> {
        let set = self.key_set()?;
        let (signing, _) = key_schedule(&set.generations(), self.clock.now(), ID_TOKEN_LIFETIME);
        set.keys
            .iter()
            .find(|(g, _)| Some(g.generation) == signing)
            .map(|(_, key)| key.clone())
            .ok_or_else(|| Error::Inconsistent("no ID-token key signs now".into()))
    }

    /// Wakes when the signing keys rolled over (in any process, on PostgreSQL): the server's
    /// upkeep then calls [`Oidc::refresh_signing_keys`].
    pub fn key_changes(&self) -> store::Watch {
        self.store.watch(&Change::SigningKeys)
    }

    /// `eidportal oidc keys rotate`: a new signing key, published now and signing after
    /// `overlap` seconds (so that clients fetch it first); the key it replaces stays published
    /// until every token it signed has expired. Its generation.
    pub async fn rotate_keys(&self, overlap: i64) -> Result<KeyGeneration, Error> {
        let now = self.clock.now();
        let last = self
            .store
            .oidc_keys()
            .await?
            .last()
            .map_or(0, |k| k.generation);
        let generation = KeyGeneration {
            generation: last + 1,
            role: format!("{SIGNING_KEY}.{}", last + 1),
            published_at: now,
            signs_from: now.plus_seconds(overlap.max(0)),
        };
        // The key first (its own use case, like every service key), then its place.
        self.ca.service_key(&generation.role, false).await?;
        let mut tx = self.store.begin().await?;
        if !tx.insert_oidc_key(&generation).await? {
            return Err(OidcRefusal::InvalidRequest("another rotation came first".into()).into());
        }
        tx.publish(Change::SigningKeys);
        tx.audit(
            now,
            "operator",
            "oidc.key.rotated",
            json!({ "generation": generation.generation, "signs_from": generation.signs_from.0 }),
        )
        .await?;
        tx.commit().await?;
        self.refresh_signing_keys().await?;
        Ok(generation)
    }

    /// `GET /oidc/jwks`: the ID-token keys published now (the signing one, the next one
    /// during a rollover's overlap, and the last one until its tokens have expired).
    pub fn jwks(&self) -> Result<Value, Error> {
        let set = self.key_set()?;
        let (_, published) = key_schedule(&set.generations(), self.clock.now(), ID_TOKEN_LIFETIME);
        let keys: Vec<Value> = set
            .keys
            .iter()
            .filter(|(g, _)| published.contains(&g.generation))
            .map(|(_, key)| key.jwk.clone())
            .collect();
        Ok(json!({ "keys": keys }))
    }
}
