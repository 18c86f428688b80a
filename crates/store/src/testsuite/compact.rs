//! Cases for `compact`: current values survive, history older than the compaction point is
//! gone, history after it stays.

use std::sync::Arc;

use super::{expect_watch_compacted, kv, next_changes, rev, val};
use crate::{Error, ListRequest, Store, WatchEvent};

pub async fn compact_keeps_current_values(store: Arc<dyn Store>) {
    let r_old = store.create("/k/untouched", val("old")).await.unwrap();
    let mut r_busy = store.create("/k/busy", val("0")).await.unwrap();
    let r_busy_created = r_busy;
    for i in 1..=20 {
        r_busy = store
            .update("/k/busy", bytes::Bytes::from(format!("{i}")), r_busy)
            .await
            .unwrap();
    }
    store.create("/k/gone", val("x")).await.unwrap();
    store.delete("/k/gone", None).await.unwrap();
    let r_late = store.create("/k/late", val("l")).await.unwrap();
    let point = rev(&store).await;
    let (r_del, _) = store.delete("/k/late", None).await.unwrap();

    store.compact(point).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), point);
    assert_eq!(
        store.get("/k/untouched").await.unwrap(),
        Some(kv("/k/untouched", "old", r_old, r_old))
    );
    assert_eq!(
        store.get("/k/busy").await.unwrap(),
        Some(kv("/k/busy", "20", r_busy_created, r_busy))
    );
    assert_eq!(store.get("/k/gone").await.unwrap(), None);
    assert_eq!(store.get("/k/late").await.unwrap(), None);
    let now = store
        .list(ListRequest {
            prefix: "/k/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        now.items,
        [
            kv("/k/busy", "20", r_busy_created, r_busy),
            kv("/k/untouched", "old", r_old, r_old)
        ]
    );
    let at_point = store
        .list(ListRequest {
            prefix: "/k/".into(),
            revision: point,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        at_point
            .items
            .iter()
            .map(|kv| kv.key.as_str())
            .collect::<Vec<_>>(),
        ["/k/busy", "/k/late", "/k/untouched"],
        "the compaction point still shows keys deleted after it"
    );
    assert_eq!(at_point.items[1], kv("/k/late", "l", r_late, r_late));

    // Compacting to an older revision is a no-op; writes and CAS continue normally.
    store.compact(point - 3).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), point);
    let r = store
        .update("/k/untouched", val("new"), r_old)
        .await
        .unwrap();
    assert_eq!(r, r_del + 1);
    store.create("/k/gone", val("again")).await.unwrap();
    assert_eq!(
        store.get("/k/gone").await.unwrap().map(|kv| kv.value),
        Some(val("again"))
    );
}

pub async fn compact_bounds_history(store: Arc<dyn Store>) {
    let base = rev(&store).await;
    let mut revs = Vec::new();
    let mut r = store.create("/b/k", val("v0")).await.unwrap();
    revs.push(r);
    for i in 1..30 {
        r = store
            .update("/b/k", bytes::Bytes::from(format!("v{i}")), r)
            .await
            .unwrap();
        revs.push(r);
    }
    let mid = revs[14];
    store.compact(mid).await.unwrap();
    for old in [base + 1, revs[5], mid - 1] {
        let err = store
            .list(ListRequest {
                prefix: "/b/".into(),
                revision: old,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(
            err.is_compacted(),
            "list at {old} after compacting to {mid}: {err}"
        );
    }
    expect_watch_compacted(&store, "/b/", base).await;
    expect_watch_compacted(&store, "/b/", mid - 1).await;
    for (i, r) in revs.iter().enumerate().skip(14) {
        let resp = store
            .list(ListRequest {
                prefix: "/b/".into(),
                revision: *r,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            resp.items[0].value,
            bytes::Bytes::from(format!("v{i}")),
            "history at {r}"
        );
    }
    let mut w = store.watch("/b/", mid).await.unwrap();
    let events = next_changes(&mut w, 15, "history after the compaction point").await;
    let got: Vec<_> = events.iter().map(WatchEvent::revision).collect();
    assert_eq!(
        got,
        revs[15..],
        "every change after the compaction point is replayed"
    );

    // A second compaction moves the point forward again.
    store.compact(revs[25]).await.unwrap();
    expect_watch_compacted(&store, "/b/", mid).await;
    assert_eq!(store.compacted_revision().await.unwrap(), revs[25]);
}

pub async fn compact_rejects_future_revision(store: Arc<dyn Store>) {
    let r = store.create("/z/a", val("v")).await.unwrap();
    let err = store.compact(r + 10).await.unwrap_err();
    assert!(
        matches!(err, Error::FutureRevision { requested, current } if requested == r + 10 && current == r),
        "compacting beyond the current revision: {err:?}"
    );
    assert!(store.compacted_revision().await.unwrap() < r + 10);
    store.compact(r).await.unwrap();
    assert_eq!(
        store.compacted_revision().await.unwrap(),
        r,
        "compacting to the current revision works"
    );
    assert_eq!(
        store.get("/z/a").await.unwrap().map(|kv| kv.value),
        Some(val("v"))
    );
}
