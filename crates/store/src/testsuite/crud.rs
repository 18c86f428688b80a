//! Cases for single-key reads and writes: create, get, update (compare-and-swap), delete, and
//! how revisions advance.

use std::sync::Arc;

use bytes::Bytes;

use super::{kv, rev, val};
use crate::{Error, Store};

pub async fn create_then_get(store: Arc<dyn Store>) {
    let base = rev(&store).await;
    assert_eq!(
        store.get("/t/a").await.unwrap(),
        None,
        "absent key reads as None"
    );
    let r = store.create("/t/a", val("one")).await.unwrap();
    assert_eq!(r, base + 1, "the first write gets the next revision");
    assert_eq!(
        store.get("/t/a").await.unwrap(),
        Some(kv("/t/a", "one", r, r))
    );
    assert_eq!(rev(&store).await, r);
}

pub async fn create_existing_fails(store: Arc<dyn Store>) {
    let r = store.create("/t/a", val("one")).await.unwrap();
    let err = store.create("/t/a", val("two")).await.unwrap_err();
    assert!(err.is_already_exists(), "second create: {err}");
    assert!(
        matches!(&err, Error::AlreadyExists { key } if key == "/t/a"),
        "{err:?}"
    );
    assert_eq!(
        store.get("/t/a").await.unwrap(),
        Some(kv("/t/a", "one", r, r))
    );
    assert_eq!(
        rev(&store).await,
        r,
        "a failed create does not take a revision"
    );
}

pub async fn update_compare_and_swap(store: Arc<dyn Store>) {
    let r1 = store.create("/t/a", val("one")).await.unwrap();
    let r2 = store.update("/t/a", val("two"), r1).await.unwrap();
    assert_eq!(r2, r1 + 1);
    assert_eq!(
        store.get("/t/a").await.unwrap(),
        Some(kv("/t/a", "two", r1, r2))
    );

    let err = store.update("/t/a", val("stale"), r1).await.unwrap_err();
    assert!(err.is_conflict(), "update with a stale revision: {err}");
    match err {
        Error::Conflict {
            key,
            expected,
            current,
        } => {
            assert_eq!(key, "/t/a");
            assert_eq!(expected, r1);
            assert_eq!(
                current.as_deref(),
                Some(&kv("/t/a", "two", r1, r2)),
                "conflict carries the current value"
            );
        }
        other => panic!("want Conflict, got {other:?}"),
    }
    assert_eq!(
        store.get("/t/a").await.unwrap(),
        Some(kv("/t/a", "two", r1, r2))
    );

    let r3 = store.update("/t/a", val("three"), r2).await.unwrap();
    assert_eq!(r3, r2 + 1);
    assert_eq!(
        store.get("/t/a").await.unwrap(),
        Some(kv("/t/a", "three", r1, r3))
    );
}

pub async fn update_missing_key_fails(store: Arc<dyn Store>) {
    let err = store.update("/t/none", val("x"), 1).await.unwrap_err();
    assert!(err.is_not_found(), "update of an absent key: {err}");
    assert!(
        matches!(&err, Error::NotFound { key } if key == "/t/none"),
        "{err:?}"
    );

    let r1 = store.create("/t/a", val("one")).await.unwrap();
    store.delete("/t/a", None).await.unwrap();
    let err = store.update("/t/a", val("two"), r1).await.unwrap_err();
    assert!(err.is_not_found(), "update of a deleted key: {err}");
    assert_eq!(
        store.get("/t/a").await.unwrap(),
        None,
        "a failed update does not resurrect"
    );
}

pub async fn delete_returns_last_value(store: Arc<dyn Store>) {
    let r1 = store.create("/t/a", val("one")).await.unwrap();
    let r2 = store.update("/t/a", val("two"), r1).await.unwrap();
    let (r3, last) = store.delete("/t/a", None).await.unwrap();
    assert_eq!(r3, r2 + 1);
    assert_eq!(
        last,
        kv("/t/a", "two", r1, r2),
        "delete returns the value it removed"
    );
    assert_eq!(store.get("/t/a").await.unwrap(), None);
    assert_eq!(rev(&store).await, r3);

    let err = store.delete("/t/a", None).await.unwrap_err();
    assert!(err.is_not_found(), "deleting a deleted key: {err}");
    let err = store.delete("/t/never", Some(5)).await.unwrap_err();
    assert!(
        err.is_not_found(),
        "deleting an absent key with a revision: {err}"
    );
    assert_eq!(
        rev(&store).await,
        r3,
        "failed deletes do not take revisions"
    );
}

pub async fn delete_with_expected_revision(store: Arc<dyn Store>) {
    let r1 = store.create("/t/a", val("one")).await.unwrap();
    let r2 = store.update("/t/a", val("two"), r1).await.unwrap();
    let err = store.delete("/t/a", Some(r1)).await.unwrap_err();
    assert!(err.is_conflict(), "delete with a stale revision: {err}");
    match err {
        Error::Conflict {
            key,
            expected,
            current,
        } => {
            assert_eq!((key.as_str(), expected), ("/t/a", r1));
            assert_eq!(current.as_deref(), Some(&kv("/t/a", "two", r1, r2)));
        }
        other => panic!("want Conflict, got {other:?}"),
    }
    assert_eq!(
        store.get("/t/a").await.unwrap(),
        Some(kv("/t/a", "two", r1, r2)),
        "still present"
    );
    let (r3, last) = store.delete("/t/a", Some(r2)).await.unwrap();
    assert_eq!(r3, r2 + 1);
    assert_eq!(last, kv("/t/a", "two", r1, r2));
    assert_eq!(store.get("/t/a").await.unwrap(), None);
}

pub async fn failed_writes_keep_revision(store: Arc<dyn Store>) {
    let r1 = store.create("/t/a", val("one")).await.unwrap();
    assert!(store.create("/t/a", val("x")).await.is_err());
    assert!(store.update("/t/a", val("x"), r1 + 100).await.is_err());
    assert!(store.update("/t/b", val("x"), r1).await.is_err());
    assert!(store.delete("/t/a", Some(r1 + 100)).await.is_err());
    assert!(store.delete("/t/b", None).await.is_err());
    assert_eq!(rev(&store).await, r1);
    let r2 = store.create("/t/b", val("two")).await.unwrap();
    assert_eq!(r2, r1 + 1, "the next successful write follows directly");
}

pub async fn revisions_increase_by_one(store: Arc<dyn Store>) {
    let mut last = rev(&store).await;
    for i in 0..20 {
        let key = format!("/t/k{}", i % 5);
        let r = match store.get(&key).await.unwrap() {
            None => store
                .create(&key, Bytes::from(format!("v{i}")))
                .await
                .unwrap(),
            Some(cur) if i % 3 == 0 => store.delete(&key, Some(cur.mod_revision)).await.unwrap().0,
            Some(cur) => store
                .update(&key, Bytes::from(format!("v{i}")), cur.mod_revision)
                .await
                .unwrap(),
        };
        assert_eq!(r, last + 1, "write {i} on {key}");
        assert_eq!(rev(&store).await, r);
        last = r;
    }
}

pub async fn recreate_after_delete(store: Arc<dyn Store>) {
    let r1 = store.create("/t/a", val("one")).await.unwrap();
    let (r2, _) = store.delete("/t/a", None).await.unwrap();
    let r3 = store.create("/t/a", val("again")).await.unwrap();
    assert!(r1 < r2 && r2 < r3);
    assert_eq!(
        store.get("/t/a").await.unwrap(),
        Some(kv("/t/a", "again", r3, r3)),
        "a recreated key has a new create_revision"
    );
    let err = store.update("/t/a", val("x"), r1).await.unwrap_err();
    assert!(
        err.is_conflict(),
        "the old incarnation's revision is stale: {err}"
    );
    let r4 = store.update("/t/a", val("x"), r3).await.unwrap();
    assert_eq!(
        store.get("/t/a").await.unwrap(),
        Some(kv("/t/a", "x", r3, r4))
    );
}

pub async fn empty_and_large_values(store: Arc<dyn Store>) {
    let r_empty = store.create("/t/empty", Bytes::new()).await.unwrap();
    assert_eq!(
        store.get("/t/empty").await.unwrap(),
        Some(kv("/t/empty", "", r_empty, r_empty)),
        "an empty value is a value"
    );

    let large: Bytes = (0..256 * 1024)
        .map(|i| (i * 31 % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let r = store.create("/t/large", large.clone()).await.unwrap();
    let got = store
        .get("/t/large")
        .await
        .unwrap()
        .expect("large value readable");
    assert_eq!((got.value.len(), got.mod_revision), (large.len(), r));
    assert!(got.value == large, "large value round-trips byte for byte");

    let binary = Bytes::from_static(&[0, 255, 0, 1, 0xc3, 0x28]);
    let r1 = store
        .update("/t/empty", binary.clone(), r_empty)
        .await
        .unwrap();
    let got = store
        .get("/t/empty")
        .await
        .unwrap()
        .expect("binary value readable");
    assert_eq!(
        (got.value, got.mod_revision),
        (binary, r1),
        "non-UTF-8 values round-trip"
    );
}
