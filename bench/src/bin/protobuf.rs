//! Request-body decoding: berth-protobuf turning kubectl's protobuf bodies into JSON values,
//! against serde_json parsing the same objects sent as JSON (the path every JSON write
//! takes). Both produce the same `serde_json::Value`. Bodies are the kubectl v1.32.4
//! fixtures of `crates/protobuf/tests/fixtures/kubectl`; rounds alternate between the two.
//!
//! `cargo run --release -p berth-bench --bin protobuf [-- ROUNDS]`

use anyhow::{Context, Result, ensure};
use berth_bench::{Stats, load_average};
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

const PER_ROUND: usize = 2_000;

fn main() -> Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|r| r.parse())
        .transpose()?
        .unwrap_or(200);
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/protobuf/tests/fixtures/kubectl");
    println!("load average: {}", load_average());
    let mut headline = String::new();
    for name in ["deployment", "ingress", "secret-tls"] {
        let pb =
            std::fs::read(dir.join(format!("{name}.pb"))).with_context(|| format!("{name}.pb"))?;
        let pretty: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json")))?)?;
        let json = serde_json::to_vec(&pretty)?;
        ensure!(
            berth_protobuf::decode(&pb)? == pretty,
            "{name}: decoded body differs from the JSON"
        );
        let (mut pb_us, mut json_us) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
        for _ in 0..rounds {
            let start = Instant::now();
            for _ in 0..PER_ROUND {
                black_box(berth_protobuf::decode(black_box(&pb))?);
            }
            pb_us.push(start.elapsed().as_secs_f64() * 1e6 / PER_ROUND as f64);
            let start = Instant::now();
            for _ in 0..PER_ROUND {
                black_box(serde_json::from_slice::<serde_json::Value>(black_box(
                    &json,
                ))?);
            }
            json_us.push(start.elapsed().as_secs_f64() * 1e6 / PER_ROUND as f64);
        }
        let (p, j) = (Stats::of(&pb_us), Stats::of(&json_us));
        println!(
            "{name}: protobuf {} B decode median {:.2} µs (p99 {:.2}); JSON {} B parse median {:.2} µs (p99 {:.2}); protobuf/JSON {:.2}",
            pb.len(),
            p.median,
            p.p99,
            json.len(),
            j.median,
            j.p99,
            p.median / j.median
        );
        if name == "deployment" {
            headline = format!(
                "deployment decode: berth-protobuf {:.2} µs, serde_json (same object as JSON) {:.2} µs, ratio {:.2}",
                p.median,
                j.median,
                p.median / j.median
            );
        }
    }
    println!("{headline}");
    Ok(())
}
