//! Exec sessions: a process started in a running container by the runtime library on a
//! blocking thread (its child path is allocation-free, so a multi-threaded caller is fine),
//! with its pipes or terminal master driven asynchronously through non-blocking descriptors.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;

use berth_cri::{CriError, ExecSession, OutputStream, Result};
use tokio::io::unix::AsyncFd;

fn set_nonblocking(f: &File) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    let flags = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn async_fd(f: File) -> Result<AsyncFd<File>> {
    set_nonblocking(&f).map_err(|e| CriError::internal(format!("exec stdio: {e}")))?;
    // SAFETY: `f` owns its descriptor, which stays open and the same for the AsyncFd's life.
    unsafe { AsyncFd::register(f) }.map_err(|e| CriError::internal(format!("exec stdio: {e}")))
}

async fn read_some(fd: &AsyncFd<File>) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let mut guard = fd.readable().await?;
        match guard.try_io(|inner| inner.get_ref().read(&mut buf)) {
            Ok(Ok(n)) => {
                buf.truncate(n);
                return Ok(buf);
            }
            // A terminal master reports EIO once the last slave descriptor closed: EOF.
            Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(Vec::new()),
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
}

async fn write_all(fd: &AsyncFd<File>, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        let mut guard = fd.writable().await?;
        match guard.try_io(|inner| inner.get_ref().write(data)) {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    Ok(())
}

/// A running exec'd process.
pub struct OciExecSession {
    pid: i32,
    stdin: Option<AsyncFd<File>>,
    stdout: Option<AsyncFd<File>>,
    stderr: Option<AsyncFd<File>>,
    /// The terminal master: output and input both go through it.
    pty: Option<AsyncFd<File>>,
    process: Option<berth_runtime::ExecProcess>,
    exit: Option<i32>,
}

impl OciExecSession {
    pub fn new(mut p: berth_runtime::ExecProcess) -> Result<OciExecSession> {
        let pty = p.pty.take().map(async_fd).transpose()?;
        Ok(OciExecSession {
            pid: p.pid,
            stdin: p.stdin.take().map(async_fd).transpose()?,
            stdout: p.stdout.take().map(async_fd).transpose()?,
            stderr: p.stderr.take().map(async_fd).transpose()?,
            pty,
            process: Some(p),
            exit: None,
        })
    }
}

fn io_err(what: &str, e: std::io::Error) -> CriError {
    CriError::internal(format!("exec {what}: {e}"))
}

#[async_trait::async_trait]
impl ExecSession for OciExecSession {
    async fn write_stdin(&mut self, data: &[u8]) -> Result<()> {
        let fd = self
            .pty
            .as_ref()
            .or(self.stdin.as_ref())
            .ok_or_else(|| CriError::internal("exec stdin is closed"))?;
        write_all(fd, data).await.map_err(|e| io_err("stdin", e))
    }

    async fn close_stdin(&mut self) -> Result<()> {
        if self.pty.is_some() {
            // End of input on a terminal is its EOF character (^D).
            if let Some(p) = &self.pty {
                write_all(p, &[4]).await.map_err(|e| io_err("stdin", e))?;
            }
            return Ok(());
        }
        self.stdin = None;
        Ok(())
    }

    async fn read_output(&mut self) -> Result<Option<(OutputStream, Vec<u8>)>> {
        loop {
            if let Some(p) = &self.pty {
                let d = read_some(p).await.map_err(|e| io_err("output", e))?;
                if d.is_empty() {
                    self.pty = None;
                    return Ok(None);
                }
                return Ok(Some((OutputStream::Stdout, d)));
            }
            let (out, err) = (self.stdout.as_ref(), self.stderr.as_ref());
            let r = match (out, err) {
                (None, None) => return Ok(None),
                (Some(o), None) => (OutputStream::Stdout, read_some(o).await),
                (None, Some(e)) => (OutputStream::Stderr, read_some(e).await),
                (Some(o), Some(e)) => tokio::select! {
                    r = read_some(o) => (OutputStream::Stdout, r),
                    r = read_some(e) => (OutputStream::Stderr, r),
                },
            };
            match r {
                (s, Ok(d)) if d.is_empty() => match s {
                    OutputStream::Stdout => self.stdout = None,
                    OutputStream::Stderr => self.stderr = None,
                },
                (s, Ok(d)) => return Ok(Some((s, d))),
                (_, Err(e)) => return Err(io_err("output", e)),
            }
        }
    }

    async fn resize(&mut self, rows: u16, cols: u16) -> Result<()> {
        match &self.pty {
            Some(p) => berth_runtime::resize(p.get_ref().as_raw_fd(), rows, cols)
                .map_err(|e| CriError::internal(format!("resize: {e}"))),
            None => Ok(()),
        }
    }

    async fn wait(&mut self) -> Result<i32> {
        if let Some(code) = self.exit {
            return Ok(code);
        }
        let mut p = self
            .process
            .take()
            .ok_or_else(|| CriError::internal("exec process already waited for"))?;
        let code = tokio::task::spawn_blocking(move || p.wait())
            .await
            .map_err(|e| CriError::internal(format!("wait: {e}")))?
            .map_err(|e| CriError::internal(format!("wait: {e}")))?;
        self.exit = Some(code);
        Ok(code)
    }

    async fn kill(&mut self) -> Result<()> {
        if self.exit.is_none() && self.process.is_some() {
            // SAFETY: signalling our own unreaped child (its pid cannot be reused before
            // we wait for it).
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            self.wait().await?;
        }
        Ok(())
    }
}

impl Drop for OciExecSession {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            // Not waited for: kill and reap in the background, leaving no zombie.
            // SAFETY: as in `kill`.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            std::thread::spawn(move || {
                let _ = p.wait();
            });
        }
    }
}
