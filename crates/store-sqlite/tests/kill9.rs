//! Durability under `kill -9`: a child process writes concurrently and prints every write the
//! store acknowledged; the test SIGKILLs it mid-stream (several rounds on the same database),
//! reopens the database and checks that every acknowledged write is there with its value and
//! revision, that revisions have no holes, and that the file is not corrupt.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use berth_store::{ListRequest, Revision, Store, WatchEvent};
use berth_store_sqlite::{SqliteConfig, SqliteStore};
use bytes::Bytes;
use futures::StreamExt;

const ROUNDS: u32 = 3;
const WRITERS: u32 = 16;
/// Acknowledged writes to wait for before killing the child.
const ACKS_BEFORE_KILL: usize = 1500;

/// Same as the helper binary's value for write `i` of writer `w` in `round`.
fn value_for(round: u32, writer: u32, i: u64) -> Bytes {
    let unit = format!("{round}:{writer}:{i};");
    Bytes::from(unit.repeat(300 / unit.len() + 1))
}

#[derive(Debug, Clone)]
struct Ack {
    op: String,
    round: u32,
    writer: u32,
    i: u64,
    key: String,
    rev: Revision,
}

fn parse(line: &str) -> Ack {
    let f: Vec<&str> = line.split_whitespace().collect();
    assert!(
        f.len() == 7 && f[0] == "ACK",
        "malformed line from the child: {line:?}"
    );
    Ack {
        op: f[1].to_string(),
        round: f[2].parse().unwrap(),
        writer: f[3].parse().unwrap(),
        i: f[4].parse().unwrap(),
        key: f[5].to_string(),
        rev: f[6].parse().unwrap(),
    }
}

/// Runs the child for one round and returns the acknowledgements it printed before SIGKILL.
fn run_and_kill(db: &Path, round: u32) -> Vec<Ack> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_store-sqlite-crash-writer"))
        .arg(db)
        .arg(round.to_string())
        .arg(WRITERS.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the crash writer");
    let stdout = child.stdout.take().unwrap();
    let (count_tx, count_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                // A line cut by the kill is not an acknowledgement we can rely on.
                Ok(_) if line.last() != Some(&b'\n') => break,
                Ok(_) => {
                    acks.push(parse(std::str::from_utf8(&line).unwrap()));
                    let _ = count_tx.send(acks.len());
                }
            }
        }
        acks
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match count_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(n) if n >= ACKS_BEFORE_KILL => break,
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!("crash writer exited early with {status}");
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("crash writer closed its output"),
        }
        assert!(
            Instant::now() < deadline,
            "crash writer produced too few acknowledgements"
        );
    }
    child.kill().expect("SIGKILL the crash writer");
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the child was killed, not finished: {status}"
    );
    reader.join().unwrap()
}

async fn list_key_at(
    store: &SqliteStore,
    key: &str,
    rev: Revision,
) -> Option<berth_store::KeyValue> {
    let resp = store
        .list(ListRequest {
            prefix: key.to_string(),
            revision: rev,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("list {key} at {rev}: {e}"));
    assert!(
        resp.items.len() <= 1,
        "keys are fixed-width, so {key} is the only match"
    );
    resp.items.into_iter().next()
}

async fn verify(db: &Path, acks: &[Ack]) {
    let store = SqliteStore::open(db, SqliteConfig::default().without_compaction())
        .expect("reopen after SIGKILL");
    let current = store.current_revision().await.unwrap();
    let mut by_rev: BTreeMap<Revision, &Ack> = BTreeMap::new();
    // Revision of each key's create, to check create_revision of updates.
    let mut created: BTreeMap<&str, Revision> = BTreeMap::new();
    for ack in acks {
        assert!(
            by_rev.insert(ack.rev, ack).is_none(),
            "revision {} acknowledged twice",
            ack.rev
        );
        assert!(
            ack.rev <= current,
            "acknowledged revision {} beyond the reopened store's {current}",
            ack.rev
        );
        let at = list_key_at(&store, &ack.key, ack.rev).await;
        match ack.op.as_str() {
            "create" | "update" => {
                let kv =
                    at.unwrap_or_else(|| panic!("acknowledged {ack:?} is missing after kill -9"));
                assert_eq!(
                    kv.value,
                    value_for(ack.round, ack.writer, ack.i),
                    "value of {ack:?}"
                );
                assert_eq!(kv.mod_revision, ack.rev, "{ack:?}");
                if ack.op == "create" {
                    assert_eq!(kv.create_revision, ack.rev);
                    created.insert(&ack.key, ack.rev);
                } else if let Some(c) = created.get(ack.key.as_str()) {
                    assert_eq!(kv.create_revision, *c, "create_revision of {ack:?}");
                }
            }
            "delete" => {
                assert_eq!(at, None, "acknowledged {ack:?} but the key is still there");
                assert!(
                    list_key_at(&store, &ack.key, ack.rev - 1).await.is_some(),
                    "{ack:?}: present before"
                );
            }
            other => panic!("unknown op {other}"),
        }
    }
    // The log has no holes: every revision up to the current one is one change, in order.
    let mut w = store.watch("", 0).await.unwrap();
    let mut expected = 1;
    while expected <= current {
        let ev = tokio::time::timeout(Duration::from_secs(30), w.next())
            .await
            .expect("replaying the log")
            .expect("stream open")
            .expect("replay");
        assert!(matches!(ev, WatchEvent::Put(_) | WatchEvent::Delete(_)));
        assert_eq!(
            ev.revision(),
            expected,
            "revisions are dense and ordered after recovery"
        );
        expected += 1;
    }
    assert_eq!(
        store
            .create("/after/kill", Bytes::from_static(b"x"))
            .await
            .unwrap(),
        current + 1
    );
    let (r, _) = store.delete("/after/kill", None).await.unwrap();
    assert_eq!(r, current + 2);
    drop(store);
    let conn = rusqlite::Connection::open(db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "database integrity after kill -9");
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut all = Vec::new();
    for round in 0..ROUNDS {
        let acks = run_and_kill(&db, round);
        assert!(acks.len() >= ACKS_BEFORE_KILL);
        all.extend(acks);
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(300), verify(&db, &all))
                .await
                .expect("verification timed out")
        });
    }
}
