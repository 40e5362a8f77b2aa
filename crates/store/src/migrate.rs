//! Schema migrations, one SQL file per version and database. Applied in one transaction at
//! connect; on PostgreSQL an advisory lock keeps two starting servers from racing.

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
