//! The audit log (DESIGN §7): each entry's hash covers the previous entry's hash and the
//! entry's own fields, so a changed, removed or reordered entry breaks the chain. The head row
//! serialises appends (PostgreSQL locks it with `FOR UPDATE`; SQLite holds the write lock).
//! An append reads the head (unless SQLite's writer knows it from the append before), then
//! writes the entry and moves the head, both only if the head is still the one read.
//!
//! A plain SHA-256 chain can be recomputed by anyone who can write the database (finding 9).
//! So the chain is keyed: once a store has an [`AuditKey`] (derived from the master key or an
//! HSM secret, never stored in the database), its first entry is a marker ([`KEYED_MARKER`])
//! and it and every entry after it carry an HMAC-SHA256 instead of a plain hash. Entries before
//! the marker (written by earlier releases) are verified as before. Checkpoints of the head,
//! MACed with the same key and kept outside the database ([`Checkpoint`]), pin the chain's
//! length and where its keyed part starts, so neither truncating the log nor rewriting the
//! keyed part as a plain chain (dropping the marker) goes unnoticed.

use std::future::Future;

use hmac::{Hmac, Mac as _};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use domain::UnixTime;

use crate::db::{query, On, Row};
use crate::{ended, Error, Inner, Tx};

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
        entry_hash(
            &self.prev_hash,
            self.seq,
            self.at,
            &self.actor,
            &self.event,
            &self.details,
        )
    }

    /// The MAC this entry must have in the keyed part of the chain.
    pub fn expected_mac(&self, key: &AuditKey) -> String {
        entry_mac(
            key,
            &self.prev_hash,
            self.seq,
            self.at,
            &self.actor,
            &self.event,
            &self.details,
        )
    }

    fn is_marker(&self) -> bool {
        self.event == KEYED_MARKER && self.actor == "system"
    }
}

/// The event of the first keyed entry.
pub const KEYED_MARKER: &str = "audit.keyed";

/// The key of the chain's MACs. Not in the database: derived from the master key or an HSM
/// secret at start ([`AuditKey::from_secret`]).
#[derive(Clone)]
pub struct AuditKey(Zeroizing<[u8; 32]>);

impl AuditKey {
    /// The purpose string the secret is derived for.
    pub const PURPOSE: &'static str = "eidportal audit chain v1";

    /// The key from a 32-byte secret.
    pub fn from_secret(secret: Zeroizing<[u8; 32]>) -> Self {
        Self(secret)
    }

    fn mac(&self) -> Hmac<Sha256> {
        // INVARIANT: HMAC takes keys of any length.
        <Hmac<Sha256> as hmac::Mac>::new_from_slice(self.0.as_ref())
            .unwrap_or_else(|_| unreachable!())
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey([redacted])")
    }
}

fn entry_mac(
    key: &AuditKey,
    prev: &str,
    seq: i64,
    at: UnixTime,
    actor: &str,
    event: &str,
    details: &str,
) -> String {
    let mut mac = key.mac();
    for field in [
        "eidportal audit entry v2",
        prev,
        &seq.to_string(),
        &at.0.to_string(),
        actor,
        event,
        details,
    ] {
        mac.update(&(field.len() as u64).to_be_bytes());
        mac.update(field.as_bytes());
    }
    hex::encode(mac.finalize().into_bytes())
}

/// A checkpoint of the chain's head, kept outside the database (a file in the data folder),
/// MACed with the audit key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// When it was taken.
    pub at: UnixTime,
    /// The head's sequence number.
    pub seq: i64,
    /// The head's hash.
    pub hash: String,
    /// The marker's sequence number: where the keyed part starts.
    pub keyed_from: i64,
    /// The MAC over the other fields.
    pub mac: String,
}

impl Checkpoint {
    fn expected_mac(&self, key: &AuditKey) -> String {
        let mut mac = key.mac();
        for field in [
            "eidportal audit checkpoint v1",
            &self.at.0.to_string(),
            &self.seq.to_string(),
            &self.hash,
            &self.keyed_from.to_string(),
        ] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        hex::encode(mac.finalize().into_bytes())
    }

    /// A checkpoint of `head` (`(seq, hash)`) whose keyed part starts at `keyed_from`.
    pub fn new(key: &AuditKey, at: UnixTime, head: &(i64, String), keyed_from: i64) -> Self {
        let mut checkpoint = Self {
            at,
            seq: head.0,
            hash: head.1.clone(),
            keyed_from,
            mac: String::new(),
        };
        checkpoint.mac = checkpoint.expected_mac(key);
        checkpoint
    }

    /// As JSON text, for the file.
    pub fn to_json(&self) -> String {
        serde_json::json!({ "at": self.at.0, "seq": self.seq, "hash": self.hash, "keyed_from": self.keyed_from, "mac": self.mac }).to_string()
    }

    /// Reads a checkpoint file's text; `None` if it is not one.
    pub fn from_json(text: &str) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        Some(Self {
            at: UnixTime(value.get("at")?.as_i64()?),
            seq: value.get("seq")?.as_i64()?,
            hash: value.get("hash")?.as_str()?.to_owned(),
            keyed_from: value.get("keyed_from")?.as_i64()?,
            mac: value.get("mac")?.as_str()?.to_owned(),
        })
    }
}

/// Checks a chain with its keyed part: the entries before the marker as [`verify_chain`]
/// does, the marker and every entry after it by their MAC under `key`, then every checkpoint:
/// its MAC, that the chain still holds its head (not truncated, not rewritten), and that the
/// keyed part starts where it said.
pub fn verify_keyed_chain(
    entries: &[AuditEntry],
    head: &(i64, String),
    key: &AuditKey,
    checkpoints: &[Checkpoint],
) -> Result<usize, ChainBreak> {
    let mut prev = GENESIS.to_owned();
    let mut expected_seq = 1;
    let mut keyed_from = None;
    for entry in entries {
        if entry.seq != expected_seq {
            return Err(ChainBreak {
                seq: entry.seq,
                what: format!("expected entry {expected_seq}"),
            });
        }
        if entry.prev_hash != prev {
            return Err(ChainBreak {
                seq: entry.seq,
                what: "does not link to the entry before".into(),
            });
        }
        if keyed_from.is_none() && entry.is_marker() && entry.hash == entry.expected_mac(key) {
            keyed_from = Some(entry.seq);
        } else if keyed_from.is_some() {
            if entry.hash != entry.expected_mac(key) {
                return Err(ChainBreak {
                    seq: entry.seq,
                    what: "its MAC does not match its content (changed without the audit key)"
                        .into(),
                });
            }
        } else if entry.hash != entry.expected_hash() {
            return Err(ChainBreak {
                seq: entry.seq,
                what: "its content does not match its hash".into(),
            });
        }
        prev = entry.hash.clone();
        expected_seq += 1;
    }
    if head.0 != expected_seq - 1 || head.1 != prev {
        return Err(ChainBreak {
            seq: expected_seq,
            what: "entries at the end are missing".into(),
        });
    }
    for checkpoint in checkpoints {
        if checkpoint.mac != checkpoint.expected_mac(key) {
            return Err(ChainBreak {
                seq: checkpoint.seq,
                what: format!(
                    "the checkpoint taken at {} is not ours (bad MAC)",
                    checkpoint.at.0
                ),
            });
        }
        let at_head = usize::try_from(checkpoint.seq - 1)
            .ok()
            .and_then(|i| entries.get(i));
        match at_head {
            None => {
                return Err(ChainBreak {
                    seq: checkpoint.seq,
                    what: format!("the log ends at entry {}, but a checkpoint of entry {} exists: entries were removed", expected_seq - 1, checkpoint.seq),
                })
            }
            Some(entry) if entry.hash != checkpoint.hash => {
                return Err(ChainBreak { seq: checkpoint.seq, what: "differs from its checkpoint: the log was rewritten".into() })
            }
            Some(_) => {}
        }
        if keyed_from != Some(checkpoint.keyed_from) {
            return Err(ChainBreak {
                seq: checkpoint.keyed_from,
                what: "the keyed part of the log does not start where its checkpoint says (rewritten as a plain chain)".into(),
            });
        }
    }
    if keyed_from.is_none() && !entries.is_empty() {
        return Err(ChainBreak {
            seq: expected_seq,
            what: "the log has no keyed part although an audit key is configured".into(),
        });
    }
    Ok(entries.len())
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
            return Err(ChainBreak {
                seq: entry.seq,
                what: format!("expected entry {expected_seq}"),
            });
        }
        if entry.prev_hash != prev {
            return Err(ChainBreak {
                seq: entry.seq,
                what: "does not link to the entry before".into(),
            });
        }
        if entry.hash != entry.expected_hash() {
            return Err(ChainBreak {
                seq: entry.seq,
                what: "its content does not match its hash".into(),
            });
        }
        prev = entry.hash.clone();
        expected_seq += 1;
    }
    if head.0 != expected_seq - 1 || head.1 != prev {
        return Err(ChainBreak {
            seq: expected_seq,
            what: "entries at the end are missing".into(),
        });
    }
    Ok(entries.len())
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn entry_hash(
    prev: &str,
    seq: i64,
    at: UnixTime,
    actor: &str,
    event: &str,
    details: &str,
) -> String {
    let mut hasher = Sha256::new();
    // Length-prefixed fields, so no two different entries hash the same input.
    for field in [
        prev,
        &seq.to_string(),
        &at.0.to_string(),
        actor,
        event,
        details,
    ] {
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
const INSERT_FOR_SQLITE: &str =
    "INSERT INTO audit_log (seq, at, actor, event, details, prev_hash, hash) \
     SELECT $1, $2, $3, $4, $5, $6, $7 FROM audit_head WHERE id = 1 AND seq = $1 - 1 AND hash = $6";
const MOVE_HEAD_FOR_SQLITE: &str =
    "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $1 - 1";
const WRITE_FOR_POSTGRES: &str = "WITH head AS (UPDATE audit_head SET seq = $1, hash = $7 WHERE id = 1 AND seq = $1 - 1 AND hash = $6 RETURNING id) \
     INSERT INTO audit_log (seq, at, actor, event, details, prev_hash, hash) SELECT $1, $2, $3, $4, $5, $6, $7 FROM head";

/// Appends an entry inside the caller's transaction. `known_head` is the head as this
/// connection last left it, if known (SQLite's writer keeps it between use cases, saving a
/// read); it is checked by the write itself, re-read if it was stale, and updated.
#[allow(clippy::too_many_arguments)] // one entry's fields
pub(crate) async fn append(
    mut on: On<'_>,
    known_head: &mut Option<(i64, String)>,
    key: Option<&AuditKey>,
    at: UnixTime,
    actor: &str,
    event: &str,
    details: &serde_json::Value,
) -> Result<(), Error> {
    let sqlite = matches!(on, On::Sqlite(..));
    let details = details.to_string();
    let mut known = known_head.take();
    loop {
        let from_memory = known.is_some();
        // 1. The head (taken and locked until commit, unless known).
        let (prev_seq, prev): (i64, String) = match known.take() {
            Some(head) => head,
            None => {
                let row = query(if sqlite {
                    HEAD_FOR_SQLITE
                } else {
                    HEAD_FOR_POSTGRES
                })
                .fetch_one(on.reborrow())
                .await?;
                (row.try_get(0)?, row.try_get(1)?)
            }
        };
        // 2. Chain the entry and move the head to it.
        let seq = prev_seq + 1;
        let hash = match key {
            Some(key) => entry_mac(key, &prev, seq, at, actor, event, &details),
            None => entry_hash(&prev, seq, at, actor, event, &details),
        };
        let insert = query(if sqlite {
            INSERT_FOR_SQLITE
        } else {
            WRITE_FOR_POSTGRES
        })
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
            return Err(Error::Corrupt(format!(
                "the audit append stored {stored} entries, not 1"
            )));
        }
        if sqlite {
            let moved = query(MOVE_HEAD_FOR_SQLITE)
                .bind(seq)
                .bind(hash.as_str())
                .execute(on.reborrow())
                .await?
                .rows_affected();
            if moved != 1 {
                return Err(Error::Corrupt("the audit head did not move".into()));
            }
        }
        *known_head = Some((seq, hash));
        return Ok(());
    }
}

/// The audit chain inside a use case's transaction: an entry is appended in the same
/// transaction as the change it records.
pub trait AuditLog {
    /// Appends an entry to the audit log, chained to the one before.
    fn audit(
        &mut self,
        at: UnixTime,
        actor: &str,
        event: &str,
        details: serde_json::Value,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

impl AuditLog for Tx {
    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn audit(
        &mut self,
        at: UnixTime,
        actor: &str,
        event: &str,
        details: serde_json::Value,
    ) -> Result<(), Error> {
        let Tx {
            inner,
            failed,
            audit_key,
            ..
        } = self;
        match inner {
            Inner::Postgres(transaction) => {
                append(
                    On::Postgres(transaction, Some(failed)),
                    &mut None,
                    audit_key.as_deref(),
                    at,
                    actor,
                    event,
                    &details,
                )
                .await
            }
            Inner::Sqlite(_, turn) => {
                append(
                    On::Sqlite(&mut turn.conn, Some(failed)),
                    &mut turn.audit_head,
                    audit_key.as_deref(),
                    at,
                    actor,
                    event,
                    &details,
                )
                .await
            }
            Inner::Ended => Err(ended()),
        }
    }
}
