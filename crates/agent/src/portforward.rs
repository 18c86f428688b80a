//! `kubectl port-forward` on the node (protocol `portforward.k8s.io` over SPDY, plain or
//! tunnelled in a WebSocket): for each forwarded connection the client opens an `error` and a
//! `data` stream carrying the same `port` and `requestID`; the agent connects to that port
//! inside the pod's network namespace and copies bytes both ways, reporting a failure on the
//! error stream, which it closes when the connection is done.

use std::collections::HashMap;
use std::sync::Arc;

use berth_cri::ContainerRuntime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::spdy::Stream;

pub const PROTOCOL: &str = "portforward.k8s.io";

/// Serves the streams of one port-forward session until the client ends it.
pub async fn serve(
    runtime: Arc<dyn ContainerRuntime>,
    sandbox_id: String,
    pod_name: String,
    mut accepted: mpsc::Receiver<Stream>,
) {
    let mut pending: HashMap<String, (Option<Stream>, Option<Stream>)> = HashMap::new();
    while let Some(s) = accepted.recv().await {
        let request = s.header("requestid").unwrap_or_default().to_string();
        let kind = s.header("streamtype").unwrap_or_default().to_string();
        let entry = pending.entry(request.clone()).or_default();
        match kind.as_str() {
            "error" => entry.0 = Some(s),
            "data" => entry.1 = Some(s),
            _ => {
                s.sender().reset().await;
                continue;
            }
        }
        if let (Some(_), Some(_)) = (&entry.0, &entry.1)
            && let Some((Some(e), Some(d))) = pending.remove(&request)
        {
            tokio::spawn(forward(
                runtime.clone(),
                sandbox_id.clone(),
                pod_name.clone(),
                e,
                d,
            ));
        }
    }
}

async fn forward(
    runtime: Arc<dyn ContainerRuntime>,
    sandbox: String,
    pod: String,
    error: Stream,
    mut data: Stream,
) {
    let err_tx = error.sender();
    let data_tx = data.sender();
    let port: Option<u16> = data
        .header("port")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p > 0);
    let Some(port) = port else {
        err_tx
            .write(format!("invalid port {:?}", data.header("port").unwrap_or_default()).as_bytes())
            .await;
        err_tx.close().await;
        data_tx.close().await;
        return;
    };
    let conn = runtime.connect(&sandbox, port).await.and_then(|s| {
        s.set_nonblocking(true)
            .map_err(berth_cri::CriError::internal)?;
        tokio::net::TcpStream::from_std(s).map_err(berth_cri::CriError::internal)
    });
    let tcp = match conn {
        Ok(t) => t,
        Err(e) => {
            err_tx
                .write(format!("error forwarding port {port} to pod {pod}, uid : {e}").as_bytes())
                .await;
            err_tx.close().await;
            data_tx.close().await;
            return;
        }
    };
    let (mut rd, mut wr) = tcp.into_split();
    let to_pod = async {
        while let Some(chunk) = data.rx.recv().await {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    let from_pod = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !data_tx.write(&buf[..n]).await {
                        break;
                    }
                }
            }
        }
        data_tx.close().await;
    };
    // Done when both directions are: the client resets the data stream once the pod's side
    // ended, and closes its side when its local connection does.
    tokio::join!(to_pod, from_pod);
    err_tx.close().await;
}
