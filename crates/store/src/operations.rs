//! Certificate operations approved in ConsentID (issue 22): an issue, a renewal, a revocation
//! or a revoke-everything waiting for the phone, and the evidence kept with an agreement once
//! the citizen approved it.

use std::future::Future;

use domain::cloud::{CertificateOperation, OperationStatus};
use domain::records::{AgreementApproval, CertificateOperationRecord};
use domain::{Serial, UnixTime};

use crate::db::{query, Row};
use crate::{DatabaseKind, Error, Store, Tx};

const OPERATION_COLUMNS: &str = "SELECT id, user_id, operation, txn_id, session_binding, \
     agreement_number, agreement_text, certificate_serial, status, hint, result_serial, \
     created_at, finished_at FROM certificate_operations";

fn operation_from_row(row: &Row) -> Result<CertificateOperationRecord, Error> {
    let operation: String = row.try_get(2)?;
    let status: String = row.try_get(8)?;
    let number: Option<String> = row.try_get(5)?;
    let text: Option<String> = row.try_get(6)?;
    Ok(CertificateOperationRecord {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        operation: CertificateOperation::parse(&operation)
            .ok_or_else(|| Error::Corrupt(format!("certificate operation: {operation}")))?,
        txn_id: row.try_get(3)?,
        session_binding: row.try_get(4)?,
        agreement: number.zip(text),
        certificate_serial: row.try_get(7)?,
        status: OperationStatus::parse(&status)
            .ok_or_else(|| Error::Corrupt(format!("operation status: {status}")))?,
        hint: row.try_get(9)?,
        result_serial: row.try_get(10)?,
        created_at: UnixTime(row.try_get(11)?),
        finished_at: row.try_get::<Option<i64>>(12)?.map(UnixTime),
    })
}

/// Certificate operations and agreements' evidence, read outside a transaction.
pub trait OperationQueries {
    /// A certificate operation by id.
    fn certificate_operation(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<CertificateOperationRecord>, Error>> + Send;

    /// The evidence kept with an agreement; `None` for an unknown number or one accepted
    /// before approvals were kept.
    fn agreement_approval(
        &self,
        number: &str,
    ) -> impl Future<Output = Result<Option<AgreementApproval>, Error>> + Send;
}

impl OperationQueries for Store {
    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn certificate_operation(
        &self,
        id: &str,
    ) -> Result<Option<CertificateOperationRecord>, Error> {
        let row = query(&format!("{OPERATION_COLUMNS} WHERE id = $1"))
            .bind(id.to_owned())
            .fetch_optional(self.db())
            .await?;
        row.map(|r| operation_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn agreement_approval(&self, number: &str) -> Result<Option<AgreementApproval>, Error> {
        let row = query(
            "SELECT approval_payload, approval, approval_signature, device_id FROM agreements \
             WHERE number = $1 AND approval IS NOT NULL",
        )
        .bind(number.to_owned())
        .fetch_optional(self.db())
        .await?;
        row.map(|row| {
            Ok(AgreementApproval {
                payload: row.try_get(0)?,
                approval: row.try_get(1)?,
                signature: row.try_get(2)?,
                device_id: row.try_get(3)?,
            })
        })
        .transpose()
    }
}

/// Certificate operations inside a use case's transaction.
pub trait OperationStore {
    /// Adds a pending operation.
    fn insert_certificate_operation(
        &mut self,
        operation: &CertificateOperationRecord,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// An operation, locked for this database transaction on PostgreSQL.
    fn certificate_operation_for_update(
        &mut self,
        id: &str,
    ) -> impl Future<Output = Result<Option<CertificateOperationRecord>, Error>> + Send;

    /// Moves a pending operation to `status` (compare-and-set: false if it was no longer
    /// pending), with the certificate it made, if any.
    fn finish_certificate_operation(
        &mut self,
        id: &str,
        status: OperationStatus,
        hint: &str,
        result_serial: Option<&Serial>,
        at: UnixTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Keeps the approval with an agreement stored in this transaction.
    fn keep_agreement_approval(
        &mut self,
        number: &str,
        approval: &AgreementApproval,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

impl OperationStore for Tx {
    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn insert_certificate_operation(
        &mut self,
        operation: &CertificateOperationRecord,
    ) -> Result<(), Error> {
        let (number, text) = operation.agreement.clone().unzip();
        query(
            "INSERT INTO certificate_operations (id, user_id, operation, txn_id, \
             session_binding, agreement_number, agreement_text, certificate_serial, status, hint, \
             result_serial, created_at, finished_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(operation.id.clone())
        .bind(&operation.user_id)
        .bind(operation.operation.as_str())
        .bind(&operation.txn_id)
        .bind(operation.session_binding.clone())
        .bind(number)
        .bind(text)
        .bind(operation.certificate_serial)
        .bind(operation.status.as_str())
        .bind(operation.hint.clone())
        .bind(operation.result_serial)
        .bind(operation.created_at.0)
        .bind(operation.finished_at.map(|at| at.0))
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn certificate_operation_for_update(
        &mut self,
        id: &str,
    ) -> Result<Option<CertificateOperationRecord>, Error> {
        let lock = if self.kind == DatabaseKind::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let row = query(&format!("{OPERATION_COLUMNS} WHERE id = $1{lock}"))
            .bind(id.to_owned())
            .fetch_optional(self.conn()?)
            .await?;
        row.map(|r| operation_from_row(&r)).transpose()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn finish_certificate_operation(
        &mut self,
        id: &str,
        status: OperationStatus,
        hint: &str,
        result_serial: Option<&Serial>,
        at: UnixTime,
    ) -> Result<bool, Error> {
        let done = query(
            "UPDATE certificate_operations SET status = $2, hint = $3, result_serial = $4, \
             finished_at = $5 WHERE id = $1 AND status = 'pending'",
        )
        .bind(id.to_owned())
        .bind(status.as_str())
        .bind(hint.to_owned())
        .bind(result_serial)
        .bind(at.0)
        .execute(self.conn()?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn keep_agreement_approval(
        &mut self,
        number: &str,
        approval: &AgreementApproval,
    ) -> Result<(), Error> {
        let done = query(
            "UPDATE agreements SET approval_payload = $2, approval = $3, approval_signature = $4, \
             device_id = $5 WHERE number = $1",
        )
        .bind(number.to_owned())
        .bind(&approval.payload)
        .bind(approval.approval.clone())
        .bind(&approval.signature)
        .bind(&approval.device_id)
        .execute(self.conn()?)
        .await?;
        if done.rows_affected() != 1 {
            return Err(Error::NotFound(format!("agreement {number}")));
        }
        Ok(())
    }
}
