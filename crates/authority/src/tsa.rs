//! The time-stamping authority (RFC 3161): one time-stamping unit whose certificate the
//! qualified CA issues (so the CA's OCSP responder and CRL cover it), created at the first
//! upkeep, replaced a year before it expires or once it is revoked, and its tokens.

use std::sync::Arc;

use serde_json::json;

use domain::records::AuthorityRecord;
use domain::signing::HashAlgorithm;
use domain::{CertificateKind, CertificateStatus, RateLimit, Serial, UnixTime, UserId};
use pki::profile::{self, CertificateDer, CertificateRequest};
use pki::tsa::{self, TimeStampUnit};
use store::{AuditLog as _, CertificateStore as _, Store, Transaction as _};

use crate::ca::keys::PreparedKey;
use crate::ca::CaDb;
use crate::ca::{random_serial, TsaUnit};
use crate::settings::CaName;
use crate::{Ca, Clock, Error, Settings};

/// The CA that certifies the time-stamping unit.
const TSA_ISSUER: CaName = CaName::Qualified;

/// Counts of the current second, in memory: an anonymous flood must not cost database writes
/// to be refused. The map holds only this second's callers, at most twice the global limit.
#[derive(Default)]
pub(crate) struct TsaLimiter {
    window: std::sync::Mutex<Window>,
}

#[derive(Default)]
struct Window {
    second: i64,
    total: u32,
    per_caller: std::collections::HashMap<String, u32>,
}

impl TsaLimiter {
    /// Whether one more token fits this second's limits, overall (`global`) and for each of
    /// `callers` (a key and its limit); counts it everywhere if so, nowhere if not.
    fn admit(&self, now: UnixTime, global: u32, callers: &[(String, u32)]) -> bool {
        let mut window = self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if window.second != now.0 {
            *window = Window {
                second: now.0,
                ..Window::default()
            };
        }
        if window.total >= global
            || callers
                .iter()
                .any(|(key, limit)| window.per_caller.get(key).copied().unwrap_or(0) >= *limit)
        {
            return false;
        }
        for (key, _) in callers {
            *window.per_caller.entry(key.clone()).or_insert(0) += 1;
        }
        window.total += 1;
        true
    }
}

/// A DER TimeStampReq (RFC 3161 §2.4.1) for our own TSA, asking for its certificate.
fn timestamp_request(
    algorithm: HashAlgorithm,
    imprint: &[u8],
    nonce: Option<&[u8]>,
) -> Result<Vec<u8>, Error> {
    let hash = match algorithm {
        HashAlgorithm::Sha256 => tsa::ImprintHash::Sha256,
        HashAlgorithm::Sha384 => tsa::ImprintHash::Sha384,
        HashAlgorithm::Sha512 => tsa::ImprintHash::Sha512,
    };
    Ok(tsa::request(hash, imprint, nonce)?)
}

/// The time-stamping service: the unit's certificate comes from the CA, its tokens from here.
/// Of the store it uses the CA's part ([`CaDb`]): the unit's certificate and the audit log.
pub struct Tsa<D = Store> {
    pub(crate) store: D,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) ca: Arc<Ca<D>>,
    /// Counts of public time-stamp requests this second.
    limiter: TsaLimiter,
}

impl<D: CaDb> Tsa<D> {
    pub(crate) fn new(
        store: D,
        clock: Arc<dyn Clock>,
        settings: Arc<Settings>,
        ca: Arc<Ca<D>>,
    ) -> Self {
        Self {
            store,
            clock,
            settings,
            ca,
            limiter: TsaLimiter::default(),
        }
    }

    /// Admits one `POST /tsa` request from `address`, or refuses it with
    /// `Rejection::RateLimited` beyond [`RateLimit::TSA_PER_ADDRESS`] from that address or
    /// [`RateLimit::TSA_GLOBAL`] from everyone (unless `dangerous_disable_rate_limits`).
    pub fn admit_timestamp_request(&self, address: &str) -> Result<(), Error> {
        self.admit(&[(
            format!("address:{address}"),
            RateLimit::TSA_PER_ADDRESS.limit,
        )])
    }

    /// One more public token within the per-second limits of `callers` and the global one.
    fn admit(&self, callers: &[(String, u32)]) -> Result<(), Error> {
        if self.settings.dangerous_disable_rate_limits
            || self
                .limiter
                .admit(self.clock.now(), RateLimit::TSA_GLOBAL.limit, callers)
        {
            Ok(())
        } else {
            Err(crate::Rejection::RateLimited.into())
        }
    }

    /// The CSC API's `signatures/timestamp`: a token for the API user `user` calling from
    /// `address`, under the same limits as `POST /tsa` (the same per-address count and the
    /// global one) and [`RateLimit::TSA_PER_API_USER`]; beyond them `Rejection::RateLimited`
    /// (finding 3 of issue 22: the API path had none).
    pub async fn api_timestamp_token(
        &self,
        user: &UserId,
        address: &str,
        algorithm: HashAlgorithm,
        imprint: &[u8],
        nonce: Option<&[u8]>,
    ) -> Result<Vec<u8>, Error> {
        self.admit(&[
            (
                format!("address:{address}"),
                RateLimit::TSA_PER_ADDRESS.limit,
            ),
            (format!("user:{user}"), RateLimit::TSA_PER_API_USER.limit),
        ])?;
        self.timestamp_token(algorithm, imprint, nonce).await
    }

    /// Answers a DER TimeStampReq with a DER TimeStampResp: a token, or a `rejection` saying
    /// why (RFC 3161 §2.4.2). `Err` only when the service itself fails.
    ///
    /// Steps: 1. parse and check the request; 2. sign the token (outside any transaction: a
    /// PKCS#11 signature must not hold the database); 3. record it in the audit log; 4. hand
    /// it out only once that is committed, so every token given out is on record.
    pub async fn timestamp(&self, request_der: &[u8]) -> Result<Vec<u8>, Error> {
        // 1.
        let request = match tsa::parse_request(request_der, &self.settings.policy.timestamp_policy)
        {
            Ok(request) => request,
            Err(failure) => {
                tracing::debug!(failure = failure.as_str(), "time-stamp request rejected");
                return Ok(tsa::rejection(failure, Some(&failure.to_string())));
            }
        };
        let issuer = self.ca.ca(TSA_ISSUER)?;
        let Some(unit) = issuer.tsa.as_ref() else {
            return Err(Error::Inconsistent(
                "the time-stamping unit has no certificate yet".into(),
            ));
        };
        let now = self.clock.now();
        let validity = &unit.certificate.tbs_certificate.validity;
        if now < profile::unix_time(&validity.not_before)
            || now > profile::unix_time(&validity.not_after)
        {
            return Err(Error::Inconsistent(
                "the time-stamping unit's certificate is not valid now".into(),
            ));
        }
        // 2.
        let serial = random_serial();
        let issuers = [issuer.certificate.clone()];
        let signer = TimeStampUnit {
            certificate: &unit.certificate,
            issuers: &issuers,
            signer: unit.signer.as_ref(),
            policy: self.settings.policy.timestamp_policy,
        };
        let response = tsa::grant(&signer, &request, &serial, now)?;
        // 3.
        let mut tx = self.store.begin().await?;
        tx.audit(
            now,
            "anonymous",
            "tsa.token",
            json!({
                "serial": serial.to_hex(),
                "hash_algorithm": request.hash.as_str(),
                "imprint": hex::encode(request.message_imprint.hashed_message.as_bytes()),
            }),
        )
        .await?;
        tx.commit().await?;
        // 4.
        Ok(response)
    }

    /// A token from our own TSA over `imprint` (a digest of `algorithm`), with the nonce if
    /// given, under no limit: what the portal's B-T and B-LT signatures of an approved job use
    /// in-process (each one already bound to a signature the user approved on the phone, and
    /// limited by `SIGN_REQUESTS_PER_USER`), and what [`Self::api_timestamp_token`] gives once
    /// admitted. A request the TSA rejects (e.g. a digest of the wrong length) is
    /// `Rejection::Invalid`.
    pub(crate) async fn timestamp_token(
        &self,
        algorithm: HashAlgorithm,
        imprint: &[u8],
        nonce: Option<&[u8]>,
    ) -> Result<Vec<u8>, Error> {
        let response = self
            .timestamp(&timestamp_request(algorithm, imprint, nonce)?)
            .await?;
        let read = tsa::read_response(&response)?;
        read.token
            .ok_or(Error::Rejected(crate::Rejection::Invalid("hash")))
    }

    /// The time-stamping unit's certificate and its issuer (the qualified CA), for validation
    /// data next to tokens; empty while there is no unit.
    pub fn tsa_chain(&self) -> Vec<CertificateDer> {
        let Ok(issuer) = self.ca.ca(TSA_ISSUER) else {
            return Vec::new();
        };
        match issuer.tsa.as_ref() {
            Some(unit) => vec![unit.der.clone(), issuer.der.clone()],
            None => Vec::new(),
        }
    }

    /// Issues the time-stamping unit's certificate and key when there is none, when it nears
    /// its end, or once it is revoked; picks up one issued by another process.
    pub(crate) async fn renew_tsa(&self) -> Result<(), Error> {
        let now = self.clock.now();
        let issuer = self.ca.ca(TSA_ISSUER)?;
        let issuer_not_after =
            profile::unix_time(&issuer.certificate.tbs_certificate.validity.not_after);
        let Some(record) = self.store.authority(TSA_ISSUER.as_str()).await? else {
            return Err(Error::Inconsistent(format!(
                "authority {} missing",
                TSA_ISSUER.as_str()
            )));
        };
        if !self.tsa_due(&record, issuer_not_after, now).await? {
            // Another process may have replaced it: use the unit the store names.
            let stored = record.tsa.as_ref().map(|(serial, ..)| *serial);
            if stored != issuer.tsa.as_ref().and_then(TsaUnit::serial) {
                self.ca.reload_ca(TSA_ISSUER).await?;
            }
            return Ok(());
        }
        // 1. The key, before the transaction (crate::ca::keys: a token's key is recorded first).
        let serial = random_serial();
        let key = self
            .ca
            .prepare_key(
                &format!("eidportal-tsa-{}", serial.to_hex()),
                self.settings.key_algorithm,
            )
            .await?;
        match self
            .certify_tsa_key(serial, &key, issuer_not_after, now)
            .await
        {
            Ok(true) => self.ca.reload_ca(TSA_ISSUER).await,
            // Another process replaced the unit while we waited for the lock.
            Ok(false) => {
                self.ca.discard_key(key).await;
                Ok(())
            }
            Err(error) => {
                self.ca.discard_key(key).await;
                Err(error)
            }
        }
    }

    /// Step 2 of the renewal, under the CA row's lock unless another process just did it: the
    /// key's record, the serial stored before signing, the certificate and the unit's row, in
    /// one transaction. False if another process did it.
    async fn certify_tsa_key(
        &self,
        serial: Serial,
        key: &PreparedKey,
        issuer_not_after: UnixTime,
        now: UnixTime,
    ) -> Result<bool, Error> {
        let mut tx = self.store.begin().await?;
        let record = tx.authority_for_update(TSA_ISSUER.as_str()).await?;
        if let Some((current, _, _, not_after)) = &record.tsa {
            let status = tx.certificate(current).await?.map(|c| c.status);
            if status == Some(CertificateStatus::Issued)
                && !self
                    .settings
                    .timestamping
                    .needs_renewal(*not_after, issuer_not_after, now)
            {
                return Ok(false);
            }
        }
        self.ca.record_key(&mut tx, key).await?;
        let subject = self.settings.tsa_name().name()?;
        let not_after = now
            .plus_calendar_years(self.settings.timestamping.certificate_years)
            .min(issuer_not_after);
        let request = CertificateRequest {
            kind: CertificateKind::TimeStamping,
            serial,
            subject,
            public_key: key.public_key(),
            not_before: now,
            not_after,
        };
        let der = self
            .ca
            .issue_in(&mut tx, TSA_ISSUER, &request, None, Some(key.id()), now)
            .await?;
        tx.store_tsa(TSA_ISSUER.as_str(), &serial, key.id(), &der.0, not_after)
            .await?;
        tx.audit(
            now,
            "system",
            "tsa.certified",
            json!({ "ca": TSA_ISSUER.as_str(), "serial": serial.to_hex() }),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Must the unit's certificate be replaced: missing, revoked, or near its end?
    async fn tsa_due(
        &self,
        record: &AuthorityRecord,
        issuer_not_after: UnixTime,
        now: UnixTime,
    ) -> Result<bool, Error> {
        let Some((serial, _, _, not_after)) = &record.tsa else {
            return Ok(true);
        };
        if self
            .settings
            .timestamping
            .needs_renewal(*not_after, issuer_not_after, now)
        {
            return Ok(true);
        }
        let status = self.store.certificate(serial).await?.map(|c| c.status);
        Ok(status != Some(CertificateStatus::Issued))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use store::AuditQueries as _;

    #[test]
    fn time_stamp_requests_are_limited_per_address_and_in_all() {
        let limiter = TsaLimiter::default();
        let now = UnixTime(1000);
        let admit = |address: &str, now| limiter.admit(now, 5, &[(address.to_owned(), 3)]);
        assert!((0..3).all(|_| admit("10.0.0.1", now)));
        assert!(!admit("10.0.0.1", now), "a fourth from one address");
        assert!(admit("10.0.0.2", now), "another address has its own count");
        assert!(admit("10.0.0.3", now));
        assert!(
            !admit("10.0.0.4", now),
            "the global limit holds for new addresses too"
        );
        assert!(
            admit("10.0.0.1", UnixTime(1001)),
            "a new second, new counts"
        );
    }

    #[test]
    fn a_refused_request_counts_for_none_of_its_callers() {
        let limiter = TsaLimiter::default();
        let now = UnixTime(1000);
        let both = |address: &str| {
            limiter.admit(now, 100, &[(address.to_owned(), 2), ("user".to_owned(), 3)])
        };
        assert!(both("a") && both("a"));
        assert!(!both("a"), "the address is spent");
        assert!(both("b"), "the refusal above did not count for the user");
        assert!(!both("c"), "the user is spent");
    }

    #[test]
    fn our_own_time_stamp_requests_parse_as_the_tsa_reads_them() {
        let policy = const_oid::ObjectIdentifier::new_unwrap("1.2.3");
        let parsed = tsa::parse_request(
            &timestamp_request(HashAlgorithm::Sha256, &[7; 32], None).unwrap(),
            &policy,
        )
        .unwrap();
        assert!(parsed.cert_req && parsed.nonce.is_none());
        assert_eq!(parsed.message_imprint.hashed_message.as_bytes(), &[7; 32]);
        let parsed = tsa::parse_request(
            &timestamp_request(HashAlgorithm::Sha512, &[9; 64], Some(&[0, 0, 0x80, 1])).unwrap(),
            &policy,
        )
        .unwrap();
        assert_eq!(parsed.nonce.unwrap().as_bytes(), &[0, 0x80, 1]);
        assert!(
            tsa::parse_request(
                &timestamp_request(HashAlgorithm::Sha384, &[9; 32], None).unwrap(),
                &policy
            )
            .is_err(),
            "wrong length"
        );
    }

    /// The service on a temporary store: the limiter as `POST /tsa` meets it, and tokens.
    mod service {
        use super::*;
        use crate::test_support::authorities;

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn an_address_is_refused_past_its_limit_until_the_next_second() {
            let dir = tempfile::tempdir().unwrap();
            for t in authorities(dir.path()).await {
                let name = t.name;
                for i in 0..RateLimit::TSA_PER_ADDRESS.limit {
                    t.tsa
                        .admit_timestamp_request("192.0.2.1")
                        .unwrap_or_else(|e| panic!("{name}: request {i}: {e}"));
                }
                assert!(
                    matches!(
                        t.tsa.admit_timestamp_request("192.0.2.1"),
                        Err(Error::Rejected(crate::Rejection::RateLimited))
                    ),
                    "{name}: one past the limit"
                );
                t.tsa.admit_timestamp_request("192.0.2.2").unwrap();
                t.clock.advance(1);
                t.tsa.admit_timestamp_request("192.0.2.1").unwrap();
                t.close().await;
            }
        }

        /// Finding 3 of issue 22: the CSC `signatures/timestamp` path shares `POST /tsa`'s
        /// per-address and global counts, and has a per-user limit of its own.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn the_api_path_is_limited_per_address_per_user_and_in_all() {
            let dir = tempfile::tempdir().unwrap();
            for t in authorities(dir.path()).await {
                let name = t.name;
                let (petar, jovana) = (UserId::from("petar"), UserId::from("jovana"));
                let stamp = |user: &UserId, address: &str| {
                    let (tsa, user, address) = (t.tsa.clone(), user.clone(), address.to_owned());
                    async move {
                        tsa.api_timestamp_token(
                            &user,
                            &address,
                            HashAlgorithm::Sha256,
                            &[7; 32],
                            None,
                        )
                        .await
                    }
                };
                let limited = |result: Result<Vec<u8>, Error>| {
                    matches!(result, Err(Error::Rejected(crate::Rejection::RateLimited)))
                };
                // An address that spent its budget on POST /tsa gets no API token either.
                for _ in 0..RateLimit::TSA_PER_ADDRESS.limit {
                    t.tsa.admit_timestamp_request("192.0.2.1").unwrap();
                }
                assert!(limited(stamp(&petar, "192.0.2.1").await), "{name}");
                // One user from many addresses: the per-user limit.
                t.clock.advance(1);
                for i in 0..RateLimit::TSA_PER_API_USER.limit {
                    stamp(&petar, &format!("198.51.100.{i}"))
                        .await
                        .unwrap_or_else(|e| panic!("{name}: token {i}: {e}"));
                }
                assert!(
                    limited(stamp(&petar, "203.0.113.1").await),
                    "{name}: one past the user's limit, from a fresh address"
                );
                stamp(&jovana, "203.0.113.1").await.unwrap();
                // The global limit, spent by POST /tsa from many addresses.
                t.clock.advance(1);
                for i in 0..RateLimit::TSA_GLOBAL.limit {
                    t.tsa
                        .admit_timestamp_request(&format!("10.0.{}.{}", i / 256, i % 256))
                        .unwrap();
                }
                assert!(limited(stamp(&jovana, "203.0.113.2").await), "{name}");
                t.clock.advance(1);
                stamp(&petar, "192.0.2.1").await.unwrap();
                t.close().await;
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_token_stamps_the_requests_imprint_and_is_on_record() {
            let dir = tempfile::tempdir().unwrap();
            for t in authorities(dir.path()).await {
                let name = t.name;
                let imprint = [0x5a; 32];
                let nonce = [1, 2, 3, 4];
                let response = t
                    .tsa
                    .timestamp(
                        &timestamp_request(HashAlgorithm::Sha256, &imprint, Some(&nonce)).unwrap(),
                    )
                    .await
                    .unwrap();
                let read = tsa::read_response(&response).unwrap();
                assert_eq!(read.status, 0, "{name}: granted");
                let chain = t.tsa.tsa_chain();
                assert_eq!(chain.len(), 2, "{name}: the unit and its CA");
                let unit = crate::parse_certificate(&chain[0].0).unwrap();
                let info = tsa::verify_token(read.token.as_ref().unwrap(), &unit).unwrap();
                assert_eq!(
                    info.message_imprint.hashed_message.as_bytes(),
                    &imprint,
                    "{name}: the request's imprint"
                );
                assert_eq!(info.nonce.unwrap().as_bytes(), &nonce, "{name}");
                assert_eq!(
                    profile::unix_time(&x509_cert::time::Time::GeneralTime(info.gen_time)),
                    t.now(),
                    "{name}: the time is the clock's"
                );
                let entries = t.store.audit_entries().await.unwrap();
                let last = entries.last().unwrap();
                assert_eq!(last.event, "tsa.token", "{name}");
                assert!(
                    last.details.contains(&hex::encode(imprint)),
                    "{name}: {}",
                    last.details
                );

                // An imprint of the wrong length is rejected, and nothing is recorded.
                let audit = entries.len();
                let rejected = tsa::read_response(
                    &t.tsa
                        .timestamp(
                            &timestamp_request(HashAlgorithm::Sha256, &[1; 20], None).unwrap(),
                        )
                        .await
                        .unwrap(),
                )
                .unwrap();
                assert_eq!(rejected.status, 2, "{name}: rejection");
                assert!(rejected.token.is_none(), "{name}");
                assert_eq!(t.audit_len().await, audit, "{name}");
                assert!(matches!(
                    t.tsa
                        .timestamp_token(HashAlgorithm::Sha512, &[1; 32], None)
                        .await,
                    Err(Error::Rejected(crate::Rejection::Invalid("hash")))
                ));
                t.close().await;
            }
        }
    }
}
