//! Table printers: the columns `kubectl get` shows for each kind (and `-o wide`, which adds
//! the columns with priority > 0), and the cells of one object's row, as Kubernetes' server
//! side printing produces them.
//!
//! Kubernetes' API server always prints rows in wide mode and kubectl drops the priority > 0
//! columns unless `-o wide` is given, so `cells` always returns one cell per column. Cells
//! keep Kubernetes' JSON types: counters are numbers, a few flags are booleans, the rest are
//! strings (whatever the column's declared type says).

mod age;
mod apps;
mod autoscaling;
mod batch;
mod cells;
mod coordination;
mod core;
mod docs;
mod networking;
mod pod;
mod policy;
mod rbac;
mod storage;

pub use age::human_duration;
pub use cells::{format_label_selector, format_labels, label_selector_string};

use std::collections::HashSet;
use std::sync::LazyLock;

use serde_json::Value;

/// One column of a Table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub kind: &'static str,
    /// `name` for the name column, else usually empty.
    pub format: &'static str,
    pub description: &'static str,
    /// 0: always shown; > 0: only with `-o wide`.
    pub priority: i32,
}

impl Column {
    pub const fn new(name: &'static str, kind: &'static str, description: &'static str) -> Column {
        Column {
            name,
            kind,
            format: "",
            description,
            priority: 0,
        }
    }
    pub const fn wide(mut self) -> Column {
        self.priority = 1;
        self
    }
    pub const fn format(mut self, format: &'static str) -> Column {
        self.format = format;
        self
    }
}

pub const NAME: Column = Column::new("Name", "string", docs::META_NAME).format("name");

pub const AGE: Column = Column::new("Age", "string", docs::META_CREATION);

/// The second column of built-in kinds without a printer of their own (roles, CRDs, ...).
pub const CREATED_AT: Column = Column::new("Created At", "date", docs::META_CREATION);

/// The `Containers` column of workloads (wide).
pub const CONTAINERS: Column = Column::new(
    "Containers",
    "string",
    "Names of each container in the template.",
)
.wide();

/// The `Images` column of workloads (wide).
pub const IMAGES: Column = Column::new(
    "Images",
    "string",
    "Images referenced by each container in the template.",
)
.wide();

/// How one kind prints.
pub trait Printer: Sync {
    fn columns(&self) -> &[Column];
    fn cells(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value>;
}

/// The printer of a kind: its own columns for the kinds Kubernetes prints specially, Name and
/// Created At for other built-in kinds, Name and Age for custom resources.
pub fn for_kind(group: &str, kind: &str) -> &'static dyn Printer {
    if let Some(p) = core::for_kind(group, kind)
        .or_else(|| pod::for_kind(group, kind))
        .or_else(|| storage::for_kind(group, kind))
        .or_else(|| apps::for_kind(group, kind))
        .or_else(|| batch::for_kind(group, kind))
        .or_else(|| autoscaling::for_kind(group, kind))
        .or_else(|| networking::for_kind(group, kind))
        .or_else(|| coordination::for_kind(group, kind))
        .or_else(|| policy::for_kind(group, kind))
        .or_else(|| rbac::for_kind(group, kind))
    {
        return p;
    }
    if is_builtin(group, kind) {
        &CREATED
    } else {
        &DEFAULT
    }
}

/// Whether a kind is one of the built-in ones (custom resources print differently).
fn is_builtin(group: &str, kind: &str) -> bool {
    static BUILTIN: LazyLock<HashSet<(String, String)>> = LazyLock::new(|| {
        crate::builtin_resources()
            .iter()
            .map(|r| (r.group.clone(), r.kind.clone()))
            .collect()
    });
    BUILTIN.contains(&(group.to_string(), kind.to_string()))
}

/// The printer of custom resources without printer columns: Name and Age.
pub struct DefaultPrinter;

pub static DEFAULT: DefaultPrinter = DefaultPrinter;

impl Printer for DefaultPrinter {
    fn columns(&self) -> &[Column] {
        &[NAME, AGE]
    }
    fn cells(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        vec![name(obj), age(obj, now)]
    }
}

/// The printer of built-in kinds without columns of their own: Name and Created At (the
/// creation timestamp in RFC 3339), as Kubernetes' default table convertor prints them.
pub struct CreatedAtPrinter;

pub static CREATED: CreatedAtPrinter = CreatedAtPrinter;

impl Printer for CreatedAtPrinter {
    fn columns(&self) -> &[Column] {
        &[NAME, CREATED_AT]
    }
    fn cells(&self, obj: &Value, _now: jiff::Timestamp) -> Vec<Value> {
        let created = crate::meta::meta_str(obj, "creationTimestamp")
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        vec![name(obj), Value::String(created)]
    }
}

/// The name cell.
pub fn name(obj: &Value) -> Value {
    Value::String(crate::meta::name(obj).unwrap_or_default().to_string())
}

/// The age cell: time since `metadata.creationTimestamp`, as kubectl renders it.
pub fn age(obj: &Value, now: jiff::Timestamp) -> Value {
    Value::String(since(crate::meta::meta_str(obj, "creationTimestamp"), now))
}

/// Human duration since an RFC 3339 timestamp, or `<unknown>`.
pub fn since(ts: Option<&str>, now: jiff::Timestamp) -> String {
    match ts.and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
        Some(t) => human_duration((now - t).get_seconds()),
        None => "<unknown>".into(),
    }
}

/// A string at a JSON pointer, or "".
pub fn s<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(|v| v.as_str()).unwrap_or("")
}

/// An integer at a JSON pointer, or 0.
pub fn i(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(|v| v.as_i64()).unwrap_or(0)
}

/// `<none>` for empty strings, as kubectl prints missing values.
pub fn or_none(v: impl Into<String>) -> Value {
    let v = v.into();
    Value::String(if v.is_empty() { "<none>".into() } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_without_columns_print_created_at_and_custom_resources_age() {
        let now: jiff::Timestamp = "2025-01-01T01:00:00Z".parse().unwrap();
        let role = json!({"metadata": {"name": "r", "creationTimestamp": "2025-01-01T00:00:00Z"}});
        let p = for_kind("rbac.authorization.k8s.io", "Role");
        assert_eq!(p.columns()[1].name, "Created At");
        assert_eq!(p.columns()[1].kind, "date");
        assert_eq!(
            p.cells(&role, now),
            vec![json!("r"), json!("2025-01-01T00:00:00Z")]
        );
        let crd = for_kind("apiextensions.k8s.io", "CustomResourceDefinition");
        assert_eq!(crd.columns().len(), 2);
        assert_eq!(crd.columns()[1].name, "Created At");
        let cr = for_kind("example.com", "Widget");
        assert_eq!(cr.columns()[1].name, "Age");
        assert_eq!(cr.cells(&role, now), vec![json!("r"), json!("60m")]);
    }

    #[test]
    fn every_builtin_kind_prints_one_cell_per_column() {
        let now = jiff::Timestamp::now();
        for r in crate::builtin_resources() {
            let p = for_kind(&r.group, &r.kind);
            // An empty object must not panic and must fill every column.
            assert_eq!(
                p.cells(&json!({}), now).len(),
                p.columns().len(),
                "{}",
                r.kind
            );
            assert_eq!(
                p.columns().iter().filter(|c| c.format == "name").count(),
                1,
                "{}",
                r.kind
            );
        }
    }
}
