//! Arbitrary and damaged input never panics, never allocates beyond the input's size, and
//! truncated envelopes are always errors.

use proptest::prelude::*;
use prost::Message as _;
use std::path::Path;

fn fixture_bodies() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubectl");
    let mut bodies: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .expect("fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("pb"))
        .map(|p| std::fs::read(p).expect("fixture"))
        .collect();
    bodies.sort();
    bodies
}

/// The lengths of the envelope up to the end of its typeMeta field and of its `raw` field
/// (typeMeta and raw come first).
fn envelope_ends(body: &[u8]) -> (usize, usize) {
    let unknown =
        k8s_pb::apimachinery::pkg::runtime::Unknown::decode(&body[4..]).expect("fixture envelope");
    let type_meta_only = k8s_pb::apimachinery::pkg::runtime::Unknown {
        type_meta: unknown.type_meta.clone(),
        ..Default::default()
    }
    .encode_to_vec();
    let head = k8s_pb::apimachinery::pkg::runtime::Unknown {
        type_meta: unknown.type_meta,
        raw: unknown.raw,
        content_encoding: None,
        content_type: None,
    }
    .encode_to_vec();
    assert!(
        body[4..].starts_with(&head),
        "fixture envelope writes typeMeta and raw first"
    );
    (4 + type_meta_only.len(), 4 + head.len())
}

/// Every kind the decoder knows, to aim random bytes at each table entry.
const KINDS: &[(&str, &str)] = &[
    ("apps/v1", "Deployment"),
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "Secret"),
    ("batch/v1", "CronJob"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("networking.k8s.io/v1", "Ingress"),
    ("policy/v1", "Eviction"),
    ("v1", "DeleteOptions"),
    ("coordination.k8s.io/v1", "Lease"),
    ("apps/v1", "ControllerRevision"),
];

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field(number: u32, wire_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(&mut out, u64::from(number) << 3 | u64::from(wire_type));
    if wire_type == 2 {
        varint(&mut out, payload.len() as u64);
    }
    out.extend_from_slice(payload);
    out
}

/// Well-formed protobuf with random field numbers, values and nesting: reaches deep into
/// the table (nested messages, maps, special codecs, merges of repeated occurrences).
fn protobuf_tree() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        (1u32..40, any::<u64>()).prop_map(|(n, v)| {
            let mut payload = Vec::new();
            varint(&mut payload, v);
            field(n, 0, &payload)
        }),
        (1u32..40, proptest::collection::vec(any::<u8>(), 0..12))
            .prop_map(|(n, b)| field(n, 2, &b)),
        (1u32..40, any::<[u8; 8]>()).prop_map(|(n, b)| field(n, 1, &b)),
        (1u32..4, "[a-z0-9.]{0,8}").prop_map(|(n, s)| field(n, 2, s.as_bytes())),
    ];
    leaf.prop_recursive(8, 256, 6, |inner| {
        (1u32..40, proptest::collection::vec(inner, 0..6))
            .prop_map(|(n, children)| field(n, 2, &children.concat()))
    })
}

#[test]
fn every_truncation_inside_the_envelope_is_an_error() {
    for body in fixture_bodies() {
        let (type_meta_end, end) = envelope_ends(&body);
        for n in 0..end {
            if n == type_meta_end {
                // A complete envelope without `raw`: the empty object of that kind.
                assert!(berth_protobuf::decode(&body[..n]).is_ok());
                continue;
            }
            assert!(
                berth_protobuf::decode(&body[..n]).is_err(),
                "prefix of {n}/{} bytes decoded",
                body.len()
            );
        }
        assert!(berth_protobuf::decode(&body).is_ok());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = berth_protobuf::decode(&bytes);
        let mut with_magic = b"k8s\0".to_vec();
        with_magic.extend(&bytes);
        let _ = berth_protobuf::decode(&with_magic);
    }

    #[test]
    fn random_bytes_without_magic_are_errors(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        prop_assume!(!bytes.starts_with(b"k8s\0"));
        prop_assert!(berth_protobuf::decode(&bytes).is_err());
    }

    #[test]
    fn random_messages_of_every_kind_never_panic(
        kind in 0..KINDS.len(),
        bytes in proptest::collection::vec(any::<u8>(), 0..1024),
    ) {
        let (api_version, kind) = KINDS[kind];
        if let Ok(v) = berth_protobuf::decode_as(&bytes, api_version, kind) {
            prop_assert_eq!(v["kind"].as_str(), Some(kind));
        }
    }

    #[test]
    fn random_protobuf_trees_of_every_kind_never_panic(
        kind in 0..KINDS.len(),
        trees in proptest::collection::vec(protobuf_tree(), 1..6),
    ) {
        let (api_version, kind) = KINDS[kind];
        let raw = trees.concat();
        match berth_protobuf::decode_as(&raw, api_version, kind) {
            Ok(v) => prop_assert!(v.is_object()),
            Err(e) => prop_assert!(e.is_malformed(), "{}", e),
        }
    }

    #[test]
    fn damaged_kubectl_bodies_never_panic(
        which in 0..29usize,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let bodies = fixture_bodies();
        let mut body = bodies[which % bodies.len()].clone();
        for (at, byte) in edits {
            let i = 4 + at % (body.len() - 4);
            body[i] = byte;
        }
        let _ = berth_protobuf::decode(&body);
        body.truncate(cut % (body.len() + 1));
        let _ = berth_protobuf::decode(&body);
    }

    #[test]
    fn truncated_raw_messages_never_panic(which in 0..29usize, cut in any::<usize>()) {
        let bodies = fixture_bodies();
        let body = &bodies[which % bodies.len()];
        let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown::decode(&body[4..]).expect("fixture");
        let raw = unknown.raw.unwrap_or_default();
        let tm = unknown.type_meta.unwrap_or_default();
        let cut = cut % (raw.len() + 1);
        let _ = berth_protobuf::decode_as(&raw[..cut], tm.api_version(), tm.kind());
    }
}
