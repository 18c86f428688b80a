//! berth-cri-oci: berth's [`ContainerRuntime`] — pod sandboxes as pinned namespaces,
//! containers through berth's OCI runtime and its shim, images from berth's image store.
//!
//! Depends on the `cri` seam (which it implements), `runtime` and `image`; the binary wires
//! it (and a [`PodNetwork`]) into the node agent. Layout under its root:
//!
//! ```text
//! sandboxes/<id>/   sandbox.json, ns/{net,ipc,uts} (pinned namespaces), resolv.conf, hostname
//! containers/<id>/  config.json, rootfs (overlay mount), upper/, work/, started
//! runtime/          the OCI runtime's state root (one directory per container, shims' exits)
//! ```
//!
//! Decisions (ADR "node agent and CRI adapter"):
//! - No pause container: a sandbox's namespaces are created by a thread and pinned with bind
//!   mounts, so a pod costs one process per container (its shim) and its start path saves
//!   a container creation.
//! - Container creation, the only operation that clones, runs in single-threaded helper
//!   processes (`berth runtime serve-creates`, DESIGN §5), a few kept while containers are
//!   being created ([`creators`], ADR 0013); start, signals, state, stats, delete and exec
//!   (whose child never allocates) run in this process on blocking threads.
//! - Everything needed to answer `snapshot()` is on disk (sandbox records and the OCI
//!   annotations of each container), so a restarted agent adopts running pods as they are.

mod container;
mod creators;
mod exec;
mod images;
mod netns;
mod network;
mod sandbox;
mod spec;

pub use images::EndpointFn;
pub use network::LoopbackNetwork;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_cri::{
    ContainerConfig, ContainerRuntime, ContainerStats, CriError, ExecRequest, ExecSession, FsInfo,
    ImageInfo, ImageRef, NetworkAttachment, PodNetwork, RegistryAuth, Result, RuntimeStatus,
    RuntimeVersion, SandboxConfig, Snapshot,
};
use berth_image::ImageStore;
use berth_runtime::{CgroupMode, ExecOptions, ExecStdio, Runtime};

use crate::container::ContainerDir;
use crate::images::Images;
use crate::sandbox::{SandboxDir, SandboxRecord};

/// Settings of the runtime.
#[derive(Clone)]
pub struct OciRuntimeConfig {
    /// The runtime's own directory (see the crate docs).
    pub root: PathBuf,
    /// The node's image store.
    pub images: PathBuf,
    /// The `berth` executable whose `runtime serve-creates` makes containers.
    pub berth_binary: PathBuf,
    /// Registry for unqualified image names.
    pub default_registry: Option<String>,
    /// Endpoint settings (TLS, credentials) per registry host.
    pub endpoint: EndpointFn,
    /// Container log rotation.
    pub log_max_size: u64,
    pub log_max_files: u32,
}

/// berth's container runtime behind the CRI seam.
pub struct OciContainerRuntime {
    cfg: OciRuntimeConfig,
    runtime: Runtime,
    images: Images,
    network: Arc<dyn PodNetwork>,
    creators: creators::Creators,
    /// Which sandboxes and containers exist (loaded from disk on first use).
    index: Mutex<Option<Index>>,
}

/// sandbox id → (pod uid, container ids).
#[derive(Clone, Default)]
struct Index {
    sandboxes: HashMap<String, (String, Vec<String>)>,
}

impl Index {
    fn containers(&self, sandbox_id: &str) -> Vec<String> {
        self.sandboxes
            .get(sandbox_id)
            .map(|s| s.1.clone())
            .unwrap_or_default()
    }
}

fn random_id() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn internal(what: &str, e: impl std::fmt::Display) -> CriError {
    CriError::internal(format!("{what}: {e}"))
}

fn runtime_err(id: &str, e: berth_runtime::RuntimeError) -> CriError {
    if e.is_not_found() {
        CriError::NotFound {
            kind: "container",
            id: id.to_string(),
        }
    } else {
        CriError::internal(e)
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| internal("blocking task", e))
}

impl OciContainerRuntime {
    pub fn new(cfg: OciRuntimeConfig, network: Arc<dyn PodNetwork>) -> Result<Self> {
        for d in [cfg.root.join("sandboxes"), cfg.root.join("containers")] {
            std::fs::create_dir_all(&d)
                .map_err(|e| internal(&format!("create {}", d.display()), e))?;
        }
        let store = ImageStore::open(&cfg.images)
            .map_err(|e| internal(&format!("image store {}", cfg.images.display()), e))?;
        let runtime = Runtime::new(cfg.root.join("runtime"), CgroupMode::Auto);
        Ok(OciContainerRuntime {
            creators: creators::Creators::new(&cfg.berth_binary, runtime.root()),
            runtime,
            images: Images::new(store, cfg.default_registry.clone(), cfg.endpoint.clone()),
            network,
            index: Mutex::new(None),
            cfg,
        })
    }

    fn sandboxes_root(&self) -> PathBuf {
        self.cfg.root.join("sandboxes")
    }

    fn containers_root(&self) -> PathBuf {
        self.cfg.root.join("containers")
    }

    fn sandbox_dir(&self, id: &str) -> Result<SandboxDir> {
        berth_runtime::check_id(id).map_err(|e| CriError::InvalidArgument {
            field: "sandbox id".into(),
            message: e.to_string(),
        })?;
        Ok(SandboxDir::new(&self.sandboxes_root(), id))
    }

    /// The index, loaded from the sandbox records and the runtime's state on first use.
    async fn index(&self) -> Result<Index> {
        if let Some(i) = self
            .index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return Ok(i.clone());
        }
        let mut idx = Index::default();
        for r in self.sandbox_records().await? {
            idx.sandboxes.insert(r.id.clone(), (r.uid.clone(), vec![]));
        }
        let rt = self.runtime.clone();
        let all = blocking(move || rt.list())
            .await?
            .map_err(|e| internal("list containers", e))?;
        for st in &all {
            match container::sandbox_of(st).and_then(|s| idx.sandboxes.get_mut(s)) {
                Some(e) => e.1.push(st.id.clone()),
                None if container::sandbox_of(st).is_some() => {
                    tracing::warn!(container = %st.id, "container of a missing sandbox; removing it");
                    let rt = self.runtime.clone();
                    let cd = ContainerDir::new(&self.containers_root(), &st.id);
                    let id = st.id.clone();
                    let _ = blocking(move || {
                        let _ = rt.delete(&id, true);
                        let _ = cd.remove();
                    })
                    .await;
                }
                None => {}
            }
        }
        let mut guard = self.index.lock().unwrap_or_else(|p| p.into_inner());
        Ok(guard.get_or_insert(idx).clone())
    }

    fn index_update(&self, f: impl FnOnce(&mut Index)) {
        if let Some(i) = self
            .index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            f(i);
        }
    }

    async fn sandbox_records(&self) -> Result<Vec<SandboxRecord>> {
        let root = self.sandboxes_root();
        blocking(move || {
            let mut out = Vec::new();
            for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                match SandboxDir::new(&root, &name).read() {
                    Ok(r) => out.push(r),
                    Err(err) => tracing::debug!(sandbox = %name, error = %err, "skipping sandbox"),
                }
            }
            out
        })
        .await
    }

    async fn container_statuses(
        &self,
        ids: Vec<String>,
    ) -> Result<Vec<berth_cri::ContainerStatus>> {
        let rt = self.runtime.clone();
        let root = self.containers_root();
        blocking(move || {
            ids.iter()
                .filter_map(|id| rt.state(id).ok())
                .filter_map(|st| container::status(&st, &root))
                .collect()
        })
        .await
    }

    fn attachment(&self, r: &SandboxRecord) -> NetworkAttachment {
        NetworkAttachment {
            sandbox_id: r.id.clone(),
            pod_name: r.name.clone(),
            pod_namespace: r.namespace.clone(),
            pod_uid: r.uid.clone(),
            netns: SandboxDir::new(&self.sandboxes_root(), &r.id).netns(),
            port_mappings: vec![],
        }
    }

    /// Removes the pod cgroup directories of a sandbox from every hierarchy.
    fn remove_cgroup_parent(path: &str) {
        let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return;
        };
        for line in text.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            if !(right.starts_with("cgroup ") || right.starts_with("cgroup2 ")) {
                continue;
            }
            let Some(mp) = left.split(' ').nth(4) else {
                continue;
            };
            let dir = PathBuf::from(mp).join(path.trim_start_matches('/'));
            match std::fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot remove pod cgroup")
                }
            }
        }
    }

    async fn kill_all(&self, ids: &[String]) {
        for id in ids {
            let rt = self.runtime.clone();
            let id2 = id.clone();
            let _ = blocking(move || rt.kill(&id2, libc::SIGKILL, true)).await;
        }
        for id in ids {
            let _ = self.wait_stopped(id, Duration::from_secs(10)).await;
        }
    }

    async fn is_stopped(&self, id: &str) -> Result<bool> {
        let rt = self.runtime.clone();
        let id2 = id.to_string();
        match blocking(move || rt.state(&id2)).await? {
            Ok(st) => Ok(st.status == berth_runtime::Status::Stopped),
            Err(e) if e.is_not_found() => Ok(true),
            Err(e) => Err(runtime_err(id, e)),
        }
    }

    async fn wait_stopped(&self, id: &str, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.is_stopped(id).await? {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[async_trait::async_trait]
impl ContainerRuntime for OciContainerRuntime {
    fn version(&self) -> RuntimeVersion {
        RuntimeVersion {
            name: "berth".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    async fn status(&self) -> RuntimeStatus {
        let runtime_ready = if self.cfg.berth_binary.exists() {
            Ok(())
        } else {
            Err(format!(
                "the runtime executable {} is missing",
                self.cfg.berth_binary.display()
            ))
        };
        RuntimeStatus {
            runtime_ready,
            network_ready: self.network.ready(),
        }
    }

    async fn update_runtime_config(&self, pod_cidr: &str) -> Result<()> {
        self.network.set_pod_cidr(pod_cidr).await
    }

    async fn pull_image(&self, image: &str, auth: Option<&RegistryAuth>) -> Result<ImageRef> {
        self.images.pull(image, auth).await
    }

    async fn image_status(&self, image: &str) -> Result<Option<ImageRef>> {
        self.images.status(image).await
    }

    async fn list_images(&self) -> Result<Vec<ImageInfo>> {
        self.images.list().await
    }

    async fn remove_image(&self, image: &str) -> Result<()> {
        self.images.remove(image).await
    }

    async fn image_fs_info(&self) -> Result<FsInfo> {
        self.images.fs_info().await
    }

    async fn run_sandbox(&self, config: &SandboxConfig) -> Result<String> {
        let t0 = Instant::now();
        self.index().await?;
        let id = random_id();
        let sd = self.sandbox_dir(&id)?;
        let mut rec = SandboxRecord::from_config(&id, config, container::now_ns());
        let (dir, ns_dir) = (sd.dir.clone(), sd.ns_dir());
        let kinds = rec.kinds();
        let hostname = (!config.hostname.is_empty()).then(|| config.hostname.clone());
        let prep = {
            let (sd, rec, dns) = (sd.clone(), rec.clone(), config.dns.clone());
            blocking(move || -> Result<()> {
                std::fs::create_dir_all(&ns_dir)
                    .map_err(|e| internal(&format!("create {}", ns_dir.display()), e))?;
                sd.write(&rec)?;
                sd.write_files(&rec, &dns)?;
                netns::pin(&ns_dir, kinds, hostname.as_deref())
                    .map_err(|e| internal("creating the sandbox's namespaces", e))
            })
            .await?
        };
        if let Err(e) = prep {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let t_prep = t0.elapsed();
        if !rec.host_network {
            let mut att = self.attachment(&rec);
            att.port_mappings = config.port_mappings.clone();
            match self.network.setup(&att).await {
                Ok(ips) => rec.ips = ips,
                Err(e) => {
                    let _ = self.network.teardown(&att).await;
                    netns::unpin(&sd.ns_dir(), kinds);
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(e);
                }
            }
        }
        rec.ready = true;
        sd.write(&rec)?;
        self.index_update(|i| {
            i.sandboxes.insert(id.clone(), (config.uid.clone(), vec![]));
        });
        tracing::debug!(
            sandbox = %id,
            namespaces_ms = t_prep.as_millis() as u64,
            network_ms = (t0.elapsed() - t_prep).as_millis() as u64,
            "sandbox ready"
        );
        Ok(id)
    }

    async fn stop_sandbox(&self, sandbox_id: &str) -> Result<()> {
        let sd = self.sandbox_dir(sandbox_id)?;
        let mut rec = match sd.read() {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        let ids = self.index().await?.containers(sandbox_id);
        self.kill_all(&ids).await;
        if !rec.host_network {
            self.network.teardown(&self.attachment(&rec)).await?;
        }
        netns::unpin(&sd.ns_dir(), rec.kinds());
        if rec.ready {
            rec.ready = false;
            sd.write(&rec)?;
        }
        Ok(())
    }

    async fn remove_sandbox(&self, sandbox_id: &str) -> Result<()> {
        let sd = self.sandbox_dir(sandbox_id)?;
        let rec = match sd.read() {
            Ok(r) => Some(r),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        if rec.is_some() {
            self.stop_sandbox(sandbox_id).await?;
        }
        let ids = self.index().await?.containers(sandbox_id);
        for id in &ids {
            self.remove_container(id).await?;
        }
        self.index_update(|i| {
            i.sandboxes.remove(sandbox_id);
        });
        if let Some(r) = &rec {
            let parent = r.cgroup_parent.clone();
            if !parent.is_empty() {
                blocking(move || Self::remove_cgroup_parent(&parent)).await?;
            }
        }
        let dir = sd.dir.clone();
        blocking(move || match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(internal(&format!("remove {}", dir.display()), e)),
        })
        .await?
    }

    async fn create_container(&self, sandbox_id: &str, config: &ContainerConfig) -> Result<String> {
        let sd = self.sandbox_dir(sandbox_id)?;
        self.index().await?;
        let rec = sd.read()?;
        if !rec.ready {
            return Err(CriError::InvalidArgument {
                field: "sandbox".into(),
                message: format!("sandbox {sandbox_id} is not ready"),
            });
        }
        let prepared = self.images.prepared(&config.image).await?;
        let id = random_id();
        let cd = ContainerDir::new(&self.containers_root(), &id);
        let log_path = rec.log_directory.join(&config.log_path);
        let mut ann: BTreeMap<String, String> = BTreeMap::new();
        ann.insert(container::A_SANDBOX.into(), sandbox_id.into());
        ann.insert(container::A_NAME.into(), config.name.clone());
        ann.insert(container::A_ATTEMPT.into(), config.attempt.to_string());
        ann.insert(container::A_IMAGE.into(), config.image.clone());
        ann.insert(
            container::A_IMAGE_DIGEST.into(),
            prepared.image.digest.clone(),
        );
        ann.insert(container::A_IMAGE_ID.into(), prepared.image.id.clone());
        ann.insert(container::A_LOG_PATH.into(), log_path.display().to_string());
        ann.insert(
            container::A_CREATED_NS.into(),
            container::now_ns().to_string(),
        );
        ann.insert(
            container::A_LABELS.into(),
            serde_json::to_string(&config.labels).map_err(CriError::internal)?,
        );
        ann.insert(
            container::A_ANNOTATIONS.into(),
            serde_json::to_string(&config.annotations).map_err(CriError::internal)?,
        );
        if let Some(s) = &prepared.config.stop_signal {
            ann.insert(container::A_STOP_SIGNAL.into(), s.clone());
        }
        // Filesystem and spec (blocking work).
        let made = {
            let (config, prepared, rec, sd, id2) = (
                config.clone(),
                prepared.clone(),
                rec.clone(),
                sd.clone(),
                id.clone(),
            );
            let cd_dir = cd.dir.clone();
            let log_dir = log_path.parent().map(PathBuf::from);
            blocking(move || -> Result<()> {
                let cd = ContainerDir { dir: cd_dir };
                if let Some(d) = log_dir {
                    std::fs::create_dir_all(&d)
                        .map_err(|e| internal(&format!("create {}", d.display()), e))?;
                }
                cd.mount_rootfs(&prepared.lowerdirs)?;
                let spec = spec::build(spec::SpecInput {
                    id: &id2,
                    config: &config,
                    image: &prepared.config,
                    sandbox: &rec,
                    sandbox_dir: &sd,
                    rootfs: &cd.rootfs(),
                    annotations: ann,
                })?;
                let p = cd.dir.join("config.json");
                std::fs::write(&p, serde_json::to_vec(&spec).map_err(CriError::internal)?)
                    .map_err(|e| internal(&format!("write {}", p.display()), e))
            })
            .await?
        };
        if let Err(e) = made {
            let _ = blocking(move || cd.remove()).await;
            return Err(e);
        }
        // The clone happens in a single-threaded helper process.
        let req = berth_runtime::CreateRequest {
            id: id.clone(),
            bundle: cd.dir.clone(),
            log: berth_runtime::LogConfig {
                path: log_path.clone(),
                max_size: self.cfg.log_max_size,
                max_files: self.cfg.log_max_files,
            },
        };
        let failure = self.creators.create(&req).await.err();
        if let Some(msg) = failure {
            let _ = blocking(move || cd.remove()).await;
            return Err(CriError::Internal {
                message: format!("creating container {}: {msg}", config.name),
            });
        }
        self.index_update(|i| {
            if let Some(e) = i.sandboxes.get_mut(sandbox_id) {
                e.1.push(id.clone());
            }
        });
        Ok(id)
    }

    async fn start_container(&self, container_id: &str) -> Result<()> {
        let rt = self.runtime.clone();
        let id = container_id.to_string();
        let started = ContainerDir::new(&self.containers_root(), container_id).started_file();
        blocking(move || -> Result<()> {
            // Recorded before the program runs, so a fast exit never precedes its start time.
            std::fs::write(&started, container::now_ns().to_string())
                .map_err(|e| internal(&format!("write {}", started.display()), e))?;
            rt.start(&id).map_err(|e| runtime_err(&id, e))
        })
        .await?
    }

    async fn stop_container(&self, container_id: &str, grace: Duration) -> Result<()> {
        let rt = self.runtime.clone();
        let id = container_id.to_string();
        let st = match blocking(move || rt.state(&id)).await? {
            Ok(s) => s,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(runtime_err(container_id, e)),
        };
        if st.status == berth_runtime::Status::Stopped {
            return Ok(());
        }
        let sig = st
            .annotations
            .get(container::A_STOP_SIGNAL)
            .and_then(|s| container::signal_number(s))
            .unwrap_or(libc::SIGTERM);
        if !grace.is_zero() {
            let rt = self.runtime.clone();
            let id = container_id.to_string();
            let _ = blocking(move || rt.kill(&id, sig, false)).await?;
            if self.wait_stopped(container_id, grace).await? {
                return Ok(());
            }
        }
        let rt = self.runtime.clone();
        let id = container_id.to_string();
        let _ = blocking(move || rt.kill(&id, libc::SIGKILL, true)).await?;
        if !self
            .wait_stopped(container_id, Duration::from_secs(10))
            .await?
        {
            return Err(CriError::internal(format!(
                "container {container_id} did not stop after SIGKILL"
            )));
        }
        Ok(())
    }

    async fn remove_container(&self, container_id: &str) -> Result<()> {
        let rt = self.runtime.clone();
        let id = container_id.to_string();
        let cd = ContainerDir::new(&self.containers_root(), container_id);
        blocking(move || -> Result<()> {
            let log = rt
                .state(&id)
                .ok()
                .and_then(|s| s.annotations.get(container::A_LOG_PATH).cloned());
            match rt.delete(&id, true) {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(runtime_err(&id, e)),
            }
            if let Some(l) = log {
                let _ = std::fs::remove_file(&l);
                for n in 1..16 {
                    if std::fs::remove_file(format!("{l}.{n}")).is_err() {
                        break;
                    }
                }
            }
            cd.remove()
        })
        .await??;
        self.index_update(|i| {
            for (_, v) in i.sandboxes.values_mut() {
                v.retain(|c| c != container_id);
            }
        });
        Ok(())
    }

    async fn exec(
        &self,
        container_id: &str,
        request: &ExecRequest,
    ) -> Result<Box<dyn ExecSession>> {
        if request.command.is_empty() {
            return Err(CriError::InvalidArgument {
                field: "command".into(),
                message: "an exec needs a command".into(),
            });
        }
        let rt = self.runtime.clone();
        let id = container_id.to_string();
        let req = request.clone();
        let p = blocking(move || -> Result<berth_runtime::ExecProcess> {
            let mut process = rt.exec_defaults(&id).map_err(|e| runtime_err(&id, e))?;
            process.set_args(Some(req.command.clone()));
            process.set_terminal(Some(req.tty));
            let stdio = if req.tty {
                let (rows, cols) = req.size.unwrap_or((24, 80));
                ExecStdio::Tty { rows, cols }
            } else {
                ExecStdio::Pipes
            };
            rt.exec(&id, &ExecOptions { process, stdio })
                .map_err(|e| match e.is_invalid_state() {
                    true => CriError::InvalidArgument {
                        field: "container".into(),
                        message: e.to_string(),
                    },
                    false => runtime_err(&id, e),
                })
        })
        .await??;
        Ok(Box::new(exec::OciExecSession::new(p)?))
    }

    async fn container_stats(&self, container_id: &str) -> Result<ContainerStats> {
        let rt = self.runtime.clone();
        let id = container_id.to_string();
        let s = blocking(move || rt.stats(&id))
            .await?
            .map_err(|e| runtime_err(container_id, e))?;
        Ok(ContainerStats {
            container_id: container_id.to_string(),
            timestamp_ns: container::now_ns(),
            cpu_usage_ns: s.cpu.usage_ns,
            memory_usage_bytes: s.memory.usage,
            memory_working_set_bytes: s.memory.working_set,
            memory_limit_bytes: s.memory.limit,
            pids: s.pids.current,
        })
    }

    async fn reopen_log(&self, _container_id: &str) -> Result<()> {
        // The shim rotates its log itself (by size) and reopens it; nothing to do.
        Ok(())
    }

    async fn connect(&self, sandbox_id: &str, port: u16) -> Result<std::net::TcpStream> {
        let sd = self.sandbox_dir(sandbox_id)?;
        let rec = sd.read()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let timeout = Duration::from_secs(5);
        if rec.host_network {
            return blocking(move || std::net::TcpStream::connect_timeout(&addr, timeout))
                .await?
                .map_err(|e| internal(&format!("connect to port {port}"), e));
        }
        if !rec.ready {
            return Err(CriError::InvalidArgument {
                field: "sandbox".into(),
                message: format!("sandbox {sandbox_id} is not ready"),
            });
        }
        let ns = sd.netns();
        blocking(move || netns::connect_in(&ns, addr, timeout))
            .await?
            .map_err(|e| CriError::Unavailable {
                message: format!("connect to port {port} in the pod: {e}"),
            })
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        let idx = self.index().await?;
        let uids: Vec<String> = idx
            .sandboxes
            .values()
            .map(|(u, _)| u.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut all = Snapshot::default();
        for uid in uids {
            let s = self.pod_snapshot(&uid).await?;
            all.sandboxes.extend(s.sandboxes);
            all.containers.extend(s.containers);
        }
        Ok(all)
    }

    async fn pod_snapshot(&self, pod_uid: &str) -> Result<Snapshot> {
        let idx = self.index().await?;
        let root = self.sandboxes_root();
        let ids: Vec<String> = idx
            .sandboxes
            .iter()
            .filter(|(_, (u, _))| u == pod_uid)
            .map(|(id, _)| id.clone())
            .collect();
        let sandboxes: Vec<SandboxRecord> = blocking(move || {
            ids.iter()
                .filter_map(|id| {
                    let sd = SandboxDir::new(&root, id);
                    let mut r = sd.read().ok()?;
                    // A sandbox whose namespaces are gone (a reboot) is no longer ready.
                    if r.ready && !netns::is_pinned(&sd.ns(r.kinds()[0])) {
                        r.ready = false;
                    }
                    Some(r)
                })
                .collect()
        })
        .await?;
        let cids: Vec<String> = sandboxes
            .iter()
            .flat_map(|s| idx.containers(&s.id))
            .collect();
        let containers = self.container_statuses(cids).await?;
        Ok(Snapshot {
            sandboxes: sandboxes.iter().map(SandboxRecord::status).collect(),
            containers,
        })
    }
}
