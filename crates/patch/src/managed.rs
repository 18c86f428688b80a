//! `metadata.managedFields` in memory: one entry per manager identity, decoded from and
//! encoded to Kubernetes' `ManagedFieldsEntry` list exactly as apimachinery does (validation,
//! identity, ordering).

use serde_json::{Map, Value};

use crate::fieldpath::Set;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// Who owns a set of fields: apimachinery's manager identifier (manager, operation, the
/// apiVersion for updates only, subresource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ManagerId {
    pub manager: String,
    pub operation: Operation,
    pub api_version: Option<String>,
    pub subresource: Option<String>,
}

impl ManagerId {
    pub(crate) fn new(
        manager: &str,
        operation: Operation,
        api_version: &str,
        subresource: Option<&str>,
    ) -> Self {
        ManagerId {
            manager: if manager.is_empty() {
                "unknown".into()
            } else {
                manager.into()
            },
            operation,
            api_version: (operation == Operation::Update).then(|| api_version.to_string()),
            subresource: subresource.filter(|s| !s.is_empty()).map(Into::into),
        }
    }

    /// The JSON identifier apimachinery keys managers by (and sorts conflict messages by).
    pub(crate) fn key(&self) -> String {
        let mut m = Map::new();
        m.insert("manager".into(), Value::from(self.manager.clone()));
        m.insert("operation".into(), Value::from(self.operation.as_str()));
        if let Some(v) = &self.api_version {
            m.insert("apiVersion".into(), Value::from(v.clone()));
        }
        if let Some(s) = &self.subresource {
            m.insert("subresource".into(), Value::from(s.clone()));
        }
        Value::Object(m).to_string()
    }

    /// The manager as Kubernetes prints it in conflicts.
    pub(crate) fn display(&self) -> String {
        let mut s = Value::from(self.manager.clone()).to_string();
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {}", Value::from(sub.clone())));
        }
        if let (Operation::Update, Some(v)) = (self.operation, &self.api_version) {
            s.push_str(&format!(" using {v}"));
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub id: ManagerId,
    pub api_version: String,
    pub set: Set,
    pub time: Option<String>,
}

/// All managers of an object, in first-seen order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Managed {
    pub entries: Vec<Entry>,
}

impl Managed {
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn get(&self, id: &ManagerId) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == *id)
    }

    pub(crate) fn get_mut(&mut self, id: &ManagerId) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.id == *id)
    }

    pub(crate) fn remove(&mut self, id: &ManagerId) -> Option<Entry> {
        let i = self.entries.iter().position(|e| e.id == *id)?;
        Some(self.entries.remove(i))
    }

    /// Sets (replacing) the entry of `entry.id`.
    pub(crate) fn put(&mut self, entry: Entry) {
        match self.get_mut(&entry.id) {
            Some(existing) => *existing = entry,
            None => self.entries.push(entry),
        }
    }

    /// Drops managers that own nothing.
    pub(crate) fn drop_empty(&mut self) {
        self.entries.retain(|e| !e.set.is_empty());
    }

    /// Decodes a `managedFields` list (apimachinery's `DecodeManagedFields`).
    pub(crate) fn decode(value: &Value) -> Result<Managed, String> {
        let Value::Array(items) = value else {
            return Err("must be a list".into());
        };
        let mut managed = Managed::default();
        for (i, item) in items.iter().enumerate() {
            let Value::Object(entry) = item else {
                return Err(format!("entry {i} must be an object"));
            };
            let text = |key: &str| entry.get(key).and_then(Value::as_str).unwrap_or("");
            let operation = match text("operation") {
                "Apply" => Operation::Apply,
                "Update" => Operation::Update,
                _ => return Err("operation must be `Apply` or `Update`".into()),
            };
            let api_version = text("apiVersion");
            if api_version.is_empty() {
                return Err("apiVersion must not be empty".into());
            }
            match text("fieldsType") {
                "FieldsV1" => {}
                "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
                other => {
                    return Err(format!(
                        "invalid fieldsType {other:?} in managed fields entry {i}"
                    ));
                }
            }
            let set = match entry.get("fieldsV1") {
                None | Some(Value::Null) => Set::new(),
                Some(fields) => Set::from_fields_v1(fields)
                    .map_err(|e| format!("error decoding versioned set from entry {i}: {e}"))?,
            };
            let id = ManagerId {
                manager: text("manager").to_string(),
                operation,
                api_version: (operation == Operation::Update).then(|| api_version.to_string()),
                subresource: Some(text("subresource"))
                    .filter(|s| !s.is_empty())
                    .map(Into::into),
            };
            managed.put(Entry {
                id,
                api_version: api_version.to_string(),
                set,
                time: entry.get("time").and_then(Value::as_str).map(Into::into),
            });
        }
        Ok(managed)
    }

    /// Encodes the entries, sorted as apimachinery sorts them (operation, time, manager,
    /// apiVersion, subresource). `None` when there are none.
    pub(crate) fn encode(&self) -> Option<Value> {
        if self.entries.is_empty() {
            return None;
        }
        let mut entries: Vec<&Entry> = self.entries.iter().collect();
        entries.sort_by(|p, q| {
            p.id.operation
                .cmp(&q.id.operation)
                .then_with(|| unix_seconds(p.time.as_deref()).cmp(&unix_seconds(q.time.as_deref())))
                .then_with(|| p.id.manager.cmp(&q.id.manager))
                .then_with(|| p.api_version.cmp(&q.api_version))
                .then_with(|| p.id.subresource.cmp(&q.id.subresource))
        });
        let list = entries
            .into_iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("manager".into(), Value::from(e.id.manager.clone()));
                m.insert("operation".into(), Value::from(e.id.operation.as_str()));
                m.insert("apiVersion".into(), Value::from(e.api_version.clone()));
                if let Some(t) = &e.time {
                    m.insert("time".into(), Value::from(t.clone()));
                }
                m.insert("fieldsType".into(), Value::from("FieldsV1"));
                m.insert("fieldsV1".into(), e.set.to_fields_v1());
                if let Some(s) = &e.id.subresource {
                    m.insert("subresource".into(), Value::from(s.clone()));
                }
                Value::Object(m)
            })
            .collect();
        Some(Value::Array(list))
    }

    /// Equal sets of managers and fields, whatever the timestamps and order.
    pub(crate) fn same_ignoring_time(&self, other: &Managed) -> bool {
        self.entries.len() == other.entries.len()
            && self.entries.iter().all(|e| {
                other
                    .get(&e.id)
                    .is_some_and(|o| o.api_version == e.api_version && o.set == e.set)
            })
    }
}

/// Seconds since the epoch of an RFC 3339 timestamp (`2026-01-01T00:00:00Z`, fractions and
/// offsets allowed); 0 when absent or malformed, as a missing time sorts in Kubernetes.
pub(crate) fn unix_seconds(time: Option<&str>) -> i64 {
    time.and_then(parse_rfc3339).unwrap_or(0)
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = s.get(from..from + len)?;
        digits
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let mut rest = &s[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = rest.get(1..)?.split_once(':')?;
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60)
        }
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_rfc3339() {
        assert_eq!(unix_seconds(Some("1970-01-01T00:00:00Z")), 0);
        assert_eq!(unix_seconds(Some("2026-01-01T00:00:00Z")), 1_767_225_600);
        assert_eq!(
            unix_seconds(Some("2026-01-01T01:00:00.123+01:00")),
            1_767_225_600
        );
        assert_eq!(unix_seconds(Some("garbage")), 0);
        assert_eq!(unix_seconds(None), 0);
    }

    #[test]
    fn decode_validates_like_apimachinery() {
        let ok = json!([{"manager": "m", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:a": {}}}]);
        assert_eq!(Managed::decode(&ok).unwrap().entries.len(), 1);
        for (bad, needle) in [
            (
                json!([{"manager": "m", "operation": "Patch", "apiVersion": "v1", "fieldsType": "FieldsV1"}]),
                "operation",
            ),
            (
                json!([{"manager": "m", "operation": "Apply", "fieldsType": "FieldsV1"}]),
                "apiVersion",
            ),
            (
                json!([{"manager": "m", "operation": "Apply", "apiVersion": "v1"}]),
                "missing fieldsType",
            ),
            (
                json!([{"manager": "m", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV2"}]),
                "invalid fieldsType",
            ),
            (json!({}), "list"),
        ] {
            let e = Managed::decode(&bad).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn encode_sorts_apply_first_then_by_time() {
        let entries = json!([
            {"manager": "b", "operation": "Update", "apiVersion": "v1", "time": "2026-01-01T00:00:01Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:b": {}}},
            {"manager": "a", "operation": "Update", "apiVersion": "v1", "time": "2026-01-01T00:00:02Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:a": {}}, "subresource": "status"},
            {"manager": "z", "operation": "Apply", "apiVersion": "v1", "time": "2026-01-01T00:00:03Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:z": {}}}
        ]);
        let encoded = Managed::decode(&entries).unwrap().encode().unwrap();
        let managers: Vec<&str> = encoded
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, ["z", "b", "a"]);
        assert_eq!(encoded[2], entries[1]);
    }

    #[test]
    fn identities_and_display() {
        let update = ManagerId::new(
            "kubectl-client-side-apply",
            Operation::Update,
            "apps/v1",
            None,
        );
        assert_eq!(
            update.key(),
            r#"{"manager":"kubectl-client-side-apply","operation":"Update","apiVersion":"apps/v1"}"#
        );
        assert_eq!(
            update.display(),
            r#""kubectl-client-side-apply" using apps/v1"#
        );
        let apply = ManagerId::new("kubectl", Operation::Apply, "apps/v1", Some("status"));
        assert_eq!(
            apply.key(),
            r#"{"manager":"kubectl","operation":"Apply","subresource":"status"}"#
        );
        assert_eq!(apply.display(), r#""kubectl" with subresource "status""#);
        assert_eq!(
            ManagerId::new("", Operation::Apply, "v1", None).manager,
            "unknown"
        );
    }
}
