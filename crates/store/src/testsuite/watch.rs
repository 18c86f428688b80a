//! Cases for `watch`: history replay followed by live events, event contents, prefix
//! filtering and compaction.

use std::sync::Arc;

use super::{expect_watch_compacted, kv, next_change, next_changes, rev, val};
use crate::{Store, WatchEvent};

pub async fn watch_replays_history_then_live(store: Arc<dyn Store>) {
    let base = rev(&store).await;
    let r1 = store.create("/w/a", val("a1")).await.unwrap();
    let r2 = store.create("/w/b", val("b1")).await.unwrap();
    let r3 = store.update("/w/a", val("a2"), r1).await.unwrap();
    let (r4, _) = store.delete("/w/b", None).await.unwrap();

    let mut from_start = store.watch("/w/", base).await.unwrap();
    let mut from_r1 = store.watch("/w/", r1).await.unwrap();
    let history = vec![
        WatchEvent::Put(kv("/w/a", "a1", r1, r1)),
        WatchEvent::Put(kv("/w/b", "b1", r2, r2)),
        WatchEvent::Put(kv("/w/a", "a2", r1, r3)),
        WatchEvent::Delete(kv("/w/b", "b1", r2, r4)),
    ];
    assert_eq!(
        next_changes(&mut from_start, 4, "history from the start").await,
        history
    );
    assert_eq!(
        next_changes(&mut from_r1, 3, "history after r1").await,
        history[1..]
    );

    let r5 = store.create("/w/c", val("c1")).await.unwrap();
    let live = WatchEvent::Put(kv("/w/c", "c1", r5, r5));
    assert_eq!(next_change(&mut from_start, "a live event").await, live);
    assert_eq!(next_change(&mut from_r1, "a live event").await, live);
}

pub async fn watch_event_revisions(store: Arc<dyn Store>) {
    let base = rev(&store).await;
    let mut w = store.watch("/e/", base).await.unwrap();
    let r1 = store.create("/e/k", val("one")).await.unwrap();
    let r2 = store.update("/e/k", val("two"), r1).await.unwrap();
    let (r3, _) = store.delete("/e/k", Some(r2)).await.unwrap();
    let r4 = store.create("/e/k", val("three")).await.unwrap();
    let events = next_changes(&mut w, 4, "create, update, delete, recreate").await;
    assert_eq!(
        events,
        [
            WatchEvent::Put(kv("/e/k", "one", r1, r1)),
            WatchEvent::Put(kv("/e/k", "two", r1, r2)),
            WatchEvent::Delete(kv("/e/k", "two", r1, r3)),
            WatchEvent::Put(kv("/e/k", "three", r4, r4)),
        ],
        "Put carries create/mod revisions; Delete carries the last value at the deletion's revision"
    );
    assert_eq!(
        events.iter().map(WatchEvent::revision).collect::<Vec<_>>(),
        [r1, r2, r3, r4]
    );
}

pub async fn watch_filters_by_prefix(store: Arc<dyn Store>) {
    let base = rev(&store).await;
    let mut w = store.watch("/f/a/", base).await.unwrap();
    let r1 = store.create("/f/a/1", val("in")).await.unwrap();
    store.create("/f/ab/1", val("out")).await.unwrap();
    store.create("/f/b/1", val("out")).await.unwrap();
    store.create("/f/a", val("out")).await.unwrap();
    let (r2, _) = store.delete("/f/a/1", None).await.unwrap();
    store.delete("/f/ab/1", None).await.unwrap();
    let r3 = store.create("/f/a/2", val("in")).await.unwrap();
    assert_eq!(
        next_changes(&mut w, 3, "changes under the prefix").await,
        [
            WatchEvent::Put(kv("/f/a/1", "in", r1, r1)),
            WatchEvent::Delete(kv("/f/a/1", "in", r1, r2)),
            WatchEvent::Put(kv("/f/a/2", "in", r3, r3)),
        ],
        "only keys under /f/a/ (not /f/ab/, /f/b/ or /f/a itself)"
    );
    // History replay filters the same way.
    let mut replay = store.watch("/f/a/", base).await.unwrap();
    let keys: Vec<String> = next_changes(&mut replay, 3, "replayed changes under the prefix")
        .await
        .into_iter()
        .map(|ev| match ev {
            WatchEvent::Put(kv) | WatchEvent::Delete(kv) => kv.key,
            WatchEvent::Progress(_) => unreachable!(),
        })
        .collect();
    assert_eq!(keys, ["/f/a/1", "/f/a/1", "/f/a/2"]);
    let r4 = store.create("/f/a/3", val("in")).await.unwrap();
    assert_eq!(
        next_change(&mut replay, "the first live event").await,
        WatchEvent::Put(kv("/f/a/3", "in", r4, r4)),
        "nothing outside the prefix slipped in before it"
    );
}

pub async fn watch_from_current_sees_only_new(store: Arc<dyn Store>) {
    store.create("/n/old", val("old")).await.unwrap();
    let now = rev(&store).await;
    let mut w = store.watch("/n/", now).await.unwrap();
    let r = store.create("/n/new", val("new")).await.unwrap();
    assert_eq!(
        next_change(&mut w, "the first new write").await,
        WatchEvent::Put(kv("/n/new", "new", r, r))
    );
}

pub async fn watch_after_compaction(store: Arc<dyn Store>) {
    let base = rev(&store).await;
    let r1 = store.create("/x/a", val("a1")).await.unwrap();
    let r2 = store.update("/x/a", val("a2"), r1).await.unwrap();
    let r3 = store.create("/x/b", val("b1")).await.unwrap();
    let r4 = store.update("/x/a", val("a3"), r2).await.unwrap();
    store.compact(r2).await.unwrap();

    expect_watch_compacted(&store, "/x/", base).await;
    expect_watch_compacted(&store, "/x/", r1).await;
    let mut w = store.watch("/x/", r2).await.unwrap();
    assert_eq!(
        next_changes(&mut w, 2, "history after the compaction point").await,
        [
            WatchEvent::Put(kv("/x/b", "b1", r3, r3)),
            WatchEvent::Put(kv("/x/a", "a3", r1, r4))
        ]
    );
    let r5 = store.create("/x/c", val("c1")).await.unwrap();
    assert_eq!(
        next_change(&mut w, "a live event").await,
        WatchEvent::Put(kv("/x/c", "c1", r5, r5))
    );
}

pub async fn watch_dropped_streams_are_harmless(store: Arc<dyn Store>) {
    let base = rev(&store).await;
    for i in 0..50 {
        let w = store
            .watch(if i % 2 == 0 { "/g/" } else { "/other/" }, base)
            .await
            .unwrap();
        drop(w);
    }
    let r1 = store.create("/g/a", val("v")).await.unwrap();
    let mut w = store.watch("/g/", base).await.unwrap();
    assert_eq!(
        next_change(&mut w, "the write").await,
        WatchEvent::Put(kv("/g/a", "v", r1, r1))
    );
    for i in 0..100 {
        store.create(&format!("/g/k{i}"), val("v")).await.unwrap();
    }
    assert_eq!(
        next_changes(&mut w, 100, "writes after dropped watchers")
            .await
            .len(),
        100
    );
}
