//! `berth registry serve|gc`: the registry on its own, over a storage root.
//!
//! `serve` requires an explicit access decision: `--htpasswd FILE` (token auth by default,
//! `--auth basic` for plain Basic) or `--no-auth`. Generate a key for `--encryption-key`
//! with `head -c 32 /dev/urandom > key` (blobs and manifests are then AES-256-GCM encrypted
//! at rest; the same key must be given to `gc`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use berth_registry::{
    AuthConfig, AuthMode, BlobCipher, BlobDriver, FsBlobDriver, GcOptions, HtpasswdAuthenticator,
    Registry, RegistryConfig, RegistryDeps,
};
use clap::{Args, Subcommand, ValueEnum};

#[derive(Args)]
pub struct RegistryArgs {
    #[command(subcommand)]
    command: RegistryCommand,
}

#[derive(Subcommand)]
enum RegistryCommand {
    /// Serve the OCI distribution API from a storage root.
    Serve(Box<ServeArgs>),
    /// Delete blobs no manifest references (offline: the registry must not be running).
    Gc(GcArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum AuthKind {
    /// Bearer tokens from the registry's own /token endpoint (Docker token flow).
    Token,
    /// HTTP Basic on every request.
    Basic,
}

#[derive(Args)]
struct ServeArgs {
    /// Storage root (blobs, repositories).
    #[arg(long)]
    root: PathBuf,
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:5000")]
    addr: SocketAddr,
    /// PEM certificate chain for TLS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Users (bcrypt htpasswd file, `htpasswd -Bbn user pass`).
    #[arg(long, conflicts_with = "no_auth")]
    htpasswd: Option<PathBuf>,
    /// Per-repository permissions: lines of `USER REPO-PATTERN ACTIONS` (`alice team/* pull,push`).
    #[arg(long, requires = "htpasswd")]
    acl: Option<PathBuf>,
    /// Serve without any access control.
    #[arg(long)]
    no_auth: bool,
    /// How clients authenticate when --htpasswd is given.
    #[arg(long, value_enum, default_value = "token")]
    auth: AuthKind,
    /// Token service name (the `aud` of tokens).
    #[arg(long, default_value = "berth-registry")]
    service: String,
    /// Token realm URL to advertise (default: this registry's /token).
    #[arg(long)]
    realm: Option<String>,
    /// Let anonymous clients pull.
    #[arg(long)]
    anonymous_pull: bool,
    /// Encrypt blobs and manifests at rest with this AES-256 key file.
    #[arg(long)]
    encryption_key: Option<PathBuf>,
    /// Refuse DELETE requests (405 UNSUPPORTED).
    #[arg(long)]
    no_delete: bool,
    /// Cancel upload sessions idle for this many seconds.
    #[arg(long, default_value_t = 3600)]
    upload_ttl: u64,
    /// Run garbage collection every this many seconds (0: never while serving).
    #[arg(long, default_value_t = 0)]
    gc_interval: u64,
    /// Online garbage collection spares blobs younger than this many seconds.
    #[arg(long, default_value_t = 3600)]
    gc_grace: u64,
    /// Advertise this OCI-Chunk-Min-Length (bytes) to clients.
    #[arg(long, default_value_t = 0)]
    chunk_min_length: u64,
    /// Write the bound address to this file once serving (for scripts using port 0).
    #[arg(long)]
    addr_file: Option<PathBuf>,
}

#[derive(Args)]
struct GcArgs {
    #[arg(long)]
    root: PathBuf,
    #[arg(long)]
    encryption_key: Option<PathBuf>,
    /// Spare blobs younger than this many seconds.
    #[arg(long, default_value_t = 0)]
    grace: u64,
    /// Only report what would be deleted.
    #[arg(long)]
    dry_run: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    output: crate::image_cli::OutputFormat,
}

pub fn run(args: RegistryArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.command {
        RegistryCommand::Serve(a) => rt.block_on(serve(*a)),
        RegistryCommand::Gc(a) => rt.block_on(gc(a)),
    }
}

fn driver(root: &Path, key: Option<&Path>) -> anyhow::Result<Arc<dyn BlobDriver>> {
    let cipher = match key {
        Some(k) => Some(Arc::new(BlobCipher::from_key_file(k)?)),
        None => None,
    };
    Ok(Arc::new(FsBlobDriver::new(root.join("blobs"), cipher)?))
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let auth = match (&a.htpasswd, a.no_auth) {
        (None, false) => {
            bail!("choose access control: --htpasswd FILE (optionally with --acl) or --no-auth")
        }
        (None, true) => AuthConfig::disabled(),
        (Some(h), _) => {
            let authn = HtpasswdAuthenticator::load(h, a.acl.as_deref())?;
            let mode = match a.auth {
                AuthKind::Token => AuthMode::Token {
                    realm: a.realm.clone(),
                    service: a.service.clone(),
                },
                AuthKind::Basic => AuthMode::Basic {
                    realm: "berth".into(),
                },
            };
            AuthConfig {
                mode,
                anonymous_pull: a.anonymous_pull,
                authenticator: Some(Arc::new(authn)),
            }
        }
    };
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some(berth_registry::tls_config(c, k)?),
        _ => None,
    };
    let mut config = RegistryConfig::new(&a.root, a.addr);
    config.delete_enabled = !a.no_delete;
    config.upload_ttl = Duration::from_secs(a.upload_ttl.max(1));
    config.gc_interval = (a.gc_interval > 0).then(|| Duration::from_secs(a.gc_interval));
    config.gc_grace = Duration::from_secs(a.gc_grace);
    config.chunk_min_length = a.chunk_min_length;
    let deps = RegistryDeps {
        driver: driver(&a.root, a.encryption_key.as_deref())?,
        auth,
        tls,
        token_key: None,
    };
    let registry = Registry::new(config, deps)
        .with_context(|| format!("starting the registry on {}", a.addr))?;
    let addr = registry.local_addr();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut ready = registry.ready();
    let mut task = tokio::spawn(registry.run(shutdown.clone()));
    let _ = ready.wait_for(|r| *r).await;
    if let Some(f) = &a.addr_file {
        let tmp = f.with_extension("tmp");
        std::fs::write(&tmp, addr.to_string())
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, f).with_context(|| format!("writing {}", f.display()))?;
    }
    eprintln!("berth registry serving on {addr}");
    tokio::select! {
        _ = crate::signals::terminated() => {
            shutdown.cancel();
            task.await.context("registry task")??;
        }
        r = &mut task => r.context("registry task")??,
    }
    Ok(())
}

async fn gc(a: GcArgs) -> anyhow::Result<()> {
    let driver = driver(&a.root, a.encryption_key.as_deref())?;
    let report = berth_registry::collect_garbage_offline(
        &a.root,
        driver,
        GcOptions {
            grace: Duration::from_secs(a.grace),
            dry_run: a.dry_run,
        },
    )
    .await?;
    match a.output {
        crate::image_cli::OutputFormat::Json => {
            println!("{}", serde_json::to_string_pretty(&report)?)
        }
        crate::image_cli::OutputFormat::Text => {
            let verb = if report.dry_run {
                "would delete"
            } else {
                "deleted"
            };
            println!(
                "{} manifests, {} blobs ({} live); {verb} {} blobs, {} bytes; purged {} stale uploads",
                report.manifests,
                report.blobs_total,
                report.blobs_live,
                report.blobs_deleted,
                report.bytes_freed,
                report.uploads_purged
            );
            for d in &report.deleted {
                println!("  {d}");
            }
        }
    }
    Ok(())
}
