//! Regenerates `src/generated.rs` from k8s-pb, k8s-openapi and `gen/go-presence.tsv`.
//!
//! `cargo run -p berth-protobuf --example regenerate` rewrites the table;
//! `... -- --go-src DIR` first re-extracts `gen/go-presence.tsv` from Go checkouts in DIR
//! (`DIR/api`, `DIR/apimachinery`, `DIR/apiextensions-apiserver` at `gen::GO_TAG`).

#[path = "../gen/mod.rs"]
mod generator;

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

fn main() -> Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let presence_path = dir.join("gen/go-presence.tsv");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--go-src" => {
                let go_src = PathBuf::from(args.next().context("--go-src needs a directory")?);
                let presence = generator::GoPresence::extract(&go_src, &generator::go_packages())?;
                std::fs::write(
                    &presence_path,
                    presence.to_tsv(&generator::go_presence_header()),
                )?;
                eprintln!("wrote {}", presence_path.display());
            }
            other => bail!("unknown argument {other:?} (expected --go-src DIR)"),
        }
    }
    let presence = generator::GoPresence::parse_tsv(&std::fs::read_to_string(&presence_path)?)?;
    let src = generator::locate_k8s_pb_src(dir)?;
    let text = generator::generate(&src, &presence)?;
    let out = dir.join("src/generated.rs");
    std::fs::write(&out, text)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
