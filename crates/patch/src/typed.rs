//! Schema-aware walks over JSON objects, as structured-merge-diff's `typed` package does
//! them: the field set of an object, the comparison of two objects (added, modified and
//! removed paths), the merge of an applied configuration into a live object, and the
//! removal of paths.
//!
//! The walks are strict for applied configurations (a value that does not fit its schema,
//! an unknown field, a list-map item without its keys or a duplicate item is an error) and
//! lenient for stored objects (anything odd is treated as an atomic leaf).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::fieldpath::{PathDisplay, PathElement, Set, values_equal};
use crate::schema::{
    Arena, DEDUCED, FieldRef, ListKind, ListNode, Node, NodeId, ObjectNode, Scalar, UNTYPED_ATOMIC,
};

/// How a value is handled at a node.
enum Shape<'a> {
    /// A leaf: a scalar, or a value that does not fit its schema (lenient walks).
    Leaf,
    /// `null`: a leaf, or an empty list/map next to a list/map.
    Null,
    List(&'a ListNode),
    Object(&'a ObjectNode),
}

/// Added, modified and removed paths between two objects.
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub added: Set,
    pub modified: Set,
    pub removed: Set,
}

impl Comparison {
    /// Drops `ignored` (and everything below) from the three sets.
    pub(crate) fn exclude(&mut self, ignored: &Set) {
        if ignored.is_empty() {
            return;
        }
        self.added = self.added.recursive_difference(ignored);
        self.modified = self.modified.recursive_difference(ignored);
        self.removed = self.removed.recursive_difference(ignored);
    }
}

pub(crate) struct Walker<'a> {
    arena: &'a Arena,
    strict: bool,
    path: Vec<PathElement>,
}

static NULL: Value = Value::Null;

impl<'a> Walker<'a> {
    pub(crate) fn new(arena: &'a Arena, strict: bool) -> Self {
        Walker {
            arena,
            strict,
            path: Vec::new(),
        }
    }

    fn error(&self, message: impl Into<String>) -> Error {
        Error::bad_config(PathDisplay(&self.path), message)
    }

    /// How `value` is handled at `node`; in strict walks a mismatch is an error.
    fn shape(&self, node: NodeId, value: &Value) -> Result<Shape<'a>> {
        let arena = self.arena;
        let mismatch = |expected: &str| -> Result<Shape<'a>> {
            if self.strict {
                Err(self.error(format!("expected {expected}, got {}", type_name(value))))
            } else {
                Ok(Shape::Leaf)
            }
        };
        match (arena.node(node), value) {
            (_, Value::Null) => Ok(Shape::Null),
            (Node::Scalar(kind), v) => match (kind, v) {
                (_, Value::Array(_) | Value::Object(_)) => mismatch("a scalar"),
                (Scalar::String, Value::String(_))
                | (Scalar::Numeric, Value::Number(_))
                | (Scalar::Boolean, Value::Bool(_))
                | (Scalar::Untyped, _) => Ok(Shape::Leaf),
                (Scalar::String, _) => mismatch("string"),
                (Scalar::Numeric, _) => mismatch("numeric (int or float)"),
                (Scalar::Boolean, _) => mismatch("boolean"),
            },
            (Node::List(list), Value::Array(_)) => Ok(Shape::List(list)),
            (Node::List(_), _) => mismatch("a list"),
            (Node::Object(object), Value::Object(_)) => Ok(Shape::Object(object)),
            (Node::Object(_), _) => mismatch("a map"),
            (Node::Any { list, .. }, Value::Array(_)) => Ok(Shape::List(list)),
            (Node::Any { object, .. }, Value::Object(_)) => Ok(Shape::Object(object)),
            (Node::Any { .. }, _) => Ok(Shape::Leaf),
        }
    }

    /// The type of key `name` in an object, or an error (strict) / untyped (lenient) for a
    /// field the schema does not declare.
    fn field_type(&self, object: &ObjectNode, name: &str) -> Result<(NodeId, bool)> {
        if let Some(field) = object.fields.get(name) {
            return Ok((field.node, true));
        }
        match object.rest {
            Some(rest) => Ok((rest, false)),
            None if self.strict => Err(Error::bad_config(
                format!("{}.{name}", PathDisplay(&self.path)),
                "field not declared in schema",
            )),
            None => Ok((DEDUCED, false)),
        }
    }

    /// The path element of a list-map or set item.
    fn item_element(&self, list: &ListNode, item: &Value, index: usize) -> Result<PathElement> {
        let fallback = |message: String| -> Result<PathElement> {
            if self.strict {
                Err(self.error(format!("element {index}: {message}")))
            } else {
                Ok(PathElement::Index(index as i64))
            }
        };
        match &list.kind {
            ListKind::Atomic => fallback("invalid indexing of non-associative list".into()),
            ListKind::Set => match item {
                Value::Object(_) => fallback(
                    "associative list without keys has an element that's a map type".into(),
                ),
                Value::Array(_) => {
                    fallback("not supported: associative list with lists as elements".into())
                }
                Value::Null => fallback(
                    "associative list without keys has an element that's an explicit null".into(),
                ),
                v => Ok(PathElement::Value(v.clone())),
            },
            ListKind::Map(keys) => {
                let Value::Object(map) = item else {
                    return fallback(if item.is_null() {
                        "associative list with keys may not have a null element".into()
                    } else {
                        "associative list with keys may not have non-map elements".into()
                    });
                };
                let item_object = self.arena.object(list.items);
                let mut fields: Vec<(String, Value)> = Vec::with_capacity(keys.len());
                for key in keys.iter() {
                    if let Some(v) = map.get(&**key) {
                        fields.push((key.to_string(), v.clone()));
                    } else if let Some(default) = item_object
                        .and_then(|o| o.fields.get(&**key))
                        .and_then(|f| f.default.as_ref())
                    {
                        fields.push((key.to_string(), default.clone()));
                    }
                }
                if fields.is_empty() {
                    let names: Vec<&str> = keys.iter().map(|k| &**k).collect();
                    return fallback(format!(
                        "associative list with keys has an element that omits all key fields {names:?} (and doesn't have default values for any key fields)"
                    ));
                }
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(PathElement::Key(fields))
            }
        }
    }

    // ----- field sets -----

    /// Every leaf field, list item and map entry of `value` (structured-merge-diff's
    /// `ToFieldSet`).
    pub(crate) fn field_set(&mut self, value: &Value, node: NodeId) -> Result<Set> {
        let mut set = Set::new();
        self.path.clear();
        self.collect_set(value, node, &mut set)?;
        Ok(set)
    }

    fn collect_set(&mut self, value: &Value, node: NodeId, set: &mut Set) -> Result<()> {
        match self.shape(node, value)? {
            Shape::Leaf | Shape::Null => {
                set.insert(&self.path);
            }
            Shape::List(list) => {
                if list.kind == ListKind::Atomic {
                    set.insert(&self.path);
                    return Ok(());
                }
                let Value::Array(items) = value else {
                    return Ok(());
                };
                let mut elements = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    elements.push(self.item_element(list, item, i)?);
                }
                let mut sorted: Vec<&PathElement> = elements.iter().collect();
                sorted.sort();
                let duplicated = |pe: &PathElement| {
                    let first = sorted.partition_point(|x| *x < pe);
                    sorted.get(first + 1).is_some_and(|next| *next == pe)
                };
                for (item, pe) in items.iter().zip(elements.iter()) {
                    self.path.push(pe.clone());
                    if duplicated(pe) {
                        if self.strict {
                            let err = self.error("duplicate entries for key");
                            self.path.pop();
                            return Err(err);
                        }
                        set.insert(&self.path);
                    } else {
                        let r = self.collect_set(item, list.items, set);
                        set.insert(&self.path);
                        if let Err(e) = r {
                            self.path.pop();
                            return Err(e);
                        }
                    }
                    self.path.pop();
                }
            }
            Shape::Object(object) => {
                if object.atomic {
                    set.insert(&self.path);
                    return Ok(());
                }
                let Value::Object(map) = value else {
                    return Ok(());
                };
                for (key, child) in map {
                    let (child_node, declared) = self.field_type(object, key)?;
                    self.path.push(PathElement::field(key));
                    let r = self.collect_set(child, child_node, set);
                    let empty_map = child.as_object().is_some_and(Map::is_empty);
                    if child.is_null() || empty_map || !declared {
                        set.insert(&self.path);
                    }
                    self.path.pop();
                    r?;
                }
            }
        }
        Ok(())
    }

    // ----- comparison -----

    /// Compares `lhs` (before) with `rhs` (after) (structured-merge-diff's `Compare`).
    pub(crate) fn compare(&mut self, lhs: &Value, rhs: &Value, node: NodeId) -> Comparison {
        let mut c = Comparison::default();
        self.path.clear();
        self.cmp(Some(lhs), Some(rhs), node, &mut c);
        c
    }

    fn cmp(&mut self, lhs: Option<&Value>, rhs: Option<&Value>, node: NodeId, c: &mut Comparison) {
        let l = lhs.map(|v| self.shape(node, v).unwrap_or(Shape::Leaf));
        let r = rhs.map(|v| self.shape(node, v).unwrap_or(Shape::Leaf));
        let structured = structured(l.as_ref(), r.as_ref());
        let leaf = match structured {
            None => true,
            Some(Structured::List(list)) => {
                list.kind == ListKind::Atomic || (is_empty(lhs) && is_empty(rhs))
            }
            Some(Structured::Object(object)) => object.atomic || (is_empty(lhs) && is_empty(rhs)),
        };
        if leaf {
            match (lhs, rhs) {
                (None, Some(_)) => c.added.insert(&self.path),
                (Some(_), None) => c.removed.insert(&self.path),
                (Some(a), Some(b)) if !values_equal(a, b) => c.modified.insert(&self.path),
                _ => {}
            }
            return;
        }
        match structured {
            Some(Structured::List(list)) => self.cmp_list(lhs, rhs, list, c),
            Some(Structured::Object(object)) => {
                let empty = Map::new();
                let lm = lhs.and_then(Value::as_object).unwrap_or(&empty);
                let rm = rhs.and_then(Value::as_object).unwrap_or(&empty);
                for (key, lv) in lm {
                    let child = self.field_type(object, key).map_or(DEDUCED, |(n, _)| n);
                    self.path.push(PathElement::field(key));
                    self.cmp(Some(lv), rm.get(key), child, c);
                    self.path.pop();
                }
                for (key, rv) in rm {
                    if lm.contains_key(key) {
                        continue;
                    }
                    let child = self.field_type(object, key).map_or(DEDUCED, |(n, _)| n);
                    self.path.push(PathElement::field(key));
                    self.cmp(None, Some(rv), child, c);
                    self.path.pop();
                }
            }
            None => {}
        }
        match (lhs, rhs) {
            (None, Some(_)) => c.added.insert(&self.path),
            (Some(_), None) => c.removed.insert(&self.path),
            _ => {}
        }
    }

    fn cmp_list(
        &mut self,
        lhs: Option<&Value>,
        rhs: Option<&Value>,
        list: &ListNode,
        c: &mut Comparison,
    ) {
        // Items grouped by element, in first-seen order (lhs first).
        let mut order: Vec<PathElement> = Vec::new();
        let mut groups: Vec<(Vec<&Value>, Vec<&Value>)> = Vec::new();
        let mut seen: BTreeMap<PathElement, usize> = BTreeMap::new();
        let mut index = |pe: PathElement, order: &mut Vec<PathElement>| -> usize {
            *seen.entry(pe.clone()).or_insert_with(|| {
                order.push(pe);
                order.len() - 1
            })
        };
        for (side, value) in [(0, lhs), (1, rhs)] {
            let Some(Value::Array(items)) = value else {
                continue;
            };
            for (i, item) in items.iter().enumerate() {
                let Ok(pe) = self.item_element(list, item, i) else {
                    continue;
                };
                let g = index(pe, &mut order);
                if g == groups.len() {
                    groups.push((Vec::new(), Vec::new()));
                }
                if side == 0 {
                    groups[g].0.push(item);
                } else {
                    groups[g].1.push(item);
                }
            }
        }
        for (pe, (l, r)) in order.into_iter().zip(groups) {
            self.path.push(pe);
            match (l.len(), r.len()) {
                (0..=1, 0..=1) => self.cmp(l.first().copied(), r.first().copied(), list.items, c),
                (2.., 2..) => {
                    let same =
                        l.len() == r.len() && l.iter().zip(&r).all(|(a, b)| values_equal(a, b));
                    if !same {
                        c.modified.insert(&self.path);
                    }
                }
                (2.., _) => {
                    if let Some(r0) = r.first() {
                        self.cmp(None, Some(r0), list.items, c);
                    }
                    c.removed.insert(&self.path);
                }
                (_, _) => {
                    if let Some(l0) = l.first() {
                        self.cmp(Some(l0), None, list.items, c);
                    }
                    c.added.insert(&self.path);
                }
            }
            self.path.pop();
        }
    }

    // ----- merge -----

    /// Merges `rhs` (an applied configuration) into `lhs` (the live object): what `rhs`
    /// sets wins, nothing is removed (structured-merge-diff's `Merge`).
    pub(crate) fn merge(&mut self, lhs: &Value, rhs: &Value, node: NodeId) -> Result<Value> {
        self.path.clear();
        Ok(self
            .mrg(Some(lhs), Some(rhs), node)?
            .unwrap_or_else(|| Value::Object(Map::new())))
    }

    fn mrg(
        &mut self,
        lhs: Option<&Value>,
        rhs: Option<&Value>,
        node: NodeId,
    ) -> Result<Option<Value>> {
        let l = match lhs {
            Some(v) => Some(Walker::new(self.arena, false).shape(node, v)?),
            None => None,
        };
        let r = match rhs {
            Some(v) => Some(self.shape(node, v)?),
            None => None,
        };
        let keep_rhs = || rhs.or(lhs).cloned();
        match structured(l.as_ref(), r.as_ref()) {
            Some(Structured::List(list)) => {
                if list.kind == ListKind::Atomic || (is_empty(lhs) && is_empty(rhs)) {
                    return Ok(keep_rhs());
                }
                self.mrg_list(lhs, rhs, list)
            }
            Some(Structured::Object(object)) => {
                if object.atomic || (is_empty(lhs) && is_empty(rhs)) {
                    return Ok(keep_rhs());
                }
                let empty = Map::new();
                let lm = lhs.and_then(Value::as_object).unwrap_or(&empty);
                let rm = rhs.and_then(Value::as_object).unwrap_or(&empty);
                let mut out = Map::with_capacity(lm.len().max(rm.len()));
                for (key, lv) in lm {
                    let (child, _) = match rm.get(key) {
                        Some(_) => self.field_type(object, key)?,
                        None => Walker::new(self.arena, false).field_type(object, key)?,
                    };
                    self.path.push(PathElement::field(key));
                    let merged = self.mrg(Some(lv), rm.get(key), child);
                    self.path.pop();
                    if let Some(v) = merged? {
                        out.insert(key.clone(), v);
                    }
                }
                for (key, rv) in rm {
                    if lm.contains_key(key) {
                        continue;
                    }
                    let (child, _) = self.field_type(object, key)?;
                    self.path.push(PathElement::field(key));
                    let merged = self.mrg(None, Some(rv), child);
                    self.path.pop();
                    if let Some(v) = merged? {
                        out.insert(key.clone(), v);
                    }
                }
                Ok((!out.is_empty()).then_some(Value::Object(out)))
            }
            None => Ok(keep_rhs()),
        }
    }

    /// structured-merge-diff's `visitListItems` of the merging walker: keeps the live order
    /// where it can, puts the applied items in their applied order.
    fn mrg_list(
        &mut self,
        lhs: Option<&Value>,
        rhs: Option<&Value>,
        list: &ListNode,
    ) -> Result<Option<Value>> {
        let empty = Vec::new();
        let l_items = lhs.and_then(Value::as_array).unwrap_or(&empty);
        let r_items = rhs.and_then(Value::as_array).unwrap_or(&empty);

        let mut r_pes = Vec::with_capacity(r_items.len());
        let mut r_index: BTreeMap<PathElement, usize> = BTreeMap::new();
        for (i, item) in r_items.iter().enumerate() {
            let pe = self.item_element(list, item, i)?;
            if r_index.insert(pe.clone(), i).is_some() {
                self.path.push(pe);
                let err = self.error("duplicate entries for key");
                self.path.pop();
                return Err(err);
            }
            r_pes.push(pe);
        }
        let lenient = Walker::new(self.arena, false);
        let mut l_pes = Vec::with_capacity(l_items.len());
        // observed lhs: the item, or null when the element is duplicated.
        let mut l_observed: Vec<(PathElement, &Value)> = Vec::new();
        for (i, item) in l_items.iter().enumerate() {
            let pe = lenient.item_element(list, item, i)?;
            match l_observed.iter_mut().find(|(p, _)| *p == pe) {
                Some(entry) => entry.1 = &NULL,
                None => l_observed.push((pe.clone(), item)),
            }
            l_pes.push(pe);
        }
        let observed_l =
            |pe: &PathElement| l_observed.iter().find(|(p, _)| p == pe).map(|(_, v)| *v);
        let observed_r = |pe: &PathElement| r_pes.iter().position(|p| p == pe).map(|i| &r_items[i]);

        let mut shared: std::collections::VecDeque<&PathElement> =
            r_pes.iter().filter(|pe| observed_l(pe).is_some()).collect();
        let mut next_shared = shared.pop_front();
        let mut merged_rhs: BTreeSet<&PathElement> = BTreeSet::new();
        let mut out = Vec::with_capacity(l_items.len().max(r_items.len()));
        let (mut li, mut ri) = (0, 0);
        while li < l_pes.len() || ri < r_pes.len() {
            if li < l_pes.len() && ri < r_pes.len() {
                let pe = &l_pes[li];
                if *pe == r_pes[ri] {
                    merged_rhs.insert(&r_pes[ri]);
                    let item = self.mrg_item(pe, observed_l(pe), observed_r(pe), list.items)?;
                    out.extend(item);
                    li += 1;
                    ri += 1;
                    next_shared = shared.pop_front();
                    continue;
                }
                if observed_r(pe).is_some() && next_shared.is_some_and(|n| n != pe) {
                    li += 1;
                    continue;
                }
            }
            if li < l_pes.len() {
                let pe = &l_pes[li];
                if observed_r(pe).is_none() {
                    let item = self.mrg_item(pe, Some(&l_items[li]), None, list.items)?;
                    out.extend(item);
                    li += 1;
                    continue;
                } else if merged_rhs.contains(pe) {
                    li += 1;
                }
            }
            if ri < r_pes.len() {
                let pe = &r_pes[ri];
                merged_rhs.insert(pe);
                let item = self.mrg_item(pe, observed_l(pe), observed_r(pe), list.items)?;
                out.extend(item);
                ri += 1;
                if next_shared.is_some_and(|n| n == pe) {
                    next_shared = shared.pop_front();
                }
            }
        }
        Ok((!out.is_empty()).then_some(Value::Array(out)))
    }

    fn mrg_item(
        &mut self,
        pe: &PathElement,
        l: Option<&Value>,
        r: Option<&Value>,
        node: NodeId,
    ) -> Result<Option<Value>> {
        self.path.push(pe.clone());
        let merged = self.mrg(l, r, node);
        self.path.pop();
        merged
    }

    // ----- removal -----

    /// `value` without the paths in `remove` (structured-merge-diff's `RemoveItems`): a
    /// removed path takes its subtree with it.
    pub(crate) fn remove(&self, value: &Value, remove: &Set, node: NodeId) -> Value {
        if remove.is_empty() {
            return value.clone();
        }
        self.rm(value, remove, node)
            .unwrap_or_else(|| Value::Object(Map::new()))
    }

    fn rm(&self, value: &Value, remove: &Set, node: NodeId) -> Option<Value> {
        match self.shape(node, value).unwrap_or(Shape::Leaf) {
            Shape::Leaf | Shape::Null => Some(value.clone()),
            Shape::List(list) => {
                let Value::Array(items) = value else {
                    return None;
                };
                if items.is_empty() || list.kind == ListKind::Atomic {
                    return None;
                }
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let pe = self
                        .item_element(list, item, i)
                        .unwrap_or(PathElement::Index(i as i64));
                    if remove.is_member(&pe) {
                        continue;
                    }
                    match remove.child(&pe) {
                        Some(sub) if !sub.is_empty() => {
                            out.push(self.rm(item, sub, list.items).unwrap_or(Value::Null))
                        }
                        _ => out.push(item.clone()),
                    }
                }
                (!out.is_empty()).then_some(Value::Array(out))
            }
            Shape::Object(object) => {
                let Value::Object(map) = value else {
                    return None;
                };
                if map.is_empty() || object.atomic {
                    return None;
                }
                let mut out = Map::with_capacity(map.len());
                for (key, child) in map {
                    let pe = PathElement::field(key);
                    if remove.is_member(&pe) {
                        continue;
                    }
                    match remove.child(&pe) {
                        Some(sub) if !sub.is_empty() => {
                            let child_node =
                                self.field_type(object, key).map_or(DEDUCED, |(n, _)| n);
                            out.insert(
                                key.clone(),
                                self.rm(child, sub, child_node).unwrap_or(Value::Null),
                            );
                        }
                        _ => {
                            out.insert(key.clone(), child.clone());
                        }
                    }
                }
                (!out.is_empty()).then_some(Value::Object(out))
            }
        }
    }

    /// `set` plus, as members, every declared struct field it has paths below
    /// (structured-merge-diff's `EnsureNamedFieldsAreMembers`).
    pub(crate) fn ensure_named_fields_are_members(&self, set: &Set, node: Option<NodeId>) -> Set {
        let object = node.and_then(|n| self.arena.object(n));
        let list = node.and_then(|n| self.arena.list(n));
        let mut out = Set::new();
        for pe in set.members() {
            out.add_member(pe.clone());
        }
        for (pe, child) in set.children() {
            let child_node = match pe {
                PathElement::Field(name) => {
                    object.and_then(|o| match o.fields.get(name.as_str()) {
                        Some(field) => {
                            out.add_member(pe.clone());
                            Some(field.node)
                        }
                        None => o.rest,
                    })
                }
                PathElement::Key(_) => list.map(|l| l.items),
                _ => None,
            };
            out.set_child(
                pe.clone(),
                self.ensure_named_fields_are_members(child, child_node),
            );
        }
        out
    }

    /// Removes object entries whose value is `null` wherever the schema types the entry
    /// (a typed decode drops them); untyped content is left alone.
    pub(crate) fn drop_nulls(&self, value: &mut Value, node: NodeId) {
        match (self.arena.node(node), value) {
            (Node::Object(object), Value::Object(map)) => {
                let typed_rest = object
                    .rest
                    .is_some_and(|r| !matches!(r, DEDUCED | UNTYPED_ATOMIC));
                map.retain(|key, v| {
                    !(v.is_null() && (object.fields.contains_key(key.as_str()) || typed_rest))
                });
                for (key, v) in map.iter_mut() {
                    match self.arena.field(node, key) {
                        Some(FieldRef::Declared(f)) => self.drop_nulls(v, f.node),
                        Some(FieldRef::Rest(id)) => self.drop_nulls(v, id),
                        None => {}
                    }
                }
            }
            (Node::List(list), Value::Array(items)) => {
                for item in items {
                    self.drop_nulls(item, list.items);
                }
            }
            _ => {}
        }
    }
}

enum Structured<'a> {
    List(&'a ListNode),
    Object(&'a ObjectNode),
}

/// Whether a pair of values is walked as a list or an object: when one side is one and the
/// other absent, `null` or the same (structured-merge-diff treats `null` as empty there).
fn structured<'a>(l: Option<&Shape<'a>>, r: Option<&Shape<'a>>) -> Option<Structured<'a>> {
    match (l, r) {
        (Some(Shape::List(a)), Some(Shape::List(_) | Shape::Null) | None)
        | (Some(Shape::Null) | None, Some(Shape::List(a))) => Some(Structured::List(a)),
        (Some(Shape::Object(a)), Some(Shape::Object(_) | Shape::Null) | None)
        | (Some(Shape::Null) | None, Some(Shape::Object(a))) => Some(Structured::Object(a)),
        _ => None,
    }
}

/// Absent, null, or an empty list/map.
fn is_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(m)) => m.is_empty(),
        Some(_) => false,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{SchemaRef, from_crd_openapi};
    use serde_json::json;

    fn schema() -> SchemaRef {
        from_crd_openapi(&json!({"type": "object", "properties": {
            "n": {"type": "number"}, "s": {"type": "string"}, "b": {"type": "boolean"},
            "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "atomicList": {"type": "array", "items": {"type": "string"}},
            "list": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k", "id"],
                "items": {"type": "object", "properties": {
                    "k": {"type": "string"}, "id": {"type": "number", "default": 0}, "v": {"type": "string"},
                    "m": {"type": "object", "additionalProperties": {"type": "string"}}}}},
            "map": {"type": "object", "additionalProperties": {"type": "string"}},
            "atomicMap": {"type": "object", "x-kubernetes-map-type": "atomic", "properties": {"x": {"type": "string"}}},
            "struct": {"type": "object", "properties": {"inner": {"type": "object", "properties": {"leaf": {"type": "string"}}}}},
            "free": {"x-kubernetes-preserve-unknown-fields": true}
        }}))
        .unwrap()
    }

    fn merge(l: Value, r: Value) -> Value {
        let s = schema();
        Walker::new(&s.arena, false).merge(&l, &r, s.root).unwrap()
    }

    fn paths(set: &Set) -> Vec<String> {
        set.paths()
            .iter()
            .map(|p| PathDisplay(p).to_string())
            .collect()
    }

    #[test]
    fn set_merge_keeps_live_order_and_interleaves_new_items() {
        let cases = [
            (json!(["p", "q", "r"]), json!(["q"]), json!(["p", "q", "r"])),
            (json!(["p", "q"]), json!(["q", "p"]), json!(["q", "p"])),
            (
                json!(["p", "q", "r"]),
                json!(["s", "t"]),
                json!(["p", "q", "r", "s", "t"]),
            ),
            (
                json!(["p", "q", "r", "w", "v"]),
                json!(["r", "s", "t", "v"]),
                json!(["p", "q", "r", "w", "s", "t", "v"]),
            ),
            (
                json!(["r", "s", "t", "u"]),
                json!(["p", "r", "t"]),
                json!(["p", "r", "s", "t", "u"]),
            ),
            (
                json!(["p", "q", "r", "s"]),
                json!(["s", "t", "u", "p"]),
                json!(["q", "r", "s", "t", "u", "p"]),
            ),
            // Duplicates in the live list survive unless the applied list names them.
            (
                json!(["p", "q", "q"]),
                json!(["r"]),
                json!(["p", "q", "q", "r"]),
            ),
            (json!(["p", "q", "q"]), json!(["q"]), json!(["p", "q"])),
            (json!(["p", "q"]), json!([]), json!(["p", "q"])),
        ];
        for (l, r, want) in cases {
            assert_eq!(
                merge(json!({"set": l.clone()}), json!({"set": r.clone()})),
                json!({"set": want}),
                "{l} + {r}"
            );
        }
    }

    #[test]
    fn list_map_merge_by_keys_with_defaults() {
        assert_eq!(
            merge(
                json!({"list": [{"k": "a", "id": 1, "v": "x", "m": {"p": "1"}}, {"k": "b", "id": 1}]}),
                json!({"list": [{"k": "c", "id": 1}, {"k": "a", "id": 1, "m": {"q": "2"}}]})
            ),
            json!({"list": [{"k": "c", "id": 1}, {"k": "a", "id": 1, "v": "x", "m": {"p": "1", "q": "2"}}, {"k": "b", "id": 1}]})
        );
        // `id` defaults to 0, so {"k": "a"} and {"k": "a", "id": 0} are the same item.
        assert_eq!(
            merge(
                json!({"list": [{"k": "a", "id": 0, "v": "x"}]}),
                json!({"list": [{"k": "a", "v": "y"}]})
            ),
            json!({"list": [{"k": "a", "id": 0, "v": "y"}]})
        );
    }

    #[test]
    fn atomic_values_are_replaced_and_maps_merge() {
        assert_eq!(
            merge(
                json!({"atomicList": ["a", "b"], "atomicMap": {"x": "1"}, "map": {"a": "1"}, "free": {"u": {"v": 1}, "w": [1]}}),
                json!({"atomicList": ["c"], "atomicMap": {}, "map": {"b": "2"}, "free": {"u": {"z": 2}, "w": [2]}})
            ),
            json!({"atomicList": ["c"], "atomicMap": {}, "map": {"a": "1", "b": "2"}, "free": {"u": {"v": 1, "z": 2}, "w": [2]}})
        );
    }

    #[test]
    fn strict_walks_reject_what_does_not_fit() {
        let s = schema();
        let mut strict = Walker::new(&s.arena, true);
        for (bad, needle) in [
            (json!({"n": "1"}), "expected numeric"),
            (json!({"b": 1}), "expected boolean"),
            (json!({"s": []}), "expected a scalar"),
            (
                json!({"struct": {"other": 1}}),
                ".struct.other: field not declared in schema",
            ),
            (
                json!({"set": [{"a": 1}]}),
                "element 0: associative list without keys has an element that's a map type",
            ),
            (json!({"set": ["a", "a"]}), "duplicate entries"),
            (json!({"list": [null]}), "may not have a null element"),
            (json!({"list": ["x"]}), "non-map elements"),
        ] {
            let e = strict.field_set(&bad, s.root).unwrap_err();
            assert!(e.to_string().contains(needle), "{e} lacks {needle}");
        }
        // Lenient walks take odd values as leaves.
        let set = Walker::new(&s.arena, false)
            .field_set(&json!({"n": "1", "struct": 5}), s.root)
            .unwrap();
        assert_eq!(paths(&set), [".n", ".struct"]);
    }

    #[test]
    fn field_sets_hold_leaves_items_and_map_entries() {
        let s = schema();
        let set = Walker::new(&s.arena, true)
            .field_set(
                &json!({"s": "x", "struct": {"inner": {}}, "map": {"a": "1"}, "set": ["p"], "atomicList": [],
                    "list": [{"k": "a", "id": 1, "m": {}}], "atomicMap": {"x": "1"}, "free": {"u": {"v": 1}}}),
                s.root,
            )
            .unwrap();
        assert_eq!(
            serde_json::to_string(&set.to_fields_v1()).unwrap(),
            r#"{"f:atomicList":{},"f:atomicMap":{},"f:free":{"f:u":{".":{},"f:v":{}}},"f:list":{"k:{\"id\":1,\"k\":\"a\"}":{".":{},"f:id":{},"f:k":{},"f:m":{}}},"f:map":{"f:a":{}},"f:s":{},"f:set":{"v:\"p\"":{}},"f:struct":{"f:inner":{}}}"#
        );
    }

    #[test]
    fn compare_reports_added_modified_removed() {
        let s = schema();
        let mut w = Walker::new(&s.arena, false);
        let c = w.compare(
            &json!({"s": "x", "n": 1, "map": {"a": "1", "b": "2"}, "list": [{"k": "a", "id": 1, "v": "x"}], "set": ["p"]}),
            &json!({"s": "y", "n": 1.0, "map": {"a": "1", "c": "3"}, "list": [{"k": "a", "id": 1, "v": "x"}, {"k": "b", "id": 1}], "struct": {"inner": {"leaf": "l"}}}),
            s.root,
        );
        assert_eq!(paths(&c.modified), [".s"]);
        assert_eq!(paths(&c.removed), [".set", ".map.b", ".set[=\"p\"]"]);
        assert_eq!(
            paths(&c.added),
            [
                ".struct",
                ".list[id=1,k=\"b\"]",
                ".list[id=1,k=\"b\"].id",
                ".list[id=1,k=\"b\"].k",
                ".map.c",
                ".struct.inner",
                ".struct.inner.leaf"
            ]
        );
        // null next to a list is an empty list: items are added, the list itself is not.
        let c = w.compare(&json!({"set": null}), &json!({"set": ["p"]}), s.root);
        assert_eq!(paths(&c.added), [".set[=\"p\"]"]);
        assert!(c.modified.is_empty());
        // Duplicated items compare as a whole.
        let c = w.compare(&json!({"set": ["p", "p"]}), &json!({"set": ["p"]}), s.root);
        assert_eq!(paths(&c.removed), [".set[=\"p\"]"]);
    }

    #[test]
    fn remove_takes_subtrees_and_named_fields_become_members() {
        let s = schema();
        let w = Walker::new(&s.arena, false);
        let mut remove = Set::new();
        remove.insert(&[PathElement::field("map"), PathElement::field("a")]);
        remove.insert(&[
            PathElement::field("list"),
            PathElement::Key(vec![("id".into(), json!(1)), ("k".into(), json!("a"))]),
        ]);
        remove.insert(&[PathElement::field("struct")]);
        let out = w.remove(
            &json!({"map": {"a": "1", "b": "2"}, "list": [{"k": "a", "id": 1}, {"k": "b", "id": 1}], "struct": {"inner": {}}, "s": "x"}),
            &remove,
            s.root,
        );
        assert_eq!(
            out,
            json!({"map": {"b": "2"}, "list": [{"k": "b", "id": 1}], "s": "x"})
        );
        let mut set = Set::new();
        set.insert(&[
            PathElement::field("struct"),
            PathElement::field("inner"),
            PathElement::field("leaf"),
        ]);
        set.insert(&[PathElement::field("map"), PathElement::field("a")]);
        let named = w.ensure_named_fields_are_members(&set, Some(s.root));
        assert_eq!(
            paths(&named),
            [
                ".map",
                ".struct",
                ".map.a",
                ".struct.inner",
                ".struct.inner.leaf"
            ]
        );
    }

    #[test]
    fn drop_nulls_only_where_typed() {
        let s = schema();
        let mut v = json!({"s": null, "map": {"a": null}, "free": {"x": null}, "list": [{"k": "a", "v": null}]});
        Walker::new(&s.arena, false).drop_nulls(&mut v, s.root);
        assert_eq!(
            v,
            json!({"map": {}, "free": {"x": null}, "list": [{"k": "a"}]})
        );
    }
}
