//! The OCSP responder (RFC 6960) with a cache of signed responses (RFC 5019 §2.2: responses may
//! be pre-produced): an answer without a nonce is signed once and served again until the
//! status revision changes or the response nears its nextUpdate, so a cached answer costs no
//! signature. A request with a nonce always gets a fresh signature echoing it.
//!
//! The cache is keyed by the plain request asking about one CertID (`pki::ocsp::plain_request`),
//! which is what RFC 5019 clients send: such a request is answered from its bytes alone,
//! without being parsed ([`Va::ocsp_cached`], the hot path). Any other nonce-less request about
//! one CertID is parsed and finds the same entry through its plain form.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::RwLock;

use bytes::Bytes;
use x509_ocsp::OcspResponseStatus;

use domain::{CertificateStatus, UnixTime};
use pki::ocsp::{self, CertQuery, Responder, Status};

use crate::settings::CaName;
use crate::va::VaDb;
use crate::{Error, Va};

/// The most bytes the cache holds (responses and keys); the oldest entries go first. A cache
/// keyed by the normalised CertID holds one entry per certificate we issued, so this bounds
/// only a CA with very many certificates.
const CACHE_BYTES: usize = 64 * 1024 * 1024;
/// What an entry costs besides its response and key (map and queue slots, the entry itself).
const ENTRY_OVERHEAD: usize = 128;

/// What the HTTP layer sends back.
#[derive(Debug, Clone)]
pub struct OcspAnswer {
    /// The DER OCSPResponse.
    pub body: Bytes,
    /// thisUpdate and nextUpdate of a successful response without nonce, for RFC 5019 caching
    /// headers; `None` for error responses and nonce responses.
    pub cacheable: Option<(UnixTime, UnixTime)>,
    /// `successful`, `malformed_request`, `unauthorized`, `try_later` or `internal_error`.
    pub outcome: &'static str,
    /// Whether it came from the cache.
    pub cached: bool,
    /// A fingerprint of `body` (SipHash with fixed keys), computed once when it was signed: an
    /// HTTP entity tag without hashing the body on every answer.
    pub fingerprint: u64,
}

/// The fingerprint of a response body.
fn fingerprint(body: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hasher::write(&mut hasher, body);
    std::hash::Hasher::finish(&hasher)
}

impl OcspAnswer {
    fn error(status: OcspResponseStatus, outcome: &'static str) -> Self {
        let body = Bytes::from(ocsp::error_response(status));
        Self {
            fingerprint: fingerprint(&body),
            body,
            cacheable: None,
            outcome,
            cached: false,
        }
    }
}

#[derive(Clone)]
struct Entry {
    body: Bytes,
    fingerprint: u64,
    this_update: UnixTime,
    next_update: UnixTime,
    revision: i64,
}

impl Entry {
    fn answer(self) -> OcspAnswer {
        OcspAnswer {
            body: self.body,
            cacheable: Some((self.this_update, self.next_update)),
            outcome: "successful",
            cached: true,
            fingerprint: self.fingerprint,
        }
    }
}

/// Signed responses by the plain request asking about the one CertID they answer (finding 7:
/// never by the client's whole request, whose extensions it may pad at will: the plain form is
/// one key per CertID), only for nonce-less requests about a certificate we issued, at most
/// [`CACHE_BYTES`].
#[derive(Default)]
pub(crate) struct Cache {
    inner: RwLock<CacheInner>,
    revision: AtomicI64,
}

#[derive(Default)]
struct CacheInner {
    entries: HashMap<Vec<u8>, (Entry, u64)>,
    /// Keys oldest first, with the generation they were stored under (a key stored again
    /// leaves a stale slot behind, skipped on eviction).
    order: VecDeque<(Vec<u8>, u64)>,
    generation: u64,
    bytes: usize,
}

fn cost(key: &[u8], entry: &Entry) -> usize {
    key.len() * 2 + entry.body.len() + ENTRY_OVERHEAD
}

impl Cache {
    pub(crate) fn set_revision(&self, revision: i64) {
        self.revision.store(revision, Ordering::SeqCst);
    }

    pub(crate) fn clear(&self) {
        if let Ok(mut inner) = self.inner.write() {
            *inner = CacheInner::default();
        }
    }

    /// (entries, bytes) held now.
    pub(crate) fn size(&self) -> (usize, usize) {
        self.inner
            .read()
            .map(|inner| (inner.entries.len(), inner.bytes))
            .unwrap_or((0, 0))
    }

    fn get(&self, key: &[u8]) -> Option<Entry> {
        let inner = self.inner.read().ok()?;
        let (entry, _) = inner.entries.get(key)?;
        (entry.revision == self.revision.load(Ordering::SeqCst)).then(|| entry.clone())
    }

    fn put(&self, key: Vec<u8>, entry: Entry) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        let inner = &mut *inner;
        inner.generation += 1;
        let generation = inner.generation;
        inner.bytes += cost(&key, &entry);
        if let Some((old, _)) = inner.entries.insert(key.clone(), (entry, generation)) {
            inner.bytes = inner.bytes.saturating_sub(cost(&key, &old));
        }
        inner.order.push_back((key, generation));
        while inner.bytes > CACHE_BYTES {
            let Some((oldest, generation)) = inner.order.pop_front() else {
                break;
            };
            if inner
                .entries
                .get(&oldest)
                .is_some_and(|(_, g)| *g == generation)
            {
                if let Some((old, _)) = inner.entries.remove(&oldest) {
                    inner.bytes = inner.bytes.saturating_sub(cost(&oldest, &old));
                }
            }
        }
        // Stale slots (keys stored again) are dropped once they outnumber the live ones.
        if inner.order.len() > 2 * inner.entries.len() + 1024 {
            let entries = &inner.entries;
            inner
                .order
                .retain(|(key, generation)| entries.get(key).is_some_and(|(_, g)| g == generation));
        }
    }
}

impl<D: VaDb> Va<D> {
    /// The OCSP response cache's size: (entries, bytes). For tests and metrics.
    pub fn ocsp_cache_size(&self) -> (usize, usize) {
        self.ocsp_cache.size()
    }

    /// The cached answer to `request` if its bytes are a plain request (one CertID, no nonce,
    /// nothing else; `pki::ocsp::plain_request`) answered before and still fresh, found without
    /// parsing it. `None`: ask [`Va::ocsp`], which answers every request. Synchronous and
    /// without an allocation, for the HTTP hot path.
    pub fn ocsp_cached(&self, request: &[u8]) -> Option<OcspAnswer> {
        let entry = self.ocsp_cache.get(request)?;
        self.settings
            .ocsp
            .response_is_fresh(entry.next_update, self.clock.now())
            .then(|| entry.answer())
    }

    /// Answers a DER OCSP request. Never fails: problems become OCSP error statuses.
    pub async fn ocsp(&self, request: &[u8]) -> OcspAnswer {
        if let Some(answer) = self.ocsp_cached(request) {
            return answer;
        }
        match self.ocsp_inner(request).await {
            Ok(answer) => answer,
            Err(error) => {
                tracing::error!(%error, "OCSP response failed");
                OcspAnswer::error(OcspResponseStatus::InternalError, "internal_error")
            }
        }
    }

    async fn ocsp_inner(&self, request: &[u8]) -> Result<OcspAnswer, Error> {
        let now = self.clock.now();
        let parsed = match ocsp::parse_request(request) {
            Ok(parsed) => parsed,
            Err(_) => {
                return Ok(OcspAnswer::error(
                    OcspResponseStatus::MalformedRequest,
                    "malformed_request",
                ))
            }
        };
        // 1. A nonce-less request about one certificate asked before gets the same answer,
        //    found by its plain form: whatever else the request carries. (A plain request was
        //    looked up by its bytes already, in `ocsp`.)
        let cache_key = match parsed.queries.as_slice() {
            [query] if parsed.nonce.is_none() => Some(query.plain_request_der.clone()),
            _ => None,
        };
        if let Some(entry) = cache_key
            .as_deref()
            .filter(|key| *key != request)
            .and_then(|key| self.ocsp_cache.get(key))
        {
            if self.settings.ocsp.response_is_fresh(entry.next_update, now) {
                return Ok(entry.answer());
            }
        }
        // 2. Every CertID must name the same one of our issuing CAs (RFC 6960 §2.3: else
        //    `unauthorized`).
        let Some(ca) = self.issuing_ca_of(&parsed.queries)? else {
            return Ok(OcspAnswer::error(
                OcspResponseStatus::Unauthorized,
                "unauthorized",
            ));
        };
        let single_cacheable = cache_key.is_some();
        // Read the revision before the statuses: a revocation committed in between makes the
        // entry stale at once rather than hiding it.
        let revision = self.store.status_revision().await?;
        let mut answers = Vec::with_capacity(parsed.queries.len());
        for query in &parsed.queries {
            answers.push((query.cert_id.clone(), self.status_of(ca, query).await?));
        }
        let loaded = self.ca.ca(ca)?;
        let Some((certificate, signer)) = loaded.responder.as_ref() else {
            return Ok(OcspAnswer::error(OcspResponseStatus::TryLater, "try_later"));
        };
        let responder = Responder {
            certificate,
            signer: signer.as_ref(),
        };
        let next_update = now.plus_seconds(self.settings.ocsp.response_lifetime);
        let body = Bytes::from(ocsp::sign_response(
            &responder,
            &answers,
            now,
            next_update,
            parsed.nonce.as_deref(),
        )?);
        let fingerprint = fingerprint(&body);
        // Only answers about certificates we issued are kept: random serials cannot fill the cache.
        let known = answers
            .iter()
            .all(|(_, status)| !matches!(status, Status::Unknown));
        if let (Some(key), true) = (cache_key, known) {
            self.ocsp_cache.put(
                key,
                Entry {
                    body: body.clone(),
                    fingerprint,
                    this_update: now,
                    next_update,
                    revision,
                },
            );
        }
        Ok(OcspAnswer {
            body,
            cacheable: single_cacheable.then_some((now, next_update)),
            outcome: "successful",
            cached: false,
            fingerprint,
        })
    }

    fn issuing_ca_of(&self, queries: &[CertQuery]) -> Result<Option<CaName>, Error> {
        let mut found = None;
        for query in queries {
            let mut this = None;
            for ca in CaName::ISSUING {
                if self.ca.ca(ca)?.hashes.matches(query) {
                    this = Some(ca);
                }
            }
            match (found, this) {
                (_, None) => return Ok(None),
                (Some(previous), Some(current)) if previous != current => return Ok(None),
                (_, current) => found = current,
            }
        }
        Ok(found)
    }

    async fn status_of(&self, ca: CaName, query: &CertQuery) -> Result<Status, Error> {
        let Some(serial) = query.serial else {
            return Ok(Status::Unknown);
        };
        let Some(record) = self.store.certificate(&serial).await? else {
            return Ok(Status::Unknown);
        };
        if record.authority != ca.as_str() {
            return Ok(Status::Unknown);
        }
        Ok(match (record.status, record.revocation) {
            (CertificateStatus::Issued, _) => Status::Good,
            (CertificateStatus::Revoked, Some((at, reason))) => Status::Revoked { at, reason },
            // Reserved or abandoned: no certificate with this serial was handed out.
            _ => Status::Unknown,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_to_its_byte_budget_evicting_the_oldest() {
        let cache = Cache::default();
        let entry = |size: usize| Entry {
            body: Bytes::from(vec![0u8; size]),
            fingerprint: 0,
            this_update: UnixTime(0),
            next_update: UnixTime(1),
            revision: 0,
        };
        for i in 0u32..80 {
            cache.put(i.to_be_bytes().to_vec(), entry(1024 * 1024));
        }
        let (entries, bytes) = cache.size();
        assert!(
            bytes <= CACHE_BYTES && entries < 80,
            "{entries} entries, {bytes} bytes"
        );
        assert!(
            cache.get(&0u32.to_be_bytes()).is_none(),
            "the oldest went first"
        );
        assert!(
            cache.get(&79u32.to_be_bytes()).is_some(),
            "the newest stays"
        );
        // Storing a key again replaces its entry and its cost.
        cache.put(79u32.to_be_bytes().to_vec(), entry(10));
        assert_eq!(cache.size().0, entries);
        assert!(cache.size().1 < bytes);
    }
}
