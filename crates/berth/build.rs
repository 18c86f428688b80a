//! Links the `berth` executable with packed relative relocations (`DT_RELR`, glibc ≥ 2.36).
//! The binary is position-independent, so every pointer in its static data needs a relative
//! relocation at load time: ~73,000 of them, 1.7 MB of 24-byte `.rela.dyn` entries that the
//! dynamic loader reads on every start of every berth process (server, agent, each container
//! shim). As a RELR bitmap they take 22 KB.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.ends_with("-linux-gnu") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
