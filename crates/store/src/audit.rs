//! The audit log (DESIGN §7): each entry's hash covers the previous entry's hash and the
//! entry's own fields, so a changed, removed or reordered entry breaks the chain. The head row
//! serialises appends (PostgreSQL locks it with `FOR UPDATE`; SQLite holds the write lock).
//! An append is two round trips to the database: read the head, write the entry and the head.

use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use domain::UnixTime;

use crate::{DatabaseKind, Error};

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When.
    pub at: UnixTime,
    /// Who: `officer`, `system`, `user:<id>`, ...
    pub actor: String,
    /// What, e.g. `certificate.revoked`.
    pub event: String,
    /// Details as JSON text. Never secrets, never personal numbers in clear.
    pub details: String,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

impl AuditEntry {
    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, Error> {
        Ok(Self {
            seq: row.try_get(0)?,
            at: UnixTime(row.try_get(1)?),
            actor: row.try_get(2)?,
            event: row.try_get(3)?,
            details: row.try_get(4)?,
            prev_hash: row.try_get(5)?,
            hash: row.try_get(6)?,
        })
    }

    /// The hash this entry must have.
    pub fn expected_hash(&self) -> String {
        entry_hash(&self.prev_hash, self.seq, self.at, &self.actor, &self.event, &self.details)
    }
}

/// Where and how the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at entry {seq}: {what}")]
pub struct ChainBreak {
    /// The first entry that does not fit.
    pub seq: i64,
    /// What is wrong.
    pub what: String,
}

/// Checks a whole chain against its recorded head: consecutive sequence numbers, each
/// entry's hash, each link, and the head.
pub fn verify_chain(entries: &[AuditEntry], head: &(i64, String)) -> Result<usize, ChainBreak> {
    let mut prev = GENESIS.to_owned();
    let mut expected_seq = 1;
    for entry in entries {
        if entry.seq != expected_seq {
            return Err(ChainBreak { seq: entry.seq, what: format!("expected entry {expected_seq}") });
        }
        if entry.prev_hash != prev {
            return Err(ChainBreak { seq: entry.seq, what: "does not link to the entry before".into() });
        }
        if entry.hash != entry.expected_hash() {
            return Err(ChainBreak { seq: entry.seq, what: "its content does not match its hash".into() });
        }
        prev = entry.hash.clone();
        expected_seq += 1;
    }
    if head.0 != expected_seq - 1 || head.1 != prev {
        return Err(ChainBreak { seq: expected_seq, what: "entries at the end are missing".into() });
    }
    Ok(entries.len())
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn entry_hash(prev: &str, seq: i64, at: UnixTime, actor: &str, event: &str, details: &str) -> String {
    let mut hasher = Sha256::new();
    // Length-prefixed fields, so no two different entries hash the same input.
    for field in [prev, &seq.to_string(), &at.0.to_string(), actor, event, details] {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Takes the head and locks it until commit, so that appends are serial: SQLite already holds
/// the database's write lock (`BEGIN IMMEDIATE`), PostgreSQL locks the row.
const HEAD_FOR_SQLITE: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";
const HEAD_FOR_POSTGRES: &str = "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE";
/// Stores the entry and moves the head to it in one round trip: two statements in one string
/// for SQLite, which runs them in turn with the same numbered parameters; one statement with a
/// data-modifying `WITH` for PostgreSQL, whose prepared statements hold one command only.
const WRITE_FOR_SQLITE: &str = "INSERT INTO audit_log (seq, at, actor, event, details, prev_hash, hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7); UPDATE audit_head SET seq = $1, hash = $7 WHERE id = 1";
const WRITE_FOR_POSTGRES: &str = "WITH head AS (UPDATE audit_head SET seq = $1, hash = $7 WHERE id = 1 RETURNING id) \
     INSERT INTO audit_log (seq, at, actor, event, details, prev_hash, hash) SELECT $1, $2, $3, $4, $5, $6, $7 FROM head";

pub(crate) async fn append(
    tx: &mut Transaction<'static, Any>,
    kind: DatabaseKind,
    at: UnixTime,
    actor: &str,
    event: &str,
    details: &serde_json::Value,
) -> Result<(), Error> {
    let (head, write) = match kind {
        DatabaseKind::Sqlite => (HEAD_FOR_SQLITE, WRITE_FOR_SQLITE),
        DatabaseKind::Postgres => (HEAD_FOR_POSTGRES, WRITE_FOR_POSTGRES),
    };
    // 1. Take the head, locked until commit.
    let row = sqlx::query(head).fetch_one(&mut **tx).await?;
    let prev_seq: i64 = row.try_get(0)?;
    let prev: String = row.try_get(1)?;
    // 2. Chain the entry and move the head to it.
    let seq = prev_seq + 1;
    let details = details.to_string();
    let hash = entry_hash(&prev, seq, at, actor, event, &details);
    let written = sqlx::query(write)
        .bind(seq)
        .bind(at.0)
        .bind(actor.to_owned())
        .bind(event.to_owned())
        .bind(details)
        .bind(prev)
        .bind(hash)
        .execute(&mut **tx)
        .await?;
    // SQLite counts the entry and the head; PostgreSQL the entry, inserted only if the head
    // moved.
    let expected = match kind {
        DatabaseKind::Sqlite => 2,
        DatabaseKind::Postgres => 1,
    };
    if written.rows_affected() != expected {
        return Err(Error::Corrupt(format!("the audit append wrote {} rows, not {expected}", written.rows_affected())));
    }
    Ok(())
}
