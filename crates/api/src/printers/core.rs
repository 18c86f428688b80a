//! Printers of the core kinds.

use serde_json::{Value, json};

use super::{AGE, Column, NAME, Printer, age, name, s};

pub fn for_kind(group: &str, kind: &str) -> Option<&'static dyn Printer> {
    Some(match (group, kind) {
        ("", "Namespace") => &NAMESPACE,
        _ => return None,
    })
}

pub struct NamespacePrinter;
static NAMESPACE: NamespacePrinter = NamespacePrinter;

impl Printer for NamespacePrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new("Status", "string", "The status of the namespace"),
            AGE,
        ];
        COLS
    }
    fn cells(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        vec![name(obj), json!(s(obj, "/status/phase")), age(obj, now)]
    }
}
