//! Reads: a pool of read-only connections and the queries behind `get`, `list` and the
//! history part of `watch`. Every read is one SQLite read transaction (a WAL snapshot), so
//! the revision a list reports, the compaction point it checked and the rows it returned
//! belong to the same moment.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use berth_store::{Error, KeyValue, ListRequest, ListResponse, Result, Revision, WatchEvent};
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};

use crate::schema::{KeyRange, TextBytes, backend, open_reader};

/// Read-only connections, reused between reads.
pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    keep: usize,
}

impl Readers {
    pub fn new(path: PathBuf, keep: usize) -> Self {
        Readers {
            path,
            idle: Mutex::new(Vec::new()),
            keep,
        }
    }

    /// Runs `f` on a pooled connection inside one read transaction, on tokio's blocking pool
    /// (a read may take milliseconds; it must not hold up an async worker).
    pub async fn read<T, F>(self: &Arc<Self>, operation: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.read_blocking(operation, f))
            .await
            .map_err(|e| Error::backend(operation, e))?
    }

    fn read_blocking<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => open_reader(&self.path).map_err(backend(operation))?,
        };
        let result = (|| {
            let tx = conn.transaction().map_err(backend(operation))?;
            let out = f(&tx)?;
            tx.finish().map_err(backend(operation))?;
            Ok(out)
        })();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.keep {
            idle.push(conn);
        }
        result
    }
}

/// The revision and compaction point of the snapshot `tx` reads.
pub(crate) fn snapshot_revisions(tx: &Connection) -> rusqlite::Result<(Revision, Revision)> {
    tx.prepare_cached(
        "SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'kv'),
                (SELECT value FROM meta WHERE name = 'compact_revision')",
    )?
    .query_row([], |r| {
        Ok((r.get::<_, Option<i64>>(0)?.unwrap_or(0), r.get(1)?))
    })
}

/// The newest version of `key`: (id, create_revision, deleted, value).
pub(crate) fn latest(
    conn: &Connection,
    key: &str,
) -> rusqlite::Result<Option<(Revision, Revision, bool, Bytes)>> {
    conn.prepare_cached(
        "SELECT id, create_revision, deleted, value FROM kv WHERE name = ?1 ORDER BY id DESC LIMIT 1",
    )?
    .query_row([key], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, Bytes::from(r.get::<_, Vec<u8>>(3)?)))
    })
    .optional()
}

pub(crate) fn get(tx: &Connection, key: &str) -> Result<Option<KeyValue>> {
    Ok(latest(tx, key).map_err(backend("get"))?.and_then(
        |(id, create_revision, deleted, value)| {
            (!deleted).then(|| KeyValue {
                key: key.to_string(),
                value,
                create_revision,
                mod_revision: id,
            })
        },
    ))
}

pub(crate) fn list(tx: &Connection, req: &ListRequest) -> Result<ListResponse> {
    let (current, compacted) = snapshot_revisions(tx).map_err(backend("list"))?;
    let revision = if req.revision == 0 {
        current
    } else {
        req.revision
    };
    if revision > current {
        return Err(Error::FutureRevision {
            requested: revision,
            current,
        });
    }
    if revision < compacted {
        return Err(Error::Compacted {
            requested: revision,
            compacted,
        });
    }
    let range = KeyRange::prefix(&req.prefix);
    // Resume strictly after `start_after` when it lies inside the range.
    let after = req
        .start_after
        .as_deref()
        .filter(|a| *a >= req.prefix.as_str());
    // Rows of the range visible at `revision` that no later visible row supersedes. Walking
    // the name index yields keys in order, so LIMIT stops the scan early.
    let sql = match (after.is_some(), range.end.is_some()) {
        (false, true) => LIST_FROM_TO,
        (false, false) => LIST_FROM,
        (true, true) => LIST_AFTER_TO,
        (true, false) => LIST_AFTER,
    };
    let fetch = if req.limit == 0 {
        -1
    } else {
        req.limit as i64 + 1
    };
    let lower = after.unwrap_or(&range.start);
    let end = range.end.as_deref().unwrap_or_default();
    let mut stmt = tx.prepare_cached(sql).map_err(backend("list"))?;
    let mut rows = stmt
        .query(params![lower, TextBytes(end), revision, fetch])
        .map_err(backend("list"))?;
    let mut items = Vec::new();
    let mut more = false;
    while let Some(row) = rows.next().map_err(backend("list"))? {
        if req.limit != 0 && items.len() == req.limit {
            more = true;
            break;
        }
        items.push(KeyValue {
            mod_revision: row.get(0).map_err(backend("list"))?,
            key: row.get(1).map_err(backend("list"))?,
            create_revision: row.get(2).map_err(backend("list"))?,
            value: Bytes::from(row.get::<_, Vec<u8>>(3).map_err(backend("list"))?),
        });
    }
    Ok(ListResponse {
        items,
        revision,
        more,
    })
}

macro_rules! list_sql {
    ($lower:literal, $upper:literal) => {
        concat!(
            "SELECT id, name, create_revision, value FROM kv AS k
             WHERE ",
            $lower,
            $upper,
            " AND id <= ?3 AND deleted = 0
               AND NOT EXISTS (SELECT 1 FROM kv AS newer
                               WHERE newer.name = k.name AND newer.id > k.id AND newer.id <= ?3)
             ORDER BY name LIMIT ?4"
        )
    };
}
const LIST_FROM_TO: &str = list_sql!("name >= ?1", " AND name < ?2");
// Without an end bound ?2 is bound but unused (SQLite allows gaps in numbered parameters).
const LIST_FROM: &str = list_sql!("name >= ?1", "");
const LIST_AFTER_TO: &str = list_sql!("name > ?1", " AND name < ?2");
const LIST_AFTER: &str = list_sql!("name > ?1", "");

/// One page of history for a watcher: the changes to keys in `range` with revisions in
/// `(after, upto]`, oldest first, at most `limit`. Fails with `Compacted` if the snapshot's
/// compaction point is above `after` (rows the watcher needs may be gone).
pub(crate) fn history(
    tx: &Connection,
    range: &KeyRange,
    after: Revision,
    upto: Revision,
    limit: usize,
) -> Result<Vec<WatchEvent>> {
    let (_, compacted) = snapshot_revisions(tx).map_err(backend("watch"))?;
    if after < compacted {
        return Err(Error::Compacted {
            requested: after,
            compacted,
        });
    }
    let sql = if range.end.is_some() {
        "SELECT id, name, deleted, create_revision, value FROM kv
         WHERE id > ?1 AND id <= ?2 AND name >= ?3 AND name < ?4 ORDER BY id LIMIT ?5"
    } else {
        "SELECT id, name, deleted, create_revision, value FROM kv
         WHERE id > ?1 AND id <= ?2 AND name >= ?3 ORDER BY id LIMIT ?5"
    };
    let end = range.end.as_deref().unwrap_or_default();
    let mut stmt = tx.prepare_cached(sql).map_err(backend("watch"))?;
    let rows = stmt
        .query_map(
            params![after, upto, range.start, TextBytes(end), limit as i64],
            |row| {
                let kv = KeyValue {
                    mod_revision: row.get(0)?,
                    key: row.get(1)?,
                    create_revision: row.get(3)?,
                    value: Bytes::from(row.get::<_, Vec<u8>>(4)?),
                };
                Ok(if row.get::<_, bool>(2)? {
                    WatchEvent::Delete(kv)
                } else {
                    WatchEvent::Put(kv)
                })
            },
        )
        .map_err(backend("watch"))?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(backend("watch"))
}
