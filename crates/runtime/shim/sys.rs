//! Raw Linux system calls for the shim image: no libc, so the process stays a few pages big.

use core::arch::asm;

#[cfg(target_arch = "x86_64")]
pub mod nr {
    pub const READ: usize = 0;
    pub const CLOSE: usize = 3;
    pub const FSTAT: usize = 5;
    pub const RT_SIGPROCMASK: usize = 14;
    pub const WRITEV: usize = 20;
    pub const WAIT4: usize = 61;
    pub const CLOCK_GETTIME: usize = 228;
    pub const EXIT_GROUP: usize = 231;
    pub const OPENAT: usize = 257;
    pub const RENAMEAT: usize = 264;
    pub const PPOLL: usize = 271;
    pub const SIGNALFD4: usize = 289;
}

#[cfg(target_arch = "aarch64")]
pub mod nr {
    pub const READ: usize = 63;
    pub const CLOSE: usize = 57;
    pub const FSTAT: usize = 80;
    pub const RT_SIGPROCMASK: usize = 135;
    pub const WRITEV: usize = 66;
    pub const WAIT4: usize = 260;
    pub const CLOCK_GETTIME: usize = 113;
    pub const EXIT_GROUP: usize = 94;
    pub const OPENAT: usize = 56;
    pub const RENAMEAT: usize = 38;
    pub const PPOLL: usize = 73;
    pub const SIGNALFD4: usize = 74;
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn syscall(n: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the caller passes arguments valid for system call `n`.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a[0], in("rsi") a[1],
             in("rdx") a[2], in("r10") a[3], in("r8") a[4], in("r9") a[5],
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub unsafe fn syscall(n: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the caller passes arguments valid for system call `n`.
    unsafe {
        asm!("svc 0", in("x8") n, inlateout("x0") a[0] as isize => ret, in("x1") a[1],
             in("x2") a[2], in("x3") a[3], in("x4") a[4], in("x5") a[5], options(nostack));
    }
    ret
}

pub const AT_FDCWD: isize = -100;
pub const O_WRONLY: usize = 0o1;
pub const O_CREAT: usize = 0o100;
pub const O_TRUNC: usize = 0o1000;
pub const O_APPEND: usize = 0o2000;
pub const O_CLOEXEC: usize = 0o2000000;
pub const POLLIN: i16 = 1;
pub const POLLHUP: i16 = 0x10;
pub const POLLERR: i16 = 0x8;
pub const WNOHANG: usize = 1;
pub const EINTR: isize = 4;
pub const EAGAIN: isize = 11;

#[repr(C)]
pub struct PollFd {
    pub fd: i32,
    pub events: i16,
    pub revents: i16,
}

#[repr(C)]
pub struct IoVec {
    pub base: *const u8,
    pub len: usize,
}

#[repr(C)]
pub struct Timespec {
    pub sec: i64,
    pub nsec: i64,
}

pub fn read(fd: i32, buf: &mut [u8]) -> isize {
    // SAFETY: buf is valid for writes of buf.len() bytes.
    unsafe {
        syscall(
            nr::READ,
            [fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0],
        )
    }
}

pub fn writev(fd: i32, iov: &[IoVec]) -> isize {
    // SAFETY: every iovec points to live memory of its length.
    unsafe {
        syscall(
            nr::WRITEV,
            [fd as usize, iov.as_ptr() as usize, iov.len(), 0, 0, 0],
        )
    }
}

pub fn close(fd: i32) {
    // SAFETY: closing a descriptor number has no memory effects.
    unsafe { syscall(nr::CLOSE, [fd as usize, 0, 0, 0, 0, 0]) };
}

/// Opens NUL-terminated `path` (relative to the working directory).
pub fn open(path: &[u8], flags: usize, mode: usize) -> isize {
    // SAFETY: path is NUL-terminated (callers build it with `Path::c_str`).
    unsafe {
        syscall(
            nr::OPENAT,
            [AT_FDCWD as usize, path.as_ptr() as usize, flags, mode, 0, 0],
        )
    }
}

pub fn rename(from: &[u8], to: &[u8]) -> isize {
    // SAFETY: both paths are NUL-terminated.
    unsafe {
        syscall(
            nr::RENAMEAT,
            [
                AT_FDCWD as usize,
                from.as_ptr() as usize,
                AT_FDCWD as usize,
                to.as_ptr() as usize,
                0,
                0,
            ],
        )
    }
}

/// Size of an open file, from fstat (st_size is at offset 48 on both supported architectures).
pub fn file_size(fd: i32) -> u64 {
    let mut st = [0u64; 18];
    // SAFETY: st is larger than struct stat (144 bytes on x86_64 and aarch64).
    let r = unsafe {
        syscall(
            nr::FSTAT,
            [fd as usize, st.as_mut_ptr() as usize, 0, 0, 0, 0],
        )
    };
    if r < 0 { 0 } else { st[6] }
}

pub fn wait4(pid: isize, status: &mut i32, options: usize) -> isize {
    // SAFETY: status is a valid int; rusage is NULL.
    unsafe {
        syscall(
            nr::WAIT4,
            [pid as usize, status as *mut i32 as usize, options, 0, 0, 0],
        )
    }
}

pub fn ppoll(fds: &mut [PollFd], timeout_ms: i64) -> isize {
    let ts = Timespec {
        sec: timeout_ms / 1000,
        nsec: (timeout_ms % 1000) * 1_000_000,
    };
    let tsp = if timeout_ms < 0 {
        0
    } else {
        &ts as *const Timespec as usize
    };
    // SAFETY: fds and ts are valid for the call; sigmask is NULL.
    unsafe {
        syscall(
            nr::PPOLL,
            [fds.as_mut_ptr() as usize, fds.len(), tsp, 0, 8, 0],
        )
    }
}

/// Blocks `mask` (a 64-bit signal set) and returns a non-blocking signalfd for it.
pub fn block_and_signalfd(mask: u64) -> isize {
    // SAFETY: mask is a valid 8-byte sigset; old set is NULL.
    unsafe {
        syscall(
            nr::RT_SIGPROCMASK,
            [0, &mask as *const u64 as usize, 0, 8, 0, 0],
        );
        syscall(
            nr::SIGNALFD4,
            [
                usize::MAX,
                &mask as *const u64 as usize,
                8,
                0o4000 | O_CLOEXEC,
                0,
                0,
            ],
        )
    }
}

pub fn realtime() -> Timespec {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: ts is a valid timespec (CLOCK_REALTIME = 0).
    unsafe {
        syscall(
            nr::CLOCK_GETTIME,
            [0, &mut ts as *mut Timespec as usize, 0, 0, 0, 0],
        )
    };
    ts
}

pub fn exit(code: i32) -> ! {
    // SAFETY: exit_group never returns.
    unsafe { syscall(nr::EXIT_GROUP, [code as usize, 0, 0, 0, 0, 0]) };
    loop {}
}

/// Writes all of `data` to `fd`.
pub fn write_all(fd: i32, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        let r = writev(
            fd,
            &[IoVec {
                base: data.as_ptr(),
                len: data.len(),
            }],
        );
        if r == -EINTR {
            continue;
        }
        if r <= 0 {
            return false;
        }
        data = &data[r as usize..];
    }
    true
}
