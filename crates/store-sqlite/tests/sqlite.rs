//! Behaviour specific to the embedded backend: persistence across reopen, the process lock,
//! group commit, compaction actually deleting rows (and never resurrecting a deleted key),
//! the automatic compaction policy, and watchers catching up after falling behind.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_store::{ListRequest, Store, WatchEvent};
use berth_store_sqlite::{CompactionConfig, SqliteConfig, SqliteStore};
use bytes::Bytes;
use futures::StreamExt;

const TEST_TIMEOUT: Duration = Duration::from_secs(60);

fn config() -> SqliteConfig {
    SqliteConfig::default().without_compaction()
}

fn rows(path: &Path) -> i64 {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.query_row("SELECT count(*) FROM kv", [], |r| r.get(0))
        .unwrap()
}

fn integrity(path: &Path) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// Polls `check` (every few milliseconds) until it is true, failing after a deadline.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn with_timeout<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .expect("test timed out");
}

fn v(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reopen_keeps_data_revisions_and_compaction_point() {
    with_timeout(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = SqliteStore::open(&path, config()).unwrap();
        let r1 = store.create("/r/a", v("a1")).await.unwrap();
        let r2 = store.update("/r/a", v("a2"), r1).await.unwrap();
        let r3 = store.create("/r/b", v("b1")).await.unwrap();
        let (r4, _) = store.delete("/r/b", None).await.unwrap();
        store.compact(r2).await.unwrap();
        drop(store);

        let store = SqliteStore::open(&path, config()).unwrap();
        assert_eq!(store.current_revision().await.unwrap(), r4);
        assert_eq!(store.compacted_revision().await.unwrap(), r2);
        let a = store.get("/r/a").await.unwrap().unwrap();
        assert_eq!(
            (a.value, a.create_revision, a.mod_revision),
            (v("a2"), r1, r2)
        );
        assert_eq!(store.get("/r/b").await.unwrap(), None);
        let past = store
            .list(ListRequest {
                prefix: "/r/".into(),
                revision: r3,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            past.items.len(),
            2,
            "history after the compaction point survived"
        );
        let mut w = store.watch("/r/", r2).await.unwrap();
        let first = w.next().await.unwrap().unwrap();
        assert_eq!(first.revision(), r3);
        let r5 = store.create("/r/c", v("c1")).await.unwrap();
        assert_eq!(r5, r4 + 1, "revisions continue after reopen");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revisions_never_reused_after_compacting_the_newest_rows() {
    with_timeout(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = SqliteStore::open(&path, config()).unwrap();
        store.create("/x", v("x")).await.unwrap();
        let (r2, _) = store.delete("/x", None).await.unwrap();
        store.compact(r2).await.unwrap();
        eventually("compaction to delete every row", || rows(&path) == 0).await;
        drop(store);
        let store = SqliteStore::open(&path, config()).unwrap();
        assert_eq!(store.current_revision().await.unwrap(), r2);
        assert_eq!(store.create("/x", v("again")).await.unwrap(), r2 + 1);
    })
    .await;
}

#[tokio::test]
async fn a_second_open_is_refused_while_the_first_is_alive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(&path, config()).unwrap();
    let err = SqliteStore::open(&path, config())
        .err()
        .expect("second open must fail");
    assert!(err.is_locked(), "{err}");
    assert!(err.to_string().contains("s.db"), "{err}");
    drop(store);
    SqliteStore::open(&path, config()).expect("open after the first store closed");
}

#[test]
fn open_errors_name_the_path_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/s.db");
    let err = SqliteStore::open(&missing, config()).err().unwrap();
    assert!(err.to_string().contains("no/such/dir"), "{err}");
    let err = SqliteStore::open(
        dir.path().join("s.db"),
        SqliteConfig {
            max_batch: 0,
            ..config()
        },
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("max_batch"), "{err}");
    std::fs::write(dir.path().join("junk.db"), vec![0x42u8; 8192]).unwrap();
    let err = SqliteStore::open(dir.path().join("junk.db"), config())
        .err()
        .unwrap();
    assert!(err.to_string().contains("junk.db"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_commits() {
    with_timeout(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("s.db"), config()).unwrap();
        let mut tasks = Vec::new();
        for t in 0..64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..20 {
                    store.create(&format!("/g/{t}/{i}"), v("x")).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let stats = store.stats();
        assert_eq!(stats.writes, 64 * 20);
        assert!(
            stats.commits < stats.writes,
            "64 concurrent writers must share transactions: {stats:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_write_does_not_fail_its_batch() {
    with_timeout(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("s.db"), config()).unwrap();
        let r = store.create("/b/cas", v("0")).await.unwrap();
        let mut tasks = Vec::new();
        for t in 0..48 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                match t % 3 {
                    0 => store.update("/b/cas", v("won"), r).await.is_ok(),
                    1 => store.create("/b/cas", v("dup")).await.is_ok(),
                    _ => {
                        store.create(&format!("/b/{t}"), v("x")).await.unwrap();
                        true
                    }
                }
            }));
        }
        let mut ok = [0; 3];
        for (t, task) in tasks.into_iter().enumerate() {
            ok[t % 3] += task.await.unwrap() as usize;
        }
        assert_eq!(
            ok,
            [1, 0, 16],
            "one CAS wins, duplicates fail, independent creates all succeed"
        );
        assert!(store.stats().commits < 17, "{:?}", store.stats());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compaction_deletes_history_and_never_resurrects() {
    with_timeout(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = SqliteStore::open(
            &path,
            SqliteConfig {
                // Small steps, so one compaction runs as several deletion transactions.
                compaction: Some(CompactionConfig {
                    interval: Duration::from_secs(3600),
                    step_revisions: 3,
                    ..Default::default()
                }),
                ..SqliteConfig::default()
            },
        )
        .unwrap();
        let rk = store.create("/c/k", v("k")).await.unwrap();
        let mut ro = store.create("/c/o", v("0")).await.unwrap();
        for i in 1..20 {
            ro = store.update("/c/o", v(&i.to_string()), ro).await.unwrap();
        }
        store.compact(ro).await.unwrap();
        eventually("superseded versions of /c/o to be deleted", || {
            rows(&path) == 2
        })
        .await;

        // The key's only row is older than the first compaction; deleting it later and
        // compacting again must remove both rows, not leave the old one visible.
        let (rd, _) = store.delete("/c/k", Some(rk)).await.unwrap();
        ro = store.update("/c/o", v("20"), ro).await.unwrap();
        store.compact(ro).await.unwrap();
        eventually("the deleted key and the old /c/o row to go", || {
            rows(&path) == 1
        })
        .await;
        assert!(rd < ro);
        assert_eq!(store.get("/c/k").await.unwrap(), None);
        let now = store
            .list(ListRequest {
                prefix: "/c/".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(now.items.len(), 1);
        assert_eq!(
            (now.items[0].key.as_str(), now.items[0].value.clone()),
            ("/c/o", v("20"))
        );
        let at_point = store
            .list(ListRequest {
                prefix: "/c/".into(),
                revision: ro,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(at_point.items, now.items);
        drop(store);
        assert_eq!(integrity(&path), "ok");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn automatic_compaction_bounds_growth() {
    with_timeout(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = SqliteStore::open(
            &path,
            SqliteConfig {
                compaction: Some(CompactionConfig {
                    interval: Duration::from_millis(20),
                    retain: Duration::ZERO,
                    min_revisions: 5,
                    max_revisions: 50,
                    step_revisions: 7,
                }),
                ..SqliteConfig::default()
            },
        )
        .unwrap();
        let mut revs = [0; 3];
        for i in 0..300 {
            let k = i % 3;
            let key = format!("/a/{k}");
            revs[k] = if revs[k] == 0 {
                store.create(&key, v("0")).await.unwrap()
            } else {
                store
                    .update(&key, v(&i.to_string()), revs[k])
                    .await
                    .unwrap()
            };
        }
        let current = store.current_revision().await.unwrap();
        let s = store.clone();
        eventually(
            "the compaction point to trail the head by min_revisions",
            move || futures::executor::block_on(s.compacted_revision()).unwrap() == current - 5,
        )
        .await;
        // At most the 5 newest revisions plus one current row per key.
        eventually("old rows to be deleted", || rows(&path) <= 8).await;
        for (k, rev) in revs.iter().enumerate() {
            let kv = store.get(&format!("/a/{k}")).await.unwrap().unwrap();
            assert_eq!(kv.mod_revision, *rev, "current values are kept");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watcher_far_behind_catches_up_from_the_database() {
    with_timeout(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(
            dir.path().join("s.db"),
            SqliteConfig {
                watch_buffer: 4,
                ..config()
            },
        )
        .unwrap();
        let base = store.current_revision().await.unwrap();
        let mut w = store.watch("/l/", base).await.unwrap();
        let mut first = true;
        for i in 0..500 {
            store.create(&format!("/l/{i:03}"), v("x")).await.unwrap();
            if first {
                // Start the stream so it is in live mode before it falls behind.
                let ev = w.next().await.unwrap().unwrap();
                assert_eq!(ev.revision(), base + 1);
                first = false;
            }
        }
        for i in 1..500 {
            match w.next().await.unwrap().unwrap() {
                WatchEvent::Put(kv) => {
                    assert_eq!(
                        (kv.key, kv.mod_revision),
                        (format!("/l/{i:03}"), base + 1 + i)
                    )
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watches_end_when_the_store_closes() {
    with_timeout(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path().join("s.db"), config()).unwrap());
        let mut w = store.watch("/", 0).await.unwrap();
        store.create("/k", v("x")).await.unwrap();
        assert!(w.next().await.unwrap().is_ok());
        drop(store);
        assert!(
            w.next().await.is_none(),
            "the stream ends once the store is gone"
        );
    })
    .await;
}
