//! Opening a SQLite connection with the store's settings: shared by the readers (`db`) and
//! the one writer (`writer`).

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::OpenFlags;

use crate::Error;

/// SQLite checkpoints the WAL in a commit only past this many pages (64 MiB; its default is
/// 1,000): the writer checkpoints long before (`writer`), this is the safety net.
const AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// Opens (creating if needed) the SQLite file: WAL for concurrent readers; `synchronous = FULL`
/// so a committed use case survives a power cut, not only a crash; waits up to 10 s for
/// another process's writer instead of failing.
pub(crate) fn open_sqlite(path: &PathBuf) -> Result<rusqlite::Connection, Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
    conn.query_row(
        &format!("PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}"),
        [],
        |_| Ok(()),
    )?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(conn)
}
