//! Creating containers on request, one JSON line in and one out: the loop behind
//! `berth runtime serve-creates`, the long-lived single-threaded helper processes through
//! which the node agent creates containers (ADR 0013). A helper is forked cheaply (a small,
//! single-threaded address space) and pays the start of the berth executable once, not per
//! container.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::container::{CreateOptions, Runtime};
use crate::launch::{LogConfig, Stdio};

/// One container to create. Its stdout and stderr always go to a log file: the helper's own
/// stdio is this protocol.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateRequest {
    pub id: String,
    pub bundle: PathBuf,
    pub log: LogConfig,
}

/// The outcome of one [`CreateRequest`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreateReply {
    /// The runtime's error, as `berth runtime create` would print it.
    pub error: Option<String>,
}

/// Answers requests from `input` until it ends (the agent closed it or exited).
pub fn serve(rt: &Runtime, input: impl BufRead, mut output: impl Write) -> std::io::Result<()> {
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let error = match serde_json::from_str::<CreateRequest>(&line) {
            Ok(req) => {
                let opts = CreateOptions {
                    stdio: Stdio::Log(req.log),
                    ..Default::default()
                };
                rt.create(&req.id, &req.bundle, &opts)
                    .err()
                    .map(|e| e.to_string())
            }
            Err(e) => Some(format!("bad create request: {e}")),
        };
        let mut reply =
            serde_json::to_vec(&CreateReply { error }).map_err(std::io::Error::other)?;
        reply.push(b'\n');
        output.write_all(&reply)?;
        output.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_requests_get_an_error_and_the_loop_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let rt = Runtime::new(dir.path(), crate::cgroups::CgroupMode::Auto);
        let missing = CreateRequest {
            id: "c1".into(),
            bundle: dir.path().join("no-such-bundle"),
            log: LogConfig {
                path: dir.path().join("c1.log"),
                max_size: 0,
                max_files: 1,
            },
        };
        let input = format!("not json\n\n{}\n", serde_json::to_string(&missing).unwrap());
        let mut out = Vec::new();
        serve(&rt, input.as_bytes(), &mut out).unwrap();
        let replies: Vec<CreateReply> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(replies.len(), 2);
        assert!(
            replies[0]
                .error
                .as_deref()
                .unwrap()
                .starts_with("bad create request")
        );
        let e = replies[1].error.as_deref().unwrap();
        assert!(e.contains("no-such-bundle"), "{e}");
    }
}
