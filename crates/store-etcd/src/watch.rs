//! An etcd watch as the store's [`WatchStream`].

use std::collections::VecDeque;

use berth_store::{Error as StoreError, KeyValue, Result, Revision, WatchEvent, WatchStream};
use bytes::Bytes;
use etcd_client::EventType;

use crate::store::key_value;

struct State {
    stream: etcd_client::WatchStream,
    after: Revision,
    pending: VecDeque<WatchEvent>,
    done: bool,
}

/// Maps etcd watch responses to events: Puts and Deletes (with the deleted value from
/// `prev_kv`), empty responses as progress, a cancellation for compaction as `Compacted`.
pub(crate) fn events(stream: etcd_client::WatchStream, after: Revision) -> WatchStream {
    let state = State {
        stream,
        after,
        pending: VecDeque::new(),
        done: false,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        let item = st.next().await?;
        Some((item, st))
    }))
}

impl State {
    async fn next(&mut self) -> Option<Result<WatchEvent>> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Some(Ok(ev));
            }
            if self.done {
                return None;
            }
            let resp = match self.stream.message().await {
                Ok(Some(resp)) => resp,
                Ok(None) => return None,
                Err(e) => {
                    self.done = true;
                    return Some(Err(StoreError::backend("watch", e)));
                }
            };
            if resp.canceled() {
                self.done = true;
                return Some(Err(if resp.compact_revision() > 0 {
                    StoreError::Compacted {
                        requested: self.after,
                        compacted: resp.compact_revision(),
                    }
                } else {
                    StoreError::backend(
                        "watch",
                        format!("etcd cancelled the watch: {}", resp.cancel_reason()),
                    )
                }));
            }
            if resp.created() {
                continue;
            }
            if resp.events().is_empty() {
                if let Some(h) = resp.header() {
                    return Some(Ok(WatchEvent::Progress(h.revision())));
                }
                continue;
            }
            for ev in resp.events() {
                match convert(ev) {
                    Ok(ev) => self.pending.push_back(ev),
                    Err(e) => {
                        self.done = true;
                        self.pending.clear();
                        return Some(Err(e));
                    }
                }
            }
        }
    }
}

fn convert(ev: &etcd_client::Event) -> Result<WatchEvent> {
    let kv = ev
        .kv()
        .ok_or_else(|| StoreError::backend("watch", "etcd event without a key"))?;
    match ev.event_type() {
        EventType::Put => Ok(WatchEvent::Put(key_value("watch", kv.clone())?)),
        EventType::Delete => {
            let deleted = key_value("watch", kv.clone())?;
            // The deleted value comes from prev_kv; it is missing only if etcd compacted it.
            let (value, create_revision) = match ev.prev_kv() {
                Some(prev) => (Bytes::copy_from_slice(prev.value()), prev.create_revision()),
                None => (Bytes::new(), 0),
            };
            Ok(WatchEvent::Delete(KeyValue {
                value,
                create_revision,
                ..deleted
            }))
        }
    }
}
