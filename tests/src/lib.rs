//! Shared helpers of berth's workspace integration tests (`tests/tests/*.rs`): polling with a
//! deadline instead of sleeping, and small object builders. The tests run the in-process
//! `TestCluster` (API server over the in-memory store, controllers, scheduler, simulated
//! nodes); no root, no sockets.

use std::future::Future;
use std::time::Duration;

use kube::api::{Api, PostParams};

/// The deadline every wait in these tests uses unless it says otherwise: generous, because
/// CI machines are slow and shared; tests never assert on speed.
pub const WAIT: Duration = Duration::from_secs(30);

/// Polls `check` every 20 ms until it yields `Some`, failing after `timeout` with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if tokio::time::Instant::now() >= deadline {
            match last_err {
                Some(e) => anyhow::bail!(
                    "timed out after {timeout:?} waiting for {what}; last error: {e:#}"
                ),
                None => anyhow::bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs a test body with an overall timeout.
pub async fn within<T>(
    limit: Duration,
    body: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(limit, body).await {
        Ok(r) => r,
        Err(_) => anyhow::bail!("test did not finish within {limit:?}"),
    }
}

/// Creates an object from JSON.
pub async fn create<K>(api: &Api<K>, obj: serde_json::Value) -> anyhow::Result<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let typed: K = serde_json::from_value(obj)?;
    Ok(api.create(&PostParams::default(), &typed).await?)
}

/// Creates a namespace of its own for one test, named `<prefix>-<unique suffix>`.
pub async fn namespace(client: &kube::Client, prefix: &str) -> anyhow::Result<String> {
    let ns = unique(prefix);
    create(
        &Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone()),
        serde_json::json!({"metadata": {"name": ns}}),
    )
    .await?;
    Ok(ns)
}

/// A unique name for objects and namespaces of one test.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{:x}{:x}",
        std::process::id() & 0xffff,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
