//! `berth push|pull|images|tag|rmi|inspect|import|export`: the node image store
//! (`<data-dir>/images`) and transfers to and from registries.
//!
//! An unqualified name (`web:1`) resolves to the default registry, found in this order:
//! `--registry`, `$BERTH_REGISTRY`, then `<data-dir>/registry-endpoint.json`, a file the
//! cluster server writes with its registry's address:
//! `{"address": "host:port", "plainHttp": false, "caFile": "/path/ca.pem",
//!   "username": "...", "password": "..."}` (all but `address` optional).
//! `--registry` takes `host:port`, `http://host:port` (plain HTTP) or `https://host:port`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use berth_image::{
    EndpointConfig, Image, ImageRef, ImageStore, Platform, Progress, RegistryClient,
};
use clap::{Args, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::json;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Args, Clone)]
pub struct ImageOpts {
    /// Data directory (the image store is `<data-dir>/images`).
    #[arg(long, short = 'd', env = "BERTH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Default registry for unqualified names: host:port, http://host:port or https://host:port.
    #[arg(long, env = "BERTH_REGISTRY")]
    registry: Option<String>,
    /// Registry credentials as user:password.
    #[arg(long, env = "BERTH_REGISTRY_CREDS", hide_env_values = true)]
    creds: Option<String>,
    /// Verify the registry's TLS certificate.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    tls_verify: bool,
    /// Extra CA certificate (PEM) to trust.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Talk plain HTTP to registries given without a scheme.
    #[arg(long)]
    plain_http: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    output: OutputFormat,
}

#[derive(Args)]
pub struct PullArgs {
    /// Image reference (unqualified names use the default registry).
    reference: String,
    #[command(flatten)]
    opts: ImageOpts,
}

#[derive(Args)]
pub struct PushArgs {
    /// Local image.
    image: String,
    /// Destination reference (default: the image's own name).
    target: Option<String>,
    #[command(flatten)]
    opts: ImageOpts,
}

#[derive(Args)]
pub struct ImagesArgs {
    #[command(flatten)]
    opts: ImageOpts,
}

#[derive(Args)]
pub struct TagArgs {
    source: String,
    target: String,
    #[command(flatten)]
    opts: ImageOpts,
}

#[derive(Args)]
pub struct RmiArgs {
    #[arg(required = true)]
    images: Vec<String>,
    #[command(flatten)]
    opts: ImageOpts,
}

#[derive(Args)]
pub struct InspectArgs {
    image: String,
    #[command(flatten)]
    opts: ImageOpts,
}

#[derive(Args)]
pub struct ImportArgs {
    /// OCI layout directory, OCI archive, docker archive, or root-filesystem tar (.tar/.tar.gz).
    path: PathBuf,
    /// Name for the imported image (required for a rootfs tar).
    name: Option<String>,
    #[command(flatten)]
    opts: ImageOpts,
}

#[derive(Args)]
pub struct ExportArgs {
    image: String,
    /// OCI layout directory to create or extend, or an OCI archive path ending in .tar.
    dest: PathBuf,
    /// Tag recorded in the layout (default: the image's tag).
    #[arg(long)]
    tag: Option<String>,
    #[command(flatten)]
    opts: ImageOpts,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct EndpointFile {
    address: String,
    #[serde(default)]
    plain_http: bool,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

struct Ctx {
    opts: ImageOpts,
    store: ImageStore,
    data_dir: PathBuf,
    default: Option<EndpointFile>,
}

fn data_dir(opt: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    Ok(match opt {
        Some(d) => d,
        None if nix::unistd::geteuid().is_root() => PathBuf::from("/var/lib/berth"),
        None => {
            PathBuf::from(std::env::var_os("HOME").context("HOME is not set; pass --data-dir")?)
                .join(".berth")
        }
    })
}

impl Ctx {
    fn new(opts: ImageOpts) -> anyhow::Result<Ctx> {
        let data_dir = data_dir(opts.data_dir.clone())?;
        let store = ImageStore::open(data_dir.join("images"))
            .with_context(|| format!("opening the image store in {}", data_dir.display()))?;
        let default = match &opts.registry {
            Some(r) => Some(parse_registry(r)),
            None => {
                let p = data_dir.join("registry-endpoint.json");
                match std::fs::read(&p) {
                    Ok(b) => Some(
                        serde_json::from_slice(&b)
                            .with_context(|| format!("reading {}", p.display()))?,
                    ),
                    Err(_) => None,
                }
            }
        };
        Ok(Ctx {
            opts,
            store,
            data_dir,
            default,
        })
    }

    fn default_registry(&self) -> Option<&str> {
        self.default.as_ref().map(|d| d.address.as_str())
    }

    fn qualify(&self, name: &str) -> anyhow::Result<ImageRef> {
        let r = ImageRef::parse(name)?;
        if r.registry.is_some() {
            return Ok(r);
        }
        match self.default_registry() {
            Some(reg) => Ok(r.qualify(reg)),
            None => bail!(
                "{name} names no registry and no default registry is known: pass --registry, set BERTH_REGISTRY, or run a server with data dir {}",
                self.data_dir.display()
            ),
        }
    }

    fn client(&self, host: &str) -> anyhow::Result<RegistryClient> {
        let mut cfg = EndpointConfig {
            host: host.to_owned(),
            plain_http: self.opts.plain_http,
            insecure_skip_verify: !self.opts.tls_verify,
            ca_file: self.opts.ca_file.clone(),
            ..Default::default()
        };
        if let Some(d) = &self.default
            && d.address == host
        {
            cfg.plain_http |= d.plain_http;
            cfg.ca_file = cfg.ca_file.or_else(|| d.ca_file.clone());
            cfg.username = d.username.clone();
            cfg.password = d.password.clone();
        }
        if let Some(c) = &self.opts.creds {
            let (u, p) = c.split_once(':').context("--creds must be user:password")?;
            cfg.username = Some(u.to_owned());
            cfg.password = Some(p.to_owned());
        }
        Ok(RegistryClient::new(cfg)?)
    }

    fn find(&self, name: &str) -> anyhow::Result<Image> {
        Ok(self.store.find(name, self.default_registry())?)
    }
}

fn parse_registry(r: &str) -> EndpointFile {
    let (plain, rest) = match (r.strip_prefix("http://"), r.strip_prefix("https://")) {
        (Some(h), _) => (true, h),
        (_, Some(h)) => (false, h),
        _ => (false, r),
    };
    EndpointFile {
        address: rest.trim_end_matches('/').to_owned(),
        plain_http: plain,
        ..Default::default()
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// indicatif bars, one per blob.
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    fn new(quiet: bool) -> Arc<Bars> {
        let multi = MultiProgress::new();
        if quiet {
            multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        Arc::new(Bars {
            multi,
            bars: Mutex::new(HashMap::new()),
        })
    }

    fn bar(&self, id: &str) -> ProgressBar {
        let mut bars = self.bars.lock().expect("bars");
        bars.entry(id.to_owned())
            .or_insert_with(|| {
                let b = self.multi.add(ProgressBar::new(0));
                b.set_style(
                    ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {msg}")
                        .expect("template")
                        .progress_chars("=> "),
                );
                b.set_prefix(id.to_owned());
                b
            })
            .clone()
    }
}

impl Progress for Bars {
    fn start(&self, id: &str, total: u64) {
        self.bar(id).set_length(total);
    }
    fn advance(&self, id: &str, bytes: u64) {
        self.bar(id).inc(bytes);
    }
    fn finish(&self, id: &str, note: &str) {
        self.bar(id).finish_with_message(note.to_owned());
    }
}

fn summary(img: &Image) -> serde_json::Value {
    json!({
        "name": img.entry.name,
        "id": img.config_digest.to_string(),
        "digest": img.entry.digest.to_string(),
        "mediaType": img.entry.media_type,
        "size": img.size(),
        "created": img.entry.created,
    })
}

fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub fn pull(a: PullArgs) -> anyhow::Result<()> {
    let ctx = Ctx::new(a.opts)?;
    let r = ctx.qualify(&a.reference)?;
    let client = ctx.client(r.registry.as_deref().expect("qualified"))?;
    let bars = Bars::new(matches!(ctx.opts.output, OutputFormat::Json));
    let img = runtime()?
        .block_on(berth_image::pull(
            &ctx.store,
            &client,
            &r,
            &Platform::host(),
            bars.as_ref(),
        ))
        .with_context(|| format!("pulling {r}"))?;
    match ctx.opts.output {
        OutputFormat::Json => print_json(&summary(&img)),
        OutputFormat::Text => {
            println!("{} {}", img.entry.name, img.entry.digest);
            Ok(())
        }
    }
}

pub fn push(a: PushArgs) -> anyhow::Result<()> {
    let ctx = Ctx::new(a.opts)?;
    let img = ctx.find(&a.image)?;
    let target = ctx.qualify(a.target.as_deref().unwrap_or(&img.entry.name))?;
    let client = ctx.client(target.registry.as_deref().expect("qualified"))?;
    let bars = Bars::new(matches!(ctx.opts.output, OutputFormat::Json));
    let digest = runtime()?
        .block_on(berth_image::push(&ctx.store, &client, &img, &target, bars))
        .with_context(|| format!("pushing {} to {target}", img.entry.name))?;
    match ctx.opts.output {
        OutputFormat::Json => {
            print_json(&json!({"name": target.to_string(), "digest": digest.to_string()}))
        }
        OutputFormat::Text => {
            println!("{target} {digest}");
            Ok(())
        }
    }
}

fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

pub fn images(a: ImagesArgs) -> anyhow::Result<()> {
    let ctx = Ctx::new(a.opts)?;
    let list = ctx.store.list()?;
    match ctx.opts.output {
        OutputFormat::Json => print_json(&serde_json::Value::Array(
            list.iter().map(summary).collect(),
        )),
        OutputFormat::Text => {
            let w = list
                .iter()
                .map(|i| i.entry.name.len())
                .max()
                .unwrap_or(4)
                .max(4);
            println!(
                "{:<w$}  {:<12}  {:>10}  CREATED",
                "NAME", "IMAGE ID", "SIZE"
            );
            for i in &list {
                let id: String = i.config_digest.hex().chars().take(12).collect();
                println!(
                    "{:<w$}  {id:<12}  {:>10}  {}",
                    i.entry.name,
                    human(i.size()),
                    i.entry.created
                );
            }
            Ok(())
        }
    }
}

pub fn tag(a: TagArgs) -> anyhow::Result<()> {
    let ctx = Ctx::new(a.opts)?;
    let img = ctx.find(&a.source)?;
    let target = ImageRef::parse(&a.target)?.store_name();
    let t = ctx.store.tag(&img, &target)?;
    match ctx.opts.output {
        OutputFormat::Json => print_json(&summary(&t)),
        OutputFormat::Text => Ok(()),
    }
}

pub fn rmi(a: RmiArgs) -> anyhow::Result<()> {
    let ctx = Ctx::new(a.opts)?;
    let mut out = Vec::new();
    for name in &a.images {
        let img = ctx.find(name)?;
        let report = ctx.store.remove(&img.entry.name)?;
        if let OutputFormat::Text = ctx.opts.output {
            println!("Untagged: {}", img.entry.name);
            if report.blobs > 0 {
                println!(
                    "Deleted: {} blobs ({}), {} snapshots",
                    report.blobs,
                    human(report.bytes),
                    report.snapshots
                );
            }
        }
        out.push(json!({"name": img.entry.name, "removed": report}));
    }
    match ctx.opts.output {
        OutputFormat::Json => print_json(&serde_json::Value::Array(out)),
        OutputFormat::Text => Ok(()),
    }
}

pub fn inspect(a: InspectArgs) -> anyhow::Result<()> {
    let ctx = Ctx::new(a.opts)?;
    let img = ctx.find(&a.image)?;
    let mut v = summary(&img);
    v["manifest"] = serde_json::to_value(&img.manifest)?;
    v["config"] = serde_json::to_value(&img.config)?;
    v["runtime"] = serde_json::to_value(berth_image::RuntimeConfig::from_image(&img.config))?;
    match ctx.opts.output {
        OutputFormat::Json => print_json(&v),
        OutputFormat::Text => {
            let rc = berth_image::RuntimeConfig::from_image(&img.config);
            println!("Name:        {}", img.entry.name);
            println!("ID:          {}", img.config_digest);
            println!("Digest:      {}", img.entry.digest);
            println!("Platform:    {}/{}", img.config.os, img.config.architecture);
            println!("Size:        {}", human(img.size()));
            println!("Layers:      {}", img.manifest.layers.len());
            println!("Entrypoint:  {:?}", rc.entrypoint);
            println!("Cmd:         {:?}", rc.cmd);
            println!("Env:         {:?}", rc.env);
            println!("WorkingDir:  {}", rc.working_dir);
            println!("User:        {}", rc.user.as_deref().unwrap_or(""));
            Ok(())
        }
    }
}

pub fn import(a: ImportArgs) -> anyhow::Result<()> {
    let ctx = Ctx::new(a.opts)?;
    let imgs = berth_image::import(&ctx.store, &a.path, a.name.as_deref())
        .with_context(|| format!("importing {}", a.path.display()))?;
    match ctx.opts.output {
        OutputFormat::Json => print_json(&serde_json::Value::Array(
            imgs.iter().map(summary).collect(),
        )),
        OutputFormat::Text => {
            for i in &imgs {
                println!("{} {}", i.entry.name, i.entry.digest);
            }
            Ok(())
        }
    }
}

pub fn export(a: ExportArgs) -> anyhow::Result<()> {
    let ctx = Ctx::new(a.opts)?;
    let img = ctx.find(&a.image)?;
    let tag = match a.tag {
        Some(t) => t,
        None => ImageRef::parse(&img.entry.name)?.tag_or_latest().to_owned(),
    };
    berth_image::export(&ctx.store, &img, &a.dest, &tag)
        .with_context(|| format!("exporting to {}", a.dest.display()))?;
    match ctx.opts.output {
        OutputFormat::Json => {
            print_json(&json!({"name": img.entry.name, "dest": a.dest, "tag": tag}))
        }
        OutputFormat::Text => Ok(()),
    }
}
