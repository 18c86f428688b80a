//! Cases with concurrent clients: several watchers agree, no event is lost or duplicated
//! under concurrent writers, and compare-and-swap has exactly one winner.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::{next_changes, rev, val};
use crate::{Revision, Store, WatchEvent};

/// Writers × writes each for [`watch_under_concurrent_writers`].
const WRITERS: usize = 8;
const WRITES_EACH: usize = 200;

pub async fn concurrent_watchers_see_same_events(store: Arc<dyn Store>) {
    let base = rev(&store).await;
    let mut watchers = Vec::new();
    for _ in 0..4 {
        watchers.push(store.watch("/cw/", base).await.unwrap());
    }
    let mut tasks = Vec::new();
    for t in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                store
                    .create(&format!("/cw/{t}/{i}"), val("v"))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut seen = Vec::new();
    for (i, w) in watchers.iter_mut().enumerate() {
        seen.push(next_changes(w, 100, &format!("watcher {i}")).await);
    }
    let revs: Vec<Revision> = seen[0].iter().map(WatchEvent::revision).collect();
    assert_eq!(
        revs,
        (base + 1..=base + 100).collect::<Vec<_>>(),
        "every revision, in order"
    );
    for (i, events) in seen.iter().enumerate().skip(1) {
        assert_eq!(
            events, &seen[0],
            "watcher {i} saw the same events as watcher 0"
        );
    }
}

pub async fn watch_under_concurrent_writers(store: Arc<dyn Store>) {
    let base = rev(&store).await;
    let total = WRITERS * WRITES_EACH;
    let mut early = store.watch("/cc/", base).await.unwrap();
    let mut writers = Vec::new();
    for t in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            // Each writer creates, updates and deletes its own keys, so every write succeeds.
            let mut acked = Vec::with_capacity(WRITES_EACH);
            let mut i = 0;
            while acked.len() < WRITES_EACH {
                let key = format!("/cc/{t}/{}", i / 3);
                let r = match i % 3 {
                    0 => store
                        .create(&key, Bytes::from(format!("{t}-{i}")))
                        .await
                        .unwrap(),
                    1 => {
                        let prev = acked.last().map(|(r, _)| *r).unwrap();
                        store
                            .update(&key, Bytes::from(format!("{t}-{i}")), prev)
                            .await
                            .unwrap()
                    }
                    _ => store.delete(&key, None).await.unwrap().0,
                };
                acked.push((r, key));
                i += 1;
            }
            acked
        }));
    }
    // A second watcher starts from the beginning while the writers are running: its replay
    // of history must join the live stream without a gap or a duplicate.
    while rev(&store).await < base + (total / 3) as Revision {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let mut late = store.watch("/cc/", base).await.unwrap();

    let mut acked: BTreeMap<Revision, String> = BTreeMap::new();
    for w in writers {
        for (r, key) in w.await.unwrap() {
            assert!(
                acked.insert(r, key).is_none(),
                "revision {r} acknowledged twice"
            );
        }
    }
    let expected: Vec<Revision> = (base + 1..=base + total as Revision).collect();
    assert_eq!(
        acked.keys().copied().collect::<Vec<_>>(),
        expected,
        "revisions are dense"
    );
    for (name, w) in [("early watcher", &mut early), ("late watcher", &mut late)] {
        let events = next_changes(w, total, name).await;
        let revs: Vec<Revision> = events.iter().map(WatchEvent::revision).collect();
        assert_eq!(
            revs, expected,
            "{name}: every revision exactly once, in order"
        );
        for ev in events {
            let (r, key) = match &ev {
                WatchEvent::Put(kv) | WatchEvent::Delete(kv) => (kv.mod_revision, &kv.key),
                WatchEvent::Progress(_) => unreachable!(),
            };
            assert_eq!(Some(key), acked.get(&r), "{name}: key of revision {r}");
        }
    }
}

pub async fn concurrent_cas_one_winner(store: Arc<dyn Store>) {
    const CONTENDERS: usize = 8;
    let mut current = store.create("/cas/k", val("start")).await.unwrap();
    for round in 0..20 {
        let mut tasks = Vec::new();
        for c in 0..CONTENDERS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let value = Bytes::from(format!("round {round} by {c}"));
                (value.clone(), store.update("/cas/k", value, current).await)
            }));
        }
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                (value, Ok(r)) => winners.push((value, r)),
                (_, Err(e)) => losers.push(e),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one CAS wins ({} did)",
            winners.len()
        );
        let (value, won) = winners.pop().unwrap();
        for e in losers {
            match e {
                crate::Error::Conflict {
                    current: Some(cur), ..
                } => {
                    assert_eq!(
                        (cur.mod_revision, &cur.value),
                        (won, &value),
                        "round {round}: conflict carries the winner's value"
                    )
                }
                other => {
                    panic!("round {round}: a losing CAS must fail with Conflict, got {other:?}")
                }
            }
        }
        let got = store.get("/cas/k").await.unwrap().unwrap();
        assert_eq!((got.value, got.mod_revision), (value, won));
        current = won;
    }
}

pub async fn concurrent_create_one_winner(store: Arc<dyn Store>) {
    for round in 0..20 {
        let key = format!("/cc1/{round}");
        let mut tasks = Vec::new();
        for c in 0..8 {
            let store = store.clone();
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                store.create(&key, Bytes::from(format!("{c}"))).await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(e) => assert!(e.is_already_exists(), "round {round}: losing create: {e}"),
            }
        }
        assert_eq!(ok, 1, "round {round}: exactly one create wins");
    }
}
