//! The OCSP responder (RFC 6960) with a cache of signed responses (RFC 5019 §2.2: responses may
//! be pre-produced): an answer without a nonce is signed once and served again until the
//! status revision changes or the response nears its nextUpdate, so a cached answer costs no
//! signature. A request with a nonce always gets a fresh signature echoing it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::RwLock;

use bytes::Bytes;
use x509_ocsp::OcspResponseStatus;

use domain::{CertificateStatus, UnixTime};
use pki::ocsp::{self, CertQuery, Responder, Status};

use crate::settings::CaName;
use crate::{Authority, Error};

/// Cached responses beyond this number are dropped all at once (a flood of distinct requests
/// cannot grow memory without bound).
const CACHE_LIMIT: usize = 200_000;

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
}

impl OcspAnswer {
    fn error(status: OcspResponseStatus, outcome: &'static str) -> Self {
        Self { body: Bytes::from(ocsp::error_response(status)), cacheable: None, outcome, cached: false }
    }
}

#[derive(Clone)]
struct Entry {
    body: Bytes,
    this_update: UnixTime,
    next_update: UnixTime,
    revision: i64,
}

/// Signed responses by the DER of the (nonce-less, single-CertID) request they answer.
#[derive(Default)]
pub(crate) struct Cache {
    entries: RwLock<HashMap<Vec<u8>, Entry>>,
    revision: AtomicI64,
}

impl Cache {
    pub(crate) fn set_revision(&self, revision: i64) {
        self.revision.store(revision, Ordering::SeqCst);
    }

    pub(crate) fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }

    fn get(&self, key: &[u8]) -> Option<Entry> {
        let entries = self.entries.read().ok()?;
        let entry = entries.get(key)?;
        (entry.revision == self.revision.load(Ordering::SeqCst)).then(|| entry.clone())
    }

    fn put(&self, key: Vec<u8>, entry: Entry) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= CACHE_LIMIT {
                entries.clear();
            }
            entries.insert(key, entry);
        }
    }
}

impl Authority {
    /// Answers a DER OCSP request. Never fails: problems become OCSP error statuses.
    pub async fn ocsp(&self, request: &[u8]) -> OcspAnswer {
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
        // 1. The same request bytes asked before without a nonce get the same answer: served
        //    without even parsing (the cache is keyed by the request's DER).
        if let Some(entry) = self.ocsp_cache.get(request) {
            if self.settings.ocsp.response_is_fresh(entry.next_update, now) {
                return Ok(OcspAnswer {
                    body: entry.body,
                    cacheable: Some((entry.this_update, entry.next_update)),
                    outcome: "successful",
                    cached: true,
                });
            }
        }
        let parsed = match ocsp::parse_request(request) {
            Ok(parsed) => parsed,
            Err(_) => return Ok(OcspAnswer::error(OcspResponseStatus::MalformedRequest, "malformed_request")),
        };
        // 2. Every CertID must name the same one of our issuing CAs (RFC 6960 §2.3: else
        //    `unauthorized`).
        let Some(ca) = self.issuing_ca_of(&parsed.queries)? else {
            return Ok(OcspAnswer::error(OcspResponseStatus::Unauthorized, "unauthorized"));
        };
        let single_cacheable = parsed.queries.len() == 1 && parsed.nonce.is_none();
        // Read the revision before the statuses: a revocation committed in between makes the
        // entry stale at once rather than hiding it.
        let revision = self.store.status_revision().await?;
        let mut answers = Vec::with_capacity(parsed.queries.len());
        for query in &parsed.queries {
            answers.push((query.cert_id.clone(), self.status_of(ca, query).await?));
        }
        let loaded = self.ca(ca)?;
        let Some((certificate, signer)) = loaded.responder.as_ref() else {
            return Ok(OcspAnswer::error(OcspResponseStatus::TryLater, "try_later"));
        };
        let responder = Responder { certificate, signer: signer.as_ref() };
        let next_update = now.plus_seconds(self.settings.ocsp.response_lifetime);
        let body = Bytes::from(ocsp::sign_response(&responder, &answers, now, next_update, parsed.nonce.as_deref())?);
        if single_cacheable {
            self.ocsp_cache.put(request.to_vec(), Entry { body: body.clone(), this_update: now, next_update, revision });
        }
        Ok(OcspAnswer {
            body,
            cacheable: single_cacheable.then_some((now, next_update)),
            outcome: "successful",
            cached: false,
        })
    }

    fn issuing_ca_of(&self, queries: &[CertQuery]) -> Result<Option<CaName>, Error> {
        let mut found = None;
        for query in queries {
            let mut this = None;
            for ca in CaName::ISSUING {
                if self.ca(ca)?.hashes.matches(query) {
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
        let Some(serial) = query.serial else { return Ok(Status::Unknown) };
        let Some(record) = self.store.certificate(&serial).await? else { return Ok(Status::Unknown) };
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
