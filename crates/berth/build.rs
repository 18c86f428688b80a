//! Link settings of the `berth` executable.
//!
//! Packed relative relocations (`DT_RELR`, glibc ≥ 2.36): the binary is position-independent,
//! so every pointer in its static data needs a relative relocation at load time: ~73,000 of
//! them, 1.7 MB of 24-byte `.rela.dyn` entries that the dynamic loader reads on every start
//! of every berth process (server, agent, each container shim). As a RELR bitmap they take
//! 22 KB.
//!
//! Function ordering, release builds only: the link runs under `link-order.sh` (gcc's
//! `-wrapper`), which gives lld a `--symbol-ordering-file` made from `hot-functions.txt`, the
//! functions an idle node agent executes, so that they sit together at the start of `.text`
//! and the agent maps ~11 MB of code instead of ~24 MB spread over 44 MB (BENCHMARKS.md, pod
//! startup; docs/adr/0014-function-order-for-agent-rss.md). The list holds names without
//! hashes; the wrapper finds this build's symbols for them. `scripts/hot-functions.sh`
//! regenerates it. Skipped when the link is not the default one (gcc driving lld), or with
//! `BERTH_FUNCTION_ORDER=0`.
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link-order.sh");
    println!("cargo:rerun-if-changed=hot-functions.txt");
    println!("cargo:rerun-if-env-changed=BERTH_FUNCTION_ORDER");
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let target = env("TARGET");
    if !target.ends_with("-linux-gnu") {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");

    if env("PROFILE") != "release" || env("BERTH_FUNCTION_ORDER") == "0" || target != env("HOST") {
        return;
    }
    // A linker chosen in the configuration or the flags may not be gcc (`-wrapper`).
    let flags = env("CARGO_ENCODED_RUSTFLAGS");
    if std::env::var_os("RUSTC_LINKER").is_some() || flags.contains("linker") {
        return;
    }
    let gcc = Command::new("cc")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("Free Software Foundation"));
    if !gcc {
        return;
    }
    let dir = Path::new(&env("CARGO_MANIFEST_DIR")).to_path_buf();
    let work = Path::new(&env("OUT_DIR")).join("link-order");
    let args = [
        "/bin/sh".to_string(),
        dir.join("link-order.sh").display().to_string(),
        dir.join("hot-functions.txt").display().to_string(),
        work.display().to_string(),
    ];
    // gcc splits the wrapper's argument at commas.
    if args.iter().any(|a| a.contains(',')) {
        return;
    }
    println!("cargo:rustc-link-arg-bin=berth=-wrapper");
    println!("cargo:rustc-link-arg-bin=berth={}", args.join(","));
}
