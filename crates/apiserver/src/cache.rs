//! The watch cache: an in-memory, always-current copy of every stored object, fed by one
//! store watch over the whole keyspace, with a bounded history of recent changes per resource.
//!
//! Why: lists and watches are the API server's hot paths. Serving them from memory keeps the
//! store for writes and point reads; and each change is decoded (resourceVersion injected,
//! selectable fields extracted) once, and its watch-event encoding is produced once and shared
//! by every watcher of the resource (DESIGN §10).
//!
//! Consistency: the cache applies store events in revision order. A consistent list first
//! asks the store for its current revision and waits until the cache has applied it. A watch
//! registers for live events and snapshots its starting state under one lock, so it neither
//! misses nor repeats an event.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use berth_store::{ListRequest, Revision, Store, WatchEvent};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::{broadcast, watch};

use crate::error::{ApiError, Result};

/// Events kept per resource for watches that start at a past resourceVersion.
const HISTORY_PER_RESOURCE: usize = 4096;
/// Live-event queue per watcher before it is considered lagging (it then resumes from
/// history).
const BROADCAST_CAPACITY: usize = 1024;

/// One object as the cache holds it: its identity, what selectors look at, and its JSON
/// encoding with `metadata.resourceVersion` set.
#[derive(Debug)]
pub struct CachedObject {
    pub key: String,
    pub namespace: Option<String>,
    pub name: String,
    pub rv: Revision,
    pub labels: Option<serde_json::Map<String, Value>>,
    /// Values of the resource's selectable fields (and metadata.name/namespace).
    pub fields: Vec<(&'static str, Option<String>)>,
    pub json: Bytes,
}

impl CachedObject {
    /// Decodes a stored value, setting `metadata.resourceVersion` to `rv`.
    pub fn decode(
        key: &str,
        value: &[u8],
        rv: Revision,
        selectable: &'static [&'static str],
    ) -> Option<CachedObject> {
        let mut obj: Value = serde_json::from_slice(value).ok()?;
        crate::codec::set_resource_version(&mut obj, rv);
        Some(Self::from_value(key, &obj, rv, selectable))
    }

    pub fn from_value(
        key: &str,
        obj: &Value,
        rv: Revision,
        selectable: &'static [&'static str],
    ) -> CachedObject {
        let fields = selectable
            .iter()
            .map(|f| (*f, berth_api::meta::selectable_value(obj, f)))
            .collect();
        CachedObject {
            key: key.to_string(),
            namespace: berth_api::meta::namespace(obj).map(String::from),
            name: berth_api::meta::name(obj).unwrap_or_default().to_string(),
            rv,
            labels: berth_api::meta::labels(obj).cloned(),
            fields,
            json: Bytes::from(serde_json::to_vec(obj).unwrap_or_default()),
        }
    }

    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// Value of a field for field selectors.
    pub fn field(&self, name: &str) -> Option<String> {
        match name {
            "metadata.name" => Some(self.name.clone()),
            "metadata.namespace" => Some(self.namespace.clone().unwrap_or_default()),
            _ => self
                .fields
                .iter()
                .find(|(f, _)| *f == name)
                .and_then(|(_, v)| v.clone()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// A change of one object, shared by every watcher of its resource.
#[derive(Debug)]
pub struct Change {
    pub kind: EventType,
    pub obj: Arc<CachedObject>,
    /// The object before the change (None for creations).
    pub prev: Option<Arc<CachedObject>>,
}

impl Change {
    fn new(kind: EventType, obj: Arc<CachedObject>, prev: Option<Arc<CachedObject>>) -> Change {
        Change { kind, obj, prev }
    }

    pub fn rv(&self) -> Revision {
        self.obj.rv
    }

    /// The JSON watch-event line for this change sent as `as_type`, as three chunks: static
    /// framing around the object's JSON, which was encoded once when the change was applied
    /// and is shared (reference-counted, not copied) by every watcher and the history.
    pub fn json_line(&self, as_type: EventType) -> [Bytes; 3] {
        let head: &'static [u8] = match as_type {
            EventType::Added => b"{\"type\":\"ADDED\",\"object\":",
            EventType::Modified => b"{\"type\":\"MODIFIED\",\"object\":",
            EventType::Deleted => b"{\"type\":\"DELETED\",\"object\":",
        };
        [
            Bytes::from_static(head),
            self.obj.json.clone(),
            Bytes::from_static(b"}\n"),
        ]
    }
}

/// `{"type":"ADDED","object":<json>}\n`
pub fn encode_event(kind: &str, object_json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object_json.len() + 32);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    out.extend_from_slice(object_json);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

/// What a watcher receives on the live channel.
#[derive(Clone, Debug)]
pub enum Live {
    Change(Arc<Change>),
    /// Every change up to this revision has been delivered.
    Bookmark(Revision),
}

struct ResourceState {
    objects: BTreeMap<String, Arc<CachedObject>>,
    history: VecDeque<Arc<Change>>,
    /// Every change with a revision above this one is in `history`.
    window_start: Revision,
    /// Revision of the last change applied to this resource.
    applied: Revision,
}

/// The cache of one resource (one storage key prefix).
pub struct ResourceCache {
    prefix: String,
    selectable: &'static [&'static str],
    global: Arc<watch::Sender<Revision>>,
    state: RwLock<ResourceState>,
    live: broadcast::Sender<Live>,
}

/// A consistent starting point for a watch: the changes to replay, and the live channel
/// that continues right after them.
pub struct WatchStart {
    pub initial: Vec<Arc<Change>>,
    pub live: broadcast::Receiver<Live>,
    /// Revision of the state the initial events describe.
    pub revision: Revision,
}

impl ResourceCache {
    fn new(
        prefix: String,
        selectable: &'static [&'static str],
        window_start: Revision,
        global: Arc<watch::Sender<Revision>>,
    ) -> Self {
        ResourceCache {
            prefix,
            selectable,
            global,
            state: RwLock::new(ResourceState {
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                window_start,
                applied: window_start,
            }),
            live: broadcast::channel(BROADCAST_CAPACITY).0,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, ResourceState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, ResourceState> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The revision the state under `st` corresponds to. The follower applies a change and
    /// then publishes its revision, so at most the last applied change is ahead of the
    /// published revision.
    fn snapshot_revision(&self, st: &ResourceState) -> Revision {
        (*self.global.borrow()).max(st.applied)
    }

    /// Objects under `prefix` (a namespace prefix, or the resource prefix) after
    /// `start_after`, at most `limit` (0 = all). Returns the objects, whether more remain,
    /// and the revision of the snapshot they were read from.
    pub fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        filter: impl Fn(&CachedObject) -> bool,
    ) -> (Vec<Arc<CachedObject>>, bool, Revision) {
        let st = self.read();
        let revision = self.snapshot_revision(&st);
        let start = match start_after {
            Some(k) => std::ops::Bound::Excluded(k.to_string()),
            None => std::ops::Bound::Included(prefix.to_string()),
        };
        let mut out = Vec::new();
        for (key, obj) in st.objects.range((start, std::ops::Bound::Unbounded)) {
            if !key.starts_with(prefix) {
                break;
            }
            if !filter(obj) {
                continue;
            }
            if limit > 0 && out.len() == limit {
                return (out, true, revision);
            }
            out.push(obj.clone());
        }
        (out, false, revision)
    }

    pub fn get(&self, key: &str) -> Option<Arc<CachedObject>> {
        self.read().objects.get(key).cloned()
    }

    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    /// Starts a watch. `from = None` starts with synthetic ADDED events for every current
    /// object under `prefix`; `Some(rv)` replays the changes after `rv` (410 if that history
    /// is gone).
    pub fn watch(&self, prefix: &str, from: Option<Revision>) -> Result<WatchStart> {
        let st = self.read();
        let current = self.snapshot_revision(&st);
        let live = self.live.subscribe();
        let initial = match from {
            None => st
                .objects
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, o)| Arc::new(Change::new(EventType::Added, o.clone(), None)))
                .collect(),
            Some(rv) => {
                if rv < st.window_start {
                    return Err(ApiError::gone(format!(
                        "too old resource version: {rv} ({})",
                        st.window_start + 1
                    )));
                }
                st.history
                    .iter()
                    .filter(|c| c.rv() > rv && c.obj.key.starts_with(prefix))
                    .cloned()
                    .collect()
            }
        };
        Ok(WatchStart {
            initial,
            live,
            revision: current,
        })
    }

    /// Changes after `rv` still in history (used when a lagging watcher catches up).
    pub fn changes_since(&self, rv: Revision) -> Option<Vec<Arc<Change>>> {
        let st = self.read();
        if rv < st.window_start {
            return None;
        }
        Some(st.history.iter().filter(|c| c.rv() > rv).cloned().collect())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Live> {
        self.live.subscribe()
    }

    fn apply(&self, ev: &WatchEvent) {
        let mut st = self.write();
        let change = match ev {
            WatchEvent::Put(kv) => {
                let Some(obj) =
                    CachedObject::decode(&kv.key, &kv.value, kv.mod_revision, self.selectable)
                else {
                    tracing::warn!(key = %kv.key, "skipping undecodable stored object");
                    return;
                };
                let obj = Arc::new(obj);
                let prev = st.objects.insert(kv.key.clone(), obj.clone());
                let kind = if prev.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                };
                Change::new(kind, obj, prev)
            }
            WatchEvent::Delete(kv) => {
                let prev = st.objects.remove(&kv.key);
                let Some(obj) =
                    CachedObject::decode(&kv.key, &kv.value, kv.mod_revision, self.selectable)
                else {
                    return;
                };
                Change::new(EventType::Deleted, Arc::new(obj), prev)
            }
            WatchEvent::Progress(_) => return,
        };
        let change = Arc::new(change);
        st.applied = change.rv();
        st.history.push_back(change.clone());
        while st.history.len() > HISTORY_PER_RESOURCE {
            if let Some(old) = st.history.pop_front() {
                st.window_start = old.rv();
            }
        }
        // Sent under the lock: a watcher that snapshots under the read lock sees each change
        // either in its snapshot or on its channel, never both and never neither.
        let _ = self.live.send(Live::Change(change));
    }

    fn load(&self, kv: &berth_store::KeyValue) {
        if let Some(obj) =
            CachedObject::decode(&kv.key, &kv.value, kv.mod_revision, self.selectable)
        {
            self.write().objects.insert(kv.key.clone(), Arc::new(obj));
        }
    }

    fn bookmark(&self, rv: Revision) {
        let _ = self.live.send(Live::Bookmark(rv));
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// The prefix of the resource a key belongs to: `/registry/<group>/<resource>/`.
pub fn resource_prefix(key: &str) -> Option<&str> {
    let mut slashes = key.match_indices('/').map(|(i, _)| i);
    let _root = slashes.next()?;
    let _registry = slashes.next()?;
    let _group = slashes.next()?;
    let end = slashes.next()?;
    Some(&key[..=end])
}

/// Function that says which fields of a resource (by key prefix) are selectable.
pub type SelectableFn = Arc<dyn Fn(&str) -> &'static [&'static str] + Send + Sync>;

/// The cache of every resource.
pub struct WatchCache {
    resources: RwLock<HashMap<String, Arc<ResourceCache>>>,
    revision: Arc<watch::Sender<Revision>>,
    start_revision: Revision,
    selectable: SelectableFn,
}

impl WatchCache {
    /// Loads every object from the store and starts following its changes. The returned
    /// future must be polled (spawned) for the cache to stay current.
    pub async fn start(
        store: Arc<dyn Store>,
        selectable: SelectableFn,
    ) -> Result<(
        Arc<WatchCache>,
        impl std::future::Future<Output = ()> + Send,
    )> {
        let mut revision = 0;
        let mut start_after = None;
        let mut items = Vec::new();
        loop {
            let page = store
                .list(ListRequest {
                    prefix: "/registry/".into(),
                    start_after: start_after.clone(),
                    revision,
                    limit: 5000,
                })
                .await?;
            revision = page.revision;
            start_after = page.items.last().map(|kv| kv.key.clone());
            items.extend(page.items);
            if !page.more {
                break;
            }
        }
        let cache = Arc::new(WatchCache {
            resources: RwLock::new(HashMap::new()),
            revision: Arc::new(watch::channel(revision).0),
            start_revision: revision,
            selectable,
        });
        for kv in &items {
            if let Some(rc) = cache.resource_for_key(&kv.key) {
                rc.load(kv);
            }
        }
        drop(items);
        let stream = store.watch("/registry/", revision).await?;
        let follower = {
            let cache = cache.clone();
            async move { cache.follow(stream, store).await }
        };
        Ok((cache, follower))
    }

    async fn follow(self: Arc<Self>, mut stream: berth_store::WatchStream, store: Arc<dyn Store>) {
        let mut bookmark = tokio::time::interval(Duration::from_secs(5));
        bookmark.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = stream.next() => match ev {
                    Some(Ok(ev)) => {
                        let rv = ev.revision();
                        if let WatchEvent::Put(kv) | WatchEvent::Delete(kv) = &ev
                            && let Some(rc) = self.resource_for_key(&kv.key) {
                                rc.apply(&ev);
                            }
                        self.revision.send_if_modified(|r| {
                            if rv > *r { *r = rv; true } else { false }
                        });
                    }
                    Some(Err(e)) => {
                        tracing::error!(error = %e, "store watch failed; watch cache stops following");
                        return;
                    }
                    None => return,
                },
                _ = bookmark.tick() => {
                    // Progress: if the store has moved on without events for us (there are
                    // none: we watch everything), the current revision is fully applied.
                    let rv = *self.revision.borrow();
                    let _ = &store;
                    for rc in self.all() {
                        rc.bookmark(rv);
                    }
                }
            }
        }
    }

    fn all(&self) -> Vec<Arc<ResourceCache>> {
        self.resources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The cache of the resource a key belongs to (created on first use).
    pub fn resource_for_key(&self, key: &str) -> Option<Arc<ResourceCache>> {
        let prefix = resource_prefix(key)?;
        Some(self.resource(prefix))
    }

    /// The cache of a resource prefix (created on first use).
    pub fn resource(&self, prefix: &str) -> Arc<ResourceCache> {
        if let Some(rc) = self
            .resources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(prefix)
        {
            return rc.clone();
        }
        let mut map = self.resources.write().unwrap_or_else(|p| p.into_inner());
        map.entry(prefix.to_string())
            .or_insert_with(|| {
                Arc::new(ResourceCache::new(
                    prefix.to_string(),
                    (self.selectable)(prefix),
                    self.start_revision,
                    self.revision.clone(),
                ))
            })
            .clone()
    }

    /// The latest revision the cache has applied.
    pub fn revision(&self) -> Revision {
        *self.revision.borrow()
    }

    /// Waits until the cache has applied `rv`; false on timeout.
    pub async fn wait_for(&self, rv: Revision, timeout: Duration) -> bool {
        let mut rx = self.revision.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r >= rv))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_store::MemoryStore;

    fn no_fields(_: &str) -> &'static [&'static str] {
        &[]
    }

    async fn started(store: &MemoryStore) -> Arc<WatchCache> {
        let (cache, follow) = WatchCache::start(Arc::new(store.clone()), Arc::new(no_fields))
            .await
            .unwrap();
        tokio::spawn(follow);
        cache
    }

    fn obj(name: &str) -> Bytes {
        Bytes::from(serde_json::to_vec(&serde_json::json!({"metadata": {"name": name, "namespace": "d", "labels": {"a": name}}})).unwrap())
    }

    #[test]
    fn prefixes_of_keys() {
        assert_eq!(
            resource_prefix("/registry/apps/deployments/ns/x"),
            Some("/registry/apps/deployments/")
        );
        assert_eq!(
            resource_prefix("/registry/core/nodes/n1"),
            Some("/registry/core/nodes/")
        );
        assert_eq!(resource_prefix("/registry/x"), None);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn loads_then_follows_and_replays_history() {
        tokio::time::timeout(Duration::from_secs(10), async {
            let store = MemoryStore::new();
            store
                .create("/registry/core/pods/d/a", obj("a"))
                .await
                .unwrap();
            let cache = started(&store).await;
            let rc = cache.resource("/registry/core/pods/");
            assert_eq!(rc.len(), 1);
            let r1 = cache.revision();
            let rv = store
                .create("/registry/core/pods/d/b", obj("b"))
                .await
                .unwrap();
            assert!(cache.wait_for(rv, Duration::from_secs(5)).await);
            let (items, more, _) = rc.list("/registry/core/pods/d/", None, 0, |_| true);
            assert_eq!((items.len(), more), (2, false));
            let v = items[1].value();
            assert_eq!(v["metadata"]["resourceVersion"], rv.to_string());
            // replay from r1 gives exactly the creation of b
            let w = rc.watch("/registry/core/pods/", Some(r1)).unwrap();
            assert_eq!(w.initial.len(), 1);
            assert_eq!(w.initial[0].kind, EventType::Added);
            assert_eq!(w.initial[0].obj.name, "b");
            let parts = w.initial[0].json_line(EventType::Added);
            let line: Vec<u8> = parts.iter().flat_map(|b| b.iter().copied()).collect();
            assert!(line.starts_with(b"{\"type\":\"ADDED\",\"object\":{"));
            assert!(line.ends_with(b"}\n"));
            // The object's bytes are the cached ones, not a copy.
            assert_eq!(parts[1].as_ptr(), w.initial[0].obj.json.as_ptr());
            // paging
            let (p1, more, at) = rc.list("/registry/core/pods/", None, 1, |_| true);
            assert!(more);
            assert_eq!(at, rv);
            let (p2, more, _) = rc.list("/registry/core/pods/", Some(&p1[0].key), 1, |_| true);
            assert_eq!((p2[0].name.as_str(), more), ("b", false));
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn live_events_follow_the_snapshot_without_gaps() {
        tokio::time::timeout(Duration::from_secs(10), async {
            let store = MemoryStore::new();
            let cache = started(&store).await;
            let rc = cache.resource("/registry/core/pods/");
            let mut w = rc.watch("/registry/core/pods/", None).unwrap();
            let rv1 = store
                .create("/registry/core/pods/d/a", obj("a"))
                .await
                .unwrap();
            let (_, _) = store
                .delete("/registry/core/pods/d/a", Some(rv1))
                .await
                .unwrap();
            let mut kinds = vec![];
            while kinds.len() < 2 {
                if let Live::Change(c) = w.live.recv().await.unwrap() {
                    kinds.push(c.kind);
                }
            }
            assert_eq!(kinds, vec![EventType::Added, EventType::Deleted]);
            assert!(rc.watch("/registry/core/pods/", Some(0)).is_ok());
        })
        .await
        .unwrap();
    }
}
