//! The database file: connection settings, the schema, and the key-range helpers every query
//! uses.
//!
//! Schema (version 1):
//!
//! ```sql
//! CREATE TABLE kv (
//!   id              INTEGER PRIMARY KEY AUTOINCREMENT, -- the revision of this change
//!   name            TEXT NOT NULL,     -- the key
//!   created         INTEGER NOT NULL,  -- 1: this change (re)created the key
//!   deleted         INTEGER NOT NULL,  -- 1: this change deleted the key
//!   create_revision INTEGER NOT NULL,  -- revision at which this incarnation was created
//!   prev_revision   INTEGER NOT NULL,  -- the key's previous change, 0 if none
//!   value           BLOB NOT NULL      -- the value; for a deletion, the value it removed
//! );
//! CREATE INDEX kv_name ON kv(name);    -- entries are (name, id): newest version by key
//! CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
//! ```
//!
//! `meta` holds `compact_revision` (reads below it fail with `Compacted`) and
//! `compact_done` (superseded rows up to it have been deleted). `AUTOINCREMENT` keeps ids
//! from being reused even when compaction deletes the newest rows, so revisions only grow,
//! also across restarts.

use std::path::Path;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};

use crate::Error;

pub(crate) const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  name            TEXT NOT NULL,
  created         INTEGER NOT NULL,
  deleted         INTEGER NOT NULL,
  create_revision INTEGER NOT NULL,
  prev_revision   INTEGER NOT NULL,
  value           BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS kv_name ON kv(name);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('compact_revision', 0), ('compact_done', 0);
";

/// Opens the writer's connection: creates the file and schema if needed, checks the schema
/// version, and switches the file to WAL.
pub(crate) fn open_writer(path: &Path) -> Result<Connection, Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Error::open(path, e))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| Error::open(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::open(
            path,
            format!("cannot switch to WAL journal (got {mode})"),
        ));
    }
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 5000;
         PRAGMA cache_size = -4000;
         PRAGMA temp_store = MEMORY;",
    )
    .map_err(|e| Error::open(path, e))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| Error::open(path, e))?;
    if version > SCHEMA_VERSION {
        return Err(Error::SchemaVersion {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
    ))
    .map_err(|e| Error::open(path, format!("creating the schema: {e}")))?;
    Ok(conn)
}

/// Opens a read-only connection for the reader pool.
pub(crate) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch(
        "PRAGMA busy_timeout = 5000;
         PRAGMA cache_size = -2000;
         PRAGMA query_only = 1;",
    )?;
    Ok(conn)
}

/// A byte string bound as SQLite TEXT. Key bounds are compared with the BINARY collation
/// (memcmp), so they need not be valid UTF-8 (the end of a prefix range is the prefix with
/// its last byte incremented).
pub(crate) struct TextBytes<'a>(pub &'a [u8]);

impl ToSql for TextBytes<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(self.0)))
    }
}

/// The key range of a prefix: keys `k` with `start <= k` and, when `end` is set, `k < end`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyRange {
    pub start: String,
    pub end: Option<Vec<u8>>,
}

impl KeyRange {
    pub fn prefix(prefix: &str) -> Self {
        let mut end = prefix.as_bytes().to_vec();
        while end.last() == Some(&0xff) {
            end.pop();
        }
        let end = match end.last_mut() {
            Some(last) => {
                *last += 1;
                Some(end)
            }
            None => None,
        };
        KeyRange {
            start: prefix.to_string(),
            end,
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        key.starts_with(self.start.as_str())
    }
}

/// Maps a SQLite failure of `operation` to the store's error.
pub(crate) fn backend(
    operation: &'static str,
) -> impl FnOnce(rusqlite::Error) -> berth_store::Error {
    move |e| berth_store::Error::backend(operation, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges() {
        assert_eq!(KeyRange::prefix("/a/").end, Some(b"/a0".to_vec()));
        assert_eq!(KeyRange::prefix("").end, None);
        assert_eq!(
            KeyRange::prefix("a\u{ff}").end,
            Some(vec![b'a', 0xc3, 0xc0])
        );
    }

    #[test]
    fn schema_is_created_once_and_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(open_writer(&path).unwrap());
        let conn = open_writer(&path).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let n: i64 = conn
            .query_row("SELECT count(*) FROM meta", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(conn);
        let err = open_writer(&path).unwrap_err();
        assert!(
            matches!(err, Error::SchemaVersion { found: 99, .. }),
            "{err}"
        );
    }

    #[test]
    fn text_bounds_compare_bytewise() {
        let conn = Connection::open_in_memory().unwrap();
        let end = KeyRange::prefix("/a/").end.unwrap();
        let inside: bool = conn
            .query_row(
                "SELECT '/a/zz' < ?1 AND '/a0' >= ?1",
                [TextBytes(&end)],
                |r| r.get(0),
            )
            .unwrap();
        assert!(inside);
    }
}
