//! [`EtcdStore`]: the [`Store`] operations as etcd requests.

use async_trait::async_trait;
use berth_store::{
    Error as StoreError, KeyValue, ListRequest, ListResponse, Result, Revision, Store, WatchStream,
};
use bytes::Bytes;
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions,
    KvClient, Txn, TxnOp, TxnOpResponse, WatchClient, WatchOptions,
};

use crate::error::{EtcdFailure, backend, classify, header_revision};
use crate::{Error, EtcdConfig};

/// Largest response accepted from etcd (a list of a large prefix, a long watch replay).
const MAX_RESPONSE: usize = 512 << 20;

/// The etcd backend. Cloning shares the connection.
#[derive(Clone)]
pub struct EtcdStore {
    kv: KvClient,
    watch: WatchClient,
}

impl EtcdStore {
    /// Connects to the cluster and checks that it answers.
    pub async fn connect(config: EtcdConfig) -> Result<EtcdStore, Error> {
        config.validate()?;
        let connect_error = |e: etcd_client::Error| Error::Connect {
            endpoints: config.endpoints.join(","),
            message: e.to_string(),
        };
        let options = ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout)
            .with_timeout(config.request_timeout);
        let mut client = Client::connect(&config.endpoints, Some(options))
            .await
            .map_err(connect_error)?;
        client.status().await.map_err(connect_error)?;
        Ok(EtcdStore {
            kv: client.kv_client().max_decoding_message_size(MAX_RESPONSE),
            watch: client
                .watch_client()
                .max_decoding_message_size(MAX_RESPONSE),
        })
    }

    fn kv(&self) -> KvClient {
        self.kv.clone()
    }

    /// Turns an etcd error of a read at `requested` into the store's error.
    async fn revision_error(
        &self,
        operation: &'static str,
        requested: Revision,
        err: etcd_client::Error,
    ) -> StoreError {
        match classify(operation, err) {
            EtcdFailure::Compacted => match self.compacted_revision().await {
                Ok(compacted) => StoreError::Compacted {
                    requested,
                    compacted,
                },
                Err(e) => e,
            },
            EtcdFailure::FutureRevision => match self.current_revision().await {
                Ok(current) => StoreError::FutureRevision { requested, current },
                Err(e) => e,
            },
            EtcdFailure::Other(e) => e,
        }
    }
}

/// The range end of a prefix: every key starting with it (etcd's `"\0"` for all keys).
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(&last) = end.last() {
        if last < 0xff {
            *end.last_mut().expect("non-empty") += 1;
            return end;
        }
        end.pop();
    }
    vec![0]
}

/// etcd's key-value as the store's. Keys berth writes are UTF-8; anything else under a
/// prefix berth reads was written by someone else and is reported, not guessed at.
pub(crate) fn key_value(operation: &'static str, kv: etcd_client::KeyValue) -> Result<KeyValue> {
    let (create_revision, mod_revision) = (kv.create_revision(), kv.mod_revision());
    let (key, value) = kv.into_key_value();
    let key = String::from_utf8(key).map_err(|e| {
        StoreError::backend(
            operation,
            format!(
                "etcd key {:?} is not UTF-8",
                String::from_utf8_lossy(e.as_bytes())
            ),
        )
    })?;
    Ok(KeyValue {
        key,
        value: Bytes::from(value),
        create_revision,
        mod_revision,
    })
}

/// The key read by a transaction's failure branch (`TxnOp::get`), if present.
fn else_get(operation: &'static str, responses: Vec<TxnOpResponse>) -> Result<Option<KeyValue>> {
    for r in responses {
        if let TxnOpResponse::Get(mut get) = r {
            return get
                .take_kvs()
                .into_iter()
                .next()
                .map(|kv| key_value(operation, kv))
                .transpose();
        }
    }
    Err(StoreError::backend(
        operation,
        "etcd transaction without the expected read",
    ))
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let mut resp = self.kv().get(key, None).await.map_err(backend("get"))?;
        resp.take_kvs()
            .into_iter()
            .next()
            .map(|kv| key_value("get", kv))
            .transpose()
    }

    async fn list(&self, request: ListRequest) -> Result<ListResponse> {
        let prefix = request.prefix.as_bytes();
        let end = prefix_end(prefix);
        let start = match request.start_after.as_deref() {
            Some(after) if after >= request.prefix.as_str() => {
                let mut k = after.as_bytes().to_vec();
                k.push(0);
                k
            }
            // etcd keys are never empty; "\0" is the smallest key there is.
            _ if prefix.is_empty() => vec![0],
            _ => prefix.to_vec(),
        };
        let mut options = GetOptions::new().with_range(end.clone());
        if request.limit > 0 {
            options = options.with_limit(request.limit as i64);
        }
        if request.revision != 0 {
            options = options.with_revision(request.revision);
        }
        // A continuation at or past the end of the range matches nothing (etcd would read a
        // single key instead of an empty range).
        let empty = end != [0] && start >= end;
        let resp = if empty {
            self.kv()
                .get(
                    vec![0],
                    Some(
                        GetOptions::new()
                            .with_count_only()
                            .with_revision(request.revision),
                    ),
                )
                .await
        } else {
            self.kv().get(start, Some(options)).await
        };
        let mut resp = match resp {
            Ok(r) => r,
            Err(e) => return Err(self.revision_error("list", request.revision, e).await),
        };
        let revision = if request.revision == 0 {
            header_revision("list", resp.header())?
        } else {
            request.revision
        };
        if empty {
            return Ok(ListResponse {
                items: Vec::new(),
                revision,
                more: false,
            });
        }
        let more = resp.more();
        let items = resp
            .take_kvs()
            .into_iter()
            .map(|kv| key_value("list", kv))
            .collect::<Result<Vec<_>>>()?;
        Ok(ListResponse {
            items,
            revision,
            more,
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, Vec::from(value), None)]);
        let resp = self.kv().txn(txn).await.map_err(backend("create"))?;
        if resp.succeeded() {
            header_revision("create", resp.header())
        } else {
            Err(StoreError::AlreadyExists { key: key.into() })
        }
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision> {
        let txn = Txn::new()
            .when([
                Compare::create_revision(key, CompareOp::Greater, 0),
                Compare::mod_revision(key, CompareOp::Equal, expected),
            ])
            .and_then([TxnOp::put(key, Vec::from(value), None)])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.kv().txn(txn).await.map_err(backend("update"))?;
        if resp.succeeded() {
            return header_revision("update", resp.header());
        }
        match else_get("update", resp.op_responses())? {
            None => Err(StoreError::NotFound { key: key.into() }),
            Some(current) => Err(StoreError::Conflict {
                key: key.into(),
                expected,
                current: Some(Box::new(current)),
            }),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        let mut compares = vec![Compare::create_revision(key, CompareOp::Greater, 0)];
        if let Some(expected) = expected {
            compares.push(Compare::mod_revision(key, CompareOp::Equal, expected));
        }
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::delete(
                key,
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.kv().txn(txn).await.map_err(backend("delete"))?;
        let revision = header_revision("delete", resp.header())?;
        if resp.succeeded() {
            for r in resp.op_responses() {
                if let TxnOpResponse::Delete(mut del) = r
                    && let Some(prev) = del.take_prev_kvs().into_iter().next()
                {
                    return Ok((revision, key_value("delete", prev)?));
                }
            }
            return Err(StoreError::backend(
                "delete",
                "etcd deletion without the previous value",
            ));
        }
        match (else_get("delete", resp.op_responses())?, expected) {
            (None, _) => Err(StoreError::NotFound { key: key.into() }),
            (Some(current), Some(expected)) => Err(StoreError::Conflict {
                key: key.into(),
                expected,
                current: Some(Box::new(current)),
            }),
            (Some(_), None) => Err(StoreError::backend(
                "delete",
                "etcd refused an unconditional delete",
            )),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        // etcd accepts a watch from its compaction point, i.e. `after` one below it; the
        // contract says that history is gone. A read at `after` fails exactly when it is.
        if after > 0
            && let Err(e) = self
                .kv()
                .get(
                    vec![0],
                    Some(GetOptions::new().with_count_only().with_revision(after)),
                )
                .await
        {
            match classify("watch", e) {
                EtcdFailure::Compacted => {
                    return Err(StoreError::Compacted {
                        requested: after,
                        compacted: self.compacted_revision().await?,
                    });
                }
                // Watching from a future revision is fine: events start when it is reached.
                EtcdFailure::FutureRevision => {}
                EtcdFailure::Other(e) => return Err(e),
            }
        }
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(after + 1)
            .with_prev_key()
            .with_progress_notify();
        let stream = self
            .watch
            .clone()
            .watch(prefix, Some(options))
            .await
            .map_err(backend("watch"))?;
        Ok(crate::watch::events(stream, after))
    }

    async fn current_revision(&self) -> Result<Revision> {
        let resp = self
            .kv()
            .get(vec![0], Some(GetOptions::new().with_count_only()))
            .await
            .map_err(backend("current_revision"))?;
        header_revision("current_revision", resp.header())
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        match self
            .kv()
            .compact(revision, Some(CompactionOptions::new().with_physical()))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match classify("compact", e) {
                // Already compacted at or beyond `revision`: nothing to do.
                EtcdFailure::Compacted => Ok(()),
                EtcdFailure::FutureRevision => Err(StoreError::FutureRevision {
                    requested: revision,
                    current: self.current_revision().await?,
                }),
                EtcdFailure::Other(e) => Err(e),
            },
        }
    }

    /// etcd has no request for its compaction point, but a read at a revision fails exactly
    /// when that revision is below it: binary search over the revisions (only error paths and
    /// this call pay for it). Returns 0 when nothing above revision 1 was compacted.
    async fn compacted_revision(&self) -> Result<Revision> {
        let readable = |revision: Revision| async move {
            match self
                .kv()
                .get(
                    vec![0],
                    Some(GetOptions::new().with_count_only().with_revision(revision)),
                )
                .await
            {
                Ok(_) => Ok(true),
                Err(e) => match classify("compacted_revision", e) {
                    EtcdFailure::Compacted => Ok(false),
                    EtcdFailure::FutureRevision => Ok(true),
                    EtcdFailure::Other(e) => Err(e),
                },
            }
        };
        if readable(1).await? {
            return Ok(0);
        }
        // Invariant: `lo` is compacted, `hi` is readable.
        let (mut lo, mut hi) = (1, self.current_revision().await?);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if readable(mid).await? {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Ok(hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(b""), [0]);
        assert_eq!(prefix_end(&[b'a', 0xff]), b"b");
    }
}
