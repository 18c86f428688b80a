//! berth's OCI registry: the distribution API v1.1 (blobs, chunked/streamed/monolithic
//! uploads, cross-repository mounts, manifests and indexes in OCI and Docker formats, tags
//! with pagination, catalog, referrers), stored through a [`BlobDriver`], with Basic or
//! token access control and online/offline garbage collection.
//!
//! Depends on no other berth crate. It knows nothing about the cluster: identities come from
//! an [`Authenticator`] the embedding program supplies, and the binary chooses the blob
//! driver ([`FsBlobDriver`], optionally encrypting with [`BlobCipher`]).
//!
//! Main decisions: upload state lives on the server (no signed client-side state that breaks
//! across restarts); writers hash while receiving on their own thread and commit by
//! fsync + rename after checking the digest, so no partial blob is ever served; repository
//! metadata is a tree of small files beside the blobs (`meta.rs`), which `berth registry gc`
//! can walk with the server stopped; garbage collection is safe against concurrent pushes
//! through a grace period plus a short exclusive sweep (`gc.rs`). The component follows the
//! berth shape: [`RegistryConfig`] → [`Registry::new`] → [`Registry::run`], readiness via
//! [`Registry::ready`]; [`Registry::router`] mounts the API into another server.

mod api_error;
mod auth;
mod crypto;
mod digest;
mod driver;
pub mod driver_testsuite;
mod error;
mod fs_driver;
mod gc;
mod htpasswd;
mod http;
mod http_auth;
mod http_blobs;
mod http_manifests;
mod manifest;
mod meta;
mod names;
mod server;
mod service;
mod token;
mod uploads;

use std::net::SocketAddr;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use auth::{Actions, AuthConfig, AuthMode, Authenticator, Identity};
pub use crypto::BlobCipher;
pub use digest::{Algorithm, Digest, DigestHasher};
pub use driver::{BlobDriver, BlobRead, BlobStat, BlobWriter};
pub use error::{RegistryError, Result};
pub use fs_driver::FsBlobDriver;
pub use gc::{GcOptions, GcReport};
pub use htpasswd::HtpasswdAuthenticator;
pub use manifest::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
pub use names::{validate_name, validate_tag};
pub use server::tls_config;
pub use token::TokenIssuer;

/// Validated settings of a registry.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// Storage root: `blobs/` (the fs driver's default place), `repositories/`, the lock.
    pub root: PathBuf,
    pub addr: SocketAddr,
    /// Allow DELETE of blobs, manifests and tags (405 `UNSUPPORTED` otherwise).
    pub delete_enabled: bool,
    /// Upload sessions idle for longer are cancelled.
    pub upload_ttl: Duration,
    /// Run garbage collection this often while serving (`None`: only on demand).
    pub gc_interval: Option<Duration>,
    /// Blobs younger than this are never collected online.
    pub gc_grace: Duration,
    /// Advertised as `OCI-Chunk-Min-Length` when non-zero.
    pub chunk_min_length: u64,
    /// Largest manifest accepted (413 above it).
    pub max_manifest_bytes: u64,
}

impl RegistryConfig {
    pub fn new(root: impl Into<PathBuf>, addr: SocketAddr) -> RegistryConfig {
        RegistryConfig {
            root: root.into(),
            addr,
            delete_enabled: true,
            upload_ttl: Duration::from_secs(3600),
            gc_interval: None,
            gc_grace: Duration::from_secs(3600),
            chunk_min_length: 0,
            max_manifest_bytes: 4 * 1024 * 1024,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.upload_ttl.is_zero() {
            return Err(RegistryError::Config {
                field: "upload_ttl".into(),
                reason: "must be positive".into(),
            });
        }
        if self.max_manifest_bytes < 4 * 1024 * 1024 {
            return Err(RegistryError::Config {
                field: "max_manifest_bytes".into(),
                reason: "must be at least 4 MiB (the spec's minimum)".into(),
            });
        }
        Ok(())
    }
}

/// What the embedding program supplies.
pub struct RegistryDeps {
    pub driver: Arc<dyn BlobDriver>,
    pub auth: AuthConfig,
    /// Serve TLS with this configuration (plain HTTP when `None`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Key for registry-issued bearer tokens (random when `None`).
    pub token_key: Option<Vec<u8>>,
}

/// Exclusive use of a storage root by one process (`flock` on `<root>/lock`).
struct RootLock {
    _file: std::fs::File,
}

fn lock_root(root: &Path) -> Result<RootLock> {
    std::fs::create_dir_all(root).map_err(|e| RegistryError::io("create", root, e))?;
    let path = root.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| RegistryError::io("open", &path, e))?;
    // SAFETY: flock on a file descriptor we own; no memory is touched.
    let rc = unsafe { libc_flock(file.as_raw_fd()) };
    if rc != 0 {
        return Err(RegistryError::Locked {
            path: root.to_owned(),
            reason: "another berth registry process serves it (stop it, or let its online garbage collection run)".into(),
        });
    }
    Ok(RootLock { _file: file })
}

unsafe fn libc_flock(fd: i32) -> i32 {
    // SAFETY: the caller passes a valid descriptor.
    unsafe { nix::libc::flock(fd, nix::libc::LOCK_EX | nix::libc::LOCK_NB) }
}

fn build_service(
    config: &RegistryConfig,
    driver: Arc<dyn BlobDriver>,
) -> Result<Arc<service::Service>> {
    let meta = meta::Meta::new(config.root.join("repositories"))?;
    let settings = service::Settings {
        delete_enabled: config.delete_enabled,
        max_manifest_bytes: config.max_manifest_bytes,
        chunk_min_length: config.chunk_min_length,
        gc_grace: config.gc_grace,
    };
    Ok(Arc::new(service::Service::new(
        driver,
        meta,
        uploads::Uploads::new(config.upload_ttl),
        settings,
    )))
}

/// A registry ready to serve.
pub struct Registry {
    config: RegistryConfig,
    app: Arc<http::App>,
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    ready: tokio::sync::watch::Sender<bool>,
    _lock: RootLock,
}

impl Registry {
    /// Validates the config, locks the storage root and binds the listener (so
    /// [`Registry::local_addr`] is known before [`Registry::run`]).
    pub fn new(config: RegistryConfig, deps: RegistryDeps) -> Result<Registry> {
        config.validate()?;
        let lock = lock_root(&config.root)?;
        let svc = build_service(&config, deps.driver)?;
        let auth = match deps.auth.mode {
            AuthMode::None => None,
            _ => {
                if deps.auth.authenticator.is_none() && !deps.auth.anonymous_pull {
                    return Err(RegistryError::Config {
                        field: "auth".into(),
                        reason: "an authenticator is required unless anonymous pull is allowed"
                            .into(),
                    });
                }
                let issuer = match &deps.token_key {
                    Some(k) => TokenIssuer::with_key(k),
                    None => TokenIssuer::random(),
                };
                Some(auth::AuthState {
                    config: deps.auth,
                    issuer,
                })
            }
        };
        let listener = std::net::TcpListener::bind(config.addr)
            .map_err(|e| RegistryError::io("bind", config.addr.to_string(), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| RegistryError::io("bind", config.addr.to_string(), e))?;
        let (ready, _) = tokio::sync::watch::channel(false);
        Ok(Registry {
            config,
            app: Arc::new(http::App { svc, auth }),
            listener,
            tls: deps.tls,
            ready,
            _lock: lock,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Becomes `true` once the registry accepts connections.
    pub fn ready(&self) -> tokio::sync::watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// The distribution API as an axum router, for mounting into another server.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .fallback(http::dispatch)
            .with_state(self.app.clone())
    }

    /// Runs a garbage collection now (safe while serving).
    pub async fn collect_garbage(&self, opts: GcOptions) -> Result<GcReport> {
        gc::collect(&self.app.svc, opts).await
    }

    /// A handle that can run garbage collection while [`Registry::run`] serves.
    pub fn gc_handle(&self) -> GcHandle {
        GcHandle {
            svc: self.app.svc.clone(),
        }
    }

    /// Serves until `shutdown` is cancelled; expires upload sessions and runs periodic
    /// garbage collection meanwhile.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let listener = tokio::net::TcpListener::from_std(self.listener)
            .map_err(|e| RegistryError::io("listen", self.config.addr.to_string(), e))?;
        let svc = self.app.svc.clone();
        let purged = svc
            .driver
            .purge_uploads(
                std::time::SystemTime::now() - Duration::from_secs(60).min(self.config.upload_ttl),
            )
            .await?;
        if purged > 0 {
            tracing::info!(purged, "removed leftovers of interrupted uploads");
        }
        let maintenance = {
            let svc = svc.clone();
            let shutdown = shutdown.clone();
            let gc_every = self.config.gc_interval;
            let grace = self.config.gc_grace;
            let tick = (self.config.upload_ttl / 4)
                .clamp(Duration::from_millis(100), Duration::from_secs(60));
            tokio::spawn(async move {
                let mut last_gc = tokio::time::Instant::now();
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(tick) => {}
                    }
                    let n = svc.uploads.expire().await;
                    if n > 0 {
                        tracing::info!(expired = n, "cancelled idle upload sessions");
                    }
                    if let Some(every) = gc_every
                        && last_gc.elapsed() >= every
                    {
                        last_gc = tokio::time::Instant::now();
                        if let Err(e) = gc::collect(
                            &svc,
                            GcOptions {
                                grace,
                                dry_run: false,
                            },
                        )
                        .await
                        {
                            tracing::error!(error = %e, "online garbage collection failed");
                        }
                    }
                }
            })
        };
        let router = axum::Router::new()
            .fallback(http::dispatch)
            .with_state(self.app.clone());
        let tls = self.tls.map(tokio_rustls::TlsAcceptor::from);
        let _ = self.ready.send(true);
        tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "registry serving");
        server::serve(listener, router, tls, shutdown).await;
        let _ = maintenance.await;
        Ok(())
    }
}

/// Runs garbage collection against a serving registry.
#[derive(Clone)]
pub struct GcHandle {
    svc: Arc<service::Service>,
}

impl GcHandle {
    pub async fn collect(&self, opts: GcOptions) -> Result<GcReport> {
        gc::collect(&self.svc, opts).await
    }
}

/// Offline garbage collection (`berth registry gc`): takes the storage lock, so it refuses
/// to run while a registry process serves the same root.
pub async fn collect_garbage_offline(
    root: &Path,
    driver: Arc<dyn BlobDriver>,
    opts: GcOptions,
) -> Result<GcReport> {
    let _lock = lock_root(root)?;
    let config = RegistryConfig::new(root, SocketAddr::from(([127, 0, 0, 1], 0)));
    let svc = build_service(&config, driver)?;
    gc::collect(&svc, opts).await
}
