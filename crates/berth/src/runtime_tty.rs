//! `berth runtime exec -t` in the foreground: copies between this terminal and the exec'd
//! process's terminal (raw mode on ours), and passes window size changes on.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};

use anyhow::Context;
use berth_runtime::ExecProcess;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};

/// Puts a terminal into raw mode until dropped.
struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    fn enable() -> RawMode {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            termios::cfmakeraw(&mut raw);
            let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        }
        RawMode { saved }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, t);
        }
    }
}

/// Copies until the process's side of the terminal closes.
pub fn proxy(master: File, proc: &ExecProcess) -> anyhow::Result<()> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGWINCH);
    mask.thread_block().context("block SIGWINCH")?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .context("signalfd")?;
    let _raw = RawMode::enable();
    let mut stdin_open = true;
    let mut buf = [0u8; 8192];
    let mut out = std::io::stdout();
    let mut m = &master;
    loop {
        // SAFETY: fd 0 stays open for the whole loop.
        let stdin_fd = unsafe { BorrowedFd::borrow_raw(0) };
        let mut fds = vec![
            PollFd::new(master.as_fd(), PollFlags::POLLIN),
            PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin_fd, PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("poll"),
        }
        let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        let (m_ready, s_ready, i_ready) =
            (ready(&fds[0]), ready(&fds[1]), stdin_open && ready(&fds[2]));
        drop(fds);
        if m_ready {
            match m.read(&mut buf) {
                Ok(0) | Err(_) => return Ok(()),
                Ok(n) => {
                    out.write_all(&buf[..n])?;
                    out.flush()?;
                }
            }
        }
        if s_ready {
            while let Ok(Some(_)) = sigfd.read_signal() {}
            if let Some((rows, cols)) = crate::runtime_cli::terminal_size() {
                let _ = proc.resize(rows, cols);
            }
        }
        if i_ready {
            // SAFETY: reading from fd 0 into a stack buffer.
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                stdin_open = false;
            } else {
                (&master).write_all(&buf[..n as usize])?;
            }
        }
    }
}
