//! Watches: the in-process broadcast of committed events ([`Hub`]) and the per-watcher stream
//! that replays history from the database and then follows the broadcast.
//!
//! The hand-over is gap- and duplicate-free because the writer publishes a batch's events
//! only after the batch committed, and a watcher subscribes *before* it reads history: every
//! revision up to the one published at subscription time is in the database, every later
//! one arrives through the subscription, and events at or below the watcher's position are
//! skipped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use berth_store::{Error, Result, Revision, WatchEvent, WatchStream};
use tokio::sync::broadcast::{self, error::RecvError};

use crate::read::{self, Readers};
use crate::schema::KeyRange;

/// Changes read from the database per history page.
const HISTORY_PAGE: usize = 512;

/// The broadcast of committed events to live watchers.
pub(crate) struct Hub {
    inner: Mutex<HubInner>,
}

struct HubInner {
    /// `None` once the writer stopped: no more events will come.
    tx: Option<broadcast::Sender<Arc<WatchEvent>>>,
    /// The revision of the last published batch.
    published: Revision,
}

impl Hub {
    pub fn new(capacity: usize, revision: Revision) -> Self {
        Hub {
            inner: Mutex::new(HubInner {
                tx: Some(broadcast::channel(capacity).0),
                published: revision,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes the committed events of one batch (in revision order) and marks `revision`
    /// (the batch's last) as published.
    pub fn publish(&self, events: Vec<Arc<WatchEvent>>, revision: Revision) {
        let mut inner = self.lock();
        if let Some(tx) = &inner.tx {
            for ev in events {
                // An error only means nobody is subscribed right now.
                let _ = tx.send(ev);
            }
        }
        inner.published = revision;
    }

    /// A receiver of every event published from now on, and the revision published so far.
    fn subscribe(&self) -> Option<(broadcast::Receiver<Arc<WatchEvent>>, Revision)> {
        let inner = self.lock();
        inner
            .tx
            .as_ref()
            .map(|tx| (tx.subscribe(), inner.published))
    }

    /// Ends every live watch (the writer has stopped).
    pub fn close(&self) {
        self.lock().tx = None;
    }
}

/// What a watch stream needs from the store; holding it does not keep the writer alive.
pub(crate) struct WatchSource {
    pub readers: Arc<Readers>,
    pub hub: Arc<Hub>,
}

enum Mode {
    /// Reading changes up to `upto` from the database, then following `rx`.
    Replay {
        upto: Revision,
        rx: broadcast::Receiver<Arc<WatchEvent>>,
    },
    Live(broadcast::Receiver<Arc<WatchEvent>>),
    Done,
}

struct Watcher {
    source: Arc<WatchSource>,
    range: KeyRange,
    /// Every change up to this revision has been delivered (or filtered out).
    pos: Revision,
    mode: Mode,
    pending: VecDeque<WatchEvent>,
}

/// Starts a watch of `prefix` after revision `after`. The caller has checked the compaction
/// point; history pages check it again against their own snapshot.
pub(crate) fn start(
    source: Arc<WatchSource>,
    prefix: &str,
    after: Revision,
) -> Result<WatchStream> {
    let (rx, upto) = source.hub.subscribe().ok_or(Error::Closed)?;
    let watcher = Watcher {
        source,
        range: KeyRange::prefix(prefix),
        pos: after,
        mode: Mode::Replay { upto, rx },
        pending: VecDeque::new(),
    };
    Ok(Box::pin(futures::stream::unfold(
        watcher,
        |mut w| async move { w.next().await.map(|item| (item, w)) },
    )))
}

impl Watcher {
    async fn next(&mut self) -> Option<Result<WatchEvent>> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Some(Ok(ev));
            }
            match std::mem::replace(&mut self.mode, Mode::Done) {
                Mode::Done => return None,
                Mode::Replay { upto, rx } => {
                    if self.pos >= upto {
                        self.mode = Mode::Live(rx);
                        continue;
                    }
                    let (range, after) = (self.range.clone(), self.pos);
                    let page = self
                        .source
                        .readers
                        .read("watch", move |tx| {
                            read::history(tx, &range, after, upto, HISTORY_PAGE)
                        })
                        .await;
                    match page {
                        Err(e) => return Some(Err(e)),
                        Ok(events) => {
                            self.pos = if events.len() < HISTORY_PAGE {
                                upto
                            } else {
                                events.last().map_or(upto, WatchEvent::revision)
                            };
                            self.pending.extend(events);
                            self.mode = Mode::Replay { upto, rx };
                        }
                    }
                }
                Mode::Live(mut rx) => match rx.recv().await {
                    Ok(ev) => {
                        let rev = ev.revision();
                        if rev > self.pos {
                            self.pos = rev;
                            if let WatchEvent::Put(kv) | WatchEvent::Delete(kv) = &*ev
                                && self.range.contains(&kv.key)
                            {
                                self.pending.push_back((*ev).clone());
                            }
                        }
                        self.mode = Mode::Live(rx);
                    }
                    Err(RecvError::Lagged(_)) => {
                        // Fell behind the buffer: catch up from the database from `pos`.
                        drop(rx);
                        match self.source.hub.subscribe() {
                            Some((rx, upto)) => self.mode = Mode::Replay { upto, rx },
                            None => return None,
                        }
                    }
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }
}
