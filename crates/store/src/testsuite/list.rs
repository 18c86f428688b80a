//! Cases for `list`: prefix ranges in key order, pagination, reads at past revisions and the
//! revision errors.

use std::sync::Arc;

use super::{kv, rev, val};
use crate::{Error, KeyValue, ListRequest, ListResponse, Revision, Store};

fn keys(resp: &ListResponse) -> Vec<&str> {
    resp.items.iter().map(|kv| kv.key.as_str()).collect()
}

async fn list(store: &Arc<dyn Store>, prefix: &str, revision: Revision) -> ListResponse {
    store
        .list(ListRequest {
            prefix: prefix.into(),
            revision,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("list {prefix:?} at {revision}: {e}"))
}

pub async fn list_prefix_in_key_order(store: Arc<dyn Store>) {
    // Created out of order, with neighbours on both sides of the prefix and keys that sort
    // differently by bytes than by naive character rules.
    for key in [
        "/l/b",
        "/k/z",
        "/l/c/x",
        "/l/a",
        "/m/a",
        "/l/c",
        "/l/B",
        "/l/\u{e9}",
        "/l/z",
        "/l/a0",
    ] {
        store.create(key, val("v")).await.unwrap();
    }
    let current = rev(&store).await;
    let resp = list(&store, "/l/", 0).await;
    assert_eq!(
        keys(&resp),
        [
            "/l/B",
            "/l/a",
            "/l/a0",
            "/l/b",
            "/l/c",
            "/l/c/x",
            "/l/z",
            "/l/\u{e9}"
        ],
        "keys in byte order"
    );
    assert_eq!(
        resp.revision, current,
        "a list at revision 0 reports the current revision"
    );
    assert!(!resp.more);
    let all = list(&store, "", 0).await;
    assert_eq!(all.items.len(), 10, "the empty prefix lists every key");
    assert_eq!(all.items.first().map(|kv| kv.key.as_str()), Some("/k/z"));
    assert_eq!(all.items.last().map(|kv| kv.key.as_str()), Some("/m/a"));
    let item = resp.items.iter().find(|kv| kv.key == "/l/c").unwrap();
    assert_eq!(item.value, val("v"));
    assert!(item.create_revision > 0 && item.create_revision == item.mod_revision);
}

pub async fn list_prefix_isolation(store: Arc<dyn Store>) {
    for key in ["/a/b/1", "/a/bc/1", "/a/b/2", "/a/b", "/a/c/1", "/a/a"] {
        store.create(key, val("v")).await.unwrap();
    }
    assert_eq!(keys(&list(&store, "/a/b/", 0).await), ["/a/b/1", "/a/b/2"]);
    assert_eq!(keys(&list(&store, "/a/bc/", 0).await), ["/a/bc/1"]);
    assert_eq!(
        keys(&list(&store, "/a/b", 0).await),
        ["/a/b", "/a/b/1", "/a/b/2", "/a/bc/1"],
        "a prefix is a byte prefix, and includes the key equal to it"
    );
    assert_eq!(keys(&list(&store, "/a/d/", 0).await), Vec::<&str>::new());
    assert_eq!(keys(&list(&store, "/a/b/1", 0).await), ["/a/b/1"]);
}

pub async fn list_skips_deleted_keys(store: Arc<dyn Store>) {
    for key in ["/d/1", "/d/2", "/d/3", "/d/4"] {
        store.create(key, val("v")).await.unwrap();
    }
    store.delete("/d/2", None).await.unwrap();
    store.delete("/d/4", None).await.unwrap();
    assert_eq!(keys(&list(&store, "/d/", 0).await), ["/d/1", "/d/3"]);
    store.create("/d/2", val("back")).await.unwrap();
    let resp = list(&store, "/d/", 0).await;
    assert_eq!(keys(&resp), ["/d/1", "/d/2", "/d/3"]);
    assert_eq!(resp.items[1].value, val("back"));
}

pub async fn list_pagination(store: Arc<dyn Store>) {
    for i in 0..10 {
        store.create(&format!("/p/{i:02}"), val("v")).await.unwrap();
    }
    store.create("/p0", val("outside")).await.unwrap();
    store.create("/q/00", val("outside")).await.unwrap();
    store.delete("/p/03", None).await.unwrap();
    let page = |start_after: Option<&str>, revision: Revision, limit: usize| ListRequest {
        prefix: "/p/".into(),
        start_after: start_after.map(str::to_string),
        revision,
        limit,
    };

    let first = store.list(page(None, 0, 3)).await.unwrap();
    assert_eq!(keys(&first), ["/p/00", "/p/01", "/p/02"]);
    assert!(first.more, "more keys follow the first page");
    let at = first.revision;

    // Writes between pages are not seen by pages read at the first page's revision.
    store.create("/p/10", val("later")).await.unwrap();
    let cur = store.get("/p/05").await.unwrap().unwrap();
    store
        .update("/p/05", val("changed"), cur.mod_revision)
        .await
        .unwrap();
    store.delete("/p/07", None).await.unwrap();

    let second = store.list(page(Some("/p/02"), at, 3)).await.unwrap();
    assert_eq!(
        keys(&second),
        ["/p/04", "/p/05", "/p/06"],
        "deleted keys are not counted"
    );
    assert!(second.more);
    assert_eq!(second.revision, at);
    assert_eq!(
        second.items[1].value,
        val("v"),
        "the page shows the value at its revision"
    );
    let third = store.list(page(Some("/p/06"), at, 3)).await.unwrap();
    assert_eq!(keys(&third), ["/p/07", "/p/08", "/p/09"]);
    assert!(
        !third.more,
        "a page ending exactly at the last key has no more"
    );
    let past_end = store.list(page(Some("/p/09"), at, 3)).await.unwrap();
    assert!(past_end.items.is_empty() && !past_end.more);

    let all = store.list(page(None, 0, 0)).await.unwrap();
    assert_eq!(
        keys(&all),
        [
            "/p/00", "/p/01", "/p/02", "/p/04", "/p/05", "/p/06", "/p/08", "/p/09", "/p/10"
        ],
        "limit 0 means no limit"
    );
    assert!(!all.more);
    let exact = store.list(page(None, 0, 9)).await.unwrap();
    assert_eq!(exact.items.len(), 9);
    assert!(!exact.more, "limit equal to the number of keys: no more");
    let one_short = store.list(page(None, 0, 8)).await.unwrap();
    assert!(one_short.more);
    let current_page = store.list(page(Some("/p/04"), 0, 2)).await.unwrap();
    assert_eq!(keys(&current_page), ["/p/05", "/p/06"]);
    assert_eq!(current_page.items[0].value, val("changed"));
}

pub async fn list_at_past_revision(store: Arc<dyn Store>) {
    let r1 = store.create("/h/a", val("a1")).await.unwrap();
    let r2 = store.create("/h/b", val("b1")).await.unwrap();
    let r3 = store.update("/h/a", val("a2"), r1).await.unwrap();
    let (r4, _) = store.delete("/h/b", None).await.unwrap();
    let r5 = store.create("/h/c", val("c1")).await.unwrap();

    let at = |r| {
        let store = store.clone();
        async move {
            let resp = list(&store, "/h/", r).await;
            assert_eq!(resp.revision, r, "a list reports the revision it read at");
            assert!(!resp.more);
            resp.items
        }
    };
    let expect: [(Revision, Vec<KeyValue>); 5] = [
        (r1, vec![kv("/h/a", "a1", r1, r1)]),
        (r2, vec![kv("/h/a", "a1", r1, r1), kv("/h/b", "b1", r2, r2)]),
        (r3, vec![kv("/h/a", "a2", r1, r3), kv("/h/b", "b1", r2, r2)]),
        (r4, vec![kv("/h/a", "a2", r1, r3)]),
        (r5, vec![kv("/h/a", "a2", r1, r3), kv("/h/c", "c1", r5, r5)]),
    ];
    for (r, want) in expect {
        assert_eq!(at(r).await, want, "list at revision {r}");
    }
    let past = store
        .list(ListRequest {
            prefix: "/h/".into(),
            revision: r2,
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(keys(&past), ["/h/a"]);
    assert!(
        past.more,
        "a later-deleted key still counts at a past revision"
    );
}

pub async fn list_future_revision(store: Arc<dyn Store>) {
    let r = store.create("/f/a", val("v")).await.unwrap();
    let err = store
        .list(ListRequest {
            prefix: "/f/".into(),
            revision: r + 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    match err {
        Error::FutureRevision { requested, current } => {
            assert_eq!((requested, current), (r + 1, r))
        }
        other => panic!("list at a future revision: want FutureRevision, got {other:?}"),
    }
    assert_eq!(
        list(&store, "/f/", r).await.items.len(),
        1,
        "the current revision is readable"
    );
}

pub async fn list_compacted_revision(store: Arc<dyn Store>) {
    let r1 = store.create("/c/a", val("a1")).await.unwrap();
    let r2 = store.update("/c/a", val("a2"), r1).await.unwrap();
    let r3 = store.create("/c/b", val("b1")).await.unwrap();
    let r4 = store.update("/c/a", val("a3"), r2).await.unwrap();
    store.compact(r3).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), r3);

    let err = store
        .list(ListRequest {
            prefix: "/c/".into(),
            revision: r2,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.is_compacted(), "list below the compaction point: {err}");
    match err {
        Error::Compacted {
            requested,
            compacted,
        } => assert_eq!((requested, compacted), (r2, r3)),
        other => panic!("want Compacted, got {other:?}"),
    }
    assert_eq!(
        list(&store, "/c/", r3).await.items,
        [kv("/c/a", "a2", r1, r2), kv("/c/b", "b1", r3, r3)],
        "the compaction point itself stays readable"
    );
    assert_eq!(
        list(&store, "/c/", 0).await.items,
        [kv("/c/a", "a3", r1, r4), kv("/c/b", "b1", r3, r3)]
    );
}
