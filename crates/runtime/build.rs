//! Builds the shim image (`shim/main.rs`): a static, freestanding executable with no libc,
//! embedded into the runtime with `include_bytes!`. It is compiled with the same `rustc` and
//! for the same target as the crate, as its own crate, because Cargo cannot depend on a
//! binary artifact.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=shim");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let target = std::env::var("TARGET").expect("TARGET is set by cargo");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    assert!(
        os == "linux" && (arch == "x86_64" || arch == "aarch64"),
        "berth-runtime supports Linux on x86_64 and aarch64 only (target {target})"
    );
    let image = out.join("berth-shim");
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "bin",
            "--crate-name",
            "berth_shim",
        ])
        .args(["--target", &target])
        .args([
            "-C",
            "panic=abort",
            "-C",
            "opt-level=s",
            "-C",
            "relocation-model=static",
        ])
        .args(["-C", "debuginfo=0", "-C", "strip=symbols"])
        .args(["-C", "link-arg=-nostartfiles", "-C", "link-arg=-nostdlib"])
        .args([
            "-C",
            "link-arg=-static",
            "-C",
            "link-arg=-Wl,--build-id=none",
        ])
        .arg("shim/main.rs")
        .arg("-o")
        .arg(&image)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("run rustc for the shim image");
    assert!(
        status.success(),
        "building the shim image (crates/runtime/shim) failed"
    );
}
