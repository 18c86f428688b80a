//! Terminals: the container side opens a pseudo-terminal in its own devpts, makes it the
//! controlling terminal and stdio, and sends the master over a unix socket (runc's
//! `--console-socket` protocol: one `SCM_RIGHTS` message).

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::caps::errno;
use crate::error::{Result, RuntimeError};

/// Sends `fd` over the unix socket `sock` with `name` as payload. Async-signal-safe.
pub(crate) fn send_fd(sock: RawFd, fd: RawFd, name: &[u8]) -> std::result::Result<(), i32> {
    let mut iov = libc::iovec {
        iov_base: name.as_ptr() as *mut _,
        iov_len: name.len().max(1),
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: msghdr and control buffer live on the stack for the call; CMSG macros stay
    // within the buffer sized for one descriptor.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as _;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
        if libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) < 0 {
            return Err(errno());
        }
    }
    Ok(())
}

/// Receives one descriptor sent with [`send_fd`].
pub fn recv_fd(sock: RawFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 256];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: as in send_fd; the received descriptor is owned by the caller afterwards.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
        let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n < 0 {
            return Err(RuntimeError::sys(
                "recvmsg (terminal)",
                std::io::Error::last_os_error(),
            ));
        }
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
            return Err(RuntimeError::sys(
                "recvmsg (terminal)",
                std::io::Error::from_raw_os_error(libc::EBADMSG),
            ));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>());
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Sets the window size of a terminal.
pub fn resize(fd: RawFd, rows: u16, cols: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ with a valid winsize.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(RuntimeError::sys(
            "resize terminal",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// In the container (after pivot_root): opens a terminal, sends its master over `sock` and
/// makes its other side the controlling terminal and fds 0-2. Async-signal-safe.
pub(crate) fn setup_in_container(
    sock: RawFd,
    size: Option<(u16, u16)>,
) -> std::result::Result<(), i32> {
    // SAFETY: plain system calls on descriptors this function opens.
    unsafe {
        let master = libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if master < 0 {
            return Err(errno());
        }
        let unlock: libc::c_int = 0;
        if libc::ioctl(master, libc::TIOCSPTLCK, &unlock) != 0 {
            return Err(errno());
        }
        if let Some((rows, cols)) = size {
            let ws = libc::winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            libc::ioctl(master, libc::TIOCSWINSZ, &ws);
        }
        let slave = libc::ioctl(master, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY);
        if slave < 0 {
            return Err(errno());
        }
        send_fd(sock, master, b"/dev/ptmx")?;
        libc::close(master);
        libc::close(sock);
        if libc::ioctl(slave, libc::TIOCSCTTY, 0) != 0 {
            return Err(errno());
        }
        for t in 0..3 {
            if libc::dup2(slave, t) < 0 {
                return Err(errno());
            }
        }
        if slave > 2 {
            libc::close(slave);
        }
    }
    Ok(())
}
