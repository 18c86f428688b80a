//! berth's container runtime: OCI runtime-spec bundles to isolated containers.
//!
//! Job: namespaces, cgroups (v1 and v2), the root filesystem with `pivot_root`, mounts,
//! devices, masked and read-only paths, identity, capabilities, rlimits, `no_new_privs`,
//! seccomp; one tiny shim per detached container; exec into running containers; per-container
//! statistics. The `berth runtime` CLI (runc's verbs) and the node agent both drive it.
//!
//! Depends on no other berth crate; it uses `oci-spec` for the spec types and `libseccomp`
//! only to compile seccomp profiles (once per profile; the BPF is cached on disk).
//!
//! Main decisions (docs/adr, "runtime hot path"):
//! - The start path is written here rather than on youki's libcontainer, to reach half of
//!   crun's lifecycle time: everything is prepared in the parent ([`init`]'s plan), and the
//!   cloned child runs a straight line of system calls that never allocates, so it is also
//!   safe in a child of a multi-threaded process.
//! - Cgroup v1 placement writes `0` to each `tasks` file from the child itself, which avoids
//!   the kernel's global threadgroup lock and its RCU grace period; v2 uses
//!   `CLONE_INTO_CGROUP`.
//! - The shim is a separate static image of ~15 kB built from `shim/` (no libc, no
//!   allocator): the process that cloned the container execs it, so it stays the container's
//!   parent with an RSS of well under 1 MB.
//! - Container-creating calls ([`Runtime::create`], [`Runtime::run`]) fork and are meant for
//!   single-threaded processes (the `berth runtime` subcommands): forking a large
//!   multi-threaded process copies and write-protects its whole heap. The node agent sends its
//!   creates to long-lived helpers ([`serve_creates`], ADR 0013). The first forked child
//!   closes every descriptor of the caller it does not pass on.

mod caps;
mod cgroups;
mod console;
mod container;
mod create_server;
mod error;
mod exec;
mod init;
mod launch;
mod mounts;
mod process;
mod seccomp;
mod shim_image;
mod signals;
mod spec;
mod state;

pub use cgroups::{CgroupMode, CpuStats, MemoryStats, PidsStats, Stats};
pub use console::{recv_fd, resize};
pub use container::{CreateOptions, Runtime};
pub use create_server::{CreateReply, CreateRequest, serve as serve_creates};
pub use error::{Result, RuntimeError};
pub use exec::{ExecOptions, ExecProcess, ExecStdio};
pub use launch::{LogConfig, Stdio};
pub use seccomp::default_profile as default_seccomp_profile;
pub use shim_image::image_size as shim_image_size;
pub use spec::{Bundle, check_id, parse_spec};
pub use state::{ContainerState, ExitInfo, Status};

/// The spec types, re-exported so callers build configs without a direct dependency.
pub use oci_spec::runtime as oci;
