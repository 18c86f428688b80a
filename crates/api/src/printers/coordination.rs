//! The Lease printer: NAME, HOLDER, AGE.

use serde_json::{Value, json};

use super::{AGE, Column, NAME, Printer, age, docs, name, s};

pub fn for_kind(group: &str, kind: &str) -> Option<&'static dyn Printer> {
    match (group, kind) {
        ("coordination.k8s.io", "Lease") => Some(&LEASE),
        _ => None,
    }
}

pub struct LeasePrinter;
static LEASE: LeasePrinter = LeasePrinter;

impl Printer for LeasePrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new("Holder", "string", docs::LEASE_HOLDER),
            AGE,
        ];
        COLS
    }
    fn cells(&self, lease: &Value, now: jiff::Timestamp) -> Vec<Value> {
        vec![
            name(lease),
            json!(s(lease, "/spec/holderIdentity")),
            age(lease, now),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_row() {
        let now: jiff::Timestamp = "2025-03-01T12:00:00Z".parse().unwrap();
        let l = json!({"metadata": {"name": "berth-scheduler", "creationTimestamp": "2025-03-01T11:59:30Z"},
            "spec": {"holderIdentity": "server-1_4b2", "leaseDurationSeconds": 15}});
        assert_eq!(
            LEASE.cells(&l, now),
            vec![
                json!("berth-scheduler"),
                json!("server-1_4b2"),
                json!("30s")
            ]
        );
        assert_eq!(
            LEASE.cells(&json!({"metadata": {"name": "x"}}), now)[1],
            json!("")
        );
    }
}
