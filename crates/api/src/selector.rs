//! Label and field selectors: the string syntax of `?labelSelector=` and `?fieldSelector=`,
//! the structured `LabelSelector` of workload specs, and matching.

use std::collections::BTreeMap;
use std::fmt;

/// A label selector requirement operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
    pub values: Vec<String>,
}

/// A parsed label selector: all requirements must hold. Empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
}

/// A selector that failed to parse; the message says what and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SelectorError {
    pub message: String,
}

fn err(message: impl Into<String>) -> SelectorError {
    SelectorError {
        message: message.into(),
    }
}

impl LabelSelector {
    pub fn everything() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Parses the string form (`app=web,tier in (a,b),!legacy`).
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut p = Lexer {
            s: s.as_bytes(),
            i: 0,
        };
        let mut requirements = Vec::new();
        p.skip_ws();
        if p.at_end() {
            return Ok(Self::default());
        }
        loop {
            requirements.push(p.requirement()?);
            p.skip_ws();
            if p.at_end() {
                break;
            }
            if !p.eat(b',') {
                return Err(err(format!(
                    "unable to parse requirement: found '{}', expected: ','",
                    p.rest()
                )));
            }
        }
        Ok(Self { requirements })
    }

    /// Builds the selector of a structured `metav1.LabelSelector` (matchLabels and
    /// matchExpressions) given as JSON.
    pub fn from_structured(sel: &serde_json::Value) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        if let Some(ml) = sel.get("matchLabels").and_then(|v| v.as_object()) {
            for (k, v) in ml {
                let v = v
                    .as_str()
                    .ok_or_else(|| err(format!("matchLabels[{k}] must be a string")))?;
                validate_label_key(k).map_err(err)?;
                validate_label_value(v).map_err(err)?;
                requirements.push(Requirement {
                    key: k.clone(),
                    op: Op::Equals,
                    values: vec![v.into()],
                });
            }
        }
        if let Some(exprs) = sel.get("matchExpressions").and_then(|v| v.as_array()) {
            for e in exprs {
                let key = e
                    .get("key")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| err("matchExpressions[].key is required"))?;
                validate_label_key(key).map_err(err)?;
                let values: Vec<String> = e
                    .get("values")
                    .and_then(|v| v.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let op = match e.get("operator").and_then(|v| v.as_str()) {
                    Some("In") => Op::In,
                    Some("NotIn") => Op::NotIn,
                    Some("Exists") => Op::Exists,
                    Some("DoesNotExist") => Op::DoesNotExist,
                    other => {
                        return Err(err(format!(
                            "{:?} is not a valid label selector operator",
                            other.unwrap_or("")
                        )));
                    }
                };
                match op {
                    Op::In | Op::NotIn if values.is_empty() => {
                        return Err(err(format!(
                            "values: Required value: must be specified when `operator` is 'In' or 'NotIn' (key {key})"
                        )));
                    }
                    Op::Exists | Op::DoesNotExist if !values.is_empty() => {
                        return Err(err(format!(
                            "values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist' (key {key})"
                        )));
                    }
                    _ => {}
                }
                requirements.push(Requirement {
                    key: key.into(),
                    op,
                    values,
                });
            }
        }
        Ok(Self { requirements })
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Like [`matches`](Self::matches) on a JSON `metadata.labels` object (or none).
    pub fn matches_json(
        &self,
        labels: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> bool {
        self.requirements.iter().all(|r| {
            let v = labels.and_then(|l| l.get(&r.key)).and_then(|v| v.as_str());
            r.matches_value(v)
        })
    }
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_value(labels.get(&self.key).map(|s| s.as_str()))
    }

    fn matches_value(&self, v: Option<&str>) -> bool {
        match self.op {
            Op::Equals | Op::In => v.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Op::NotEquals | Op::NotIn => !v.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Op::Exists => v.is_some(),
            Op::DoesNotExist => v.is_none(),
            Op::GreaterThan | Op::LessThan => {
                let (Some(v), Some(bound)) = (v, self.values.first()) else {
                    return false;
                };
                match (v.parse::<i64>(), bound.parse::<i64>()) {
                    (Ok(a), Ok(b)) => {
                        if self.op == Op::GreaterThan {
                            a > b
                        } else {
                            a < b
                        }
                    }
                    _ => false,
                }
            }
        }
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| match r.op {
                Op::Equals => format!("{}={}", r.key, r.values[0]),
                Op::NotEquals => format!("{}!={}", r.key, r.values[0]),
                Op::In => format!("{} in ({})", r.key, r.values.join(",")),
                Op::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
                Op::Exists => r.key.clone(),
                Op::DoesNotExist => format!("!{}", r.key),
                Op::GreaterThan => format!("{}>{}", r.key, r.values[0]),
                Op::LessThan => format!("{}<{}", r.key, r.values[0]),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }
    fn rest(&self) -> String {
        String::from_utf8_lossy(&self.s[self.i..]).into_owned()
    }
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn peek_str(&self, t: &str) -> bool {
        self.s[self.i..].starts_with(t.as_bytes())
    }
    fn word(&mut self) -> String {
        let start = self.i;
        while self.i < self.s.len() {
            let c = self.s[self.i];
            if c.is_ascii_whitespace()
                || matches!(c, b',' | b'=' | b'!' | b'(' | b')' | b'<' | b'>')
            {
                break;
            }
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        self.skip_ws();
        if self.eat(b'!') {
            self.skip_ws();
            let key = self.word();
            validate_label_key(&key).map_err(err)?;
            return Ok(Requirement {
                key,
                op: Op::DoesNotExist,
                values: vec![],
            });
        }
        let key = self.word();
        if key.is_empty() {
            return Err(err(format!(
                "unable to parse requirement: found '{}', expected: identifier",
                self.rest()
            )));
        }
        validate_label_key(&key).map_err(err)?;
        self.skip_ws();
        if self.at_end() || self.peek_str(",") {
            return Ok(Requirement {
                key,
                op: Op::Exists,
                values: vec![],
            });
        }
        let op = if self.peek_str("==") {
            self.i += 2;
            Op::Equals
        } else if self.peek_str("!=") {
            self.i += 2;
            Op::NotEquals
        } else if self.eat(b'=') {
            Op::Equals
        } else if self.eat(b'>') {
            Op::GreaterThan
        } else if self.eat(b'<') {
            Op::LessThan
        } else {
            let w = self.word();
            match w.as_str() {
                "in" => Op::In,
                "notin" => Op::NotIn,
                _ => {
                    return Err(err(format!(
                        "unable to parse requirement: found '{w}', expected: in, notin, =, ==, !=, gt, lt"
                    )));
                }
            }
        };
        self.skip_ws();
        let values = match op {
            Op::In | Op::NotIn => {
                if !self.eat(b'(') {
                    return Err(err(format!(
                        "unable to parse requirement: found '{}', expected: '('",
                        self.rest()
                    )));
                }
                let mut vals = Vec::new();
                loop {
                    self.skip_ws();
                    let v = self.word();
                    validate_label_value(&v).map_err(err)?;
                    vals.push(v);
                    self.skip_ws();
                    if self.eat(b')') {
                        break;
                    }
                    if !self.eat(b',') {
                        return Err(err(format!(
                            "unable to parse requirement: found '{}', expected: ',', ')'",
                            self.rest()
                        )));
                    }
                }
                vals
            }
            Op::GreaterThan | Op::LessThan => {
                let v = self.word();
                if v.parse::<i64>().is_err() {
                    return Err(err(format!(
                        "unable to parse requirement: for 'gt', 'lt' operators, the value must be an integer: {v}"
                    )));
                }
                vec![v]
            }
            _ => {
                let v = self.word();
                validate_label_value(&v).map_err(err)?;
                vec![v]
            }
        };
        Ok(Requirement { key, op, values })
    }
}

/// Validates a label key: an optional DNS-subdomain prefix and `/`, then a name of at most
/// 63 characters of alphanumerics, `-`, `_`, `.` starting and ending alphanumeric.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            return Err(format!(
                "invalid label key \"{key}\": prefix part must be non-empty"
            ));
        }
        if let Err(e) = crate::names::validate_dns1123_subdomain(p) {
            return Err(format!("invalid label key \"{key}\": prefix part {e}"));
        }
    }
    if !is_qualified_name_part(name) {
        return Err(format!(
            "invalid label key \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        ));
    }
    Ok(())
}

/// Validates a label value: empty, or at most 63 characters like a qualified name part.
pub fn validate_label_value(v: &str) -> Result<(), String> {
    if v.is_empty() || is_qualified_name_part(v) {
        Ok(())
    } else {
        Err(format!(
            "invalid label value: \"{v}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        ))
    }
}

fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// One `field=value` / `field!=value` term of a field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub value: String,
    pub negate: bool,
}

/// A parsed field selector: all terms must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses `a=b,c!=d` with `\` escapes for `,`, `=` and `\` in values.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        for term in split_unescaped(s, ',') {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let (field, value, negate) = if let Some(i) = find_unescaped(term, "!=") {
                (&term[..i], &term[i + 2..], true)
            } else if let Some(i) = find_unescaped(term, "==") {
                (&term[..i], &term[i + 2..], false)
            } else if let Some(i) = find_unescaped(term, "=") {
                (&term[..i], &term[i + 1..], false)
            } else {
                return Err(err(format!(
                    "invalid selector: '{term}'; can't understand '{term}'"
                )));
            };
            requirements.push(FieldRequirement {
                field: field.trim().to_string(),
                value: unescape(value),
                negate,
            });
        }
        Ok(Self { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether the object matches, given a function that returns a field's value
    /// (`None` when the object lacks the field, which compares as the empty string).
    pub fn matches(&self, field: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let v = field(&r.field).unwrap_or_default();
            (v == r.value) != r.negate
        })
    }

    /// The value an `=` term pins a field to, if any (used to narrow lists, e.g. by name).
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && !r.negate)
            .map(|r| r.value.as_str())
    }
}

fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

fn find_unescaped(s: &str, pat: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i..].starts_with(pat.as_bytes()) {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn equality_and_set_based_selectors() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("n", "5")]);
        for (sel, want) in [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app=db", false),
            ("tier in (front, back)", true),
            ("tier notin (front)", false),
            ("tier notin (back)", true),
            ("missing notin (x)", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("app=web,tier=front", true),
            ("app=web, tier=back", false),
            ("n>3", true),
            ("n<3", false),
            ("example.com/role", false),
        ] {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&l), want, "{sel}");
        }
    }

    #[test]
    fn bad_selectors_are_errors() {
        for sel in [
            "app in web",
            "app=",
            "=x",
            "app=web,",
            "a b",
            "n>x",
            "app in (a",
            "-bad=x",
        ] {
            if sel == "app=" {
                // an empty value is valid
                assert!(LabelSelector::parse(sel).is_ok());
                continue;
            }
            assert!(LabelSelector::parse(sel).is_err(), "{sel} should fail");
        }
    }

    #[test]
    fn display_round_trips() {
        let s = LabelSelector::parse("app=web,tier in (a,b),!x,y").unwrap();
        assert_eq!(LabelSelector::parse(&s.to_string()).unwrap(), s);
    }

    #[test]
    fn structured_selectors() {
        let v = serde_json::json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]});
        let s = LabelSelector::from_structured(&v).unwrap();
        assert_eq!(s.to_string(), "app=web,tier in (a)");
        let bad = serde_json::json!({"matchExpressions": [{"key": "t", "operator": "In"}]});
        assert!(LabelSelector::from_structured(&bad).is_err());
    }

    #[test]
    fn field_selectors_with_escapes_and_negation() {
        let s =
            FieldSelector::parse("spec.nodeName=n1,status.phase!=Succeeded,status.phase!=Failed")
                .unwrap();
        let obj = |f: &str| match f {
            "spec.nodeName" => Some("n1".to_string()),
            "status.phase" => Some("Running".to_string()),
            _ => None,
        };
        assert!(s.matches(obj));
        assert_eq!(s.exact("spec.nodeName"), Some("n1"));
        let e = FieldSelector::parse(r"metadata.name=a\,b").unwrap();
        assert_eq!(e.requirements[0].value, "a,b");
        assert!(FieldSelector::parse("nonsense").is_err());
        let empty_value = FieldSelector::parse("spec.nodeName=").unwrap();
        assert!(empty_value.matches(|_| None));
    }
}
