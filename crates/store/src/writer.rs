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
//! Statements run on the calling thread (rusqlite, see `db`), so a turn lasts as long as
//! SQLite's own work and whatever the use case awaits in between. Statements on the writer
//! connection see the group's earlier use cases; other connections (the readers, other
//! processes) see a group only once it is committed. A task must not begin a second
//! transaction while it holds one: it would wait for itself.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Notify, OwnedMutexGuard};

use crate::db::open_sqlite;
use crate::Error;

/// A group is committed when it has this many use cases...
const MAX_GROUP: usize = 16;
/// ... or is this old (its first use case waits at most about this long for the others).
const MAX_GROUP_AGE: Duration = Duration::from_millis(3);
/// A use case that has waited this long for its group's commit commits it itself.
const RESCUE_AFTER: Duration = Duration::from_millis(20);
/// Failed groups remembered for the use cases still waiting to hear of them.
const FAILURES_KEPT: usize = 1024;

/// The writer: its connection and group, behind the turn lock, and the groups' outcomes.
pub(crate) struct Writer {
    path: PathBuf,
    turn: Arc<Mutex<Group>>,
    /// Tasks waiting for a turn (a hint: a wrong count costs time, never correctness).
    waiting: AtomicUsize,
    outcomes: std::sync::Mutex<Outcomes>,
    finished: Notify,
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
                guard.conn = Some(conn);
                drop(guard);
                self.end(group, Ok(()));
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
