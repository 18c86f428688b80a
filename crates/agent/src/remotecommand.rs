//! `kubectl exec` and `attach` on the node: the remote-command protocol over WebSocket
//! (`v5.channel.k8s.io`, `v4.channel.k8s.io`: one channel byte per binary message — 0 stdin,
//! 1 stdout, 2 stderr, 3 error/exit status, 4 terminal resize, 255 close) and over SPDY
//! streams (`streamtype` stdin/stdout/stderr/error/resize), when a client falls back to it.
//! The error channel ends every session with a `metav1.Status` carrying the exit code.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use berth_cri::{ContainerRuntime, ExecRequest, OutputStream};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::mpsc;

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";

/// What the client asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl Options {
    pub fn from_query(pairs: &[(String, String)]) -> Options {
        let flag = |k: &str| {
            pairs
                .iter()
                .any(|(n, v)| n == k && matches!(v.as_str(), "1" | "true" | ""))
        };
        Options {
            command: pairs
                .iter()
                .filter(|(k, _)| k == "command")
                .map(|(_, v)| v.clone())
                .collect(),
            stdin: flag("stdin"),
            stdout: flag("stdout"),
            stderr: flag("stderr"),
            tty: flag("tty"),
        }
    }
}

/// Output of a session, to whichever transport carries it.
#[derive(Debug)]
pub enum Out {
    Stdout(Bytes),
    Stderr(Bytes),
    /// The final status (JSON).
    Status(String),
}

/// The client's input.
pub struct Input {
    pub stdin: Option<mpsc::Receiver<Bytes>>,
    pub resize: Option<mpsc::Receiver<(u16, u16)>>,
}

pub fn status_success() -> String {
    json!({"metadata": {}, "status": "Success"}).to_string()
}

pub fn status_failure(message: &str) -> String {
    json!({"metadata": {}, "status": "Failure", "message": message}).to_string()
}

pub fn status_exit(command: &[String], code: i32) -> String {
    json!({
        "metadata": {}, "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {code}", command.join(" ")),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}
    })
    .to_string()
}

/// Parses a resize message (`{"Width":80,"Height":24}`, possibly several per message).
pub fn parse_resize(b: &[u8]) -> Vec<(u16, u16)> {
    serde_json::Deserializer::from_slice(b)
        .into_iter::<serde_json::Value>()
        .filter_map(|v| v.ok())
        .filter_map(|v| {
            let w = v["Width"].as_u64()?;
            let h = v["Height"].as_u64()?;
            Some((u16::try_from(h).ok()?, u16::try_from(w).ok()?))
        })
        .collect()
}

/// Runs `opts.command` in a container, pumping input and output until it exits.
pub async fn run_exec(
    runtime: Arc<dyn ContainerRuntime>,
    container_id: String,
    opts: Options,
    mut input: Input,
    out: mpsc::Sender<Out>,
) {
    let req = ExecRequest {
        command: opts.command.clone(),
        tty: opts.tty,
        stdin: opts.stdin,
        size: None,
    };
    let mut session = match runtime.exec(&container_id, &req).await {
        Ok(s) => s,
        Err(e) => {
            let _ = out.send(Out::Status(status_failure(&e.to_string()))).await;
            return;
        }
    };
    let mut stdin_open = input.stdin.is_some();
    if !stdin_open {
        let _ = session.close_stdin().await;
    }
    let mut client_gone = false;
    loop {
        let stdin_fut = async {
            match input.stdin.as_mut() {
                Some(rx) if stdin_open => rx.recv().await,
                _ => std::future::pending().await,
            }
        };
        let resize_fut = async {
            match input.resize.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            o = session.read_output() => match o {
                Ok(Some((stream, data))) => {
                    let want = match stream {
                        OutputStream::Stdout => opts.stdout || opts.tty,
                        OutputStream::Stderr => opts.stderr,
                    };
                    if want {
                        let msg = match stream {
                            OutputStream::Stdout => Out::Stdout(Bytes::from(data)),
                            OutputStream::Stderr => Out::Stderr(Bytes::from(data)),
                        };
                        if out.send(msg).await.is_err() {
                            client_gone = true;
                            break;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "exec output");
                    break;
                }
            },
            d = stdin_fut => match d {
                Some(d) => {
                    if let Err(e) = session.write_stdin(&d).await {
                        tracing::debug!(error = %e, "exec stdin");
                    }
                }
                None => {
                    stdin_open = false;
                    let _ = session.close_stdin().await;
                }
            },
            r = resize_fut => match r {
                Some((rows, cols)) => {
                    let _ = session.resize(rows, cols).await;
                }
                None => input.resize = None,
            },
        }
    }
    if client_gone {
        let _ = session.kill().await;
        return;
    }
    let status = match session.wait().await {
        Ok(0) => status_success(),
        Ok(code) => status_exit(&opts.command, code),
        Err(e) => status_failure(&e.to_string()),
    };
    let _ = out.send(Out::Status(status)).await;
}

/// Carries a session over a WebSocket: input demultiplexed by channel byte, output written
/// with it, the status on channel 3, then a normal close.
pub async fn over_websocket(
    ws: WebSocket,
    v5: bool,
    opts: &Options,
) -> (Input, mpsc::Sender<Out>, tokio::task::JoinHandle<()>) {
    let (mut sink, mut stream) = ws.split();
    let (stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(16);
    let (resize_tx, resize_rx) = mpsc::channel::<(u16, u16)>(4);
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(16);
    let want_stdin = opts.stdin;
    let reader = tokio::spawn(async move {
        let mut stdin_tx = want_stdin.then_some(stdin_tx);
        while let Some(Ok(m)) = stream.next().await {
            match m {
                Message::Binary(b) if !b.is_empty() => match b[0] {
                    0 => {
                        if let Some(tx) = &stdin_tx
                            && b.len() > 1
                            && tx.send(b.slice(1..)).await.is_err()
                        {
                            stdin_tx = None;
                        }
                    }
                    4 => {
                        for r in parse_resize(&b[1..]) {
                            let _ = resize_tx.send(r).await;
                        }
                    }
                    255 if v5 && b.get(1) == Some(&0) => stdin_tx = None,
                    _ => {}
                },
                Message::Close(_) => break,
                _ => {}
            }
        }
    });
    let writer = tokio::spawn(async move {
        while let Some(o) = out_rx.recv().await {
            let (ch, data) = match o {
                Out::Stdout(d) => (1u8, d),
                Out::Stderr(d) => (2, d),
                Out::Status(s) => (3, Bytes::from(s)),
            };
            let mut frame = Vec::with_capacity(data.len() + 1);
            frame.push(ch);
            frame.extend_from_slice(&data);
            if sink
                .send(Message::Binary(Bytes::from(frame)))
                .await
                .is_err()
            {
                break;
            }
            if ch == 3 {
                break;
            }
        }
        let _ = sink
            .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                code: 1000,
                reason: "".into(),
            })))
            .await;
        let _ = sink.close().await;
        reader.abort();
    });
    (
        Input {
            stdin: Some(stdin_rx),
            resize: opts.tty.then_some(resize_rx),
        },
        out_tx,
        writer,
    )
}

/// Carries a session over SPDY streams (the client opens one per kind).
pub async fn over_spdy(
    mut accepted: mpsc::Receiver<crate::spdy::Stream>,
    opts: &Options,
) -> Option<(Input, mpsc::Sender<Out>, tokio::task::JoinHandle<()>)> {
    let expected = 1
        + usize::from(opts.stdin)
        + usize::from(opts.stdout)
        + usize::from(opts.stderr && !opts.tty)
        + usize::from(opts.tty);
    let (mut stdin, mut stdout, mut stderr, mut error, mut resize) = (None, None, None, None, None);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut got = 0;
    while got < expected {
        let s = tokio::time::timeout_at(deadline, accepted.recv())
            .await
            .ok()??;
        got += 1;
        match s.header("streamtype") {
            Some("stdin") => stdin = Some(s),
            Some("stdout") => stdout = Some(s),
            Some("stderr") => stderr = Some(s),
            Some("error") => error = Some(s),
            Some("resize") => resize = Some(s),
            _ => got -= 1,
        }
    }
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(16);
    let (stdout_s, stderr_s, error_s) = (
        stdout.as_ref().map(|s| s.sender()),
        stderr.as_ref().map(|s| s.sender()),
        error.as_ref().map(|s| s.sender()),
    );
    let writer = tokio::spawn(async move {
        while let Some(o) = out_rx.recv().await {
            match o {
                Out::Stdout(d) => {
                    if let Some(s) = &stdout_s {
                        s.write(&d).await;
                    }
                }
                Out::Stderr(d) => {
                    if let Some(s) = &stderr_s {
                        s.write(&d).await;
                    }
                }
                Out::Status(st) => {
                    if let Some(s) = &error_s {
                        s.write(st.as_bytes()).await;
                    }
                    break;
                }
            }
        }
        for s in [&stdout_s, &stderr_s, &error_s].into_iter().flatten() {
            s.close().await;
        }
    });
    let resize_rx = resize.map(|mut r| {
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            while let Some(b) = r.rx.recv().await {
                for x in parse_resize(&b) {
                    let _ = tx.send(x).await;
                }
            }
        });
        rx
    });
    Some((
        Input {
            stdin: stdin.map(|s| s.rx),
            resize: resize_rx,
        },
        out_tx,
        writer,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_statuses() {
        let q: Vec<(String, String)> = [
            ("command", "sh"),
            ("command", "-c"),
            ("command", "exit 3"),
            ("stdout", "true"),
            ("tty", "1"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let o = Options::from_query(&q);
        assert_eq!(o.command, ["sh", "-c", "exit 3"]);
        assert!(o.stdout && o.tty && !o.stdin && !o.stderr);
        let s: serde_json::Value = serde_json::from_str(&status_exit(&o.command, 3)).unwrap();
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(
            parse_resize(b"{\"Width\":80,\"Height\":24}\n{\"Width\":100,\"Height\":30}"),
            vec![(24, 80), (30, 100)]
        );
    }
}
