//! Choosing and opening the store backend (the binary is the only place that names one).

use std::sync::Arc;

use anyhow::Context;
use berth_store::Store;

use crate::datadir::DataDir;

/// Opens the embedded SQLite store of the data dir.
pub async fn open(data: &DataDir) -> anyhow::Result<Arc<dyn Store>> {
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
