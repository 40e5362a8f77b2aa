//! The CA's records: keys, authorities (their CRLs, OCSP signers and time-stamping units),
//! certificates and their revocation status, the service roles' keys and the accepted
//! agreements. Read through [`Store`], changed through [`CertificateStore`] inside a [`Tx`].

use std::future::Future;

use domain::records::{
    AuthorityRecord, CertificateRecord, KeyId, KeyRecord, KeyState, NewCertificate, RevokedRecord,
    ServiceCertificate,
};
use domain::{CertificateKind, CertificateStatus, RevocationReason, Serial, UnixTime, UserId};

use crate::db::{query, Row};
use crate::{parse_column, DatabaseKind, Error, Store, Tx};

pub(crate) const AUTHORITY_SELECT_BY_NAME: &str = "SELECT name, serial, key_id, certificate, crl_number, crl, \
     crl_next_update, ocsp_serial, ocsp_key_id, ocsp_certificate, ocsp_not_after, tsa_serial, tsa_key_id, \
     tsa_certificate, tsa_not_after FROM authorities WHERE name = $1";
macro_rules! key_select {
    ($tail:literal) => {
        concat!("SELECT id, backend, label, algorithm, reference, public_key, state, created_at FROM keys", $tail)
    };
}
pub(crate) const KEY_SELECT: &str = key_select!(" WHERE id = $1");
pub(crate) const KEYS_LEFT_HALF_WAY: &str =
    // The first condition is the partial index's own (migration 8), so that both databases use it.
    key_select!(" WHERE state IN ('generating', 'destroying') AND (state = 'destroying' OR created_at < $1) ORDER BY created_at, id");
macro_rules! certificate_select {
    ($tail:literal) => {
        concat!(
            "SELECT serial, authority, kind, status, subject, email, key_id, not_before, not_after, der, ",
            "reserved_at, issued_at, revoked_at, revocation_reason FROM certificates",
            $tail
        )
    };
}
pub(crate) const CERTIFICATE_SELECT_BY_SERIAL: &str = certificate_select!(" WHERE serial = $1");
pub(crate) const CERTIFICATE_SELECT_BY_EMAIL: &str =
    certificate_select!(" WHERE email = $1 ORDER BY reserved_at, serial");
pub(crate) const CERTIFICATE_SELECT_ALL: &str =
    certificate_select!(" ORDER BY reserved_at, serial");

fn key_from_row(row: &Row) -> Result<KeyRecord, Error> {
    let state: String = row.try_get(6)?;
    Ok(KeyRecord {
        id: KeyId(row.try_get(0)?),
        backend: row.try_get(1)?,
        label: row.try_get(2)?,
        algorithm: row.try_get(3)?,
        reference: row.try_get(4)?,
        public_key: row.try_get(5)?,
        state: KeyState::parse(&state)
            .ok_or_else(|| Error::Corrupt(format!("key state: {state}")))?,
        created_at: UnixTime(row.try_get(7)?),
    })
}

fn authority_from_row(row: &Row) -> Result<AuthorityRecord, Error> {
    // (serial, key, certificate, not_after) from four nullable columns from `first` on.
    let signer = |first: usize| -> Result<Option<ServiceCertificate>, Error> {
        let serial: Option<String> = row.try_get(first)?;
        let key: Option<String> = row.try_get(first + 1)?;
        let certificate: Option<Vec<u8>> = row.try_get(first + 2)?;
        let not_after: Option<i64> = row.try_get(first + 3)?;
        Ok(match (serial, key, certificate, not_after) {
            (Some(serial), Some(key), Some(certificate), Some(not_after)) => Some((
                Serial::parse_hex(&serial)
                    .ok_or_else(|| Error::Corrupt(format!("serial {serial}")))?,
                KeyId(key),
                certificate,
                UnixTime(not_after),
            )),
            _ => None,
        })
    };
    let ocsp_signer = signer(7)?;
    let tsa = signer(11)?;
    Ok(AuthorityRecord {
        name: row.try_get(0)?,
        serial: serial_column(row, 1)?,
        key_id: KeyId(row.try_get(2)?),
        certificate: row.try_get(3)?,
        crl_number: row.try_get(4)?,
        crl: row.try_get(5)?,
        crl_next_update: row.try_get::<Option<i64>>(6)?.map(UnixTime),
        ocsp_signer,
        tsa,
    })
}

fn certificate_from_row(row: &Row) -> Result<CertificateRecord, Error> {
    let revoked_at: Option<i64> = row.try_get(12)?;
    let reason: Option<i32> = row.try_get(13)?;
    let revocation = match (revoked_at, reason) {
        (Some(at), Some(code)) => Some((UnixTime(at), reason_from_code(code)?)),
        _ => None,
    };
    Ok(CertificateRecord {
        serial: serial_column(row, 0)?,
        authority: row.try_get(1)?,
        kind: kind_column(row, 2)?,
        status: status_column(row, 3)?,
        subject: row.try_get(4)?,
        email: row.try_get(5)?,
        key_id: row.try_get::<Option<String>>(6)?.map(KeyId),
        not_before: UnixTime(row.try_get(7)?),
        not_after: UnixTime(row.try_get(8)?),
        der: row.try_get(9)?,
        reserved_at: UnixTime(row.try_get(10)?),
        issued_at: row.try_get::<Option<i64>>(11)?.map(UnixTime),
        revocation,
    })
}

fn revoked_from_row(row: &Row) -> Result<RevokedRecord, Error> {
    Ok(RevokedRecord {
        serial: serial_column(row, 0)?,
        revoked_at: UnixTime(row.try_get(1)?),
        reason: reason_from_code(row.try_get(2)?)?,
    })
}

fn reason_from_code(code: i32) -> Result<RevocationReason, Error> {
    u8::try_from(code)
        .ok()
        .and_then(RevocationReason::from_code)
        .ok_or_else(|| Error::Corrupt(format!("revocation reason {code}")))
}

pub(crate) fn serial_column(row: &Row, index: usize) -> Result<Serial, Error> {
    let text: String = row.try_get(index)?;
    Serial::parse_hex(&text).ok_or_else(|| Error::Corrupt(format!("serial {text}")))
}

/// The delegates a CA row keeps: its OCSP signer and its time-stamping unit.
#[derive(Debug, Clone, Copy)]
enum Delegate {
    Ocsp,
    Tsa,
}

/// The CA's records, read outside a transaction.
pub trait CertificateQueries {
    /// One authority by name.
    fn authority(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<AuthorityRecord>, Error>> + Send;

    /// A key record by id.
    fn key(&self, id: &KeyId) -> impl Future<Output = Result<KeyRecord, Error>> + Send;

    /// A certificate by serial.
    fn certificate(
        &self,
        serial: &Serial,
    ) -> impl Future<Output = Result<Option<CertificateRecord>, Error>> + Send;

    /// Certificates, oldest first; only those of `email` when given.
    fn certificates(
        &self,
        email: Option<&str>,
    ) -> impl Future<Output = Result<Vec<CertificateRecord>, Error>> + Send;

    /// Serials still `reserved` that were reserved before `before`.
    fn reserved_before(
        &self,
        before: UnixTime,
    ) -> impl Future<Output = Result<Vec<Serial>, Error>> + Send;

    /// Keys a process left half-way, for the upkeep to finish: `generating` since before
    /// `before` (the generation was cut short or its use case never committed), and every
    /// `destroying` key (its certificate is revoked, the backend's destruction not confirmed).
    fn keys_left_half_way(
        &self,
        before: UnixTime,
    ) -> impl Future<Output = Result<Vec<KeyRecord>, Error>> + Send;

    /// The status revision: changes whenever any certificate's revocation status changes.
    fn status_revision(&self) -> impl Future<Output = Result<i64, Error>> + Send;
}

impl CertificateQueries for Store {
    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn authority(&self, name: &str) -> Result<Option<AuthorityRecord>, Error> {
        let row = query(AUTHORITY_SELECT_BY_NAME)
            .bind(name)
            .fetch_optional(self.db())
            .await?;
        row.map(|r| authority_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn key(&self, id: &KeyId) -> Result<KeyRecord, Error> {
        let row = query(KEY_SELECT)
            .bind(&id.0)
            .fetch_optional(self.db())
            .await?;
        row.map(|r| key_from_row(&r))
            .transpose()?
            .ok_or_else(|| Error::NotFound(format!("key {}", id.0)))
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn certificate(&self, serial: &Serial) -> Result<Option<CertificateRecord>, Error> {
        let row = query(CERTIFICATE_SELECT_BY_SERIAL)
            .bind(serial.to_hex())
            .fetch_optional(self.db())
            .await?;
        row.map(|r| certificate_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn certificates(&self, email: Option<&str>) -> Result<Vec<CertificateRecord>, Error> {
        let rows = match email {
            Some(email) => {
                query(CERTIFICATE_SELECT_BY_EMAIL)
                    .bind(email.to_owned())
                    .fetch_all(self.db())
                    .await?
            }
            None => query(CERTIFICATE_SELECT_ALL).fetch_all(self.db()).await?,
        };
        rows.iter().map(certificate_from_row).collect()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn reserved_before(&self, before: UnixTime) -> Result<Vec<Serial>, Error> {
        let rows =
            query("SELECT serial FROM certificates WHERE status = 'reserved' AND reserved_at < $1")
                .bind(before.0)
                .fetch_all(self.db())
                .await?;
        rows.iter().map(|r| serial_column(r, 0)).collect()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn keys_left_half_way(&self, before: UnixTime) -> Result<Vec<KeyRecord>, Error> {
        let rows = query(KEYS_LEFT_HALF_WAY)
            .bind(before.0)
            .fetch_all(self.db())
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn status_revision(&self) -> Result<i64, Error> {
        let row = query("SELECT revision FROM status_revision WHERE id = 1")
            .fetch_one(self.db())
            .await?;
        row.try_get::<i64>(0)
    }
}

impl Tx {
    /// A CA's delegate (OCSP signer or time-stamping unit) lives in four columns of its row.
    async fn store_delegate(
        &mut self,
        delegate: Delegate,
        name: &str,
        serial: &Serial,
        key_id: &KeyId,
        certificate: &[u8],
        not_after: UnixTime,
    ) -> Result<(), Error> {
        let p = match delegate {
            Delegate::Ocsp => "ocsp",
            Delegate::Tsa => "tsa",
        };
        query(&format!(
            "UPDATE authorities SET {p}_serial = $2, {p}_key_id = $3, {p}_certificate = $4, {p}_not_after = $5 WHERE name = $1"
        ))
        .bind(name.to_owned())
        .bind(serial.to_hex())
        .bind(&key_id.0)
        .bind(certificate.to_vec())
        .bind(not_after.0)
        .execute(self.conn()?)
        .await?;
        Ok(())
    }
}

/// The CA's records inside a use case's transaction: keys, authorities (their CRLs, OCSP
/// signers and time-stamping units), certificates and their revocation status, the keys of the
/// service roles, and the agreements accepted with a cloud certificate.
pub trait CertificateStore {
    /// Records a key generated in a backend.
    fn insert_key(&mut self, key: &KeyRecord) -> impl Future<Output = Result<(), Error>> + Send;

    /// Completes the record of a key recorded `generating`: its reference and public key; it
    /// is `active` from now on. Errors if it is no longer `generating` (abandoned meanwhile).
    fn activate_key(
        &mut self,
        id: &KeyId,
        reference: &[u8],
        public_key: &[u8],
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Marks a `generating` key `abandoned`. False when it was not `generating` (then nothing
    /// changes): its use case committed, or another process abandoned it first.
    fn abandon_generating_key(
        &mut self,
        id: &KeyId,
        at: UnixTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Marks an active key `destroying`: it must go, and the reference stays until its backend
    /// has destroyed it ([`CertificateStore::destroy_key`]).
    fn mark_key_destroying(
        &mut self,
        id: &KeyId,
        at: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Marks a key destroyed and erases its reference (for software keys, the sealed key).
    fn destroy_key(
        &mut self,
        id: &KeyId,
        at: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Records a new CA of the hierarchy.
    fn insert_authority(
        &mut self,
        name: &str,
        serial: &Serial,
        key_id: &KeyId,
        certificate: &[u8],
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Locks an authority's row for this transaction and reads it (PostgreSQL `FOR UPDATE`;
    /// SQLite already holds the write lock).
    fn authority_for_update(
        &mut self,
        name: &str,
    ) -> impl Future<Output = Result<AuthorityRecord, Error>> + Send;

    /// Stores a newly signed CRL with its number.
    fn store_crl(
        &mut self,
        name: &str,
        number: i64,
        crl: &[u8],
        next_update: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Stores a renewed delegated OCSP signer.
    fn store_ocsp_signer(
        &mut self,
        name: &str,
        serial: &Serial,
        key_id: &KeyId,
        certificate: &[u8],
        not_after: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Stores a new certificate and key of the time-stamping unit on its issuer's row.
    fn store_tsa(
        &mut self,
        issuer: &str,
        serial: &Serial,
        key_id: &KeyId,
        certificate: &[u8],
        not_after: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Stores a serial before anything is signed with it.
    fn reserve_certificate(
        &mut self,
        new: &NewCertificate,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Stores the signed certificate of a reserved serial. Errors if the serial is not
    /// reserved (abandoned meanwhile, or never reserved).
    fn complete_certificate(
        &mut self,
        serial: &Serial,
        der: &[u8],
        at: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Marks a `reserved` serial `abandoned`; returns its key, if any. `None` when the serial
    /// was not reserved (then nothing changes).
    fn abandon_reserved(
        &mut self,
        serial: &Serial,
    ) -> impl Future<Output = Result<Option<KeyId>, Error>> + Send;

    /// Serialises the creation of the CA hierarchy across processes (PostgreSQL advisory lock;
    /// SQLite's write lock already does).
    fn lock_bootstrap(&mut self) -> impl Future<Output = Result<(), Error>> + Send;

    /// Reads an authority inside the transaction, without locking it.
    fn authority(
        &mut self,
        name: &str,
    ) -> impl Future<Output = Result<Option<AuthorityRecord>, Error>> + Send;

    /// Reads a key record inside the transaction.
    fn key(&mut self, id: &KeyId) -> impl Future<Output = Result<KeyRecord, Error>> + Send;

    /// Reads a certificate inside the transaction.
    fn certificate(
        &mut self,
        serial: &Serial,
    ) -> impl Future<Output = Result<Option<CertificateRecord>, Error>> + Send;

    /// Revokes an issued certificate. Returns false if it was not in the `issued` state.
    fn revoke_certificate(
        &mut self,
        serial: &Serial,
        at: UnixTime,
        reason: RevocationReason,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Every revoked certificate an authority issued, for its CRL.
    fn revoked_by(
        &mut self,
        authority: &str,
    ) -> impl Future<Output = Result<Vec<RevokedRecord>, Error>> + Send;

    /// Stores an accepted agreement.
    fn insert_agreement(
        &mut self,
        number: &str,
        user_id: &UserId,
        certificate_serial: &Serial,
        text: &str,
        at: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Names the key of a service role.
    fn insert_service_key(
        &mut self,
        name: &str,
        key_id: &KeyId,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The key of a service role, inside the transaction.
    fn service_key(
        &mut self,
        name: &str,
    ) -> impl Future<Output = Result<Option<KeyId>, Error>> + Send;
}

impl CertificateStore for Tx {
    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn insert_key(&mut self, key: &KeyRecord) -> Result<(), Error> {
        query(
            "INSERT INTO keys (id, backend, label, algorithm, reference, public_key, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&key.id.0)
        .bind(&key.backend)
        .bind(&key.label)
        .bind(&key.algorithm)
        .bind(key.reference.clone())
        .bind(key.public_key.clone())
        .bind(key.state.as_str())
        .bind(key.created_at.0)
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn activate_key(
        &mut self,
        id: &KeyId,
        reference: &[u8],
        public_key: &[u8],
    ) -> Result<(), Error> {
        let done = query(
            "UPDATE keys SET state = 'active', reference = $2, public_key = $3 WHERE id = $1 AND state = 'generating'",
        )
        .bind(&id.0)
        .bind(reference.to_vec())
        .bind(public_key.to_vec())
        .execute(self.conn()?)
        .await?;
        if done.rows_affected() != 1 {
            return Err(Error::NotFound(format!("key {} being generated", id.0)));
        }
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn abandon_generating_key(&mut self, id: &KeyId, at: UnixTime) -> Result<bool, Error> {
        let done = query("UPDATE keys SET state = 'abandoned', destroyed_at = $2 WHERE id = $1 AND state = 'generating'")
            .bind(&id.0)
            .bind(at.0)
            .execute(self.conn()?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn mark_key_destroying(&mut self, id: &KeyId, at: UnixTime) -> Result<(), Error> {
        query("UPDATE keys SET state = 'destroying', destroyed_at = $2 WHERE id = $1 AND state = 'active'")
            .bind(&id.0)
            .bind(at.0)
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn destroy_key(&mut self, id: &KeyId, at: UnixTime) -> Result<(), Error> {
        query(
            "UPDATE keys SET state = 'destroyed', destroyed_at = $2, reference = $3 WHERE id = $1",
        )
        .bind(&id.0)
        .bind(at.0)
        .bind(Vec::<u8>::new())
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn insert_authority(
        &mut self,
        name: &str,
        serial: &Serial,
        key_id: &KeyId,
        certificate: &[u8],
    ) -> Result<(), Error> {
        query("INSERT INTO authorities (name, serial, key_id, certificate, crl_number) VALUES ($1, $2, $3, $4, 0)")
            .bind(name.to_owned())
            .bind(serial.to_hex())
            .bind(&key_id.0)
            .bind(certificate.to_vec())
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn authority_for_update(&mut self, name: &str) -> Result<AuthorityRecord, Error> {
        let sql = match self.kind {
            DatabaseKind::Postgres => format!("{} FOR UPDATE", AUTHORITY_SELECT_BY_NAME),
            DatabaseKind::Sqlite => AUTHORITY_SELECT_BY_NAME.to_owned(),
        };
        let row = query(&sql)
            .bind(name.to_owned())
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| authority_from_row(&r))
            .transpose()?
            .ok_or_else(|| Error::NotFound(format!("authority {name}")))
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn store_crl(
        &mut self,
        name: &str,
        number: i64,
        crl: &[u8],
        next_update: UnixTime,
    ) -> Result<(), Error> {
        query("UPDATE authorities SET crl_number = $2, crl = $3, crl_next_update = $4 WHERE name = $1")
            .bind(name.to_owned())
            .bind(number)
            .bind(crl.to_vec())
            .bind(next_update.0)
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn store_ocsp_signer(
        &mut self,
        name: &str,
        serial: &Serial,
        key_id: &KeyId,
        certificate: &[u8],
        not_after: UnixTime,
    ) -> Result<(), Error> {
        self.store_delegate(Delegate::Ocsp, name, serial, key_id, certificate, not_after)
            .await
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn store_tsa(
        &mut self,
        issuer: &str,
        serial: &Serial,
        key_id: &KeyId,
        certificate: &[u8],
        not_after: UnixTime,
    ) -> Result<(), Error> {
        self.store_delegate(
            Delegate::Tsa,
            issuer,
            serial,
            key_id,
            certificate,
            not_after,
        )
        .await
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn reserve_certificate(&mut self, new: &NewCertificate) -> Result<(), Error> {
        query(
            "INSERT INTO certificates (serial, authority, kind, status, subject, email, key_id, not_before, \
             not_after, reserved_at) VALUES ($1, $2, $3, 'reserved', $4, $5, $6, $7, $8, $9)",
        )
        .bind(new.serial.to_hex())
        .bind(new.authority.clone())
        .bind(new.kind.as_str())
        .bind(new.subject.clone())
        .bind(new.email.clone())
        .bind(new.key_id.as_ref().map(|k| k.0.clone()))
        .bind(new.not_before.0)
        .bind(new.not_after.0)
        .bind(new.reserved_at.0)
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn complete_certificate(
        &mut self,
        serial: &Serial,
        der: &[u8],
        at: UnixTime,
    ) -> Result<(), Error> {
        let done = query(
            "UPDATE certificates SET status = 'issued', der = $2, issued_at = $3 WHERE serial = $1 AND status = 'reserved'",
        )
        .bind(serial.to_hex())
        .bind(der.to_vec())
        .bind(at.0)
        .execute(self.conn()?)
        .await?;
        if done.rows_affected() != 1 {
            return Err(Error::NotFound(format!("reserved serial {serial}")));
        }
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn abandon_reserved(&mut self, serial: &Serial) -> Result<Option<KeyId>, Error> {
        let Some(record) = self.certificate(serial).await? else {
            return Ok(None);
        };
        if record.status != CertificateStatus::Reserved {
            return Ok(None);
        }
        // On PostgreSQL another use case may have issued the serial since it was read: then
        // this update waits for it and changes nothing, and the key (now its certificate's)
        // must not be handed back to be destroyed.
        let done = query(
            "UPDATE certificates SET status = 'abandoned' WHERE serial = $1 AND status = 'reserved'",
        )
        .bind(serial.to_hex())
        .execute(self.conn()?)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        Ok(record.key_id)
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn lock_bootstrap(&mut self) -> Result<(), Error> {
        if self.kind == DatabaseKind::Postgres {
            query("SELECT pg_advisory_xact_lock(7363728002)")
                .execute(self.conn()?)
                .await?;
        }
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn authority(&mut self, name: &str) -> Result<Option<AuthorityRecord>, Error> {
        let row = query(AUTHORITY_SELECT_BY_NAME)
            .bind(name.to_owned())
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| authority_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn key(&mut self, id: &KeyId) -> Result<KeyRecord, Error> {
        let row = query(KEY_SELECT)
            .bind(&id.0)
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| key_from_row(&r))
            .transpose()?
            .ok_or_else(|| Error::NotFound(format!("key {}", id.0)))
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn certificate(&mut self, serial: &Serial) -> Result<Option<CertificateRecord>, Error> {
        let row = query(CERTIFICATE_SELECT_BY_SERIAL)
            .bind(serial.to_hex())
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| certificate_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn revoke_certificate(
        &mut self,
        serial: &Serial,
        at: UnixTime,
        reason: RevocationReason,
    ) -> Result<bool, Error> {
        let done = query(
            "UPDATE certificates SET status = 'revoked', revoked_at = $2, revocation_reason = $3 \
             WHERE serial = $1 AND status = 'issued'",
        )
        .bind(serial.to_hex())
        .bind(at.0)
        .bind(i32::from(reason.code()))
        .execute(self.conn()?)
        .await?;
        if done.rows_affected() == 1 {
            query("UPDATE status_revision SET revision = revision + 1 WHERE id = 1")
                .execute(self.conn()?)
                .await?;
            crate::Transaction::publish(self, crate::Change::CertificateStatus);
        }
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn revoked_by(&mut self, authority: &str) -> Result<Vec<RevokedRecord>, Error> {
        let rows = query(
            "SELECT serial, revoked_at, revocation_reason FROM certificates \
             WHERE authority = $1 AND status = 'revoked' ORDER BY revoked_at, serial",
        )
        .bind(authority.to_owned())
        .fetch_all(self.conn()?)
        .await?;
        rows.iter().map(revoked_from_row).collect()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn insert_agreement(
        &mut self,
        number: &str,
        user_id: &UserId,
        certificate_serial: &Serial,
        text: &str,
        at: UnixTime,
    ) -> Result<(), Error> {
        query("INSERT INTO agreements (number, user_id, certificate_serial, text, accepted_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(number.to_owned())
            .bind(user_id.to_owned())
            .bind(certificate_serial.to_owned())
            .bind(text.to_owned())
            .bind(at.0)
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn insert_service_key(&mut self, name: &str, key_id: &KeyId) -> Result<(), Error> {
        query("INSERT INTO service_keys (name, key_id) VALUES ($1, $2)")
            .bind(name.to_owned())
            .bind(key_id.0.clone())
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn service_key(&mut self, name: &str) -> Result<Option<KeyId>, Error> {
        let row = query("SELECT key_id FROM service_keys WHERE name = $1")
            .bind(name.to_owned())
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| r.try_get::<String>(0).map(KeyId)).transpose()
    }
}

fn kind_column(row: &Row, index: usize) -> Result<CertificateKind, Error> {
    parse_column(row, index, "certificate kind")
}

fn status_column(row: &Row, index: usize) -> Result<CertificateStatus, Error> {
    parse_column(row, index, "certificate status")
}
