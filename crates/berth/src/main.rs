//! The `berth` binary: clap dispatch to the subcommands. This is the only crate that chooses
//! implementations (store backend, runtime, blob driver) and wires components together.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "berth", version, about = "A container platform in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a cluster node: API server, store, controllers, registry and agent.
    Server,
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Server => Ok(()),
    }
}
