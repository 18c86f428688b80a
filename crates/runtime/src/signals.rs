//! Signal forwarding for a container run in the foreground: the caller blocks the signals a
//! user sends (and SIGCHLD) before cloning, then waits for them synchronously and passes each
//! on to the container until it exits.

use crate::error::{Result, RuntimeError};

const FORWARDED: [i32; 8] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCHLD,
];

/// Blocked signals of the calling thread; the previous mask comes back on drop.
pub(crate) struct Forwarder {
    set: libc::sigset_t,
    old: libc::sigset_t,
}

impl Forwarder {
    pub fn block() -> Result<Forwarder> {
        // SAFETY: sigset manipulation on zeroed stack values, then pthread_sigmask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in FORWARDED {
                libc::sigaddset(&mut set, s);
            }
            let r = libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            if r != 0 {
                return Err(RuntimeError::sys(
                    "block signals",
                    std::io::Error::from_raw_os_error(r),
                ));
            }
            Ok(Forwarder { set, old })
        }
    }

    /// Forwards signals to `pid` until it exits; returns its wait status.
    pub fn wait_forwarding(&self, pid: i32) -> Result<i32> {
        loop {
            let mut st = 0;
            // SAFETY: non-blocking waitpid of our own child.
            let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
            if r == pid {
                return Ok(st);
            }
            if r < 0 {
                return Err(RuntimeError::sys(
                    "wait for container",
                    std::io::Error::last_os_error(),
                ));
            }
            // SAFETY: waiting for one of the blocked signals.
            let sig = unsafe { libc::sigwaitinfo(&self.set, std::ptr::null_mut()) };
            if sig > 0 && sig != libc::SIGCHLD {
                // SAFETY: kill with plain integers.
                unsafe { libc::kill(pid, sig) };
            }
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        // SAFETY: restoring the saved mask.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}
