//! Plain data crossing the seam.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

/// Credentials for a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryAuth {
    Basic { username: String, password: String },
    Bearer { token: String },
}

/// The runtime's name and version (`berth`, `0.1.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeVersion {
    pub name: String,
    pub version: String,
}

/// Whether the runtime can run pods; `Err` carries the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeStatus {
    pub runtime_ready: Result<(), String>,
    pub network_ready: Result<(), String>,
}

/// A local image as listed by [`crate::ContainerRuntime::list_images`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// `sha256:...` of the image config (the image ID).
    pub id: String,
    /// `sha256:...` of the manifest.
    pub digest: String,
    /// Names (`registry/repo:tag`) the image is known by.
    pub names: Vec<String>,
    pub size_bytes: u64,
}

/// Capacity and use of a filesystem.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsInfo {
    pub path: PathBuf,
    pub capacity_bytes: u64,
    pub available_bytes: u64,
    /// Bytes used by what the runtime keeps there (images, container layers).
    pub used_bytes: u64,
    pub inodes: u64,
    pub inodes_free: u64,
}

/// A local image: the reference asked for and what it resolved to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageRef {
    pub reference: String,
    /// `sha256:...` of the manifest.
    pub digest: String,
    /// `sha256:...` of the image config (the image ID).
    pub id: String,
    pub size_bytes: u64,
    /// The image's user (`uid[:gid]` or a name), for `runAsNonRoot` checks.
    pub user: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub protocol: Protocol,
    pub container_port: u16,
    /// 0: none.
    pub host_port: u16,
    pub host_ip: Option<IpAddr>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsConfig {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// A pod's sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxConfig {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub attempt: u32,
    pub hostname: String,
    /// Directory for the pod's container logs.
    pub log_directory: PathBuf,
    pub dns: DnsConfig,
    pub port_mappings: Vec<PortMapping>,
    /// Share the node's network namespace (`hostNetwork`).
    pub host_network: bool,
    /// Absolute cgroup path under which the pod's containers go.
    pub cgroup_parent: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub container_path: PathBuf,
    pub host_path: PathBuf,
    pub readonly: bool,
}

/// Limits (absent: unlimited).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_shares: Option<u64>,
    pub cpu_quota_us: Option<i64>,
    pub cpu_period_us: Option<u64>,
    pub memory_limit_bytes: Option<i64>,
    pub pids_limit: Option<i64>,
    pub oom_score_adj: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SeccompProfile {
    /// The runtime's default filter.
    #[default]
    RuntimeDefault,
    Unconfined,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityContext {
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    /// Refuse to start when the process would run as uid 0 (image user included).
    pub run_as_non_root: bool,
    pub supplemental_groups: Vec<u32>,
    pub privileged: bool,
    pub read_only_root_filesystem: bool,
    pub allow_privilege_escalation: bool,
    /// Capability names (`NET_ADMIN`) added to / dropped from the default set.
    pub add_capabilities: Vec<String>,
    pub drop_capabilities: Vec<String>,
    pub seccomp: SeccompProfile,
}

/// A container in a sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerConfig {
    pub name: String,
    pub attempt: u32,
    pub image: String,
    /// Overrides the image's entrypoint when non-empty.
    pub command: Vec<String>,
    /// Overrides the image's cmd when non-empty.
    pub args: Vec<String>,
    pub working_dir: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
    /// Relative to the sandbox's log directory.
    pub log_path: PathBuf,
    pub stdin: bool,
    pub tty: bool,
    pub resources: Resources,
    pub security: SecurityContext,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxState {
    Ready,
    NotReady,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxStatus {
    pub id: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub attempt: u32,
    pub state: SandboxState,
    pub ip: Option<IpAddr>,
    pub created_at_ns: i64,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub id: String,
    pub sandbox_id: String,
    pub name: String,
    pub attempt: u32,
    pub image: ImageRef,
    pub state: ContainerState,
    pub created_at_ns: i64,
    pub started_at_ns: Option<i64>,
    pub finished_at_ns: Option<i64>,
    pub exit_code: Option<i32>,
    /// `OOMKilled`, `Completed`, `Error`, ...
    pub reason: Option<String>,
    pub message: Option<String>,
    pub log_path: PathBuf,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// Everything a runtime runs, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub sandboxes: Vec<SandboxStatus>,
    pub containers: Vec<ContainerStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    pub command: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    /// Initial terminal size (rows, columns).
    pub size: Option<(u16, u16)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerStats {
    pub container_id: String,
    pub timestamp_ns: i64,
    pub cpu_usage_ns: u64,
    pub memory_usage_bytes: u64,
    pub memory_working_set_bytes: u64,
    pub memory_limit_bytes: Option<u64>,
    pub pids: u64,
}
