//! The single writer thread: group commit of queued writes, the compaction point, and the
//! background deletion of compacted history.
//!
//! The thread owns the only write connection. It blocks until a write arrives, then takes
//! every write already queued (up to `max_batch`), applies them in order inside one
//! `BEGIN IMMEDIATE` transaction, commits (one WAL fsync), publishes the batch's watch events
//! and only then answers each caller. A compare-and-swap that fails is answered with its
//! error and writes nothing; it does not affect the rest of the batch. Revisions are
//! assigned explicitly (previous + 1), which with `AUTOINCREMENT` is exactly the id SQLite
//! would choose.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use berth_store::{Error, KeyValue, Result, Revision, WatchEvent};
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::config::{CompactionConfig, SqliteConfig};
use crate::watch::Hub;

/// A write queued for the writer thread, with the channel its answer goes to.
pub(crate) enum Op {
    Create {
        key: String,
        value: Bytes,
        reply: oneshot::Sender<Result<Revision>>,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
        reply: oneshot::Sender<Result<Revision>>,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
        reply: oneshot::Sender<Result<(Revision, KeyValue)>>,
    },
    Compact {
        revision: Revision,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// What the writer publishes for lock-free reads of the store's position.
#[derive(Debug, Default)]
pub(crate) struct Status {
    /// The last committed revision.
    pub revision: AtomicI64,
    /// The compaction point.
    pub compacted: AtomicI64,
    /// Transactions committed that carried writes.
    pub commits: AtomicU64,
    /// Writes committed (refused compare-and-swaps are not counted).
    pub writes: AtomicU64,
}

/// The result of applying one op inside the batch transaction.
enum Outcome {
    Put(Arc<WatchEvent>),
    Delete(Arc<WatchEvent>, KeyValue),
    CompactTo(Revision),
    Unchanged,
    Refused(Error),
}

pub(crate) struct Writer {
    conn: Connection,
    rx: Receiver<Op>,
    hub: Arc<Hub>,
    status: Arc<Status>,
    max_batch: usize,
    batch_wait: Duration,
    /// Size of the previous batch (see `SqliteConfig::batch_wait`).
    last_batch: usize,
    compaction: Option<CompactionConfig>,
    /// Last committed revision.
    revision: Revision,
    /// The compaction point (committed).
    compacted: Revision,
    /// Superseded rows up to this revision have been deleted.
    compact_done: Revision,
    /// Deletion steps are paused until the next policy tick after a failure.
    steps_paused: bool,
    /// (when, revision) samples for the time-based retention.
    samples: VecDeque<(Instant, Revision)>,
    next_tick: Instant,
}

/// The store's position as recorded in the database.
pub(crate) fn read_position(conn: &Connection) -> rusqlite::Result<(Revision, Revision, Revision)> {
    let (revision, compacted) = crate::read::snapshot_revisions(conn)?;
    let done: Revision = conn.query_row(
        "SELECT value FROM meta WHERE name = 'compact_done'",
        [],
        |r| r.get(0),
    )?;
    Ok((revision, compacted, done))
}

impl Writer {
    pub fn new(
        conn: Connection,
        rx: Receiver<Op>,
        hub: Arc<Hub>,
        status: Arc<Status>,
        config: &SqliteConfig,
        position: (Revision, Revision, Revision),
    ) -> Self {
        let (revision, compacted, compact_done) = position;
        status.revision.store(revision, Ordering::Release);
        status.compacted.store(compacted, Ordering::Release);
        let interval = config
            .compaction
            .as_ref()
            .map_or(Duration::from_secs(3600), |c| c.interval);
        Writer {
            conn,
            rx,
            hub,
            status,
            max_batch: config.max_batch,
            batch_wait: config.batch_wait,
            last_batch: 0,
            compaction: config.compaction.clone(),
            revision,
            compacted,
            compact_done,
            steps_paused: false,
            samples: VecDeque::new(),
            next_tick: Instant::now() + interval,
        }
    }

    /// Serves the queue until every sender is gone, then closes the live watches.
    pub fn run(mut self) {
        loop {
            let steps_pending = !self.steps_paused && self.compact_done < self.compacted;
            let first = if steps_pending {
                match self.rx.try_recv() {
                    Ok(op) => Some(op),
                    Err(std::sync::mpsc::TryRecvError::Empty) => None,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
                }
            } else if self.compaction.is_some() {
                let wait = self.next_tick.saturating_duration_since(Instant::now());
                match self.rx.recv_timeout(wait) {
                    Ok(op) => Some(op),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match self.rx.recv() {
                    Ok(op) => Some(op),
                    Err(_) => break,
                }
            };
            let mut ops = Vec::new();
            if let Some(op) = first {
                ops.push(op);
                while ops.len() < self.max_batch {
                    match self.rx.try_recv() {
                        Ok(op) => ops.push(op),
                        Err(_) => break,
                    }
                }
                let expect = self.last_batch.min(self.max_batch);
                if ops.len() < expect && !self.batch_wait.is_zero() {
                    let deadline = Instant::now() + self.batch_wait;
                    while ops.len() < expect {
                        let left = deadline.saturating_duration_since(Instant::now());
                        match self.rx.recv_timeout(left) {
                            Ok(op) => ops.push(op),
                            Err(_) => break,
                        }
                    }
                }
                self.last_batch = ops.len();
            }
            if (!ops.is_empty() || steps_pending)
                && let Err(fatal) = self.commit_group(ops, steps_pending)
            {
                tracing::error!(error = %fatal, "store writer stopped: the database state is unknown after a failed commit");
                self.fail_queue(&fatal);
                break;
            }
            if self.compaction.is_some() && Instant::now() >= self.next_tick {
                self.policy_tick();
            }
        }
        self.hub.close();
    }

    /// Answers everything still queued (and every later write) with the fatal error.
    fn fail_queue(&mut self, fatal: &Error) {
        self.hub.close();
        while let Ok(op) = self.rx.recv() {
            fail(
                op,
                Error::backend(
                    "write",
                    format!("the store stopped after a failed commit: {fatal}"),
                ),
            );
        }
    }

    /// Applies `ops` (and a deletion step when `step`) in one transaction and answers them.
    /// An `Err` means a commit failed in a way that leaves the database state unknown.
    fn commit_group(&mut self, ops: Vec<Op>, step: bool) -> std::result::Result<(), Error> {
        let mut outcomes = Vec::with_capacity(ops.len());
        let applied = self.apply_all(&ops, step, &mut outcomes);
        let step_to = match applied {
            Ok(step_to) => step_to,
            Err(e) => {
                // A statement failed (not a refused compare-and-swap: a database error).
                // Roll back and give each write its own transaction, so one bad write does
                // not fail the others; pause compaction steps if one was part of this.
                let _ = self.conn.execute_batch("ROLLBACK");
                if step {
                    tracing::warn!(error = %e, "store compaction step failed; retrying at the next tick");
                    self.steps_paused = true;
                }
                if ops.len() == 1 && !step {
                    let op = ops.into_iter().next().expect("one op");
                    fail(op, Error::backend("write", e));
                } else {
                    for op in ops {
                        self.commit_group(vec![op], false)?;
                    }
                }
                return Ok(());
            }
        };
        if let Err(e) = self
            .conn
            .prepare_cached("COMMIT")
            .and_then(|mut commit| commit.execute([]))
        {
            let _ = self.conn.execute_batch("ROLLBACK");
            let err = Error::backend("commit", &e);
            // If the database moved anyway, callers would be told "failed" for writes that
            // happened, and watchers would miss them: stop rather than diverge.
            match crate::read::snapshot_revisions(&self.conn) {
                Ok((revision, _)) if revision == self.revision => {
                    tracing::error!(error = %e, "store commit failed; the batch was rolled back");
                    for op in ops {
                        fail(op, Error::backend("commit", &e));
                    }
                    return Ok(());
                }
                _ => {
                    for op in ops {
                        fail(op, Error::backend("commit", &e));
                    }
                    return Err(err);
                }
            }
        }

        // Committed: advance the in-memory position, publish, then answer.
        if let Some(done) = step_to {
            self.compact_done = done;
        }
        let mut events = Vec::new();
        for outcome in &outcomes {
            match outcome {
                Outcome::Put(ev) | Outcome::Delete(ev, _) => {
                    self.revision = ev.revision();
                    events.push(ev.clone());
                }
                Outcome::CompactTo(r) => self.compacted = self.compacted.max(*r),
                Outcome::Unchanged | Outcome::Refused(_) => {}
            }
        }
        self.status.revision.store(self.revision, Ordering::Release);
        self.status
            .compacted
            .store(self.compacted, Ordering::Release);
        if !events.is_empty() {
            self.status.commits.fetch_add(1, Ordering::Relaxed);
            self.status
                .writes
                .fetch_add(events.len() as u64, Ordering::Relaxed);
            self.hub.publish(events, self.revision);
        }
        for (op, outcome) in ops.into_iter().zip(outcomes) {
            respond(op, outcome);
        }
        Ok(())
    }

    /// Runs the batch's statements inside `BEGIN IMMEDIATE`; returns the new deletion
    /// progress if a compaction step ran.
    fn apply_all(
        &mut self,
        ops: &[Op],
        step: bool,
        outcomes: &mut Vec<Outcome>,
    ) -> rusqlite::Result<Option<Revision>> {
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let step_to = if step {
            Some(self.compaction_step()?)
        } else {
            None
        };
        let mut next = self.revision;
        let mut compacted = self.compacted;
        for op in ops {
            let outcome = self.apply(op, next, compacted)?;
            match &outcome {
                Outcome::Put(ev) | Outcome::Delete(ev, _) => next = ev.revision(),
                Outcome::CompactTo(r) => compacted = *r,
                _ => {}
            }
            outcomes.push(outcome);
        }
        Ok(step_to)
    }

    /// Applies one op; `current` is the revision so far in this batch.
    fn apply(&self, op: &Op, current: Revision, compacted: Revision) -> rusqlite::Result<Outcome> {
        let next = current + 1;
        Ok(match op {
            Op::Create { key, value, .. } => match self.latest(key)? {
                Some((_, _, false)) => Outcome::Refused(Error::AlreadyExists { key: key.clone() }),
                prev => {
                    self.insert(next, key, true, false, next, prev.map_or(0, |p| p.0), value)?;
                    Outcome::Put(Arc::new(WatchEvent::Put(KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: next,
                        mod_revision: next,
                    })))
                }
            },
            Op::Update {
                key,
                value,
                expected,
                ..
            } => match self.latest(key)? {
                None | Some((_, _, true)) => Outcome::Refused(Error::NotFound { key: key.clone() }),
                Some((id, create_revision, false)) if id != *expected => {
                    Outcome::Refused(self.conflict(key, *expected, id, create_revision)?)
                }
                Some((id, create_revision, false)) => {
                    self.insert(next, key, false, false, create_revision, id, value)?;
                    Outcome::Put(Arc::new(WatchEvent::Put(KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision,
                        mod_revision: next,
                    })))
                }
            },
            Op::Delete { key, expected, .. } => match self.latest(key)? {
                None | Some((_, _, true)) => Outcome::Refused(Error::NotFound { key: key.clone() }),
                Some((id, create_revision, false)) if expected.is_some_and(|e| e != id) => {
                    let expected = expected.unwrap_or_default();
                    Outcome::Refused(self.conflict(key, expected, id, create_revision)?)
                }
                Some((id, create_revision, false)) => {
                    let value = self.value_at(id)?;
                    self.insert(next, key, false, true, create_revision, id, &value)?;
                    let prev = KeyValue {
                        key: key.clone(),
                        value,
                        create_revision,
                        mod_revision: id,
                    };
                    let tomb = KeyValue {
                        mod_revision: next,
                        ..prev.clone()
                    };
                    Outcome::Delete(Arc::new(WatchEvent::Delete(tomb)), prev)
                }
            },
            Op::Compact { revision, .. } => {
                if *revision > current {
                    Outcome::Refused(Error::FutureRevision {
                        requested: *revision,
                        current,
                    })
                } else if *revision <= compacted {
                    Outcome::Unchanged
                } else {
                    self.set_compact_revision(*revision)?;
                    Outcome::CompactTo(*revision)
                }
            }
        })
    }

    /// (id, create_revision, deleted) of `key`'s newest row.
    fn latest(&self, key: &str) -> rusqlite::Result<Option<(Revision, Revision, bool)>> {
        self.conn
            .prepare_cached(
                "SELECT id, create_revision, deleted FROM kv WHERE name = ?1 ORDER BY id DESC LIMIT 1",
            )?
            .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
    }

    fn value_at(&self, id: Revision) -> rusqlite::Result<Bytes> {
        self.conn
            .prepare_cached("SELECT value FROM kv WHERE id = ?1")?
            .query_row([id], |r| Ok(Bytes::from(r.get::<_, Vec<u8>>(0)?)))
    }

    fn conflict(
        &self,
        key: &str,
        expected: Revision,
        id: Revision,
        create_revision: Revision,
    ) -> rusqlite::Result<Error> {
        Ok(Error::Conflict {
            key: key.to_string(),
            expected,
            current: Some(Box::new(KeyValue {
                key: key.to_string(),
                value: self.value_at(id)?,
                create_revision,
                mod_revision: id,
            })),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn insert(
        &self,
        id: Revision,
        key: &str,
        created: bool,
        deleted: bool,
        create_revision: Revision,
        prev_revision: Revision,
        value: &[u8],
    ) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO kv (id, name, created, deleted, create_revision, prev_revision, value)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                id,
                key,
                created,
                deleted,
                create_revision,
                prev_revision,
                value
            ])?;
        Ok(())
    }

    fn set_compact_revision(&self, revision: Revision) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'compact_revision'")?
            .execute([revision])?;
        Ok(())
    }

    /// Deletes the history made unreadable by the compaction point, for the next slice of
    /// revisions `(compact_done, hi]`: every row older than a row in the slice (it is
    /// superseded at the compaction point), then the deletion rows in the slice (a key
    /// deleted at or before the compaction point is simply absent). Returns `hi`.
    fn compaction_step(&self) -> rusqlite::Result<Revision> {
        let step = self.compaction.as_ref().map_or(500, |c| c.step_revisions);
        let lo = self.compact_done;
        let hi = (lo + step).min(self.compacted);
        self.conn
            .prepare_cached(
                "DELETE FROM kv WHERE id IN (
                   SELECT older.id FROM kv AS r JOIN kv AS older
                     ON older.name = r.name AND older.id < r.id
                   WHERE r.id > ?1 AND r.id <= ?2)",
            )?
            .execute([lo, hi])?;
        self.conn
            .prepare_cached("DELETE FROM kv WHERE id > ?1 AND id <= ?2 AND deleted = 1")?
            .execute([lo, hi])?;
        self.conn
            .prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'compact_done'")?
            .execute([hi])?;
        Ok(hi)
    }

    /// Runs the compaction policy: samples the revision, then moves the compaction point to
    /// the newest revision allowed by the retention settings.
    fn policy_tick(&mut self) {
        let Some(policy) = self.compaction.clone() else {
            return;
        };
        let now = Instant::now();
        self.next_tick = now + policy.interval;
        self.steps_paused = false;
        self.samples.push_back((now, self.revision));
        // The newest sample at least `retain` old marks the history that may go.
        while self.samples.len() > 1 && now.duration_since(self.samples[1].0) >= policy.retain {
            self.samples.pop_front();
        }
        let by_age = match self.samples.front() {
            Some(&(at, rev)) if now.duration_since(at) >= policy.retain => rev,
            _ => 0,
        };
        let target = by_age
            .max(self.revision - policy.max_revisions)
            .min(self.revision - policy.min_revisions);
        if target <= self.compacted {
            return;
        }
        let result = (|| {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.set_compact_revision(target)?;
            self.conn.execute_batch("COMMIT")
        })();
        match result {
            Ok(()) => {
                self.compacted = target;
                self.status.compacted.store(target, Ordering::Release);
                tracing::debug!(revision = target, "store compaction point moved");
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                tracing::warn!(error = %e, "store compaction failed; retrying at the next tick");
            }
        }
    }
}

/// Sends the outcome of an applied op to its caller (who may have gone away).
fn respond(op: Op, outcome: Outcome) {
    match (op, outcome) {
        (Op::Create { reply, .. } | Op::Update { reply, .. }, Outcome::Put(ev)) => {
            let _ = reply.send(Ok(ev.revision()));
        }
        (Op::Delete { reply, .. }, Outcome::Delete(ev, prev)) => {
            let _ = reply.send(Ok((ev.revision(), prev)));
        }
        (Op::Compact { reply, .. }, Outcome::CompactTo(_) | Outcome::Unchanged) => {
            let _ = reply.send(Ok(()));
        }
        (op, Outcome::Refused(e)) => fail(op, e),
        (op, _) => fail(
            op,
            Error::backend(
                "write",
                "internal error: outcome does not match the operation",
            ),
        ),
    }
}

fn fail(op: Op, e: Error) {
    match op {
        Op::Create { reply, .. } | Op::Update { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Op::Delete { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Op::Compact { reply, .. } => {
            let _ = reply.send(Err(e));
        }
    }
}
