//! The `berth` binary: clap dispatch to the subcommands. This is the only crate that chooses
//! implementations (store backend, runtime, blob driver) and wires components together.

mod agent;
mod cluster_registry;
mod control_plane;
mod datadir;
mod datastore;
mod image_cli;
mod net_node;
mod registry_cli;
mod runtime_cli;
mod runtime_tty;
mod server;
mod signals;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// mimalloc: the API server's write and watch paths allocate heavily, and glibc's malloc
/// spent over a third of their CPU (ADR 0011).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "berth", version, about = "A container platform in one binary")]
struct Cli {
    /// Log filter (e.g. `info`, `berth_apiserver=debug`); also RUST_LOG.
    #[arg(long, global = true, env = "BERTH_LOG")]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a cluster node: API server, store, controllers, registry and agent.
    Server(server::ServerArgs),
    /// Join another machine to a cluster as a node.
    Agent(agent::AgentArgs),
    /// Print the join token of a server's data dir (for `berth agent --token`).
    Token {
        #[arg(long, short = 'd', env = "BERTH_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// OCI runtime with runc's verbs: create, start, run, state, kill, delete, exec, ...
    Runtime(runtime_cli::RuntimeArgs),
    /// Print the admin kubeconfig of a server's data dir.
    Kubeconfig {
        #[arg(long, short = 'd', env = "BERTH_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// The OCI registry on its own: serve, garbage-collect.
    Registry(registry_cli::RegistryArgs),
    /// Pull an image into the node's image store.
    Pull(image_cli::PullArgs),
    /// Push an image from the node's image store to a registry.
    Push(image_cli::PushArgs),
    /// List the images in the node's image store.
    Images(image_cli::ImagesArgs),
    /// Give an image another name.
    Tag(image_cli::TagArgs),
    /// Remove images (and content no other image uses).
    Rmi(image_cli::RmiArgs),
    /// Show an image's manifest, config and runtime settings.
    Inspect(image_cli::InspectArgs),
    /// Import an OCI layout/archive, a docker archive or a rootfs tar.
    Import(image_cli::ImportArgs),
    /// Export an image to an OCI layout directory or OCI archive.
    Export(image_cli::ExportArgs),
}

/// Standard error without std's lock: the subscriber formats each event whole and writes it
/// with one `write(2)`, so threads logging at once (the Ingress workers' access log) do not
/// queue on a mutex. Not a duplicate of fd 2: the runtime's processes `dup2` descriptors onto
/// fixed numbers for containers, which replaced a duplicate and sent log lines into them
/// (pods never started in the e2e tests).
struct UnlockedStderr;

impl std::io::Write for UnlockedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // SAFETY: a write(2) on fd 2 that reads only `buf`, which outlives the call.
        let n = unsafe { libc::write(2, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logging(level: Option<&str>) {
    let filter = match level {
        Some(l) => tracing_subscriber::EnvFilter::new(l),
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
    };
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| UnlockedStderr)
        // Colours for a terminal only: a log file gets plain lines.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    init_logging(cli.log_level.as_deref());
    match cli.command {
        Command::Server(args) => server::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Token { data_dir } => agent::print_token(data_dir),
        Command::Runtime(args) => std::process::exit(runtime_cli::run(args)),
        Command::Kubeconfig { data_dir } => server::print_kubeconfig(data_dir),
        Command::Registry(args) => registry_cli::run(args),
        Command::Pull(args) => image_cli::pull(args),
        Command::Push(args) => image_cli::push(args),
        Command::Images(args) => image_cli::images(args),
        Command::Tag(args) => image_cli::tag(args),
        Command::Rmi(args) => image_cli::rmi(args),
        Command::Inspect(args) => image_cli::inspect(args),
        Command::Import(args) => image_cli::import(args),
        Command::Export(args) => image_cli::export(args),
    }
}
