//! The helper processes that create containers: `berth runtime serve-creates`, each a
//! single-threaded process answering one JSON line per container (ADR 0013). Forking a small
//! single-threaded process is cheap, while forking the agent would copy and write-protect its
//! whole heap (and interrupt every CPU running one of its threads) for every container; and a
//! helper pays the start of the berth executable once, not per container.
//!
//! At most [`MAX_HELPERS`] run, started when a create finds none idle; one idle for
//! [`IDLE_EXIT`] is closed (it exits when its stdin ends), so an idle node keeps none.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_runtime::{CreateReply, CreateRequest};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::Semaphore;

/// Containers created at the same time (each helper handles one at a time).
pub(crate) const MAX_HELPERS: usize = 4;
/// How long an unused helper is kept.
pub(crate) const IDLE_EXIT: Duration = Duration::from_secs(30);

pub(crate) struct Creators {
    binary: PathBuf,
    root: PathBuf,
    slots: Arc<Semaphore>,
    idle: Arc<Mutex<Vec<Helper>>>,
    /// Whether a task closing unused helpers is running (at most one).
    reaping: Arc<AtomicBool>,
}

struct Helper {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    last_used: Instant,
}

impl Helper {
    fn spawn(binary: &Path, root: &Path) -> std::io::Result<Helper> {
        let mut child = tokio::process::Command::new(binary)
            .arg("runtime")
            .arg("--root")
            .arg(root)
            .arg("serve-creates")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(std::io::Error::other("the helper's pipes are missing"));
        };
        Ok(Helper {
            _child: child,
            stdin,
            stdout: BufReader::new(stdout),
            last_used: Instant::now(),
        })
    }

    /// Sends the request; an error here means the helper never got it (it is gone).
    async fn send(&mut self, req: &CreateRequest) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.stdin.write_all(&line).await?;
        self.stdin.flush().await
    }

    async fn reply(&mut self) -> std::io::Result<CreateReply> {
        let mut reply = String::new();
        if self.stdout.read_line(&mut reply).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the helper exited",
            ));
        }
        serde_json::from_str(&reply).map_err(std::io::Error::other)
    }
}

impl Creators {
    pub(crate) fn new(binary: &Path, root: &Path) -> Creators {
        Creators {
            binary: binary.to_path_buf(),
            root: root.to_path_buf(),
            slots: Arc::new(Semaphore::new(MAX_HELPERS)),
            idle: Arc::default(),
            reaping: Arc::default(),
        }
    }

    /// Creates one container; the error is the runtime's message.
    pub(crate) async fn create(&self, req: &CreateRequest) -> Result<(), String> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| "the runtime helpers are shut down".to_string())?;
        let spawn = || {
            Helper::spawn(&self.binary, &self.root).map_err(|e| {
                format!(
                    "starting {} runtime serve-creates: {e}",
                    self.binary.display()
                )
            })
        };
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut helper = match idle {
            Some(h) => h,
            None => spawn()?,
        };
        // An idle helper that is gone (killed) cannot have received the request: a new one
        // gets it. A helper whose call fails later (it died mid-create, or this future was
        // dropped) is not reused: dropping it closes its stdin, and it exits after its
        // current request.
        if helper.send(req).await.is_err() {
            helper = spawn()?;
            helper
                .send(req)
                .await
                .map_err(|e| format!("runtime helper: {e}"))?;
        }
        let reply = helper
            .reply()
            .await
            .map_err(|e| format!("runtime helper: {e}"))?;
        helper.last_used = Instant::now();
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(helper);
        self.close_when_idle();
        match reply.error {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Starts the one task that, every [`IDLE_EXIT`], closes the helpers not used since; it
    /// ends when none is left idle (a helper back in the pool starts it again).
    fn close_when_idle(&self) {
        if self.reaping.swap(true, Ordering::AcqRel) {
            return;
        }
        let (idle, reaping) = (Arc::downgrade(&self.idle), self.reaping.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(IDLE_EXIT).await;
                let Some(idle) = idle.upgrade() else { return };
                let mut idle = idle.lock().unwrap_or_else(|p| p.into_inner());
                idle.retain(|h| h.last_used.elapsed() < IDLE_EXIT);
                if idle.is_empty() {
                    // Under the pool's lock: a helper returned after this starts a new task.
                    reaping.store(false, Ordering::Release);
                    return;
                }
            }
        });
    }
}
