//! SQLite's single writer, shared by the use cases of one process with group commit.
//!
//! SQLite lets one connection write at a time, and with `synchronous = FULL` every commit
//! waits for the disk (an fsync). Use cases therefore take turns on one writer connection, in
//! arrival order, and consecutive use cases share one database transaction and one fsync:
//!
//! - The first of a group opens the transaction (`BEGIN IMMEDIATE`). Each use case then runs
//!   inside its own savepoint, so a use case that fails or is dropped rolls back alone
//!   (`ROLLBACK TO`), and one that commits releases its savepoint (`RELEASE`).
//! - A use case that has released its savepoint hands the writer on if another is waiting for
//!   it and the group is still small and young; otherwise it commits the group (`COMMIT`).
//! - A use case's [`Tx::commit`](crate::Tx::commit) returns only once its group is committed:
//!   what it returns is what happened on disk. If the group's commit fails, every use case of
//!   the group gets the error.
//! - A use case waiting for its group's commit that hears nothing for a while (the one it
//!   handed on to was cancelled, say) takes a turn itself and commits the group.
//!
//! - The WAL is copied back into the database file (a checkpoint) mostly by a thread of its
//!   own, not inside whichever commit crosses SQLite's threshold: a checkpoint writes and
//!   syncs the database file, which would hold the writer, and every use case waiting for it,
//!   for milliseconds. Every [`CHECKPOINT_EVERY`] commits the thread copies what is committed
//!   (`PASSIVE`: it waits for nobody); the first commit after it copies the few pages
//!   committed meanwhile on the writer's connection, so that the WAL is whole in the database
//!   file and the next transaction writes the WAL from its start again. (A checkpoint from
//!   another connection alone never catches up with a writer that keeps committing.) SQLite's
//!   own checkpoint stays as a safety net at a higher threshold (`sqlite`).
//!
//! Statements run on the calling thread (rusqlite, see `db`), so a turn lasts as long as
//! SQLite's own work and whatever the use case awaits in between. Statements on the writer
//! connection see the group's earlier use cases; other connections (the readers, other
//! processes) see a group only once it is committed. A task must not begin a second
//! transaction while it holds one: it would wait for itself.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Notify, OwnedMutexGuard};

use crate::sqlite::open_sqlite;
use crate::Error;

/// A group is committed when it has this many use cases...
const MAX_GROUP: usize = 16;
/// ... or is this old (its first use case waits at most about this long for the others).
#[cfg(not(test))]
const MAX_GROUP_AGE: Duration = Duration::from_millis(3);
/// In this crate's own tests the tests form the groups, not the clock: a group stays open for
/// as long as another use case is queued for the writer, however slow the machine.
#[cfg(test)]
const MAX_GROUP_AGE: Duration = Duration::from_secs(60);
/// A use case that has waited this long for its group's commit commits it itself.
const RESCUE_AFTER: Duration = Duration::from_millis(20);
/// Failed groups remembered for the use cases still waiting to hear of them.
const FAILURES_KEPT: usize = 1024;
/// Commits between two checkpoints.
pub(crate) const CHECKPOINT_EVERY: usize = 64;

/// The writer: its connection and group, behind the turn lock, and the groups' outcomes.
pub(crate) struct Writer {
    path: PathBuf,
    turn: Arc<Mutex<Group>>,
    /// Tasks waiting for a turn (a hint: a wrong count costs time, never correctness).
    waiting: AtomicUsize,
    outcomes: std::sync::Mutex<Outcomes>,
    finished: Notify,
    checkpoint: Arc<Checkpointing>,
}

/// The checkpoint's progress, shared with its thread.
#[derive(Debug, Default)]
struct Checkpointing {
    /// Commits since the last checkpoint began.
    commits: AtomicUsize,
    /// The thread is copying.
    running: AtomicBool,
    /// The thread has copied; the writer's connection copies the rest after its next commit.
    copied: AtomicBool,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("path", &self.path)
            .field("waiting", &self.waiting.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// What the turn lock guards.
#[derive(Default)]
struct Group {
    /// The writer connection (it may be inside a transaction).
    conn: Option<rusqlite::Connection>,
    /// The open group's number and when it began.
    open: Option<(u64, Instant)>,
    /// Use cases released into the open group.
    members: usize,
    next: u64,
    /// The audit log's head as the writer connection sees it, when known.
    audit_head: Option<(i64, String)>,
}

/// How the groups ended: groups end in the order they began.
#[derive(Default)]
struct Outcomes {
    /// The last group that ended.
    ended: u64,
    failed: VecDeque<(u64, String)>,
}

/// One turn on the writer: the lock, the connection, and the group it belongs to.
pub(crate) struct Turn {
    guard: OwnedMutexGuard<Group>,
    pub(crate) conn: rusqlite::Connection,
    group: u64,
    /// The audit head, as this turn's statements leave it.
    pub(crate) audit_head: Option<(i64, String)>,
}

/// Counts a task waiting for a turn until it gets one or is cancelled.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Writer {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            turn: Arc::new(Mutex::new(Group {
                next: 1,
                ..Group::default()
            })),
            waiting: AtomicUsize::new(0),
            outcomes: std::sync::Mutex::new(Outcomes::default()),
            finished: Notify::new(),
            checkpoint: Arc::new(Checkpointing::default()),
        }
    }

    /// After a commit, on the writer's connection (its turn still held): the rest of a
    /// checkpoint the thread has done, or, every [`CHECKPOINT_EVERY`] commits, a new one on
    /// the thread. A failed checkpoint is logged, and the next one tries again: the WAL keeps
    /// everything meanwhile.
    fn after_commit(&self, conn: &rusqlite::Connection) {
        let state = &self.checkpoint;
        if state.copied.swap(false, Ordering::AcqRel) {
            if let Err(error) = off_the_runtime(|| passive_checkpoint(conn)) {
                tracing::warn!(%error, "the WAL checkpoint failed; the next one tries again");
            }
            return;
        }
        if state.commits.fetch_add(1, Ordering::Relaxed) + 1 < CHECKPOINT_EVERY
            || state.running.swap(true, Ordering::AcqRel)
        {
            return;
        }
        state.commits.store(0, Ordering::Relaxed);
        let (path, state) = (self.path.clone(), Arc::clone(&self.checkpoint));
        let spawned = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                match open_sqlite(&path).and_then(|conn| Ok(passive_checkpoint(&conn)?)) {
                    Ok(()) => state.copied.store(true, Ordering::Release),
                    Err(error) => {
                        tracing::warn!(%error, "the WAL checkpoint failed; the next one tries again");
                    }
                }
                state.running.store(false, Ordering::Release);
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "no thread for the WAL checkpoint");
            self.checkpoint.running.store(false, Ordering::Release);
        }
    }

    /// Waits for a turn, in arrival order, and joins the open group or opens one.
    pub(crate) async fn enter(&self) -> Result<Turn, Error> {
        let waiting = Waiting::new(&self.waiting);
        let mut guard = self.turn.clone().lock_owned().await;
        drop(waiting);
        let conn = match guard.conn.take() {
            Some(conn) => conn,
            None => {
                // A lost connection took its open transaction with it.
                if let Some((group, _)) = guard.open.take() {
                    self.end(group, Err("the writer connection was lost".into()));
                }
                guard.audit_head = None;
                open_sqlite(&self.path)?
            }
        };
        if guard.open.is_none() {
            if let Err(error) = conn.execute_batch("BEGIN IMMEDIATE") {
                guard.conn = Some(conn);
                return Err(error.into());
            }
            let group = guard.next;
            guard.next += 1;
            guard.open = Some((group, Instant::now()));
            guard.members = 0;
        }
        let group = guard.open.map_or(0, |(group, _)| group);
        let audit_head = guard.audit_head.clone();
        Ok(Turn {
            guard,
            conn,
            group,
            audit_head,
        })
    }

    /// Ends a turn whose work is done (released): hands the writer on to a waiting use case,
    /// or commits the group; returns once the group is committed.
    pub(crate) async fn leave(&self, mut turn: Turn) -> Result<(), Error> {
        turn.guard.members += 1;
        turn.guard.audit_head = turn.audit_head.take();
        let group = turn.group;
        let young = turn
            .guard
            .open
            .is_some_and(|(_, began)| began.elapsed() < MAX_GROUP_AGE);
        if self.waiting.load(Ordering::SeqCst) == 0 || turn.guard.members >= MAX_GROUP || !young {
            return self.commit(turn);
        }
        let Turn {
            mut guard, conn, ..
        } = turn;
        guard.conn = Some(conn);
        drop(guard);
        self.wait_for(group).await
    }

    /// Ends a turn whose work was rolled back to its savepoint (or never began one). The
    /// group's other use cases still commit.
    pub(crate) fn leave_unchanged(&self, turn: Turn) {
        if self.waiting.load(Ordering::SeqCst) == 0 {
            // Nobody to hand on to: commit what the group has (nothing, perhaps), so that the
            // database's write lock is not held while the writer is idle. A failure reaches
            // the group's use cases.
            let _ = self.commit(turn);
            return;
        }
        let Turn {
            mut guard, conn, ..
        } = turn;
        guard.conn = Some(conn);
    }

    /// Rolls a turn's work back to its savepoint and ends the turn.
    pub(crate) fn roll_back(&self, turn: Turn) {
        match turn.conn.execute_batch("ROLLBACK TO tx; RELEASE tx") {
            Ok(()) => self.leave_unchanged(turn),
            Err(error) => self.abandon(turn, &error.to_string()),
        }
    }

    /// Gives up a turn after an error that may have broken the transaction: the connection
    /// is closed (rolling back the whole group) and the group fails.
    pub(crate) fn abandon(&self, turn: Turn, why: &str) {
        let Turn {
            mut guard,
            conn,
            group,
            ..
        } = turn;
        drop(conn);
        guard.open = None;
        guard.audit_head = None;
        drop(guard);
        self.end(group, Err(why.to_owned()));
    }

    /// Commits the turn's group and says so to its use cases.
    fn commit(&self, turn: Turn) -> Result<(), Error> {
        let Turn {
            mut guard,
            conn,
            group,
            ..
        } = turn;
        guard.open = None;
        match off_the_runtime(|| conn.execute_batch("COMMIT")) {
            Ok(()) => {
                // The group's members hear of their commit first; the next turn waits.
                self.end(group, Ok(()));
                self.after_commit(&conn);
                guard.conn = Some(conn);
                drop(guard);
                Ok(())
            }
            Err(error) => {
                // Closing the connection rolls back whatever is left.
                drop(conn);
                guard.audit_head = None;
                drop(guard);
                let why = error.to_string();
                self.end(group, Err(why.clone()));
                Err(Error::GroupCommit(why))
            }
        }
    }

    fn end(&self, group: u64, outcome: Result<(), String>) {
        if let Ok(mut outcomes) = self.outcomes.lock() {
            outcomes.ended = outcomes.ended.max(group);
            if let Err(why) = outcome {
                outcomes.failed.push_back((group, why));
                if outcomes.failed.len() > FAILURES_KEPT {
                    outcomes.failed.pop_front();
                }
            }
        }
        self.finished.notify_waiters();
    }

    fn outcome(&self, group: u64) -> Option<Result<(), Error>> {
        let outcomes = self.outcomes.lock().ok()?;
        if outcomes.ended < group {
            return None;
        }
        Some(match outcomes.failed.iter().find(|(g, _)| *g == group) {
            Some((_, why)) => Err(Error::GroupCommit(why.clone())),
            None => Ok(()),
        })
    }

    /// Waits until `group` has ended; commits it if nobody else does.
    async fn wait_for(&self, group: u64) -> Result<(), Error> {
        loop {
            let finished = self.finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            if let Some(outcome) = self.outcome(group) {
                return outcome;
            }
            if tokio::time::timeout(RESCUE_AFTER, finished).await.is_err() {
                let mut guard = self.turn.clone().lock_owned().await;
                if guard.open.is_some_and(|(open, _)| open == group) {
                    match guard.conn.take() {
                        Some(conn) => {
                            let turn = Turn {
                                guard,
                                conn,
                                group,
                                audit_head: None,
                            };
                            // The outcome is read at the top of the loop, like everybody's.
                            let _ = self.commit(turn);
                        }
                        None => {
                            guard.open = None;
                            drop(guard);
                            self.end(group, Err("the writer connection was lost".into()));
                        }
                    }
                }
            }
        }
    }

    /// Closes the writer connection. No group stays open between use cases for long, and
    /// every use case waits for its commit, so nothing is left to commit.
    pub(crate) async fn close(&self) {
        let mut guard = self.turn.lock().await;
        guard.conn = None;
        if let Some((group, _)) = guard.open.take() {
            drop(guard);
            self.end(group, Err("the store was closed".into()));
        }
    }
}

/// Copies the WAL's committed pages that no reader needs into the database file, without
/// waiting for anybody (`PRAGMA wal_checkpoint(PASSIVE)`).
fn passive_checkpoint(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}

/// Runs `work`, which waits for the disk (a commit's fsync), without holding up the other tasks
/// of this runtime thread: on a multi-threaded runtime they move to another thread meanwhile.
fn off_the_runtime<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

#[cfg(test)]
mod tests {
    //! Groups of use cases on either database. On SQLite the tests form the group themselves:
    //! the first member holds the writer until the others are queued for it, so all of them
    //! share its transaction. On PostgreSQL the same members run side by side, each in its own
    //! transaction (a group of one). Everything is read back through another connection.
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]

    use std::time::Duration;

    use domain::UnixTime;
    use tokio::sync::oneshot;

    use crate::db::{query, Db};
    use crate::test_support::{databases, TestDatabase};
    use crate::{
        verify_chain, AuditLog as _, AuditQueries as _, DatabaseKind, Error, Inner, Store, Tx,
    };

    /// What a member of a group does after its first write.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Part {
        /// Commits.
        Commits,
        /// Runs a statement that fails (a duplicate key), and is dropped, as a use case that
        /// returns the error with `?` is.
        FailsAStatement,
        /// Breaks a deferred foreign key, which only its transaction's COMMIT checks, and
        /// commits.
        BreaksADeferredKey,
        /// Runs a statement whose error ends the whole database transaction (on SQLite a
        /// trigger's `RAISE(ROLLBACK)`, as a full disk or an I/O error does; on PostgreSQL any
        /// error), tries one more write anyway, and is dropped.
        EndsItsTransaction,
    }

    /// What became of a member.
    #[derive(Debug)]
    struct Member {
        /// Its group on SQLite.
        group: Option<u64>,
        /// What its commit (or its failing statement) returned.
        outcome: Result<(), Error>,
    }

    const SCHEMA: &[&str] = &[
        "CREATE TABLE member_rows (id BIGINT PRIMARY KEY, member BIGINT NOT NULL)",
        "CREATE TABLE parents (id BIGINT PRIMARY KEY)",
        "CREATE TABLE children (id BIGINT PRIMARY KEY, \
         parent BIGINT NOT NULL REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED)",
    ];

    fn group_of(tx: &Tx) -> Option<u64> {
        match &tx.inner {
            Inner::Sqlite(_, turn) => Some(turn.group),
            _ => None,
        }
    }

    /// Waits (a few seconds at most) until `count` tasks are queued for SQLite's writer.
    async fn queued_for_the_writer(store: &Store, count: usize) {
        let Db::Sqlite(_, writer) = &*store.db else {
            return;
        };
        let queued = async {
            while writer.waiting.load(std::sync::atomic::Ordering::SeqCst) < count {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), queued)
            .await
            .expect("members queued for the writer");
    }

    async fn member(
        store: Store,
        i: i64,
        part: Part,
        begun: oneshot::Sender<()>,
        go: oneshot::Receiver<()>,
    ) -> Member {
        let mut tx = store.begin().await.unwrap();
        let group = group_of(&tx);
        let _ = begun.send(());
        query("INSERT INTO member_rows (id, member) VALUES ($1, $1)")
            .bind(i)
            .execute(tx.conn().unwrap())
            .await
            .unwrap();
        tx.audit(
            UnixTime(1000),
            "test",
            "group.member",
            serde_json::json!({ "i": i }),
        )
        .await
        .unwrap();
        go.await.unwrap();
        match part {
            Part::Commits => {}
            Part::FailsAStatement => {
                let outcome = query("INSERT INTO member_rows (id, member) VALUES ($1, $1)")
                    .bind(i)
                    .execute(tx.conn().unwrap())
                    .await
                    .map(|_| ());
                assert!(outcome.is_err(), "a duplicate key was accepted");
                drop(tx);
                return Member { group, outcome };
            }
            Part::EndsItsTransaction => {
                let outcome = query("INSERT INTO member_rows (id, member) VALUES ($1, 999)")
                    .bind(i)
                    .execute(tx.conn().unwrap())
                    .await
                    .map(|_| ());
                assert!(outcome.is_err(), "the statement did not fail");
                if let Ok(on) = tx.conn() {
                    let _ = query("INSERT INTO member_rows (id, member) VALUES ($1, $1)")
                        .bind(i + 50)
                        .execute(on)
                        .await;
                }
                drop(tx);
                return Member { group, outcome };
            }
            Part::BreaksADeferredKey => {
                query("INSERT INTO children (id, parent) VALUES ($1, $2)")
                    .bind(i)
                    .bind(i + 1000)
                    .execute(tx.conn().unwrap())
                    .await
                    .unwrap();
            }
        }
        Member {
            group,
            outcome: tx.commit().await,
        }
    }

    /// Runs `parts` as one group on a store of `db` whose schema has the test's tables; then
    /// what each member got, and which members' rows another connection finds.
    async fn run_group(
        db: &TestDatabase,
        store: &Store,
        parts: &[Part],
    ) -> (Vec<Member>, Vec<i64>) {
        let mut members = Vec::new();
        let mut gos = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let (begun, has_begun) = oneshot::channel();
            let (go, gone) = oneshot::channel();
            let i = i64::try_from(i).unwrap();
            members.push(tokio::spawn(member(store.clone(), i, *part, begun, gone)));
            gos.push(go);
            // The first member holds its transaction before the next is started; on SQLite
            // each later one is queued for the writer, behind the ones before it.
            if i == 0 || store.kind() == DatabaseKind::Postgres {
                has_begun.await.unwrap();
            } else {
                queued_for_the_writer(store, usize::try_from(i).unwrap()).await;
            }
        }
        for go in gos {
            go.send(()).unwrap();
        }
        let mut outcomes = Vec::new();
        for member in members {
            outcomes.push(member.await.unwrap());
        }
        let fresh = Store::connect(&db.url).await.unwrap();
        let stored = query("SELECT member FROM member_rows ORDER BY member")
            .fetch_all(fresh.db())
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get(0).unwrap())
            .collect();
        fresh.close().await;
        (outcomes, stored)
    }

    /// A store on a fresh database, with the test's tables.
    async fn store_with_tables(db: &TestDatabase) -> Store {
        let store = Store::connect(&db.url).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        for statement in SCHEMA {
            query(statement).execute(tx.conn().unwrap()).await.unwrap();
        }
        tx.commit().await.unwrap();
        store
    }

    /// The audit chain is whole, as another connection reads it; its length.
    async fn chain_length(db: &TestDatabase) -> usize {
        let fresh = Store::connect(&db.url).await.unwrap();
        let length = verify_chain(
            &fresh.audit_entries().await.unwrap(),
            &fresh.audit_head().await.unwrap(),
        )
        .unwrap();
        fresh.close().await;
        length
    }

    /// After a group, the store still works: one more use case commits and is stored.
    async fn one_more_commits(db: &TestDatabase, store: &Store, i: i64) {
        let mut tx = store.begin().await.unwrap();
        query("INSERT INTO member_rows (id, member) VALUES ($1, $1)")
            .bind(i)
            .execute(tx.conn().unwrap())
            .await
            .unwrap();
        tx.audit(
            UnixTime(2000),
            "test",
            "group.after",
            serde_json::json!({ "i": i }),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let fresh = Store::connect(&db.url).await.unwrap();
        let row = query("SELECT COUNT(*) FROM member_rows WHERE id = $1")
            .bind(i)
            .fetch_one(fresh.db())
            .await
            .unwrap();
        assert_eq!(row.try_get::<i64>(0).unwrap(), 1, "{}", db.name);
        fresh.close().await;
    }

    fn assert_one_group(db: &TestDatabase, members: &[Member]) {
        if db.name != "sqlite" {
            return;
        }
        let first = members[0].group;
        assert!(first.is_some());
        for member in members {
            assert_eq!(
                member.group, first,
                "sqlite: the members did not share a group"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_member_whose_statement_fails_rolls_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        for db in databases(dir.path()).await {
            let store = store_with_tables(&db).await;
            let mut chain = chain_length(&db).await;
            // The failing member first (it hands the writer on), in the middle, and last (it
            // commits the group for the others).
            for failing in 0..3_i64 {
                query("DELETE FROM member_rows")
                    .execute(store.db())
                    .await
                    .unwrap();
                let parts: Vec<Part> = (0..3)
                    .map(|i| {
                        if i == failing {
                            Part::FailsAStatement
                        } else {
                            Part::Commits
                        }
                    })
                    .collect();
                let (members, stored) = run_group(&db, &store, &parts).await;
                assert_one_group(&db, &members);
                for (i, member) in members.iter().enumerate() {
                    assert_eq!(
                        member.outcome.is_ok(),
                        i64::try_from(i).unwrap() != failing,
                        "{}: member {i} of {parts:?}: {:?}",
                        db.name,
                        member.outcome
                    );
                }
                let expected: Vec<i64> = (0..3).filter(|i| *i != failing).collect();
                assert_eq!(stored, expected, "{}: {parts:?}", db.name);
                chain += 2;
                assert_eq!(chain_length(&db).await, chain, "{}: {parts:?}", db.name);
                one_more_commits(&db, &store, 100 + failing).await;
                chain += 1;
            }
            store.close().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_reaches_every_member_of_the_group() {
        let dir = tempfile::tempdir().unwrap();
        for db in databases(dir.path()).await {
            let store = store_with_tables(&db).await;
            let mut chain = chain_length(&db).await;
            for breaking in 0..3_i64 {
                query("DELETE FROM member_rows")
                    .execute(store.db())
                    .await
                    .unwrap();
                let parts: Vec<Part> = (0..3)
                    .map(|i| {
                        if i == breaking {
                            Part::BreaksADeferredKey
                        } else {
                            Part::Commits
                        }
                    })
                    .collect();
                let (members, stored) = run_group(&db, &store, &parts).await;
                assert_one_group(&db, &members);
                // On SQLite the group's one COMMIT fails, and with it every member; on
                // PostgreSQL only the member whose transaction broke the key.
                let committed: Vec<bool> = (0..3_i64)
                    .map(|i| db.name != "sqlite" && i != breaking)
                    .collect();
                for (i, member) in members.iter().enumerate() {
                    assert_eq!(
                        member.outcome.is_ok(),
                        committed[i],
                        "{}: member {i} of {parts:?}: {:?}",
                        db.name,
                        member.outcome
                    );
                    if let Err(error) = &member.outcome {
                        let text = error.to_string().to_lowercase();
                        assert!(text.contains("foreign key"), "{}: {text}", db.name);
                    }
                }
                // What a commit returned an error for is not stored, what it returned Ok for
                // is.
                let expected: Vec<i64> = (0..3)
                    .filter(|i| committed[usize::try_from(*i).unwrap()])
                    .collect();
                assert_eq!(stored, expected, "{}: {parts:?}", db.name);
                chain += committed.iter().filter(|c| **c).count();
                assert_eq!(chain_length(&db).await, chain, "{}: {parts:?}", db.name);
                let fresh = Store::connect(&db.url).await.unwrap();
                let children = query("SELECT COUNT(*) FROM children")
                    .fetch_one(fresh.db())
                    .await
                    .unwrap();
                assert_eq!(children.try_get::<i64>(0).unwrap(), 0, "{}", db.name);
                fresh.close().await;
                one_more_commits(&db, &store, 100 + breaking).await;
                chain += 1;
            }
            store.close().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nothing_runs_outside_a_transaction_that_an_error_has_ended() {
        let dir = tempfile::tempdir().unwrap();
        for db in databases(dir.path()).await {
            let store = store_with_tables(&db).await;
            if db.name == "sqlite" {
                let mut tx = store.begin().await.unwrap();
                query(
                    "CREATE TRIGGER end_the_transaction BEFORE INSERT ON member_rows \
                     WHEN NEW.member = 999 BEGIN SELECT RAISE(ROLLBACK, 'ended'); END",
                )
                .execute(tx.conn().unwrap())
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
            let parts = [Part::Commits, Part::EndsItsTransaction, Part::Commits];
            let (members, stored) = run_group(&db, &store, &parts).await;
            // On SQLite the first member's work was in the transaction that ended, and is
            // lost; the last one, after it, is in a group of its own.
            let committed = [db.name != "sqlite", false, true];
            for (i, member) in members.iter().enumerate() {
                assert_eq!(
                    member.outcome.is_ok(),
                    committed[i],
                    "{}: member {i}: {:?}",
                    db.name,
                    member.outcome
                );
            }
            let expected: Vec<i64> = (0..3_i64)
                .filter(|i| committed[usize::try_from(*i).unwrap()])
                .collect();
            // Above all, not the write the failed member tried after its error (51).
            assert_eq!(stored, expected, "{}", db.name);
            one_more_commits(&db, &store, 100).await;
            store.close().await;
        }
    }

    /// SQLite: the WAL is checkpointed every [`CHECKPOINT_EVERY`] commits and then written
    /// from its start again, long before SQLite's own threshold would, so that its file stays
    /// a fraction of what the commits wrote to it (two pages each, here).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_is_checkpointed_as_the_writer_commits() {
        let dir = tempfile::tempdir().unwrap();
        let db = TestDatabase {
            name: "sqlite",
            url: format!("sqlite:{}", dir.path().join("test.db").display()),
        };
        let store = store_with_tables(&db).await;
        let commits = 20 * super::CHECKPOINT_EVERY;
        for i in 0..commits {
            let mut tx = store.begin().await.unwrap();
            query("INSERT INTO member_rows (id, member) VALUES ($1, $1)")
                .bind(i64::try_from(i).unwrap())
                .execute(tx.conn().unwrap())
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        let page = 4096;
        let unchecked = u64::try_from(commits).unwrap() * page;
        let wal = std::fs::metadata(dir.path().join("test.db-wal"))
            .unwrap()
            .len();
        assert!(
            wal < unchecked / 2,
            "the WAL has {wal} bytes after {commits} commits"
        );
        let rows = query("SELECT COUNT(*) FROM member_rows")
            .fetch_one(store.db())
            .await
            .unwrap();
        assert_eq!(
            rows.try_get::<i64>(0).unwrap(),
            i64::try_from(commits).unwrap()
        );
        store.close().await;
    }
}
