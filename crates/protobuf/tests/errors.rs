//! Bad bodies give errors that say what failed and where.

use berth_protobuf::{Error, Problem, decode, decode_as};

/// A length-delimited field: key (wire type 2), length, payload.
fn ld(field: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(&mut out, u64::from(field) << 3 | 2);
    varint(&mut out, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let type_meta = [ld(1, api_version.as_bytes()), ld(2, kind.as_bytes())].concat();
    let mut body = b"k8s\0".to_vec();
    body.extend(ld(1, &type_meta));
    body.extend(ld(2, raw));
    body
}

/// A Deployment whose third container's first port has a truncated containerPort varint.
fn deployment_with_bad_port() -> Vec<u8> {
    let container = |name: &str| ld(1, name.as_bytes());
    let bad_port = ld(6, &[0x18, 0x80]);
    let third = [container("c"), bad_port].concat();
    let pod_spec = [
        ld(2, &container("a")),
        ld(2, &container("b")),
        ld(2, &third),
    ]
    .concat();
    let template = ld(2, &pod_spec);
    let spec = ld(3, &template);
    ld(2, &spec)
}

#[test]
fn truncated_varint_names_the_field() {
    let err = decode(&envelope(
        "apps/v1",
        "Deployment",
        &deployment_with_bad_port(),
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "truncated varint in field io.k8s.api.apps.v1.Deployment.spec.template.spec.containers[2].ports[0].containerPort"
    );
    assert!(matches!(
        err,
        Error::Malformed {
            problem: Problem::TruncatedVarint,
            ..
        }
    ));
    assert_eq!(
        err.field_path(),
        Some("spec.template.spec.containers[2].ports[0].containerPort")
    );
    assert!(err.is_malformed());
}

#[test]
fn unknown_kind_is_named() {
    let err = decode(&envelope("apps/v1", "Foo", &[])).unwrap_err();
    assert_eq!(err.to_string(), "unknown kind apps/v1 Foo");
    assert!(err.is_unknown_kind());
    assert!(
        decode_as(&[], "example.com/v1", "Widget")
            .unwrap_err()
            .is_unknown_kind()
    );
}

#[test]
fn envelope_errors() {
    assert!(matches!(
        decode(b"{\"kind\":\"Pod\"}"),
        Err(Error::MissingMagic)
    ));
    assert!(matches!(decode(b"k8s"), Err(Error::MissingMagic)));
    assert!(matches!(decode(b"k8s\0"), Err(Error::MissingTypeMeta)));
    let mut gzip = envelope("v1", "ConfigMap", &[]);
    gzip.extend(ld(3, b"gzip"));
    let err = decode(&gzip).unwrap_err();
    assert!(
        err.is_unsupported() && err.to_string().contains("gzip"),
        "{err}"
    );
    let mut cbor = envelope("v1", "ConfigMap", &[]);
    cbor.extend(ld(4, b"application/cbor"));
    assert!(decode(&cbor).unwrap_err().is_unsupported());
    // The raw field declares more bytes than the body has.
    let mut short = envelope("v1", "ConfigMap", &ld(1, &ld(1, b"name")));
    short.truncate(short.len() - 2);
    let err = decode(&short).unwrap_err();
    assert_eq!(
        err.to_string(),
        "truncated value (8 bytes declared, 6 left) in field io.k8s.apimachinery.pkg.runtime.Unknown.raw"
    );
}

#[test]
fn wrong_wire_type_and_bad_values() {
    // ConfigMap.immutable (field 4) is a bool; send it length-delimited.
    let err = decode_as(&ld(4, b"x"), "v1", "ConfigMap").unwrap_err();
    assert_eq!(
        err.to_string(),
        "wrong wire type 2 (expected 0) in field io.k8s.api.core.v1.ConfigMap.immutable"
    );
    // IntOrString with type 7.
    let bad = [0x08, 0x07];
    let spec = ld(1, &bad); // PodDisruptionBudgetSpec.minAvailable
    let err = decode_as(&ld(2, &spec), "policy/v1", "PodDisruptionBudget").unwrap_err();
    assert!(
        err.to_string().starts_with(
            "invalid value in field io.k8s.api.policy.v1.PodDisruptionBudget.spec.minAvailable: "
        ),
        "{err}"
    );
    // A quantity that does not parse, inside a map value.
    let entry = [ld(1, b"cpu"), ld(2, &ld(1, b"lots"))].concat();
    let hard = ld(1, &entry); // ResourceQuotaSpec.hard
    let err = decode_as(&ld(2, &hard), "v1", "ResourceQuota").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid value in field io.k8s.api.core.v1.ResourceQuota.spec.hard[cpu].string: \"lots\" is not a quantity"
    );
    // Embedded JSON that is not JSON (ControllerRevision.data).
    let err = decode_as(
        &ld(2, &ld(1, b"{not json")),
        "apps/v1",
        "ControllerRevision",
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("invalid value in field io.k8s.api.apps.v1.ControllerRevision.data: embedded document is not JSON"), "{err}");
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    // JSONSchemaProps.not (28) nested 10,000 times inside a CRD.
    let mut schema = Vec::new();
    for _ in 0..10_000 {
        schema = ld(28, &schema);
    }
    let version = ld(4, &ld(1, &schema)); // version.schema.openAPIV3Schema
    let crd = ld(2, &ld(7, &version)); // spec.versions[0]
    let err = decode_as(&crd, "apiextensions.k8s.io/v1", "CustomResourceDefinition").unwrap_err();
    assert!(matches!(err, Error::TooDeep { limit: 100, .. }), "{err}");
    assert!(
        err.to_string()
            .contains("spec.versions[0].schema.openAPIV3Schema.not.not."),
        "{err}"
    );
}

#[test]
fn unknown_fields_are_skipped_like_go() {
    // ConfigMap with data {a: b} plus unknown fields of every wire type, and a group.
    let mut raw = ld(2, &[ld(1, b"a"), ld(2, b"b")].concat());
    raw.extend([0xf8, 0x01, 0x05]); // field 31 varint
    raw.extend([0xf9, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]); // field 31 fixed64
    raw.extend([0xfd, 0x01, 1, 2, 3, 4]); // field 31 fixed32
    raw.extend([0xfb, 0x01, 0x08, 0x01, 0xfc, 0x01]); // group 31 { field 1 varint }
    raw.extend(ld(99, b"later field"));
    let v = decode_as(&raw, "v1", "ConfigMap").unwrap();
    assert_eq!(
        v,
        serde_json::json!({"kind": "ConfigMap", "apiVersion": "v1", "data": {"a": "b"}})
    );
}
