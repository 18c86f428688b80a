//! Field paths and field sets in structured-merge-diff's model, and their `FieldsV1`
//! encoding (the JSON trie of `metadata.managedFields[].fieldsV1`).
//!
//! A path is a list of elements: a field name (`f:spec`), the key of a list-map item
//! (`k:{"name":"nginx"}`), the value of a set item (`v:"foo"`) or a list index (`i:0`). A
//! [`Set`] is a trie whose nodes hold their member elements and their children, both sorted
//! the way structured-merge-diff sorts them, so encoding is deterministic and matches
//! Kubernetes byte for byte.

use std::cmp::Ordering;
use std::fmt;

use serde_json::{Map, Number, Value};

#[derive(Debug, Clone)]
pub(crate) enum PathElement {
    Field(String),
    /// Key fields of a list-map item, sorted by name.
    Key(Vec<(String, Value)>),
    Value(Value),
    Index(i64),
}

impl PathElement {
    pub(crate) fn field(name: &str) -> Self {
        PathElement::Field(name.to_string())
    }

    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.as_bytes().cmp(b.as_bytes()),
            (PathElement::Key(a), PathElement::Key(b)) => {
                for ((an, av), (bn, bv)) in a.iter().zip(b.iter()) {
                    let c = an
                        .as_bytes()
                        .cmp(bn.as_bytes())
                        .then_with(|| compare_values(av, bv));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            (PathElement::Value(a), PathElement::Value(b)) => compare_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

enum Num {
    Int(i128),
    Float(f64),
}

fn number(n: &Number) -> Num {
    if let Some(i) = n.as_i64() {
        Num::Int(i as i128)
    } else if let Some(u) = n.as_u64() {
        Num::Int(u as i128)
    } else {
        Num::Float(n.as_f64().unwrap_or(0.0))
    }
}

fn float_cmp(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

/// structured-merge-diff's total order of values: numbers (ints and floats compared
/// numerically), then strings, booleans, lists, maps, null.
pub(crate) fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (number(x), number(y)) {
            (Num::Int(x), Num::Int(y)) => x.cmp(&y),
            (Num::Float(x), Num::Float(y)) => float_cmp(x, y),
            (Num::Int(x), Num::Float(y)) => float_cmp(x as f64, y),
            (Num::Float(x), Num::Int(y)) => float_cmp(x, y as f64),
        },
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y.iter()) {
                let c = compare_values(p, q);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xs: Vec<(&String, &Value)> = x.iter().collect();
            let mut ys: Vec<(&String, &Value)> = y.iter().collect();
            xs.sort_by(|p, q| p.0.cmp(q.0));
            ys.sort_by(|p, q| p.0.cmp(q.0));
            for ((xk, xv), (yk, yv)) in xs.iter().zip(ys.iter()) {
                let c = xk.cmp(yk).then_with(|| compare_values(xv, yv));
                if c != Ordering::Equal {
                    return c;
                }
            }
            xs.len().cmp(&ys.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Value equality as structured-merge-diff sees it (numbers compare numerically).
pub(crate) fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => compare_values(a, b) == Ordering::Equal,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| values_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| values_equal(v, w)))
        }
        _ => a == b,
    }
}

/// Go's `%v`/`%q` rendering of a value inside a path (`[name="nginx"]`).
fn write_value(f: &mut fmt::Formatter<'_>, v: &Value) -> fmt::Result {
    match v {
        Value::Null => write!(f, "null"),
        Value::String(s) => write!(f, "{}", Value::String(s.clone())),
        Value::Array(items) => {
            write!(f, "[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    write!(f, ",")?;
                }
                write_value(f, item)?;
            }
            write!(f, "]")
        }
        Value::Object(map) => {
            for (k, v) in map {
                write!(f, "{k}=")?;
                write_value(f, v)?;
            }
            Ok(())
        }
        other => write!(f, "{other}"),
    }
}

impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                write!(f, "[")?;
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        write!(f, ",")?;
                    }
                    write!(f, "{name}=")?;
                    write_value(f, value)?;
                }
                write!(f, "]")
            }
            PathElement::Value(value) => {
                write!(f, "[=")?;
                write_value(f, value)?;
                write!(f, "]")
            }
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path in display form: `.spec.template.spec.containers[name="nginx"].image`.
pub(crate) struct PathDisplay<'a>(pub &'a [PathElement]);

impl fmt::Display for PathDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|pe| write!(f, "{pe}"))
    }
}

/// A set of field paths, as a sorted trie.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Set {
    members: Vec<PathElement>,
    children: Vec<(PathElement, Set)>,
}

impl Set {
    pub(crate) fn new() -> Self {
        Set::default()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.iter().all(|(_, s)| s.is_empty())
    }

    /// Adds `path` (not the empty path).
    pub(crate) fn insert(&mut self, path: &[PathElement]) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut node = self;
        for pe in parents {
            node = node.child_mut(pe);
        }
        if let Err(i) = node.members.binary_search(last) {
            node.members.insert(i, last.clone());
        }
    }

    fn child_mut(&mut self, pe: &PathElement) -> &mut Set {
        let i = match self.children.binary_search_by(|(c, _)| c.cmp(pe)) {
            Ok(i) => i,
            Err(i) => {
                self.children.insert(i, (pe.clone(), Set::new()));
                i
            }
        };
        &mut self.children[i].1
    }

    #[cfg(test)]
    pub(crate) fn has(&self, path: &[PathElement]) -> bool {
        let Some((last, parents)) = path.split_last() else {
            return false;
        };
        let mut node = self;
        for pe in parents {
            match node.child(pe) {
                Some(child) => node = child,
                None => return false,
            }
        }
        node.members.binary_search(last).is_ok()
    }

    /// The paths below `pe` (without it), if any.
    pub(crate) fn child(&self, pe: &PathElement) -> Option<&Set> {
        self.children
            .binary_search_by(|(c, _)| c.cmp(pe))
            .ok()
            .map(|i| &self.children[i].1)
    }

    pub(crate) fn is_member(&self, pe: &PathElement) -> bool {
        self.members.binary_search(pe).is_ok()
    }

    pub(crate) fn union(&self, other: &Set) -> Set {
        Set {
            members: merge_sorted(
                &self.members,
                &other.members,
                |a, b| a.cmp(b),
                |a, _| Some(a.clone()),
                true,
            ),
            children: merge_sorted(
                &self.children,
                &other.children,
                |a, b| a.0.cmp(&b.0),
                |a, b| Some((a.0.clone(), a.1.union(&b.1))),
                true,
            ),
        }
    }

    pub(crate) fn intersection(&self, other: &Set) -> Set {
        Set {
            members: merge_sorted(
                &self.members,
                &other.members,
                |a, b| a.cmp(b),
                |a, _| Some(a.clone()),
                false,
            ),
            children: merge_sorted(
                &self.children,
                &other.children,
                |a, b| a.0.cmp(&b.0),
                |a, b| {
                    let i = a.1.intersection(&b.1);
                    (!i.is_empty()).then(|| (a.0.clone(), i))
                },
                false,
            ),
        }
    }

    /// Members of `self` not in `other`; children are diffed against `other`'s children of
    /// the same element only (a member of `other` does not remove a child of `self`).
    pub(crate) fn difference(&self, other: &Set) -> Set {
        self.diff(other, false)
    }

    /// Like [`Set::difference`], but a member of `other` also removes everything below it.
    pub(crate) fn recursive_difference(&self, other: &Set) -> Set {
        self.diff(other, true)
    }

    fn diff(&self, other: &Set, recursive: bool) -> Set {
        let members = self
            .members
            .iter()
            .filter(|pe| !other.is_member(pe))
            .cloned()
            .collect();
        let mut children = Vec::with_capacity(self.children.len());
        for (pe, set) in &self.children {
            if recursive && other.is_member(pe) {
                continue;
            }
            match other.child(pe) {
                Some(other_child) => {
                    let d = set.diff(other_child, recursive);
                    if !d.is_empty() {
                        children.push((pe.clone(), d));
                    }
                }
                None => {
                    if !set.is_empty() {
                        children.push((pe.clone(), set.clone()));
                    }
                }
            }
        }
        Set { members, children }
    }

    /// Every path, members of a node before its children (depth first).
    pub(crate) fn paths(&self) -> Vec<Vec<PathElement>> {
        let mut out = Vec::new();
        let mut prefix = Vec::new();
        self.collect(&mut prefix, &mut out);
        out
    }

    fn collect(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Vec<PathElement>>) {
        for pe in &self.members {
            let mut p = prefix.clone();
            p.push(pe.clone());
            out.push(p);
        }
        for (pe, set) in &self.children {
            prefix.push(pe.clone());
            set.collect(prefix, out);
            prefix.pop();
        }
    }

    /// Iterates the children (element and subset) of this node.
    pub(crate) fn children(&self) -> impl Iterator<Item = (&PathElement, &Set)> {
        self.children.iter().map(|(pe, s)| (pe, s))
    }

    pub(crate) fn members(&self) -> &[PathElement] {
        &self.members
    }

    /// Adds `pe` as a member (used when rebuilding sets).
    pub(crate) fn add_member(&mut self, pe: PathElement) {
        if let Err(i) = self.members.binary_search(&pe) {
            self.members.insert(i, pe);
        }
    }

    /// Sets the subset below `pe`.
    pub(crate) fn set_child(&mut self, pe: PathElement, set: Set) {
        match self.children.binary_search_by(|(c, _)| c.cmp(&pe)) {
            Ok(i) => self.children[i].1 = set,
            Err(i) => self.children.insert(i, (pe, set)),
        }
    }

    /// The `fieldsV1` JSON of this set.
    pub(crate) fn to_fields_v1(&self) -> Value {
        Value::Object(self.emit(false))
    }

    fn emit(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self && !(self.members.is_empty() && self.children.is_empty()) {
            out.insert(".".into(), Value::Object(Map::new()));
        }
        let (mut m, mut c) = (0, 0);
        while m < self.members.len() || c < self.children.len() {
            let order = match (self.members.get(m), self.children.get(c)) {
                (Some(member), Some((child, _))) => member.cmp(child),
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            };
            match order {
                Ordering::Less => {
                    out.insert(encode_element(&self.members[m]), Value::Object(Map::new()));
                    m += 1;
                }
                Ordering::Greater => {
                    let (pe, set) = &self.children[c];
                    out.insert(encode_element(pe), Value::Object(set.emit(false)));
                    c += 1;
                }
                Ordering::Equal => {
                    let (pe, set) = &self.children[c];
                    out.insert(encode_element(pe), Value::Object(set.emit(true)));
                    m += 1;
                    c += 1;
                }
            }
        }
        out
    }

    /// Parses `fieldsV1`. Unknown element prefixes are skipped, as Kubernetes does.
    pub(crate) fn from_fields_v1(fields: &Value) -> Result<Set, String> {
        let Value::Object(map) = fields else {
            return Err("fieldsV1 must be a JSON object".into());
        };
        let (set, _) = read_fields(map)?;
        Ok(set.unwrap_or_default())
    }
}

/// Returns (children, is_member) like structured-merge-diff's `readIterV1`.
fn read_fields(map: &Map<String, Value>) -> Result<(Option<Set>, bool), String> {
    let mut children: Option<Set> = None;
    let mut is_member = false;
    for (key, value) in map {
        if key == "." {
            is_member = true;
            continue;
        }
        let pe = match decode_element(key)? {
            Some(pe) => pe,
            None => continue,
        };
        let Value::Object(inner) = value else {
            return Err(format!("fieldsV1 entry {key:?} must be a JSON object"));
        };
        let (grandchildren, child_is_member) = read_fields(inner)?;
        let set = children.get_or_insert_with(Set::new);
        if child_is_member {
            set.add_member(pe.clone());
        }
        if let Some(grandchildren) = grandchildren {
            set.set_child(pe, grandchildren);
        }
    }
    if children.is_none() {
        is_member = true;
    }
    Ok((children, is_member))
}

fn decode_element(key: &str) -> Result<Option<PathElement>, String> {
    let bad = |why: &str| format!("invalid fieldsV1 key {key:?}: {why}");
    let Some((kind, rest)) = key.split_at_checked(2) else {
        return Err(bad("key must be 2 characters long"));
    };
    if !kind.ends_with(':') {
        return Err(bad("missing colon"));
    }
    Ok(Some(match kind {
        "f:" => PathElement::Field(rest.to_string()),
        "v:" => PathElement::Value(serde_json::from_str(rest).map_err(|e| bad(&e.to_string()))?),
        "k:" => {
            let Value::Object(fields) =
                serde_json::from_str(rest).map_err(|e| bad(&e.to_string()))?
            else {
                return Err(bad("a key must be a JSON object"));
            };
            let mut fields: Vec<(String, Value)> = fields.into_iter().collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            PathElement::Key(fields)
        }
        "i:" => PathElement::Index(rest.parse().map_err(|_| bad("not an index"))?),
        _ => return Ok(None),
    }))
}

fn encode_element(pe: &PathElement) -> String {
    match pe {
        PathElement::Field(name) => format!("f:{name}"),
        PathElement::Key(fields) => {
            let mut s = String::from("k:{");
            for (i, (name, value)) in fields.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                go_json(&Value::String(name.clone()), &mut s);
                s.push(':');
                go_json(value, &mut s);
            }
            s.push('}');
            s
        }
        PathElement::Value(value) => {
            let mut s = String::from("v:");
            go_json(value, &mut s);
            s
        }
        PathElement::Index(i) => format!("i:{i}"),
    }
}

/// JSON as Go's encoding/json writes it: HTML-safe string escapes and sorted object keys.
fn go_json(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => {
            let json = Value::String(s.clone()).to_string();
            for c in json.chars() {
                match c {
                    '<' => out.push_str("\\u003c"),
                    '>' => out.push_str("\\u003e"),
                    '&' => out.push_str("\\u0026"),
                    '\u{2028}' => out.push_str("\\u2028"),
                    '\u{2029}' => out.push_str("\\u2029"),
                    c => out.push(c),
                }
            }
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(&Value::String(key.clone()), out);
                out.push(':');
                go_json(&map[key], out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Compact JSON with sorted keys and HTML-safe escapes, as Go marshals a map.
pub(crate) fn to_go_json(value: &Value) -> String {
    let mut s = String::new();
    go_json(value, &mut s);
    s
}

fn merge_sorted<T, C, F>(a: &[T], b: &[T], cmp: C, both: F, keep_one_sided: bool) -> Vec<T>
where
    T: Clone,
    C: Fn(&T, &T) -> Ordering,
    F: Fn(&T, &T) -> Option<T>,
{
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match cmp(&a[i], &b[j]) {
            Ordering::Less => {
                if keep_one_sided {
                    out.push(a[i].clone());
                }
                i += 1;
            }
            Ordering::Greater => {
                if keep_one_sided {
                    out.push(b[j].clone());
                }
                j += 1;
            }
            Ordering::Equal => {
                out.extend(both(&a[i], &b[j]));
                i += 1;
                j += 1;
            }
        }
    }
    if keep_one_sided {
        out.extend_from_slice(&a[i..]);
        out.extend_from_slice(&b[j..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(name: &str) -> PathElement {
        PathElement::field(name)
    }

    fn key(name: &str, value: Value) -> PathElement {
        PathElement::Key(vec![(name.to_string(), value)])
    }

    #[test]
    fn fields_v1_roundtrip_matches_kubernetes_format() {
        let text = r#"{"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}},"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{}}}}}}}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        let set = Set::from_fields_v1(&value).unwrap();
        assert!(set.has(&[f("spec"), f("replicas")]));
        assert!(set.has(&[f("metadata"), f("labels")]));
        assert!(!set.has(&[f("metadata")]));
        let c = key("name", json!("nginx"));
        assert!(set.has(&[
            f("spec"),
            f("template"),
            f("spec"),
            f("containers"),
            c.clone()
        ]));
        assert!(set.has(&[
            f("spec"),
            f("template"),
            f("spec"),
            f("containers"),
            c,
            f("image")
        ]));
        assert_eq!(serde_json::to_string(&set.to_fields_v1()).unwrap(), text);
    }

    #[test]
    fn elements_sort_like_structured_merge_diff() {
        let mut set = Set::new();
        set.insert(&[PathElement::Value(json!("b"))]);
        set.insert(&[PathElement::Index(0)]);
        set.insert(&[key("port", json!(80))]);
        set.insert(&[f("z")]);
        set.insert(&[PathElement::Value(json!(1))]);
        set.insert(&[f("a")]);
        let keys: Vec<String> = set
            .to_fields_v1()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            keys,
            ["f:a", "f:z", "k:{\"port\":80}", "v:1", "v:\"b\"", "i:0"]
        );
    }

    #[test]
    fn key_and_value_elements_escape_like_go() {
        let pe = PathElement::Key(vec![
            ("containerPort".into(), json!(80)),
            ("protocol".into(), json!("<TCP>&")),
        ]);
        assert_eq!(
            encode_element(&pe),
            r#"k:{"containerPort":80,"protocol":"\u003cTCP\u003e\u0026"}"#
        );
        assert_eq!(decode_element(&encode_element(&pe)).unwrap().unwrap(), pe);
        assert_eq!(pe.to_string(), r#"[containerPort=80,protocol="<TCP>&"]"#);
        assert_eq!(PathElement::Value(json!("x")).to_string(), r#"[="x"]"#);
    }

    #[test]
    fn set_operations() {
        let mut a = Set::new();
        a.insert(&[f("a"), f("b")]);
        a.insert(&[f("a"), f("c")]);
        a.insert(&[f("d")]);
        let mut b = Set::new();
        b.insert(&[f("a"), f("b")]);
        b.insert(&[f("a")]);
        b.insert(&[f("e")]);
        let d = a.difference(&b);
        assert!(d.has(&[f("a"), f("c")]) && d.has(&[f("d")]) && !d.has(&[f("a"), f("b")]));
        // A member does not remove children in a plain difference, but does recursively.
        let mut parent = Set::new();
        parent.insert(&[f("a")]);
        assert!(a.difference(&parent).has(&[f("a"), f("c")]));
        assert!(!a.recursive_difference(&parent).has(&[f("a"), f("c")]));
        let u = a.union(&b);
        assert_eq!(u.paths().len(), 5);
        let i = a.intersection(&b);
        assert_eq!(i.paths(), vec![vec![f("a"), f("b")]]);
        assert!(a.difference(&a).is_empty());
    }

    #[test]
    fn bad_fields_v1_is_an_error_and_unknown_prefixes_are_skipped() {
        assert!(Set::from_fields_v1(&json!({"x": {}})).is_err());
        assert!(Set::from_fields_v1(&json!({"k:{": {}})).is_err());
        assert!(Set::from_fields_v1(&json!([])).is_err());
        let s = Set::from_fields_v1(&json!({"z:foo": {}, "f:a": {}})).unwrap();
        assert_eq!(s.paths(), vec![vec![f("a")]]);
    }

    #[test]
    fn values_order_numbers_then_strings() {
        assert_eq!(compare_values(&json!(1), &json!(1.5)), Ordering::Less);
        assert_eq!(compare_values(&json!(2.0), &json!(2)), Ordering::Equal);
        assert_eq!(compare_values(&json!(9), &json!("a")), Ordering::Less);
        assert_eq!(compare_values(&json!(null), &json!({})), Ordering::Greater);
        assert!(values_equal(
            &json!({"a": [1, 2.0]}),
            &json!({"a": [1.0, 2]})
        ));
    }
}
