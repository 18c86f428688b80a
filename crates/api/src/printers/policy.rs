//! Printers of pod disruption budgets and priority classes.

use serde_json::{Value, json};

use super::cells::int_or_string;
use super::{AGE, Column, NAME, Printer, age, docs, i, name};

pub fn for_kind(group: &str, kind: &str) -> Option<&'static dyn Printer> {
    Some(match (group, kind) {
        ("policy", "PodDisruptionBudget") => &PDB,
        ("scheduling.k8s.io", "PriorityClass") => &PRIORITY_CLASS,
        _ => return None,
    })
}

pub struct PdbPrinter;
static PDB: PdbPrinter = PdbPrinter;

fn or_na(v: Option<&Value>) -> String {
    match v.filter(|v| !v.is_null()) {
        Some(v) => int_or_string(v),
        None => "N/A".into(),
    }
}

impl Printer for PdbPrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new(
                "Min Available",
                "string",
                "The minimum number of pods that must be available.",
            ),
            Column::new(
                "Max Unavailable",
                "string",
                "The maximum number of pods that may be unavailable.",
            ),
            Column::new(
                "Allowed Disruptions",
                "integer",
                "Calculated number of pods that may be disrupted at this time.",
            ),
            AGE,
        ];
        COLS
    }
    fn cells(&self, pdb: &Value, now: jiff::Timestamp) -> Vec<Value> {
        vec![
            name(pdb),
            json!(or_na(pdb.pointer("/spec/minAvailable"))),
            json!(or_na(pdb.pointer("/spec/maxUnavailable"))),
            json!(i(pdb, "/status/disruptionsAllowed")),
            age(pdb, now),
        ]
    }
}

pub struct PriorityClassPrinter;
static PRIORITY_CLASS: PriorityClassPrinter = PriorityClassPrinter;

impl Printer for PriorityClassPrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new("Value", "integer", docs::PC_VALUE),
            Column::new("Global-Default", "boolean", docs::PC_GLOBAL_DEFAULT),
            AGE,
            Column::new("PreemptionPolicy", "string", docs::PC_PREEMPTION).wide(),
        ];
        COLS
    }
    fn cells(&self, pc: &Value, now: jiff::Timestamp) -> Vec<Value> {
        vec![
            name(pc),
            json!(i(pc, "/value")),
            json!(
                pc.get("globalDefault")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false)
            ),
            age(pc, now),
            json!(
                pc.get("preemptionPolicy")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_and_priorities() {
        let now: jiff::Timestamp = "2025-03-01T12:00:00Z".parse().unwrap();
        let m = json!({"name": "web", "creationTimestamp": "2025-03-01T11:00:00Z"});
        let pdb = json!({"metadata": m, "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}});
        assert_eq!(
            PDB.cells(&pdb, now),
            vec![
                json!("web"),
                json!("50%"),
                json!("N/A"),
                json!(1),
                json!("60m")
            ]
        );
        let pdb2 = json!({"metadata": m, "spec": {"maxUnavailable": 1}});
        assert_eq!(PDB.cells(&pdb2, now)[1..3], [json!("N/A"), json!("1")]);
        let pc = json!({"metadata": {"name": "system-node-critical", "creationTimestamp": "2025-03-01T11:00:00Z"},
            "value": 2000001000, "preemptionPolicy": "PreemptLowerPriority"});
        assert_eq!(
            PRIORITY_CLASS.cells(&pc, now),
            vec![
                json!("system-node-critical"),
                json!(2000001000),
                json!(false),
                json!("60m"),
                json!("PreemptLowerPriority")
            ]
        );
    }
}
