//! Schema migrations: one SQL file per version (`migrations/NNNN_name.sql`), written once for
//! both databases; [`dialect`] patches the one type they name differently (`BLOB` is `BYTEA` on
//! PostgreSQL) and [`split_statements`] cuts a file into statements, one query each.
//!
//! [`run`] applies the pending versions at connect, in one use case's transaction, and records
//! each in `schema_migrations` in that same transaction. Two openers of one database never both
//! migrate: on SQLite the transaction is a turn on the writer, whose `BEGIN IMMEDIATE` holds the
//! file's write lock until the commit (so a second process waits, then finds the versions
//! applied); on PostgreSQL a transaction-level advisory lock does the same for two starting
//! servers.

use crate::db::query;
use crate::{DatabaseKind, Error, Store};

/// (version, SQL). The SQL is written once, portable but for binary columns: `BLOB` on SQLite
/// is `BYTEA` on PostgreSQL ([`dialect`]).
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_pki.sql")),
    (2, include_str!("migrations/0002_accounts.sql")),
    (3, include_str!("migrations/0003_agreements.sql")),
    (4, include_str!("migrations/0004_signing.sql")),
    (5, include_str!("migrations/0005_tsa.sql")),
    (6, include_str!("migrations/0006_signing_jobs.sql")),
    (7, include_str!("migrations/0007_oauth.sql")),
    (8, include_str!("migrations/0008_key_states.sql")),
    (9, include_str!("migrations/0009_nonce_expiry.sql")),
    (10, include_str!("migrations/0010_push_subscriptions.sql")),
    (11, include_str!("migrations/0011_mail_outbox.sql")),
    (12, include_str!("migrations/0012_qr_logins.sql")),
    (
        13,
        include_str!("migrations/0013_certificate_operations.sql"),
    ),
    (14, include_str!("migrations/0014_oauth_pending.sql")),
    (15, include_str!("migrations/0015_audit_keyed_marker.sql")),
    (16, include_str!("migrations/0016_oidc.sql")),
    (17, include_str!("migrations/0017_oidc_ciba_ping.sql")),
    (18, include_str!("migrations/0018_oidc_session_expiry.sql")),
    (19, include_str!("migrations/0019_session_login_txn.sql")),
];

/// A migration in the database's dialect.
fn dialect(sql: &str, kind: DatabaseKind) -> String {
    match kind {
        DatabaseKind::Sqlite => sql.to_owned(),
        DatabaseKind::Postgres => sql.replace(" BLOB", " BYTEA"),
    }
}

pub(crate) async fn run(store: &Store) -> Result<(), Error> {
    let mut tx = store.begin().await?;
    if store.kind() == DatabaseKind::Postgres {
        // A migration of a big database (a new index over millions of rows) may take longer
        // than the pool's statement timeout: it is never cut off half-way.
        query("SET LOCAL statement_timeout = 0")
            .execute(tx.conn()?)
            .await?;
        query("SELECT pg_advisory_xact_lock(7363728001)")
            .execute(tx.conn()?)
            .await?;
    }
    query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)")
        .execute(tx.conn()?)
        .await?;
    let row = query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        .fetch_one(tx.conn()?)
        .await?;
    let current: i64 = row.try_get(0)?;
    for (version, sql) in MIGRATIONS {
        if *version <= current {
            continue;
        }
        for statement in split_statements(&dialect(sql, store.kind())) {
            query(&statement).execute(tx.conn()?).await?;
        }
        query("INSERT INTO schema_migrations (version) VALUES ($1)")
            .bind(*version)
            .execute(tx.conn()?)
            .await?;
    }
    tx.commit().await
}

/// Splits a migration into statements at `;` line ends, dropping `--` comment lines.
fn split_statements(text: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") || trimmed.is_empty() {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if trimmed.ends_with(';') {
            statements.push(std::mem::take(&mut current));
        }
    }
    if !current.trim().is_empty() {
        statements.push(current);
    }
    statements
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]

    use super::*;
    use crate::test_support::databases;
    use crate::CertificateQueries as _;

    /// The words of `text`, upper-cased: what SQL would read as identifiers and type names.
    fn words(text: &str) -> Vec<String> {
        text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|word| !word.is_empty())
            .map(str::to_uppercase)
            .collect()
    }

    #[test]
    fn postgresql_gets_bytea_for_every_blob_and_sqlite_gets_the_text_as_written() {
        let sql = "CREATE TABLE t (\n    a BLOB NOT NULL,\n    b BLOB,\n    c TEXT\n);\n\
                   ALTER TABLE t ADD COLUMN d BLOB;";
        assert_eq!(
            dialect(sql, DatabaseKind::Postgres),
            "CREATE TABLE t (\n    a BYTEA NOT NULL,\n    b BYTEA,\n    c TEXT\n);\n\
             ALTER TABLE t ADD COLUMN d BYTEA;"
        );
        assert_eq!(dialect(sql, DatabaseKind::Sqlite), sql);
    }

    #[test]
    fn no_migration_names_a_blob_that_the_postgresql_patch_misses() {
        // The patch replaces ` BLOB`; a `blob` written otherwise (lower case, after a tab or a
        // parenthesis) would reach PostgreSQL, which has no such type.
        for (version, sql) in MIGRATIONS {
            let patched = split_statements(&dialect(sql, DatabaseKind::Postgres)).join("");
            assert!(
                !words(&patched).iter().any(|word| word == "BLOB"),
                "migration {version} keeps a BLOB on PostgreSQL: {patched}"
            );
            let blobs = words(&split_statements(sql).join(""))
                .iter()
                .filter(|word| *word == "BLOB")
                .count();
            let byteas = words(&patched)
                .iter()
                .filter(|word| *word == "BYTEA")
                .count();
            assert_eq!(blobs, byteas, "migration {version}");
        }
    }

    #[test]
    fn statements_are_cut_at_semicolons_that_end_a_line_and_comments_are_dropped() {
        let text = "-- a comment; not a statement\n\
                    CREATE TABLE a (\n    x BIGINT -- a note\n);\n\
                    \n\
                    \x20 -- an indented comment\n\
                    CREATE INDEX a_x ON a (x);\n\
                    INSERT INTO a (x) VALUES (1)";
        assert_eq!(
            split_statements(text),
            vec![
                "CREATE TABLE a (\n    x BIGINT -- a note\n);\n".to_owned(),
                "CREATE INDEX a_x ON a (x);\n".to_owned(),
                "INSERT INTO a (x) VALUES (1)\n".to_owned(),
            ]
        );
        assert!(split_statements("-- only a comment\n\n").is_empty());
    }

    #[test]
    fn every_migration_cuts_into_single_statements() {
        // Each piece is sent as one query, and neither driver takes two statements in one: a
        // `;` inside a line (`a; b;`, `a; -- note`) would join two.
        for (version, sql) in MIGRATIONS {
            let statements = split_statements(sql);
            assert!(!statements.is_empty(), "migration {version} is empty");
            for statement in statements {
                assert!(
                    statement.trim_end().ends_with(';') && statement.matches(';').count() == 1,
                    "migration {version}: not one statement: {statement}"
                );
            }
        }
    }

    #[test]
    fn versions_count_up_from_one_without_gaps() {
        for (index, (version, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version, i64::try_from(index).unwrap() + 1);
        }
    }

    /// The versions recorded as applied.
    async fn applied(store: &Store) -> Vec<i64> {
        query("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(store.db())
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get(0).unwrap())
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn openers_of_a_fresh_database_at_once_migrate_it_once_and_all_succeed() {
        const OPENERS: usize = 8;
        let dir = tempfile::tempdir().unwrap();
        let every: Vec<i64> = MIGRATIONS.iter().map(|(version, _)| *version).collect();
        for db in databases(dir.path()).await {
            let start = std::sync::Arc::new(tokio::sync::Barrier::new(OPENERS));
            let openers: Vec<_> = (0..OPENERS)
                .map(|_| {
                    let (start, url) = (start.clone(), db.url.clone());
                    tokio::spawn(async move {
                        start.wait().await;
                        Store::connect(&url).await
                    })
                })
                .collect();
            let mut stores = Vec::new();
            for (i, opener) in openers.into_iter().enumerate() {
                match opener.await.unwrap() {
                    Ok(store) => stores.push(store),
                    Err(error) => panic!("{}: opener {i} failed: {error}", db.name),
                }
            }
            // A version applied twice would have failed an opener (a second CREATE TABLE) or
            // left a second row; each opener sees the whole schema.
            for store in &stores {
                assert_eq!(applied(store).await, every, "{}", db.name);
                assert_eq!(store.status_revision().await.unwrap(), 0, "{}", db.name);
            }
            // Opening again applies nothing.
            let again = Store::connect(&db.url).await.unwrap();
            assert_eq!(applied(&again).await, every, "{}", db.name);
            again.close().await;
            for store in stores {
                store.close().await;
            }
        }
    }
}
