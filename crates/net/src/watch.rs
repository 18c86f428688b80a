//! Watched object caches: a kube reflector per kind that bumps a generation counter on every
//! change, so components recompute their state from the caches (level-triggered) instead of
//! reacting to single events.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch as tokio_watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A cache of one kind, kept current by a background task.
pub struct Watched<K: Resource + Clone + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    pub store: Store<K>,
    task: JoinHandle<()>,
}

impl<K> Watched<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Default,
{
    /// Starts watching `api` (with `config`), bumping `changed` on every event.
    pub fn start(
        api: Api<K>,
        config: watcher::Config,
        changed: tokio_watch::Sender<u64>,
        shutdown: CancellationToken,
    ) -> Watched<K> {
        let (store, writer) = reflector::store();
        let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    ev = stream.next() => match ev {
                        Some(Ok(_)) => changed.send_modify(|g| *g = g.wrapping_add(1)),
                        Some(Err(e)) => tracing::debug!(kind = %K::kind(&Default::default()), error = %e, "watch error (retrying)"),
                        None => break,
                    },
                }
            }
        });
        Watched { store, task }
    }

    /// Waits for the first complete list.
    pub async fn ready(&self) {
        let _ = self.store.wait_until_ready().await;
    }

    pub fn all(&self) -> Vec<Arc<K>> {
        self.store.state()
    }
}

impl<K: Resource + Clone + 'static> Drop for Watched<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn drop(&mut self) {
        self.task.abort();
    }
}
