//! A deduplicating work queue for controllers that are not driven by one resource's watch
//! (the garbage collector): a key queued several times before a worker takes it is processed
//! once, a key is never processed by two workers at once, and a key re-queued while it is
//! being processed runs again after the current run ends (client-go's workqueue contract).

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

struct State<K> {
    queue: VecDeque<K>,
    dirty: HashSet<K>,
    processing: HashSet<K>,
}

/// A work queue of keys.
pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    notify: Notify,
}

impl<K: Clone + Eq + Hash + Send + 'static> WorkQueue<K> {
    pub fn new() -> Arc<WorkQueue<K>> {
        Arc::new(WorkQueue {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
            }),
            notify: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `key` unless it is already waiting.
    pub fn add(&self, key: K) {
        let mut s = self.lock();
        if !s.dirty.insert(key.clone()) {
            return;
        }
        if !s.processing.contains(&key) {
            s.queue.push_back(key);
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Queues `key` after `delay`.
    pub fn add_after(self: &Arc<Self>, key: K, delay: Duration) {
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            me.add(key);
        });
    }

    /// The next key to process, or `None` once `shutdown` is cancelled. Call [`done`] after
    /// processing it.
    ///
    /// [`done`]: WorkQueue::done
    pub async fn next(&self, shutdown: &CancellationToken) -> Option<K> {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.lock();
                if let Some(key) = s.queue.pop_front() {
                    s.dirty.remove(&key);
                    s.processing.insert(key.clone());
                    let more = !s.queue.is_empty();
                    drop(s);
                    if more {
                        self.notify.notify_one();
                    }
                    return Some(key);
                }
            }
            tokio::select! {
                _ = notified => {}
                _ = shutdown.cancelled() => return None,
            }
        }
    }

    /// Marks `key` processed; if it was queued meanwhile it becomes available again.
    pub fn done(&self, key: &K) {
        let mut s = self.lock();
        s.processing.remove(key);
        if s.dirty.contains(key) {
            s.queue.push_back(key.clone());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Keys waiting (not counting those being processed).
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn dedups_and_requeues_after_done() {
        tokio::time::timeout(Duration::from_secs(5), async {
            let q = WorkQueue::new();
            let stop = CancellationToken::new();
            q.add("a");
            q.add("a");
            q.add("b");
            assert_eq!(q.len(), 2);
            let k = q.next(&stop).await.unwrap();
            assert_eq!(k, "a");
            // queued again while processing: not handed out until done
            q.add("a");
            assert_eq!(q.next(&stop).await, Some("b"));
            q.done(&"b");
            assert_eq!(q.len(), 0);
            q.done(&"a");
            assert_eq!(q.next(&stop).await, Some("a"));
            q.done(&"a");
            stop.cancel();
            assert_eq!(q.next(&stop).await, None);
        })
        .await
        .unwrap();
    }
}
