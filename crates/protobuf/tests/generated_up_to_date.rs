//! `src/generated.rs` must be what the generator produces from the current inputs (k8s-pb
//! and k8s-openapi from the cargo registry, `gen/go-presence.tsv`).

#[allow(dead_code)]
#[path = "../gen/mod.rs"]
mod generator;

use std::path::Path;

#[test]
fn generated_table_is_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let presence_text =
        std::fs::read_to_string(dir.join("gen/go-presence.tsv")).expect("go-presence.tsv");
    let presence =
        generator::GoPresence::parse_tsv(&presence_text).expect("go-presence.tsv parses");
    let k8s_pb = generator::locate_k8s_pb_src(dir).expect("k8s-pb sources");
    let fresh = generator::generate(&k8s_pb, &presence).expect("generation succeeds");
    let committed =
        std::fs::read_to_string(dir.join("src/generated.rs")).expect("src/generated.rs");
    assert!(
        fresh == committed,
        "src/generated.rs is stale: run `cargo run -p berth-protobuf --example regenerate`"
    );
}
