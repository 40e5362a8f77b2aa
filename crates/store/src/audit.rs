//! The audit log (DESIGN §7): each entry's hash covers the previous entry's hash and the
//! entry's own fields, so a changed, removed or reordered entry breaks the chain. The head row
//! serialises appends (PostgreSQL locks it with `FOR UPDATE`; SQLite holds the write lock).
//! An append reads the head (unless SQLite's writer knows it from the append before), then
//! writes the entry and moves the head, both only if the head is still the one read.

use sha2::{Digest, Sha256};

use domain::UnixTime;

use crate::db::{query, On, Row};
use crate::Error;

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
    pub(crate) fn from_row(row: &Row) -> Result<Self, Error> {
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
/// The entry, stored only if the head is still the one it links to ($1 - 1, $6); then the head
/// moves to it. SQLite: two statements (they cost no round trip). PostgreSQL: one statement
/// with a data-modifying `WITH`.
const INSERT_FOR_SQLITE: &str = "INSERT INTO audit_log (seq, at, actor, event, details, prev_hash, hash) \
     SELECT $1, $2, $3, $4, $5, $6, $7 FROM audit_head WHERE id = 1 AND seq = $1 - 1 AND hash = $6";
const MOVE_HEAD_FOR_SQLITE: &str = "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $1 - 1";
const WRITE_FOR_POSTGRES: &str = "WITH head AS (UPDATE audit_head SET seq = $1, hash = $7 WHERE id = 1 AND seq = $1 - 1 AND hash = $6 RETURNING id) \
     INSERT INTO audit_log (seq, at, actor, event, details, prev_hash, hash) SELECT $1, $2, $3, $4, $5, $6, $7 FROM head";

/// Appends an entry inside the caller's transaction. `known_head` is the head as this
/// connection last left it, if known (SQLite's writer keeps it between use cases, saving a
/// read); it is checked by the write itself, re-read if it was stale, and updated.
pub(crate) async fn append(
    mut on: On<'_>,
    known_head: &mut Option<(i64, String)>,
    at: UnixTime,
    actor: &str,
    event: &str,
    details: &serde_json::Value,
) -> Result<(), Error> {
    let sqlite = matches!(on, On::Sqlite(_));
    let details = details.to_string();
    let mut known = known_head.take();
    loop {
        let from_memory = known.is_some();
        // 1. The head (taken and locked until commit, unless known).
        let (prev_seq, prev): (i64, String) = match known.take() {
            Some(head) => head,
            None => {
                let row = query(if sqlite { HEAD_FOR_SQLITE } else { HEAD_FOR_POSTGRES }).fetch_one(on.reborrow()).await?;
                (row.try_get(0)?, row.try_get(1)?)
            }
        };
        // 2. Chain the entry and move the head to it.
        let seq = prev_seq + 1;
        let hash = entry_hash(&prev, seq, at, actor, event, &details);
        let insert = query(if sqlite { INSERT_FOR_SQLITE } else { WRITE_FOR_POSTGRES })
            .bind(seq)
            .bind(at.0)
            .bind(actor)
            .bind(event)
            .bind(details.as_str())
            .bind(prev)
            .bind(hash.as_str());
        let stored = insert.execute(on.reborrow()).await?.rows_affected();
        if stored == 0 && from_memory {
            // Another process appended since: read the head.
            continue;
        }
        if stored != 1 {
            return Err(Error::Corrupt(format!("the audit append stored {stored} entries, not 1")));
        }
        if sqlite {
            let moved = query(MOVE_HEAD_FOR_SQLITE).bind(seq).bind(hash.as_str()).execute(on.reborrow()).await?.rows_affected();
            if moved != 1 {
                return Err(Error::Corrupt("the audit head did not move".into()));
            }
        }
        *known_head = Some((seq, hash));
        return Ok(());
    }
}
