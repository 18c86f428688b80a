//! One worker's idle upstream connections, per endpoint, most recently used first (the one
//! most likely still open). A connection the endpoint closed while idle is noticed before
//! reuse without a system call: the worker's reactor has already marked it readable, so a
//! non-blocking read sees the end of stream (or stray bytes) and the connection is dropped.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

/// Idle connections kept per endpoint.
const MAX_IDLE_PER_ENDPOINT: usize = 256;
/// An idle connection older than this is closed instead of reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Every this many returns, endpoints' expired connections are swept.
const SWEEP_EVERY: u32 = 4096;

struct Idle {
    stream: TcpStream,
    since: Instant,
}

#[derive(Default)]
struct Inner {
    by_endpoint: HashMap<SocketAddr, Vec<Idle>>,
    returns: u32,
}

/// The pool (one per worker thread; the lock is never contended or held across an await).
pub(crate) struct Pool {
    inner: Mutex<Inner>,
    connect_timeout: Duration,
}

/// Whether an idle connection can be reused: nothing to read and no end of stream seen.
fn still_open(s: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(s.try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

impl Pool {
    pub(crate) fn new(connect_timeout: Duration) -> Pool {
        Pool {
            inner: Mutex::default(),
            connect_timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle connection to `endpoint` that is still open, if there is one.
    pub(crate) fn take(&self, endpoint: SocketAddr) -> Option<TcpStream> {
        let mut inner = self.lock();
        let idle = inner.by_endpoint.get_mut(&endpoint)?;
        while let Some(c) = idle.pop() {
            if c.since.elapsed() < IDLE_TIMEOUT && still_open(&c.stream) {
                return Some(c.stream);
            }
        }
        None
    }

    /// Keeps a connection that finished an exchange cleanly.
    pub(crate) fn put(&self, endpoint: SocketAddr, stream: TcpStream) {
        let mut inner = self.lock();
        inner.returns = inner.returns.wrapping_add(1);
        if inner.returns.is_multiple_of(SWEEP_EVERY) {
            inner.by_endpoint.retain(|_, idle| {
                idle.retain(|c| c.since.elapsed() < IDLE_TIMEOUT);
                !idle.is_empty()
            });
        }
        let idle = inner.by_endpoint.entry(endpoint).or_default();
        if idle.len() >= MAX_IDLE_PER_ENDPOINT {
            idle.remove(0);
        }
        idle.push(Idle {
            stream,
            since: Instant::now(),
        });
    }

    /// A new connection to `endpoint`.
    pub(crate) async fn connect(&self, endpoint: SocketAddr) -> io::Result<TcpStream> {
        let s = tokio::time::timeout(self.connect_timeout, TcpStream::connect(endpoint))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        s.set_nodelay(true)?;
        Ok(s)
    }

    #[cfg(test)]
    pub(crate) fn idle(&self, endpoint: SocketAddr) -> usize {
        self.lock().by_endpoint.get(&endpoint).map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_connection_closed_or_talking_while_idle_is_not_reused() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = l.local_addr().unwrap();
        let pool = Pool::new(Duration::from_secs(2));
        let (mut ours, mut served) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            ours.push(pool.connect(at).await.unwrap());
            served.push(l.accept().await.unwrap().0);
        }
        // The newest is closed by the endpoint, the next one gets unsolicited bytes; the
        // reactor has seen both before they go idle.
        drop(served.pop());
        served[1].write_all(b"x").await.unwrap();
        for c in &ours[1..] {
            c.readable().await.unwrap();
        }
        for c in ours {
            pool.put(at, c);
        }
        assert_eq!(pool.idle(at), 3);
        let kept = pool.take(at).expect("the oldest is still open");
        assert_eq!(pool.idle(at), 0, "the two bad ones were dropped on the way");
        assert_eq!(
            kept.local_addr().unwrap(),
            served[0].peer_addr().unwrap(),
            "the one the endpoint left alone"
        );
        assert!(pool.take(at).is_none());
    }
}
