//! Watch: a chunked stream of `{"type":…,"object":…}` lines (or Table events) starting at
//! the request's resourceVersion, fed from the watch cache. Events are encoded once per
//! change and shared by all JSON watchers of the resource; a watcher whose selector an object
//! enters or leaves sees ADDED or DELETED, as Kubernetes sends them.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_store::Revision;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::cache::{Change, EventType, Live, ResourceCache};
use crate::error::{ApiError, Result};
use crate::handler::Ctx;
use crate::negotiate::Output;
use crate::read::Filter;

pub async fn watch(ctx: Ctx) -> Result<Response> {
    let filter = Filter::from_ctx(&ctx)?;
    let output = crate::negotiate::output(&ctx.headers)?;
    let st = ctx.state.clone();
    let rc = st.cache.resource(&ctx.res.key_prefix());
    let prefix = ctx.collection_prefix();

    let from = match ctx.query.resource_version.as_deref() {
        None => {
            // "Most recent": start from a consistent snapshot.
            let current = st.store.current_revision().await?;
            st.cache.wait_for(current, Duration::from_secs(3)).await;
            None
        }
        Some("0") => None,
        Some(v) => Some(
            v.parse::<Revision>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version {v:?}")))?,
        ),
    };
    let send_initial = from.is_none() || ctx.query.send_initial_events;
    let start = match rc.watch(&prefix, from) {
        Ok(s) => s,
        Err(e) => {
            // Kubernetes answers an expired watch with 200 and one ERROR event.
            let status = e.status();
            let line = crate::cache::encode_event(
                "ERROR",
                &serde_json::to_vec(&status).unwrap_or_default(),
            );
            return Ok(stream_response(
                output,
                futures::stream::once(async move { Ok::<_, Infallible>(line) }),
            ));
        }
    };

    let timeout = Duration::from_secs(
        ctx.query
            .timeout_seconds
            .unwrap_or_else(|| 1800 + rand::random_range(0..1800)),
    );
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    let watcher = Watcher {
        filter,
        output,
        prefix,
        version: ctx.req.version.clone(),
        bookmarks: ctx.query.allow_watch_bookmarks,
        kind: ctx.res.kind.clone(),
        api_version: ctx.api_version(),
        ctx: Arc::new(ctx),
        first_table: true,
        last_rv: start.revision,
    };
    let initial_end = send_initial && watcher.bookmarks && ctx_wants_initial_end(&watcher);
    tokio::spawn(async move {
        let _ = tokio::time::timeout(
            timeout,
            watcher.run(rc, start, send_initial, initial_end, tx),
        )
        .await;
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Ok(stream_response(output, stream))
}

fn ctx_wants_initial_end(w: &Watcher) -> bool {
    w.ctx.query.send_initial_events
}

fn stream_response<S>(output: Output, stream: S) -> Response
where
    S: futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
{
    let mut r = (StatusCode::OK, Body::from_stream(stream)).into_response();
    let ct = match output {
        Output::Table => "application/json;as=Table;v=v1;g=meta.k8s.io",
        _ => "application/json",
    };
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    r
}

struct Watcher {
    filter: Filter,
    output: Output,
    prefix: String,
    version: String,
    bookmarks: bool,
    kind: String,
    api_version: String,
    ctx: Arc<Ctx>,
    first_table: bool,
    last_rv: Revision,
}

type Tx = mpsc::Sender<Result<Bytes, Infallible>>;

impl Watcher {
    async fn run(
        mut self,
        rc: Arc<ResourceCache>,
        start: crate::cache::WatchStart,
        send_initial: bool,
        initial_end: bool,
        tx: Tx,
    ) {
        let crate::cache::WatchStart {
            initial,
            mut live,
            revision,
        } = start;
        let snapshot = send_initial;
        for c in &initial {
            if self.emit(c, snapshot, &tx).await.is_err() {
                return;
            }
        }
        self.last_rv = self.last_rv.max(revision);
        if initial_end {
            let mut b = self.bookmark_object(revision);
            b["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            if self.send_raw("BOOKMARK", &b, &tx).await.is_err() {
                return;
            }
        }
        loop {
            let msg = tokio::select! {
                m = live.recv() => m,
                _ = tx.closed() => return,
            };
            match msg {
                Ok(Live::Change(c)) => {
                    if c.rv() <= self.last_rv {
                        continue;
                    }
                    if self.emit(&c, false, &tx).await.is_err() {
                        return;
                    }
                }
                Ok(Live::Bookmark(rv)) => {
                    if self.bookmarks && rv >= self.last_rv {
                        self.last_rv = rv;
                        let b = self.bookmark_object(rv);
                        if self.send_raw("BOOKMARK", &b, &tx).await.is_err() {
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Catch up from history; live continues after it.
                    live = rc.subscribe();
                    match rc.changes_since(self.last_rv) {
                        Some(changes) => {
                            for c in changes {
                                if self.emit(&c, false, &tx).await.is_err() {
                                    return;
                                }
                            }
                        }
                        None => {
                            let e = ApiError::gone(format!(
                                "too old resource version: {}",
                                self.last_rv
                            ));
                            let _ = self.send_raw("ERROR", &e.status(), &tx).await;
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    fn bookmark_object(&self, rv: Revision) -> Value {
        json!({"kind": self.kind, "apiVersion": self.api_version, "metadata": {"resourceVersion": rv.to_string()}})
    }

    /// Sends one change as this watcher sees it.
    async fn emit(&mut self, c: &Arc<Change>, snapshot: bool, tx: &Tx) -> Result<(), ()> {
        self.last_rv = self.last_rv.max(c.rv());
        if !c.obj.key.starts_with(&self.prefix) {
            return Ok(());
        }
        let now = self.filter.matches(&c.obj);
        let before = c.prev.as_ref().is_some_and(|p| self.filter.matches(p));
        let as_type = match (c.kind, snapshot) {
            (_, true) if now => EventType::Added,
            (_, true) => return Ok(()),
            (EventType::Added, _) if now => EventType::Added,
            (EventType::Modified, _) if now && before => EventType::Modified,
            (EventType::Modified, _) if now => EventType::Added,
            (EventType::Modified, _) if before => EventType::Deleted,
            (EventType::Deleted, _) if now || before => EventType::Deleted,
            _ => return Ok(()),
        };
        let converted = self.version != self.ctx.res.storage_version;
        if matches!(self.output, Output::Json | Output::Yaml) && !converted {
            for part in c.json_line(as_type) {
                tx.send(Ok(part)).await.map_err(|_| ())?;
            }
            return Ok(());
        }
        let line = match self.output {
            Output::Json | Output::Yaml => {
                let obj =
                    crate::versions::from_storage(&self.ctx.res, &self.version, c.obj.value())
                        .map_err(|_| ())?;
                crate::cache::encode_event(
                    as_type.as_str(),
                    &serde_json::to_vec(&obj).unwrap_or_default(),
                )
            }
            Output::Table => {
                let obj =
                    crate::versions::from_storage(&self.ctx.res, &self.version, c.obj.value())
                        .map_err(|_| ())?;
                let mut table =
                    crate::table::table_for(&self.ctx, std::slice::from_ref(&obj), None, None);
                if !self.first_table {
                    table["columnDefinitions"] = Value::Array(vec![]);
                }
                self.first_table = false;
                crate::cache::encode_event(
                    as_type.as_str(),
                    &serde_json::to_vec(&table).unwrap_or_default(),
                )
            }
            Output::PartialMetadata => {
                let obj = crate::table::partial_metadata(&c.obj.value());
                crate::cache::encode_event(
                    as_type.as_str(),
                    &serde_json::to_vec(&obj).unwrap_or_default(),
                )
            }
        };
        tx.send(Ok(line)).await.map_err(|_| ())
    }

    async fn send_raw(&self, kind: &str, obj: &Value, tx: &Tx) -> Result<(), ()> {
        let line = crate::cache::encode_event(kind, &serde_json::to_vec(obj).unwrap_or_default());
        tx.send(Ok(line)).await.map_err(|_| ())
    }
}
