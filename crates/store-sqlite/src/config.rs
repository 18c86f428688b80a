//! Configuration of [`crate::SqliteStore`], with defaults and validation.

use std::time::Duration;

use crate::Error;

/// How the embedded store batches writes, reads and compacts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteConfig {
    /// The most writes committed together in one transaction (one fsync).
    pub max_batch: usize,
    /// How long the writer may wait for more writes when fewer are queued than it committed
    /// in its previous batch (clients still on their way back from that batch's
    /// acknowledgements). Larger batches share one fsync; a single client never waits.
    pub batch_wait: Duration,
    /// Reader connections kept open between reads (more are opened on demand). Each keeps
    /// up to 2 MB of SQLite page cache; the writer up to 4 MB (the OS page cache serves the
    /// rest without counting against the server's RSS).
    pub read_connections: usize,
    /// Committed events kept in memory for live watchers. A watcher further behind than this
    /// catches up from the database instead. The buffer holds the values of the last this
    /// many writes, so it is kept small (the API server's watch cache is the one consumer
    /// that must keep up).
    pub watch_buffer: usize,
    /// Automatic compaction; `None` compacts only when [`berth_store::Store::compact`] is
    /// called.
    pub compaction: Option<CompactionConfig>,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig {
            max_batch: 1024,
            batch_wait: Duration::from_micros(200),
            read_connections: 4,
            watch_buffer: 1024,
            compaction: Some(CompactionConfig::default()),
        }
    }
}

/// The automatic compaction policy: history younger than `retain` is kept, but never more
/// than `max_revisions` and never fewer than `min_revisions` revisions (current values are
/// always kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactionConfig {
    /// How often the policy runs (and samples the revision for `retain`).
    pub interval: Duration,
    /// History younger than this is kept (subject to `max_revisions`).
    pub retain: Duration,
    /// At least this many of the latest revisions stay readable.
    pub min_revisions: i64,
    /// At most this many revisions of history are kept, whatever their age.
    pub max_revisions: i64,
    /// Revisions examined per deletion step; each step runs inside one write transaction.
    pub step_revisions: i64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            interval: Duration::from_secs(30),
            retain: Duration::from_secs(5 * 60),
            min_revisions: 1_000,
            max_revisions: 100_000,
            step_revisions: 500,
        }
    }
}

impl SqliteConfig {
    /// No automatic compaction (explicit `compact` calls still work).
    pub fn without_compaction(self) -> Self {
        SqliteConfig {
            compaction: None,
            ..self
        }
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |field: &'static str, reason: &str| {
            Err(Error::InvalidConfig {
                field,
                reason: reason.to_string(),
            })
        };
        if self.max_batch == 0 {
            return bad("max_batch", "must be at least 1");
        }
        if self.watch_buffer == 0 {
            return bad("watch_buffer", "must be at least 1");
        }
        if let Some(c) = &self.compaction {
            if c.interval.is_zero() {
                return bad("compaction.interval", "must be greater than zero");
            }
            if c.min_revisions < 0 {
                return bad("compaction.min_revisions", "must not be negative");
            }
            if c.max_revisions < c.min_revisions {
                return bad(
                    "compaction.max_revisions",
                    "must be at least compaction.min_revisions",
                );
            }
            if c.step_revisions < 1 {
                return bad("compaction.step_revisions", "must be at least 1");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        SqliteConfig::default().validate().unwrap();
        SqliteConfig::default()
            .without_compaction()
            .validate()
            .unwrap();
    }

    #[test]
    fn invalid_values_name_their_field() {
        let err = SqliteConfig {
            max_batch: 0,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains("max_batch"), "{err}");
        let err = SqliteConfig {
            compaction: Some(CompactionConfig {
                max_revisions: 10,
                min_revisions: 20,
                ..Default::default()
            }),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(
            err.to_string().contains("compaction.max_revisions"),
            "{err}"
        );
    }
}
