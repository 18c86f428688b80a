//! Bodies captured from the real kubectl v1.32.4 (see `tests/fixtures/kubectl/README.md`):
//! each `NAME.pb` is the protobuf request body kubectl sent, each `NAME.json` what the same
//! command prints with `--dry-run=client -o json`, i.e. the object kubectl would have sent as
//! JSON. Decoding must give exactly that object, keys in the same order.

use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubectl")
}

fn check(name: &str) {
    let dir = fixtures();
    let body = std::fs::read(dir.join(format!("{name}.pb"))).expect("fixture body");
    let expected: Value = serde_json::from_slice(
        &std::fs::read(dir.join(format!("{name}.json"))).expect("fixture json"),
    )
    .expect("fixture json parses");
    let decoded = berth_protobuf::decode(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(decoded, expected, "{name}: decoded object differs");
    assert_eq!(
        serde_json::to_string(&decoded).expect("serialize"),
        serde_json::to_string(&expected).expect("serialize"),
        "{name}: same object, different key order"
    );
}

macro_rules! fixtures {
    ($($test:ident => $name:literal,)*) => {
        $( #[test] fn $test() { check($name); } )*

        #[test]
        fn every_fixture_has_a_test() {
            let tested = [$($name),*];
            for entry in std::fs::read_dir(fixtures()).expect("fixtures dir") {
                let path = entry.expect("entry").path();
                if path.extension().and_then(|e| e.to_str()) == Some("pb") {
                    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
                    assert!(tested.contains(&stem.as_str()), "fixture {stem}.pb has no test");
                }
            }
        }
    };
}

fixtures! {
    create_deployment => "deployment",
    create_deployment_zero_replicas => "deployment-zero",
    create_deployment_two_images => "deployment-multi",
    create_job => "job",
    create_cronjob => "cronjob",
    create_configmap_with_binary_data => "configmap",
    create_secret_generic => "secret-generic",
    create_secret_tls => "secret-tls",
    create_secret_docker_registry => "secret-docker-registry",
    create_namespace => "namespace",
    create_service_clusterip => "service-clusterip",
    create_service_clusterip_headless => "service-clusterip-headless",
    create_service_nodeport => "service-nodeport",
    create_service_loadbalancer => "service-loadbalancer",
    create_service_externalname => "service-externalname",
    create_serviceaccount => "serviceaccount",
    create_role => "role",
    create_rolebinding => "rolebinding",
    create_clusterrole => "clusterrole",
    create_clusterrole_aggregation => "clusterrole-aggregate",
    create_clusterrolebinding => "clusterrolebinding",
    create_quota => "quota",
    create_priorityclass => "priorityclass",
    create_priorityclass_global_default => "priorityclass-default",
    create_poddisruptionbudget_min_available_percent => "poddisruptionbudget",
    create_poddisruptionbudget_max_unavailable_int => "poddisruptionbudget-int",
    create_ingress => "ingress",
    create_token => "token",
    autoscale => "autoscale",
}
