//! berth-cri: the `ContainerRuntime` seam between the node agent and a container runtime,
//! shaped like Kubernetes' CRI (sandboxes, containers, exec, images, stats) plus one
//! `snapshot()` of everything the runtime runs, so the agent's per-pod workers compute actions
//! from (desired pod, snapshot) and an agent restart needs no memory. A second, smaller seam,
//! [`PodNetwork`], is what a runtime calls to attach a sandbox's network namespace to the pod
//! network (CNI's role), so networking plugs in without touching the agent.
//!
//! Depends on no berth crate and names no implementation: the binary wires berth's runtime (or
//! the testing crate's fake) behind the trait. Types are plain data (no Kubernetes types), so a
//! runtime does not need k8s-openapi; times are Unix nanoseconds.
//!
//! Decisions: logs are files in the CRI log format at paths the agent chooses, so the agent
//! reads them itself (no log call); port-forwarding and in-pod probes get a connected socket
//! from [`ContainerRuntime::connect`] rather than a streaming server of the runtime.

mod error;
mod network;
mod types;

pub use error::{CriError, Result};
pub use network::{NetworkAttachment, PodNetwork};
pub use types::*;

use std::time::Duration;

/// An interactive process started by [`ContainerRuntime::exec`].
#[async_trait::async_trait]
pub trait ExecSession: Send {
    /// Sends bytes to the process's stdin (or terminal).
    async fn write_stdin(&mut self, data: &[u8]) -> Result<()>;
    /// Closes stdin (end of input).
    async fn close_stdin(&mut self) -> Result<()>;
    /// Next output chunk; `None` once every output stream is closed.
    async fn read_output(&mut self) -> Result<Option<(OutputStream, Vec<u8>)>>;
    /// Terminal size (rows, columns), for TTY sessions.
    async fn resize(&mut self, rows: u16, cols: u16) -> Result<()>;
    /// Waits for the process; its exit code (128 + signal when killed).
    async fn wait(&mut self) -> Result<i32>;
    /// Kills the process (the session is being abandoned).
    async fn kill(&mut self) -> Result<()>;
}

/// What a node agent needs from a container runtime.
#[async_trait::async_trait]
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Name and version, for the node's `containerRuntimeVersion`.
    fn version(&self) -> RuntimeVersion;
    /// Whether the runtime and its pod network can run pods.
    async fn status(&self) -> RuntimeStatus;
    /// The node's pod CIDR, once the control plane assigned it (handed to the pod network).
    async fn update_runtime_config(&self, pod_cidr: &str) -> Result<()>;

    /// Makes `image` available locally; returns its resolved reference.
    async fn pull_image(&self, image: &str, auth: Option<&RegistryAuth>) -> Result<ImageRef>;
    /// The local image for `image`, if present.
    async fn image_status(&self, image: &str) -> Result<Option<ImageRef>>;
    /// Every local image.
    async fn list_images(&self) -> Result<Vec<ImageInfo>>;
    /// Removes a local image by reference or id; idempotent.
    async fn remove_image(&self, image: &str) -> Result<()>;
    /// Capacity and use of the filesystem holding images and container layers.
    async fn image_fs_info(&self) -> Result<FsInfo>;

    /// Creates the pod's sandbox (namespaces shared by its containers, network); returns its id.
    async fn run_sandbox(&self, config: &SandboxConfig) -> Result<String>;
    /// Stops every container of the sandbox and releases its network; idempotent.
    async fn stop_sandbox(&self, sandbox_id: &str) -> Result<()>;
    /// Removes a stopped sandbox and its containers; idempotent.
    async fn remove_sandbox(&self, sandbox_id: &str) -> Result<()>;

    /// Creates a container in a sandbox; returns its id.
    async fn create_container(&self, sandbox_id: &str, config: &ContainerConfig) -> Result<String>;
    async fn start_container(&self, container_id: &str) -> Result<()>;
    /// Sends SIGTERM (or the image's stop signal), then SIGKILL after `grace`.
    async fn stop_container(&self, container_id: &str, grace: Duration) -> Result<()>;
    async fn remove_container(&self, container_id: &str) -> Result<()>;

    /// Runs a process in a running container.
    async fn exec(&self, container_id: &str, request: &ExecRequest)
    -> Result<Box<dyn ExecSession>>;
    /// CPU and memory usage of one container, for metrics.
    async fn container_stats(&self, container_id: &str) -> Result<ContainerStats>;
    /// Makes the runtime reopen a container's log file (after the agent rotated it).
    async fn reopen_log(&self, container_id: &str) -> Result<()>;
    /// A TCP connection to `port` on the sandbox's loopback, made inside its network
    /// namespace (port-forwarding and probes; works without a pod network).
    async fn connect(&self, sandbox_id: &str, port: u16) -> Result<std::net::TcpStream>;

    /// Every sandbox and container the runtime knows, with their status.
    async fn snapshot(&self) -> Result<Snapshot>;
    /// The sandboxes and containers of one pod (by pod UID).
    async fn pod_snapshot(&self, pod_uid: &str) -> Result<Snapshot>;
}
