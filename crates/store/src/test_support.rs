//! Databases for tests: every store test runs on SQLite and on PostgreSQL (STYLE.md, Tests).
//! PostgreSQL comes from `EIDPORTAL_TEST_POSTGRES_URL` (set by `scripts/test`); each call makes a
//! fresh database in that server, named with `EIDPORTAL_TEST_POSTGRES_PREFIX` (scripts/test
//! gives each run its own and drops the run's databases when it ends; default
//! `eidportal_test_`). Without the variable the PostgreSQL case is skipped with a
//! message, unless `EIDPORTAL_TEST_REQUIRE_ALL` is set, when it fails.

use std::path::Path;

use sqlx::{Connection, Executor};

/// A database URL for a test, with a name for messages.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    /// `sqlite` or `postgres`.
    pub name: &'static str,
    /// The URL to give to [`crate::Store::connect`].
    pub url: String,
}

/// The SQLite database in `dir`, and a fresh PostgreSQL database when one is configured.
pub async fn databases(dir: &Path) -> Vec<TestDatabase> {
    let mut out = vec![TestDatabase {
        name: "sqlite",
        url: format!("sqlite:{}", dir.join("test.db").display()),
    }];
    if let Some(url) = fresh_postgres().await {
        out.push(TestDatabase {
            name: "postgres",
            url,
        });
    }
    out
}

/// A new, empty PostgreSQL database, or `None` when none is configured (and not required).
///
/// # Panics
/// When PostgreSQL is required but missing or failing: this is test support.
#[allow(clippy::panic, clippy::expect_used)]
pub async fn fresh_postgres() -> Option<String> {
    let Ok(base) = std::env::var("EIDPORTAL_TEST_POSTGRES_URL") else {
        if std::env::var_os("EIDPORTAL_TEST_REQUIRE_ALL").is_some() {
            panic!("EIDPORTAL_TEST_POSTGRES_URL is not set but EIDPORTAL_TEST_REQUIRE_ALL is: run scripts/test");
        }
        eprintln!("note: PostgreSQL case skipped (EIDPORTAL_TEST_POSTGRES_URL is not set; scripts/test sets it)");
        return None;
    };
    let mut random = [0u8; 8];
    getrandom(&mut random);
    // scripts/test names its run's databases with a prefix of its own, and drops them at exit.
    let prefix = std::env::var("EIDPORTAL_TEST_POSTGRES_PREFIX")
        .ok()
        .filter(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
        .unwrap_or_else(|| "eidportal_test_".into());
    let name = format!("{prefix}{}", hex::encode(random));
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .expect("connect to EIDPORTAL_TEST_POSTGRES_URL");
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("CREATE DATABASE");
    let (prefix, _) = base
        .rsplit_once('/')
        .expect("a postgres URL with a database name");
    let query = base
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    Some(format!("{prefix}/{name}{query}"))
}

fn getrandom(out: &mut [u8]) {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    for chunk in out.chunks_mut(8) {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(std::process::id().into());
        let bytes = hasher.finish().to_be_bytes();
        for (slot, byte) in chunk.iter_mut().zip(bytes) {
            *slot = byte;
        }
    }
}
