//! `MemoryStore`: the contract executed in memory. Used by unit and integration tests and as
//! the reference the conformance suite is checked against. Keeps every version of every key
//! since the last compaction, so lists at past revisions and watch replays are exact.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::types::{KeyValue, ListRequest, ListResponse, Revision, WatchEvent, WatchStream};
use crate::{Error, Result, Store};

#[derive(Default)]
struct State {
    revision: Revision,
    compacted: Revision,
    /// Every version of each key since the compaction point; `None` marks a deletion.
    /// The last entry is the current state.
    keys: BTreeMap<String, Vec<(Revision, Option<KeyValue>)>>,
    /// Change log since the compaction point, in revision order.
    log: Vec<WatchEvent>,
    watchers: Vec<(String, mpsc::UnboundedSender<Result<WatchEvent>>)>,
}

impl State {
    fn current(&self, key: &str) -> Option<&KeyValue> {
        self.keys.get(key)?.last()?.1.as_ref()
    }

    fn record(&mut self, key: &str, version: Option<KeyValue>, event: WatchEvent) {
        self.keys
            .entry(key.to_string())
            .or_default()
            .push((self.revision, version));
        // Watchers whose stream was dropped are forgotten here, whatever their prefix.
        self.watchers.retain(|(prefix, tx)| {
            !tx.is_closed()
                && (!key.starts_with(prefix.as_str()) || tx.send(Ok(event.clone())).is_ok())
        });
        self.log.push(event);
    }
}

/// An in-memory [`Store`]. Cloning shares the same data.
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-updated in a way later
        // operations care about more than the panic itself; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.lock().current(key).cloned())
    }

    async fn list(&self, req: ListRequest) -> Result<ListResponse> {
        let st = self.lock();
        let revision = if req.revision == 0 {
            st.revision
        } else {
            req.revision
        };
        if revision > st.revision {
            return Err(Error::FutureRevision {
                requested: revision,
                current: st.revision,
            });
        }
        if req.revision != 0 && revision < st.compacted {
            return Err(Error::Compacted {
                requested: revision,
                compacted: st.compacted,
            });
        }
        let start = match &req.start_after {
            Some(after) if after.as_str() >= req.prefix.as_str() => {
                std::ops::Bound::Excluded(after.clone())
            }
            _ => std::ops::Bound::Included(req.prefix.clone()),
        };
        let mut items = Vec::new();
        let mut more = false;
        for (key, versions) in st.keys.range((start, std::ops::Bound::Unbounded)) {
            if !key.starts_with(&req.prefix) {
                break;
            }
            let visible = versions
                .iter()
                .rev()
                .find(|(r, _)| *r <= revision)
                .and_then(|(_, v)| v.clone());
            if let Some(kv) = visible {
                if req.limit > 0 && items.len() == req.limit {
                    more = true;
                    break;
                }
                items.push(kv);
            }
        }
        Ok(ListResponse {
            items,
            revision,
            more,
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        let mut st = self.lock();
        if st.current(key).is_some() {
            return Err(Error::AlreadyExists { key: key.into() });
        }
        st.revision += 1;
        let kv = KeyValue {
            key: key.into(),
            value,
            create_revision: st.revision,
            mod_revision: st.revision,
        };
        st.record(key, Some(kv.clone()), WatchEvent::Put(kv));
        Ok(st.revision)
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision> {
        let mut st = self.lock();
        let current = st
            .current(key)
            .cloned()
            .ok_or_else(|| Error::NotFound { key: key.into() })?;
        if current.mod_revision != expected {
            return Err(Error::Conflict {
                key: key.into(),
                expected,
                current: Some(Box::new(current)),
            });
        }
        st.revision += 1;
        let kv = KeyValue {
            key: key.into(),
            value,
            create_revision: current.create_revision,
            mod_revision: st.revision,
        };
        st.record(key, Some(kv.clone()), WatchEvent::Put(kv));
        Ok(st.revision)
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        let mut st = self.lock();
        let current = st
            .current(key)
            .cloned()
            .ok_or_else(|| Error::NotFound { key: key.into() })?;
        if let Some(expected) = expected
            && current.mod_revision != expected
        {
            return Err(Error::Conflict {
                key: key.into(),
                expected,
                current: Some(Box::new(current)),
            });
        }
        st.revision += 1;
        let tomb = KeyValue {
            mod_revision: st.revision,
            ..current.clone()
        };
        st.record(key, None, WatchEvent::Delete(tomb));
        Ok((st.revision, current))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let mut st = self.lock();
        if after < st.compacted {
            return Err(Error::Compacted {
                requested: after,
                compacted: st.compacted,
            });
        }
        let (tx, rx) = mpsc::unbounded_channel();
        for ev in st.log.iter() {
            if ev.revision() > after
                && let WatchEvent::Put(kv) | WatchEvent::Delete(kv) = ev
                && kv.key.starts_with(prefix)
            {
                let _ = tx.send(Ok(ev.clone()));
            }
        }
        st.watchers.push((prefix.to_string(), tx));
        Ok(Box::pin(tokio_stream_from_receiver(rx)))
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.lock().revision)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let mut st = self.lock();
        if revision <= st.compacted {
            return Ok(());
        }
        if revision > st.revision {
            return Err(Error::FutureRevision {
                requested: revision,
                current: st.revision,
            });
        }
        st.compacted = revision;
        st.log.retain(|ev| ev.revision() > revision);
        st.keys.retain(|_, versions| {
            // Keep the newest version at or below the compaction point (it is still visible
            // at `revision`) and everything after it; drop keys whose newest such version is
            // a deletion and that have nothing newer.
            let keep_from = versions
                .iter()
                .rposition(|(r, _)| *r <= revision)
                .unwrap_or(0);
            versions.drain(..keep_from);
            !(versions.len() == 1 && versions[0].1.is_none())
        });
        Ok(())
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(self.lock().compacted)
    }
}

fn tokio_stream_from_receiver(
    mut rx: mpsc::UnboundedReceiver<Result<WatchEvent>>,
) -> impl futures::Stream<Item = Result<WatchEvent>> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
