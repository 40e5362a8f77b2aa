//! Remote signing: the CSC API's bearer tokens and the signature authorisations (the exact
//! hashes a user approved in ConsentID, and the hash of the SAD that spends them).

use std::future::Future;

use domain::records::{
    ApiTokenRecord, OAuthCodeRecord, SignAuthorizationRecord, SigningDocumentRecord,
    SigningJobRecord,
};
use domain::signing::AuthorizationStatus;
use domain::{DeviceId, UnixTime, UserId};

use crate::db::{query, Row};
use crate::{parse_column, Error, Store, Tx};

const AUTHORIZATION_COLUMNS: &str =
    "SELECT id, user_id, credential_id, txn_id, hash_algorithm, hashes, num_signatures, \
     status, sad_hash, sad_expires_at, device_id, created_at, used_at FROM sign_authorizations";

fn authorization_from_row(row: &Row) -> Result<SignAuthorizationRecord, Error> {
    Ok(SignAuthorizationRecord {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        credential_id: row.try_get(2)?,
        txn_id: row.try_get(3)?,
        hash_algorithm: row.try_get(4)?,
        hashes: row.try_get(5)?,
        num_signatures: row.try_get(6)?,
        status: parse_column(row, 7, "authorization status")?,
        sad_hash: row.try_get(8)?,
        sad_expires_at: row.try_get::<Option<i64>>(9)?.map(UnixTime),
        device_id: row.try_get(10)?,
        created_at: UnixTime(row.try_get(11)?),
        used_at: row.try_get::<Option<i64>>(12)?.map(UnixTime),
    })
}

const JOB_COLUMNS: &str = "SELECT id, user_id, authorization_id, level, status, hint, created_at, finished_at FROM signing_jobs";

fn job_from_row(row: &Row) -> Result<SigningJobRecord, Error> {
    Ok(SigningJobRecord {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        authorization_id: row.try_get(2)?,
        level: row.try_get(3)?,
        status: row.try_get(4)?,
        hint: row.try_get(5)?,
        created_at: UnixTime(row.try_get(6)?),
        finished_at: row.try_get::<Option<i64>>(7)?.map(UnixTime),
    })
}

fn document_from_row(row: &Row) -> Result<SigningDocumentRecord, Error> {
    Ok(SigningDocumentRecord {
        position: row.try_get(0)?,
        filename: row.try_get(1)?,
        prepared: row.try_get(2)?,
        signature: row.try_get(3)?,
        signed_pdf: row.try_get(4)?,
    })
}

const DOCUMENT_COLUMNS: &str =
    "SELECT position, filename, prepared, signature, signed_pdf FROM signing_documents";

/// API tokens, authorisations and signing jobs, read outside a transaction.
pub trait SigningQueries {
    /// A signing job.
    fn signing_job(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<SigningJobRecord>, Error>> + Send;

    /// The documents of a signing job, in order.
    fn signing_documents(
        &self,
        job_id: &str,
    ) -> impl Future<Output = Result<Vec<SigningDocumentRecord>, Error>> + Send;

    /// A bearer token by its hash.
    fn api_token(
        &self,
        token_hash: &str,
    ) -> impl Future<Output = Result<Option<ApiTokenRecord>, Error>> + Send;

    /// An authorisation by the hash of its SAD.
    fn sign_authorization_by_sad(
        &self,
        sad_hash: &str,
    ) -> impl Future<Output = Result<Option<SignAuthorizationRecord>, Error>> + Send;

    /// An authorisation by id.
    fn sign_authorization(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<SignAuthorizationRecord>, Error>> + Send;

    /// An authorisation request waiting for a login, still valid at `now`: its text, read and
    /// left in place (`SigningStore::take_oauth_pending` takes it).
    fn oauth_pending(
        &self,
        id_hash: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<String>, Error>> + Send;
}

impl SigningQueries for Store {
    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn oauth_pending(&self, id_hash: &str, now: UnixTime) -> Result<Option<String>, Error> {
        let row = query("SELECT query FROM oauth_pending WHERE id_hash = $1 AND expires_at > $2")
            .bind(id_hash.to_owned())
            .bind(now.0)
            .fetch_optional(self.db())
            .await?;
        row.map(|r| r.try_get(0)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn signing_job(&self, id: &str) -> Result<Option<SigningJobRecord>, Error> {
        let row = query(&format!("{JOB_COLUMNS} WHERE id = $1"))
            .bind(id.to_owned())
            .fetch_optional(self.db())
            .await?;
        row.map(|r| job_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn signing_documents(&self, job_id: &str) -> Result<Vec<SigningDocumentRecord>, Error> {
        let rows = query(&format!(
            "{DOCUMENT_COLUMNS} WHERE job_id = $1 ORDER BY position"
        ))
        .bind(job_id.to_owned())
        .fetch_all(self.db())
        .await?;
        rows.iter().map(document_from_row).collect()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn api_token(&self, token_hash: &str) -> Result<Option<ApiTokenRecord>, Error> {
        let row = query("SELECT token_hash, user_id, created_at, expires_at, revoked_at, client_id FROM api_tokens WHERE token_hash = $1")
            .bind(token_hash.to_owned())
            .fetch_optional(self.db())
            .await?;
        row.map(|r| {
            Ok(ApiTokenRecord {
                token_hash: r.try_get(0)?,
                user_id: r.try_get(1)?,
                created_at: UnixTime(r.try_get(2)?),
                expires_at: UnixTime(r.try_get(3)?),
                revoked_at: r.try_get::<Option<i64>>(4)?.map(UnixTime),
                client_id: r.try_get(5)?,
            })
        })
        .transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn sign_authorization_by_sad(
        &self,
        sad_hash: &str,
    ) -> Result<Option<SignAuthorizationRecord>, Error> {
        let row = query(&format!("{AUTHORIZATION_COLUMNS} WHERE sad_hash = $1"))
            .bind(sad_hash.to_owned())
            .fetch_optional(self.db())
            .await?;
        row.map(|r| authorization_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn sign_authorization(&self, id: &str) -> Result<Option<SignAuthorizationRecord>, Error> {
        let row = query(&format!("{AUTHORIZATION_COLUMNS} WHERE id = $1"))
            .bind(id.to_owned())
            .fetch_optional(self.db())
            .await?;
        row.map(|r| authorization_from_row(&r)).transpose()
    }
}

/// Remote signing inside a use case's transaction: API tokens, signing authorisations and
/// their SADs, PDF signing jobs and their documents, and OAuth authorisation codes.
pub trait SigningStore {
    /// Stores a bearer token.
    fn insert_api_token(
        &mut self,
        token: &ApiTokenRecord,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Revokes a bearer token; false if it was unknown or already revoked.
    fn revoke_api_token(
        &mut self,
        token_hash: &str,
        at: UnixTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Revokes every bearer token of an account still in force; returns how many.
    fn revoke_api_tokens_of_user(
        &mut self,
        user_id: &UserId,
        at: UnixTime,
    ) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Stores a new authorisation.
    fn insert_sign_authorization(
        &mut self,
        record: &SignAuthorizationRecord,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// An authorisation by id, inside the transaction.
    fn sign_authorization(
        &mut self,
        id: &str,
    ) -> impl Future<Output = Result<Option<SignAuthorizationRecord>, Error>> + Send;

    /// An authorisation by the hash of its SAD, inside the transaction.
    fn sign_authorization_by_sad(
        &mut self,
        sad_hash: &str,
    ) -> impl Future<Output = Result<Option<SignAuthorizationRecord>, Error>> + Send;

    /// Moves a pending authorisation on (compare-and-set on the status): to `authorized`
    /// with its SAD's hash, expiry and device, or to `refused`. False if it was not pending.
    fn settle_sign_authorization(
        &mut self,
        id: &str,
        to: AuthorizationStatus,
        sad: Option<(&str, UnixTime)>,
        device_id: Option<&DeviceId>,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Stores a new signing job with its documents.
    fn insert_signing_job(
        &mut self,
        job: &SigningJobRecord,
        documents: &[SigningDocumentRecord],
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The documents of a signing job, inside the transaction.
    fn signing_documents(
        &mut self,
        job_id: &str,
    ) -> impl Future<Output = Result<Vec<SigningDocumentRecord>, Error>> + Send;

    /// Moves a job from `from` to `to` (compare-and-set); false if it was not in `from`.
    fn move_signing_job(
        &mut self,
        id: &str,
        from: &str,
        to: &str,
        hint: &str,
        at: UnixTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Stores a document's signature value.
    fn store_document_signature(
        &mut self,
        job_id: &str,
        position: i64,
        signature: &[u8],
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Stores a document's finished PDF.
    fn store_signed_document(
        &mut self,
        job_id: &str,
        position: i64,
        pdf: &[u8],
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Stores an OAuth authorisation code's hash with what it was issued for.
    fn insert_oauth_code(
        &mut self,
        code: &OAuthCodeRecord,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Spends an OAuth authorisation code (compare-and-set on its use): what it was issued
    /// for, or `None` if it is unknown or was used before.
    fn use_oauth_code(
        &mut self,
        code_hash: &str,
        at: UnixTime,
    ) -> impl Future<Output = Result<Option<OAuthCodeRecord>, Error>> + Send;

    /// Stores an OAuth authorisation request waiting for a login, under its id's hash, until
    /// `expires_at`; deletes the expired ones (at `now`) first.
    fn insert_oauth_pending(
        &mut self,
        id_hash: &str,
        query: &str,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Takes a waiting OAuth authorisation request (deleted, compare-and-set): its query, or
    /// `None` if it is unknown, was taken before or has expired at `now`.
    fn take_oauth_pending(
        &mut self,
        id_hash: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<String>, Error>> + Send;

    /// Spends an authorised SAD (compare-and-set); false if it was spent meanwhile.
    fn spend_sign_authorization(
        &mut self,
        id: &str,
        at: UnixTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
}

impl SigningStore for Tx {
    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn insert_api_token(&mut self, token: &ApiTokenRecord) -> Result<(), Error> {
        query("INSERT INTO api_tokens (token_hash, user_id, created_at, expires_at, client_id) VALUES ($1, $2, $3, $4, $5)")
            .bind(token.token_hash.clone())
            .bind(token.user_id.clone())
            .bind(token.created_at.0)
            .bind(token.expires_at.0)
            .bind(token.client_id.clone())
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn revoke_api_token(&mut self, token_hash: &str, at: UnixTime) -> Result<bool, Error> {
        let done = query(
            "UPDATE api_tokens SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash.to_owned())
        .bind(at.0)
        .execute(self.conn()?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn revoke_api_tokens_of_user(
        &mut self,
        user_id: &UserId,
        at: UnixTime,
    ) -> Result<u64, Error> {
        let done = query(
            "UPDATE api_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user_id.to_owned())
        .bind(at.0)
        .execute(self.conn()?)
        .await?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn insert_sign_authorization(
        &mut self,
        record: &SignAuthorizationRecord,
    ) -> Result<(), Error> {
        query(
            "INSERT INTO sign_authorizations (id, user_id, credential_id, txn_id, hash_algorithm, hashes, num_signatures, \
             status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(record.id.clone())
        .bind(record.user_id.clone())
        .bind(record.credential_id)
        .bind(record.txn_id.clone())
        .bind(record.hash_algorithm.clone())
        .bind(record.hashes.clone())
        .bind(record.num_signatures)
        .bind(record.status.as_str())
        .bind(record.created_at.0)
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn sign_authorization(
        &mut self,
        id: &str,
    ) -> Result<Option<SignAuthorizationRecord>, Error> {
        let row = query(&format!("{AUTHORIZATION_COLUMNS} WHERE id = $1"))
            .bind(id.to_owned())
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| authorization_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn sign_authorization_by_sad(
        &mut self,
        sad_hash: &str,
    ) -> Result<Option<SignAuthorizationRecord>, Error> {
        let row = query(&format!("{AUTHORIZATION_COLUMNS} WHERE sad_hash = $1"))
            .bind(sad_hash.to_owned())
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| authorization_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn settle_sign_authorization(
        &mut self,
        id: &str,
        to: AuthorizationStatus,
        sad: Option<(&str, UnixTime)>,
        device_id: Option<&DeviceId>,
    ) -> Result<bool, Error> {
        let done = query(
            "UPDATE sign_authorizations SET status = $2, sad_hash = $3, sad_expires_at = $4, device_id = $5 \
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(id.to_owned())
        .bind(to.as_str())
        .bind(sad.map(|(hash, _)| hash.to_owned()))
        .bind(sad.map(|(_, expires)| expires.0))
        .bind(device_id.cloned())
        .execute(self.conn()?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn insert_signing_job(
        &mut self,
        job: &SigningJobRecord,
        documents: &[SigningDocumentRecord],
    ) -> Result<(), Error> {
        query(
            "INSERT INTO signing_jobs (id, user_id, authorization_id, level, status, hint, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(job.id.clone())
        .bind(job.user_id.clone())
        .bind(job.authorization_id.clone())
        .bind(job.level.clone())
        .bind(job.status.clone())
        .bind(job.hint.clone())
        .bind(job.created_at.0)
        .execute(self.conn()?)
        .await?;
        for document in documents {
            query("INSERT INTO signing_documents (job_id, position, filename, prepared) VALUES ($1, $2, $3, $4)")
                .bind(job.id.clone())
                .bind(document.position)
                .bind(document.filename.clone())
                .bind(document.prepared.clone())
                .execute(self.conn()?)
                .await?;
        }
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn signing_documents(
        &mut self,
        job_id: &str,
    ) -> Result<Vec<SigningDocumentRecord>, Error> {
        let rows = query(&format!(
            "{DOCUMENT_COLUMNS} WHERE job_id = $1 ORDER BY position"
        ))
        .bind(job_id.to_owned())
        .fetch_all(self.conn()?)
        .await?;
        rows.iter().map(document_from_row).collect()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn move_signing_job(
        &mut self,
        id: &str,
        from: &str,
        to: &str,
        hint: &str,
        at: UnixTime,
    ) -> Result<bool, Error> {
        let done = query("UPDATE signing_jobs SET status = $3, hint = $4, finished_at = $5 WHERE id = $1 AND status = $2")
            .bind(id.to_owned())
            .bind(from.to_owned())
            .bind(to.to_owned())
            .bind(hint.to_owned())
            .bind(at.0)
            .execute(self.conn()?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn store_document_signature(
        &mut self,
        job_id: &str,
        position: i64,
        signature: &[u8],
    ) -> Result<(), Error> {
        query("UPDATE signing_documents SET signature = $3 WHERE job_id = $1 AND position = $2")
            .bind(job_id.to_owned())
            .bind(position)
            .bind(signature.to_vec())
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn store_signed_document(
        &mut self,
        job_id: &str,
        position: i64,
        pdf: &[u8],
    ) -> Result<(), Error> {
        query("UPDATE signing_documents SET signed_pdf = $3 WHERE job_id = $1 AND position = $2")
            .bind(job_id.to_owned())
            .bind(position)
            .bind(pdf.to_vec())
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn insert_oauth_code(&mut self, code: &OAuthCodeRecord) -> Result<(), Error> {
        query(
            "INSERT INTO oauth_codes (code_hash, user_id, client_id, redirect_uri, code_challenge, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(code.code_hash.clone())
        .bind(code.user_id.clone())
        .bind(code.client_id.clone())
        .bind(code.redirect_uri.clone())
        .bind(code.code_challenge.clone())
        .bind(code.created_at.0)
        .bind(code.expires_at.0)
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn insert_oauth_pending(
        &mut self,
        id_hash: &str,
        query_text: &str,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> Result<(), Error> {
        query("DELETE FROM oauth_pending WHERE expires_at <= $1")
            .bind(now.0)
            .execute(self.conn()?)
            .await?;
        query("INSERT INTO oauth_pending (id_hash, query, expires_at) VALUES ($1, $2, $3)")
            .bind(id_hash.to_owned())
            .bind(query_text.to_owned())
            .bind(expires_at.0)
            .execute(self.conn()?)
            .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn take_oauth_pending(
        &mut self,
        id_hash: &str,
        now: UnixTime,
    ) -> Result<Option<String>, Error> {
        let row = query("SELECT query, expires_at FROM oauth_pending WHERE id_hash = $1")
            .bind(id_hash.to_owned())
            .fetch_optional(self.conn()?)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (query_text, expires_at): (String, i64) = (row.try_get(0)?, row.try_get(1)?);
        let deleted = query("DELETE FROM oauth_pending WHERE id_hash = $1")
            .bind(id_hash.to_owned())
            .execute(self.conn()?)
            .await?;
        if deleted.rows_affected() != 1 || now.0 >= expires_at {
            return Ok(None);
        }
        Ok(Some(query_text))
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn use_oauth_code(
        &mut self,
        code_hash: &str,
        at: UnixTime,
    ) -> Result<Option<OAuthCodeRecord>, Error> {
        let done =
            query("UPDATE oauth_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL")
                .bind(code_hash.to_owned())
                .bind(at.0)
                .execute(self.conn()?)
                .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let row = query(
            "SELECT code_hash, user_id, client_id, redirect_uri, code_challenge, created_at, expires_at FROM oauth_codes WHERE code_hash = $1",
        )
        .bind(code_hash.to_owned())
        .fetch_one(self.conn()?)
        .await?;
        Ok(Some(OAuthCodeRecord {
            code_hash: row.try_get(0)?,
            user_id: row.try_get(1)?,
            client_id: row.try_get(2)?,
            redirect_uri: row.try_get(3)?,
            code_challenge: row.try_get(4)?,
            created_at: UnixTime(row.try_get(5)?),
            expires_at: UnixTime(row.try_get(6)?),
        }))
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn spend_sign_authorization(&mut self, id: &str, at: UnixTime) -> Result<bool, Error> {
        let done = query("UPDATE sign_authorizations SET status = 'consumed', used_at = $2 WHERE id = $1 AND status = 'authorized'")
            .bind(id.to_owned())
            .bind(at.0)
            .execute(self.conn()?)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
