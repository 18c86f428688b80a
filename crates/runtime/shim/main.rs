//! berth's per-container shim image: the process that stays the parent of one container.
//!
//! It is built by `crates/runtime/build.rs` as a static, freestanding executable (no libc, no
//! allocator, raw system calls), embedded in the berth binary and exec'd by the process that
//! cloned the container, so it inherits the container as its child. Being tiny is the point:
//! it stays resident for the container's whole life, and its RSS is a few pages.
//!
//! Jobs: copy the container's stdout/stderr pipes into a CRI-format log file
//! (`<RFC3339Nano> stdout|stderr P|F <line>`) with size-based rotation, reap the container,
//! and record its wait status, exit time and the memory cgroup's `oom_kill` counter in the
//! exit file (written atomically). Arguments (all required, `-` for none):
//! `EXIT_FILE PID LOG_PATH LOG_MAX_BYTES LOG_MAX_FILES STDOUT_FD STDERR_FD OOM_FILE`.

#![no_std]
#![no_main]

mod sys;
mod text;

use sys::{IoVec, PollFd};
use text::{Buf, find_counter, parse_i64, push_rfc3339};

const LINE_MAX: usize = 16 * 1024;
const PATH_MAX: usize = 4096;

#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "xor rbp, rbp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call shim_main",
    "ud2",
);

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "mov x0, sp",
    "bl shim_main",
    "brk #0",
);

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    sys::exit(127)
}

/// One output stream of the container (stdout or stderr) and its partial line.
struct Stream {
    fd: i32,
    name: &'static [u8],
    buf: [u8; LINE_MAX],
    len: usize,
}

/// The CRI log file with its rotation policy.
struct Log {
    fd: i32,
    path: Buf<PATH_MAX>,
    size: u64,
    max_size: u64,
    max_files: u64,
}

impl Log {
    fn open(path: &[u8], max_size: u64, max_files: u64) -> Log {
        let mut p = Buf::new();
        p.push(path);
        let fd = sys::open(
            p.c_str(),
            sys::O_WRONLY | sys::O_CREAT | sys::O_APPEND | sys::O_CLOEXEC,
            0o640,
        );
        let fd = if fd < 0 { -1 } else { fd as i32 };
        let size = if fd >= 0 { sys::file_size(fd) } else { 0 };
        Log {
            fd,
            path: p,
            size,
            max_size,
            max_files,
        }
    }

    /// Renames `log` to `log.1`, shifting older files up to `log.<max_files-1>`, and reopens.
    fn rotate(&mut self) {
        let mut n = self.max_files.saturating_sub(1);
        while n > 1 {
            let mut from = Buf::<PATH_MAX>::new();
            from.push(self.path.as_bytes()).push(b".").push_u64(n - 1);
            let mut to = Buf::<PATH_MAX>::new();
            to.push(self.path.as_bytes()).push(b".").push_u64(n);
            sys::rename(from.c_str(), to.c_str());
            n -= 1;
        }
        let flags = sys::O_WRONLY | sys::O_CREAT | sys::O_APPEND | sys::O_CLOEXEC;
        if self.max_files >= 2 {
            let mut to = Buf::<PATH_MAX>::new();
            to.push(self.path.as_bytes()).push(b".1");
            sys::rename(self.path.c_str(), to.c_str());
        }
        sys::close(self.fd);
        let fd = sys::open(self.path.c_str(), flags | sys::O_TRUNC, 0o640);
        self.fd = if fd < 0 { -1 } else { fd as i32 };
        self.size = 0;
    }

    fn write_line(&mut self, stream: &[u8], partial: bool, line: &[u8]) {
        if self.fd < 0 {
            return;
        }
        let now = sys::realtime();
        let mut head = Buf::<64>::new();
        push_rfc3339(&mut head, now.sec, now.nsec);
        head.push(b" ")
            .push(stream)
            .push(if partial { b" P " } else { b" F " });
        let total = (head.as_bytes().len() + line.len() + 1) as u64;
        if self.max_size > 0 && self.size > 0 && self.size + total > self.max_size {
            self.rotate();
        }
        let iov = [
            IoVec {
                base: head.as_bytes().as_ptr(),
                len: head.as_bytes().len(),
            },
            IoVec {
                base: line.as_ptr(),
                len: line.len(),
            },
            IoVec {
                base: b"\n".as_ptr(),
                len: 1,
            },
        ];
        let mut r = sys::writev(self.fd, &iov);
        while r == -sys::EINTR {
            r = sys::writev(self.fd, &iov);
        }
        if r > 0 {
            self.size += r as u64;
        }
    }
}

impl Stream {
    /// Reads what is available; returns false at end of stream.
    fn pump(&mut self, log: &mut Log) -> bool {
        let r = sys::read(self.fd, &mut self.buf[self.len..]);
        if r == -sys::EINTR || r == -sys::EAGAIN {
            return true;
        }
        if r <= 0 {
            // EOF, or EIO from a terminal whose other side closed.
            if self.len > 0 {
                log.write_line(self.name, false, &self.buf[..self.len]);
                self.len = 0;
            }
            return false;
        }
        self.len += r as usize;
        let mut start = 0;
        while let Some(p) = self.buf[start..self.len].iter().position(|&b| b == b'\n') {
            let mut line = &self.buf[start..start + p];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            log.write_line(self.name, false, line);
            start += p + 1;
        }
        if start == 0 && self.len == LINE_MAX {
            log.write_line(self.name, true, &self.buf[..self.len]);
            self.len = 0;
        } else if start > 0 {
            self.buf.copy_within(start..self.len, 0);
            self.len -= start;
        }
        true
    }
}

/// argv[i] as a byte slice without its NUL.
///
/// # Safety
/// `argv` must be the kernel-provided argument vector with at least `i + 1` entries.
unsafe fn arg<'a>(argv: *const *const u8, i: usize) -> &'a [u8] {
    // SAFETY: argv[i] is a NUL-terminated string that lives for the whole process.
    unsafe {
        let p = *argv.add(i);
        let mut n = 0;
        while *p.add(n) != 0 {
            n += 1;
        }
        core::slice::from_raw_parts(p, n)
    }
}

fn read_oom_kills(path: &[u8]) -> i64 {
    if path == b"-" {
        return -1;
    }
    let mut p = Buf::<PATH_MAX>::new();
    p.push(path);
    let fd = sys::open(p.c_str(), sys::O_CLOEXEC, 0);
    if fd < 0 {
        return -1;
    }
    let mut buf = [0u8; 1024];
    let n = sys::read(fd as i32, &mut buf);
    sys::close(fd as i32);
    if n <= 0 {
        return -1;
    }
    find_counter(&buf[..n as usize], b"oom_kill").unwrap_or(-1)
}

fn write_exit_file(path: &[u8], status: i32, oom_kills: i64) {
    let now = sys::realtime();
    let mut body = Buf::<256>::new();
    body.push(b"status=")
        .push_i64(status as i64)
        .push(b"\nexited_at=");
    push_rfc3339(&mut body, now.sec, now.nsec);
    body.push(b"\noom_kill=").push_i64(oom_kills).push(b"\n");
    let mut tmp = Buf::<PATH_MAX>::new();
    tmp.push(path).push(b".tmp");
    let mut dst = Buf::<PATH_MAX>::new();
    dst.push(path);
    let fd = sys::open(
        tmp.c_str(),
        sys::O_WRONLY | sys::O_CREAT | sys::O_TRUNC | sys::O_CLOEXEC,
        0o644,
    );
    if fd >= 0 {
        sys::write_all(fd as i32, body.as_bytes());
        sys::close(fd as i32);
        sys::rename(tmp.c_str(), dst.c_str());
    }
}

/// Collects every exited child; records the container's wait status.
fn reap(pid: isize, status: &mut Option<i32>) {
    loop {
        let mut st = 0i32;
        let r = sys::wait4(-1, &mut st, sys::WNOHANG);
        if r <= 0 {
            break;
        }
        if r == pid {
            *status = Some(st);
        }
    }
}

#[unsafe(no_mangle)]
unsafe extern "C" fn shim_main(sp: *const usize) -> ! {
    // SAFETY: at _start the stack holds argc followed by the argv pointers.
    let (argc, argv) = unsafe { (*sp, sp.add(1) as *const *const u8) };
    if argc < 9 {
        sys::exit(2);
    }
    // SAFETY: argc was checked, so argv[1..=8] exist.
    let a = |i| unsafe { arg(argv, i) };
    let exit_file = a(1);
    let pid = parse_i64(a(2)).unwrap_or(0) as isize;
    let log_path = a(3);
    let max_size = parse_i64(a(4)).unwrap_or(0).max(0) as u64;
    let max_files = parse_i64(a(5)).unwrap_or(1).max(1) as u64;
    let out_fd = parse_i64(a(6)).unwrap_or(-1) as i32;
    let err_fd = parse_i64(a(7)).unwrap_or(-1) as i32;
    let oom_file = a(8);
    if pid <= 0 {
        sys::exit(2);
    }

    // SIGCHLD arrives through a signalfd; the rest of the job-control noise is blocked.
    let mask: u64 = [1u64, 2, 3, 13, 15, 17]
        .iter()
        .fold(0, |m, s| m | 1 << (s - 1));
    let sigfd = sys::block_and_signalfd(mask) as i32;

    let mut log = if log_path == b"-" {
        Log {
            fd: -1,
            path: Buf::new(),
            size: 0,
            max_size: 0,
            max_files: 1,
        }
    } else {
        Log::open(log_path, max_size, max_files)
    };
    let mut out = Stream {
        fd: out_fd,
        name: b"stdout",
        buf: [0; LINE_MAX],
        len: 0,
    };
    let mut err = Stream {
        fd: err_fd,
        name: b"stderr",
        buf: [0; LINE_MAX],
        len: 0,
    };

    let mut status: Option<i32> = None;
    reap(pid, &mut status);
    loop {
        let mut fds = [
            PollFd {
                fd: sigfd,
                events: sys::POLLIN,
                revents: 0,
            },
            PollFd {
                fd: out.fd,
                events: sys::POLLIN,
                revents: 0,
            },
            PollFd {
                fd: err.fd,
                events: sys::POLLIN,
                revents: 0,
            },
        ];
        if status.is_some() && out.fd < 0 && err.fd < 0 {
            break;
        }
        // Once the container is gone, drain what its streams still hold, but do not wait for
        // writers that escaped into a shared PID namespace.
        let timeout = if status.is_some() { 100 } else { -1 };
        let n = sys::ppoll(&mut fds, timeout);
        if n == 0 {
            break;
        }
        if n < 0 {
            continue;
        }
        let ready = |f: &PollFd| f.revents & (sys::POLLIN | sys::POLLHUP | sys::POLLERR) != 0;
        if out.fd >= 0 && ready(&fds[1]) && !out.pump(&mut log) {
            sys::close(out.fd);
            out.fd = -1;
        }
        if err.fd >= 0 && ready(&fds[2]) && !err.pump(&mut log) {
            sys::close(err.fd);
            err.fd = -1;
        }
        if ready(&fds[0]) {
            let mut info = [0u8; 128];
            while sys::read(sigfd, &mut info) > 0 {}
            reap(pid, &mut status);
        }
    }
    let st = status.unwrap_or(0);
    write_exit_file(exit_file, st, read_oom_kills(oom_file));
    sys::exit(0)
}

// The compiler lowers copies and fills to these; there is no libc to provide them.

/// # Safety
/// Standard `memcpy` contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    let mut i = 0;
    while i < n {
        // SAFETY: the caller guarantees both ranges are valid and disjoint.
        unsafe { *dst.add(i) = *src.add(i) };
        i += 1;
    }
    dst
}

/// # Safety
/// Standard `memmove` contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) < (src as usize) {
        let mut i = 0;
        while i < n {
            // SAFETY: the caller guarantees both ranges are valid.
            unsafe { *dst.add(i) = *src.add(i) };
            i += 1;
        }
    } else {
        let mut i = n;
        while i > 0 {
            i -= 1;
            // SAFETY: as above.
            unsafe { *dst.add(i) = *src.add(i) };
        }
    }
    dst
}

/// # Safety
/// Standard `memset` contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    let mut i = 0;
    while i < n {
        // SAFETY: the caller guarantees the range is valid.
        unsafe { *dst.add(i) = c as u8 };
        i += 1;
    }
    dst
}

/// # Safety
/// Standard `memcmp` contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: the caller guarantees both ranges are valid.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return x as i32 - y as i32;
        }
        i += 1;
    }
    0
}

/// # Safety
/// Standard `strlen` contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: the caller passes a NUL-terminated string.
    while unsafe { *s.add(n) } != 0 {
        n += 1;
    }
    n
}

/// The precompiled `core` refers to the unwinding personality even with `panic=abort`; it is
/// never called because nothing unwinds.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

/// # Safety
/// Standard `bcmp` contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}
