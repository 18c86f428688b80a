//! Choosing and opening the store backend (the binary is the only place that names one):
//! the embedded SQLite store of the data dir by default, or an etcd cluster with
//! `--datastore-endpoint etcd://h1:2379,h2:2379` (k3s's flag), which several servers can share.

use std::sync::Arc;

use anyhow::Context;
use berth_store::Store;

use crate::datadir::DataDir;

/// Opens the store: etcd when an endpoint is given, else the embedded store.
pub async fn open(data: &DataDir, endpoint: Option<&str>) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(endpoint) = endpoint {
        let config = berth_store_etcd::EtcdConfig::parse(endpoint)
            .with_context(|| format!("--datastore-endpoint {endpoint:?}"))?;
        let store = berth_store_etcd::EtcdStore::connect(config)
            .await
            .with_context(|| format!("cannot reach the datastore at {endpoint}"))?;
        return Ok(Arc::new(store));
    }
    let dir = data.db_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("state.db");
    let store = tokio::task::spawn_blocking(move || {
        berth_store_sqlite::SqliteStore::open(&path, berth_store_sqlite::SqliteConfig::default())
            .with_context(|| format!("cannot open the embedded store at {}", path.display()))
    })
    .await??;
    Ok(Arc::new(store))
}
