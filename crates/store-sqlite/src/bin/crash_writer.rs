//! Test helper for the kill -9 durability test (`tests/kill9.rs`), not a user tool.
//!
//! `store-sqlite-crash-writer DB ROUND WRITERS` opens the embedded store at DB and runs
//! WRITERS concurrent tasks that create, update and delete their own keys forever. After
//! each acknowledged write it prints one line to stdout:
//!
//! `ACK <op> <round> <writer> <i> <key> <revision>`
//!
//! The test kills the process with SIGKILL mid-stream and checks that every printed write
//! is in the reopened database. The value of write `i` of writer `w` in round `r` is
//! [`value_for`]`(r, w, i)`, which the test recomputes.

use std::io::Write;
use std::sync::Arc;

use berth_store::Store;
use berth_store_sqlite::{SqliteConfig, SqliteStore};
use bytes::Bytes;

fn value_for(round: u32, writer: u32, i: u64) -> Bytes {
    let unit = format!("{round}:{writer}:{i};");
    Bytes::from(unit.repeat(300 / unit.len() + 1))
}

fn key_for(round: u32, writer: u32, i: u64) -> String {
    format!("/crash/r{round}/w{writer:03}/k{i:010}")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: store-sqlite-crash-writer DB ROUND WRITERS";
    let (Some(db), Some(round), Some(writers)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let (Ok(round), Ok(writers)) = (round.parse::<u32>(), writers.parse::<u32>()) else {
        eprintln!("{usage}: ROUND and WRITERS are numbers");
        std::process::exit(2);
    };
    let store = match SqliteStore::open(db, SqliteConfig::default().without_compaction()) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("crash-writer: {e}");
            std::process::exit(1);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async move {
        let mut tasks = Vec::new();
        for w in 0..writers {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                write_forever(&*store, round, w).await
            }));
        }
        for t in tasks {
            if let Ok(Err(e)) = t.await {
                eprintln!("crash-writer: {e}");
                std::process::exit(1);
            }
        }
    });
}

/// Cycles create → update → create → delete over fresh keys, printing each acknowledgement.
async fn write_forever(store: &dyn Store, round: u32, w: u32) -> berth_store::Result<()> {
    let mut last_rev = 0;
    for i in 0u64.. {
        let (op, key, rev) = match i % 4 {
            0 | 2 => {
                let key = key_for(round, w, i);
                let rev = store.create(&key, value_for(round, w, i)).await?;
                ("create", key, rev)
            }
            1 => {
                let key = key_for(round, w, i - 1);
                let rev = store.update(&key, value_for(round, w, i), last_rev).await?;
                ("update", key, rev)
            }
            _ => {
                let key = key_for(round, w, i - 1);
                let rev = store.delete(&key, Some(last_rev)).await?.0;
                ("delete", key, rev)
            }
        };
        last_rev = rev;
        let mut out = std::io::stdout().lock();
        if writeln!(out, "ACK {op} {round} {w} {i} {key} {rev}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return Ok(());
        }
    }
    Ok(())
}
