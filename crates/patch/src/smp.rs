//! Strategic merge patch (`application/strategic-merge-patch+json`), applied server-side the
//! way apimachinery's `strategicpatch.StrategicMergeMapPatch` does (`mergeMap` with
//! `MergeParallelList` and `IgnoreUnmatchedNulls`):
//!
//! * maps merge recursively, `null` deletes a key; a field with `patchStrategy: replace` is
//!   replaced wholesale;
//! * lists with `patchStrategy: merge` merge by their merge key (lists of objects) or as sets
//!   (primitives); other lists are replaced;
//! * directives: `$patch: replace|delete` in maps, `$patch: replace|delete` in list items
//!   (`merge` is rejected there, as Kubernetes does), `$retainKeys`,
//!   `$setElementOrder/<list>` (with the same ordering rules: the directive's order, then the
//!   patch's, then the live list's), `$deleteFromPrimitiveList/<list>`.
//!
//! Departures, all on inputs Kubernetes answers with a 500 or a later decode error: a `null`
//! element in a merging list and keys starting with `$` that are neither directives nor
//! declared fields are reported as bad patches; values of maps (`additionalProperties`) are
//! merged with their value schema instead of failing the lookup.

use std::fmt;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::schema::{Arena, DEDUCED, FieldRef, Node, NodeId, SchemaRef, Strategy};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Applies a strategic merge patch to `original` (an object) under `schema`, returning the
/// patched object. `original` is left untouched; see [`strategic_merge_owned`] to avoid the
/// copy.
pub fn strategic_merge(original: &Value, patch: &Value, schema: &SchemaRef) -> Result<Value> {
    strategic_merge_owned(original.clone(), patch, schema)
}

/// [`strategic_merge`] consuming `original`, which saves a deep copy. On error the original
/// is lost to the caller, who still has the stored bytes.
pub fn strategic_merge_owned(original: Value, patch: &Value, schema: &SchemaRef) -> Result<Value> {
    let Value::Object(patch) = patch else {
        return Err(Error::bad_patch(
            "",
            format!(
                "a strategic merge patch must be a JSON object, got {}",
                kind_name(patch)
            ),
        ));
    };
    let Value::Object(original) = original else {
        return Err(Error::patch_failed(
            "",
            "the patched document is not a JSON object",
        ));
    };
    let mut engine = Engine {
        arena: &schema.arena,
        path: Vec::new(),
    };
    Ok(Value::Object(engine.merge_map(
        original,
        patch,
        schema.root,
    )?))
}

/// One step of the path to the value being merged, for error messages.
#[derive(Clone, Copy)]
enum Seg<'p> {
    Field(&'p str),
    Item(&'p str, &'p Value),
}

struct PathDisplay<'a, 'p>(&'a [Seg<'p>]);

impl fmt::Display for PathDisplay<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for seg in self.0 {
            match seg {
                Seg::Field(name) => write!(f, ".{name}")?,
                Seg::Item(key, value) => write!(f, "[{key}={value}]")?,
            }
        }
        Ok(())
    }
}

/// What a list's elements are, as apimachinery's `sliceElementType` classifies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElemKind {
    Object,
    String,
    Int,
    Float,
    Bool,
}

/// The patch metadata of one field.
struct Meta<'a> {
    node: NodeId,
    strategy: &'a Strategy,
    merge_key: Option<&'a str>,
}

static DEFAULT_STRATEGY: Strategy = Strategy::Default;

struct Engine<'a: 'p, 'p> {
    arena: &'a Arena,
    path: Vec<Seg<'p>>,
}

impl<'a: 'p, 'p> Engine<'a, 'p> {
    fn here(&self) -> PathDisplay<'_, 'p> {
        PathDisplay(&self.path)
    }

    fn at(&self, field: &str) -> String {
        format!("{}.{field}", self.here())
    }

    /// The patch metadata of `key` in the object typed `node`.
    fn lookup(&self, node: NodeId, key: &str) -> Result<Meta<'a>> {
        let arena = self.arena;
        match arena.field(node, key) {
            Some(FieldRef::Declared(field)) => {
                if let Strategy::Invalid(s) = &field.strategy {
                    return Err(Error::patch_failed(
                        self.at(key),
                        format!("unexpected patch strategy: {s}"),
                    ));
                }
                Ok(Meta {
                    node: field.node,
                    strategy: &field.strategy,
                    merge_key: field.merge_key.as_deref(),
                })
            }
            Some(FieldRef::Rest(id)) => Ok(Meta {
                node: id,
                strategy: &DEFAULT_STRATEGY,
                merge_key: None,
            }),
            None => match arena.node(node) {
                Node::Object(_) => Err(Error::bad_patch(
                    self.at(key),
                    format!("unable to find api field {key:?}"),
                )),
                // The schema says scalar or list where the documents hold an object: merge
                // without metadata.
                _ => Ok(Meta {
                    node: DEDUCED,
                    strategy: &DEFAULT_STRATEGY,
                    merge_key: None,
                }),
            },
        }
    }

    fn merge_map(
        &mut self,
        mut original: Map<String, Value>,
        patch: &'p Map<String, Value>,
        node: NodeId,
    ) -> Result<Map<String, Value>> {
        if let Some(directive) = patch.get(DIRECTIVE) {
            return match directive.as_str() {
                Some("replace") => {
                    let mut replaced = patch.clone();
                    replaced.shift_remove(DIRECTIVE);
                    Ok(replaced)
                }
                Some("delete") => Ok(Map::new()),
                _ => Err(Error::bad_patch(
                    self.here(),
                    format!("unknown patch type: {directive} in map"),
                )),
            };
        }

        if let Some(retain) = patch.get(RETAIN_KEYS) {
            self.retain_keys(&mut original, patch, retain)?;
        }

        // `$setElementOrder/<list>`: merge the list it names now, then order it.
        let mut ordered: Vec<&str> = Vec::new();
        for (key, order) in patch {
            if key.starts_with(SET_ELEMENT_ORDER) {
                let list_key = directive_target(key, SET_ELEMENT_ORDER).ok_or_else(|| {
                    Error::bad_patch(self.at(key), "invalid patch format of setElementOrder list")
                })?;
                self.set_element_order(&mut original, patch, node, key, list_key, order)?;
                ordered.push(list_key);
            }
        }

        for (key, patch_value) in patch {
            let key = key.as_str();
            if key == RETAIN_KEYS || key.starts_with(SET_ELEMENT_ORDER) || ordered.contains(&key) {
                continue;
            }
            let (key, delete_list) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
                let target =
                    directive_target(key, DELETE_FROM_PRIMITIVE_LIST).ok_or_else(|| {
                        Error::bad_patch(self.at(key), "invalid patch format of primitive list")
                    })?;
                (target, true)
            } else {
                if key.starts_with('$')
                    && !matches!(self.arena.field(node, key), Some(FieldRef::Declared(_)))
                {
                    return Err(Error::bad_patch(
                        self.here(),
                        format!("unknown directive {key:?}"),
                    ));
                }
                (key, false)
            };

            if patch_value.is_null() {
                original.shift_remove(key);
                continue;
            }

            let Some(current) = original.get_mut(key) else {
                if !delete_list && let Some(value) = clean_new_value(patch_value) {
                    original.insert(key.to_string(), value);
                }
                continue;
            };

            match (&*current, patch_value) {
                (Value::Object(_), Value::Object(patch_map)) => {
                    let meta = self.lookup(node, key)?;
                    if *meta.strategy == Strategy::Replace {
                        *current = patch_value.clone();
                    } else {
                        let Value::Object(current_map) = std::mem::take(current) else {
                            unreachable!("matched an object above")
                        };
                        self.path.push(Seg::Field(key));
                        let merged = self.merge_map(current_map, patch_map, meta.node);
                        self.path.pop();
                        *current = Value::Object(merged?);
                    }
                }
                (Value::Array(_), Value::Array(patch_list)) => {
                    let meta = self.lookup(node, key)?;
                    if *meta.strategy == Strategy::Merge || delete_list {
                        let Value::Array(current_list) = std::mem::take(current) else {
                            unreachable!("matched an array above")
                        };
                        self.path.push(Seg::Field(key));
                        let merged = self.merge_list(current_list, patch_list, &meta, delete_list);
                        self.path.pop();
                        *current = Value::Array(merged?);
                    } else {
                        *current = patch_value.clone();
                    }
                }
                _ => {
                    if !delete_list {
                        match clean_new_value(patch_value) {
                            Some(value) => *current = value,
                            None => {
                                original.shift_remove(key);
                            }
                        }
                    }
                }
            }
        }
        Ok(original)
    }

    /// `$retainKeys`: drop every key of `original` the list does not name, after checking
    /// that the patch only sets keys it names.
    fn retain_keys(
        &self,
        original: &mut Map<String, Value>,
        patch: &Map<String, Value>,
        retain: &Value,
    ) -> Result<()> {
        let Value::Array(retain) = retain else {
            return Err(Error::bad_patch(
                self.at(RETAIN_KEYS),
                "invalid patch format of retainKeys: must be a list",
            ));
        };
        let keep = |key: &str| retain.iter().any(|v| v.as_str() == Some(key));
        for (key, value) in patch {
            if value.is_null()
                || key == RETAIN_KEYS
                || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
                || key.starts_with(SET_ELEMENT_ORDER)
            {
                continue;
            }
            if !keep(key) {
                return Err(Error::bad_patch(
                    self.at(RETAIN_KEYS),
                    format!(
                        "invalid patch format of retainKeys: {key:?} is patched but not retained"
                    ),
                ));
            }
        }
        original.retain(|key, _| keep(key));
        Ok(())
    }

    /// Merges the list named by a `$setElementOrder/<list_key>` directive and puts its items
    /// in order: directive order for the patch's items, live order for the others.
    fn set_element_order(
        &mut self,
        original: &mut Map<String, Value>,
        patch: &'p Map<String, Value>,
        node: NodeId,
        directive_key: &str,
        list_key: &'p str,
        order: &'p Value,
    ) -> Result<()> {
        let Value::Array(order) = order else {
            return Err(Error::bad_patch(
                self.at(directive_key),
                "invalid patch format of setElementOrder list: must be a list",
            ));
        };
        let original_list = match original.get(list_key) {
            None => None,
            Some(Value::Array(list)) => Some(list),
            Some(other) => {
                return Err(Error::patch_failed(
                    self.at(list_key),
                    format!("expected a list, found {}", kind_name(other)),
                ));
            }
        };
        let patch_list = match patch.get(list_key) {
            None => None,
            Some(Value::Array(list)) => Some(list),
            Some(other) => {
                return Err(Error::bad_patch(
                    self.at(list_key),
                    format!("expected a list, found {}", kind_name(other)),
                ));
            }
        };
        let meta = self.lookup(node, list_key)?;
        let merge_key = meta.merge_key.filter(|k| !k.is_empty());
        self.validate_order(
            patch_list.map_or(&[][..], Vec::as_slice),
            order,
            merge_key,
            directive_key,
        )?;

        let empty = Vec::new();
        let kind = element_kind(
            original_list.unwrap_or(&empty),
            patch_list.unwrap_or(&empty),
        )
        .map_err(|message| Error::patch_failed(self.at(list_key), message));
        let key = merge_key.filter(|_| kind.as_ref().is_ok_and(|k| *k == ElemKind::Object));
        let server_ids: Vec<Value> = match (original_list, key) {
            (Some(list), Some(_)) => self.identities(list, key)?.into_iter().cloned().collect(),
            (Some(list), None) => list.clone(),
            (None, _) => Vec::new(),
        };
        let merged = match (original_list.is_some(), patch_list) {
            (false, None) => return Ok(()),
            (true, None) => None,
            (false, Some(patch_list)) => {
                Some(patch_list.iter().filter_map(clean_new_value).collect())
            }
            (true, Some(patch_list)) => {
                let Some(Value::Array(current)) = original.get_mut(list_key).map(std::mem::take)
                else {
                    unreachable!("checked to be a list above")
                };
                if *meta.strategy == Strategy::Merge {
                    self.path.push(Seg::Field(list_key));
                    let merged = self.merge_list(current, patch_list, &meta, false);
                    self.path.pop();
                    Some(merged?)
                } else {
                    Some(patch_list.clone())
                }
            }
        };
        let merged = match merged {
            Some(merged) => merged,
            None => match original.get_mut(list_key).map(std::mem::take) {
                Some(Value::Array(list)) => list,
                _ => unreachable!("checked to be a list above"),
            },
        };
        kind?;
        self.path.push(Seg::Field(list_key));
        let result = self
            .identities(order, key)
            .and_then(|patch_ids| self.order(merged, &patch_ids, &server_ids, key));
        self.path.pop();
        original.insert(list_key.to_string(), Value::Array(result?));
        Ok(())
    }

    /// apimachinery's `validatePatchWithSetOrderList`: the patch's items must appear in the
    /// directive, in the same relative order.
    fn validate_order(
        &self,
        patch_list: &[Value],
        order: &[Value],
        merge_key: Option<&str>,
        directive_key: &str,
    ) -> Result<()> {
        if patch_list.is_empty() || order.is_empty() {
            return Ok(());
        }
        let non_deleted: Vec<&Value> = match merge_key {
            Some(_) => patch_list
                .iter()
                .filter(|item| {
                    item.as_object()
                        .and_then(|m| m.get(DIRECTIVE))
                        .and_then(Value::as_str)
                        != Some("delete")
                })
                .collect(),
            None => patch_list.iter().collect(),
        };
        let (mut p, mut o) = (0, 0);
        while p < non_deleted.len() && o < order.len() {
            let item = non_deleted[p];
            if item.as_object().is_some_and(|m| m.contains_key(DIRECTIVE)) {
                p += 1;
                continue;
            }
            let equal = match merge_key {
                None => item == &order[o],
                Some(key) => {
                    let left = self.key_of(item, key)?;
                    let right = self.key_of(&order[o], key)?;
                    left == right
                }
            };
            if equal {
                p += 1;
            }
            o += 1;
        }
        if p < non_deleted.len() {
            return Err(Error::bad_patch(
                self.at(directive_key),
                "the order in the patch list doesn't match the $setElementOrder list",
            ));
        }
        Ok(())
    }

    /// The merge key value of a list item that must have one.
    fn key_of<'v>(&self, item: &'v Value, key: &str) -> Result<&'v Value> {
        let Value::Object(map) = item else {
            return Err(Error::patch_failed(
                self.here(),
                format!("expected a map, but received a {}", kind_name(item)),
            ));
        };
        map.get(key).ok_or_else(|| {
            Error::patch_failed(
                self.here(),
                format!(
                    "map: {} does not contain declared merge key: {key}",
                    Value::Object(map.clone())
                ),
            )
        })
    }

    /// apimachinery's `mergeSlice`.
    fn merge_list(
        &mut self,
        original: Vec<Value>,
        patch: &'p [Value],
        meta: &Meta<'a>,
        delete_list: bool,
    ) -> Result<Vec<Value>> {
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }
        let kind = element_kind(&original, patch)
            .map_err(|message| Error::patch_failed(self.here(), message))?;
        if kind != ElemKind::Object {
            if delete_list {
                return Ok(original
                    .into_iter()
                    .filter(|v| !patch.contains(v))
                    .collect());
            }
            let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
            for value in original.iter().chain(patch.iter()) {
                if !merged.contains(value) {
                    merged.push(value.clone());
                }
            }
            let patch_ids: Vec<&Value> = patch.iter().collect();
            return self.order(merged, &patch_ids, &original, None);
        }

        let Some(key) = meta.merge_key.filter(|k| !k.is_empty()) else {
            return Err(Error::patch_failed(
                self.here(),
                "cannot merge lists without merge key",
            ));
        };
        let items_node = self
            .arena
            .list(meta.node)
            .map_or(DEDUCED, |list| list.items);
        let (mut original, patch_items) = self.special_elements(original, patch, key)?;
        let server_ids: Vec<Value> = self
            .identities(&original, Some(key))?
            .into_iter()
            .cloned()
            .collect();
        let patch_ids = self.identities(patch_items.iter().copied(), Some(key))?;
        for item in &patch_items {
            let Value::Object(item_map) = item else {
                unreachable!("element_kind checked every item is an object")
            };
            let value = self.key_of(item, key)?;
            let found = original
                .iter()
                .position(|o| o.as_object().and_then(|m| m.get(key)) == Some(value));
            match found {
                Some(index) => {
                    let Value::Object(current) = std::mem::take(&mut original[index]) else {
                        unreachable!("element_kind checked every item is an object")
                    };
                    self.path.push(Seg::Item(key, value));
                    let merged = self.merge_map(current, item_map, items_node);
                    self.path.pop();
                    original[index] = Value::Object(merged?);
                }
                None => original.push((*item).clone()),
            }
        }
        self.order(original, &patch_ids, &server_ids, Some(key))
    }

    /// apimachinery's `mergeSliceWithSpecialElements`: applies `$patch: delete` items to
    /// `original`, and `$patch: replace` (which makes the patch's other items the list).
    fn special_elements(
        &self,
        mut original: Vec<Value>,
        patch: &'p [Value],
        key: &str,
    ) -> Result<(Vec<Value>, Vec<&'p Value>)> {
        let mut plain: Vec<&'p Value> = Vec::with_capacity(patch.len());
        let mut replace = false;
        for item in patch {
            let Some(directive) = item.as_object().and_then(|m| m.get(DIRECTIVE)) else {
                plain.push(item);
                continue;
            };
            match directive.as_str() {
                Some("delete") => {
                    let value = self.key_of(item, key)?;
                    original.retain(|o| o.as_object().and_then(|m| m.get(key)) != Some(value));
                }
                Some("replace") => replace = true,
                Some("merge") => {
                    return Err(Error::bad_patch(
                        self.here(),
                        "merging lists cannot yet be specified in the patch",
                    ));
                }
                _ => {
                    return Err(Error::bad_patch(
                        self.here(),
                        format!("unknown patch type: {directive} in list item {item}"),
                    ));
                }
            }
        }
        if replace {
            return Ok((plain.into_iter().cloned().collect(), Vec::new()));
        }
        Ok((original, plain))
    }

    /// The identities of a list's items for ordering: their merge key values (objects), or
    /// the items themselves (primitives). Every object must carry the merge key.
    fn identities<'v>(
        &self,
        items: impl IntoIterator<Item = &'v Value>,
        key: Option<&str>,
    ) -> Result<Vec<&'v Value>> {
        items
            .into_iter()
            .map(|item| match key {
                Some(key) => self.key_of(item, key),
                None => Ok(item),
            })
            .collect()
    }

    /// apimachinery's ordering of a merged list (`partition*ByPresentInList` +
    /// `normalizeElementOrder`): items named in `patch_ids` come in that order, the others in
    /// the live order (`server_ids`), and server-only items stay before patch items that
    /// follow them in the live list.
    fn order(
        &self,
        merged: Vec<Value>,
        patch_ids: &[&Value],
        server_ids: &[Value],
        key: Option<&str>,
    ) -> Result<Vec<Value>> {
        let id = |item: &Value| -> Result<Value> {
            Ok(match key {
                Some(key) => self.key_of(item, key)?.clone(),
                None => item.clone(),
            })
        };
        let is_delete = |item: &Value| {
            key.is_some()
                && item
                    .as_object()
                    .and_then(|m| m.get(DIRECTIVE))
                    .and_then(Value::as_str)
                    == Some("delete")
        };
        let mut from_patch: Vec<(Option<usize>, Value)> = Vec::new();
        let mut server_only: Vec<(Option<usize>, Value)> = Vec::new();
        let mut deleted_patch = Vec::new();
        let mut deleted_server = Vec::new();
        for item in merged {
            let item_id = id(&item)?;
            let server_pos = server_ids.iter().position(|v| *v == item_id);
            match patch_ids.iter().position(|v| **v == item_id) {
                Some(pos) if is_delete(&item) => deleted_patch.push((Some(pos), item)),
                Some(pos) => from_patch.push((Some(pos), item)),
                None if is_delete(&item) => deleted_server.push((server_pos, item)),
                None => server_only.push((server_pos, item)),
            }
        }
        // Stable sorts; items without a position keep their place at the end.
        from_patch.sort_by_key(|(pos, _)| pos.unwrap_or(usize::MAX));
        server_only.sort_by_key(|(pos, _)| pos.unwrap_or(usize::MAX));
        from_patch.extend(deleted_patch);
        server_only.extend(deleted_server);

        // mergeSortedSlice: insert server-only items (left) among the patch items (right),
        // comparing live positions.
        let live_pos = |item: &Value| -> Option<usize> {
            let item_id = match key {
                Some(key) => item.as_object().and_then(|m| m.get(key))?,
                None => item,
            };
            server_ids.iter().position(|v| v == item_id)
        };
        let mut out = Vec::with_capacity(from_patch.len() + server_only.len());
        let mut left = server_only.into_iter().map(|(_, v)| v).peekable();
        let mut right = from_patch.into_iter().map(|(_, v)| v).peekable();
        loop {
            let take_left = match (left.peek(), right.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(l), Some(r)) => {
                    matches!((live_pos(l), live_pos(r)), (Some(li), Some(ri)) if li < ri)
                }
            };
            if take_left {
                out.extend(left.next());
            } else {
                out.extend(right.next());
            }
        }
        Ok(out)
    }
}

/// `$setElementOrder/containers` → `containers`.
fn directive_target<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    let (head, rest) = key.split_once('/')?;
    (head == prefix).then_some(rest)
}

/// A patch value taken as is because the original has no such key (or another type):
/// apimachinery's `discardNullValuesFromPatch` then `removeDirectives`. `None` when the value
/// itself is a directive and must not be kept.
fn clean_new_value(value: &Value) -> Option<Value> {
    match value {
        Value::Object(map) => {
            if map.get(DIRECTIVE).is_some_and(|d| !d.is_null()) {
                return None;
            }
            let mut out = Map::with_capacity(map.len());
            for (key, v) in map {
                if v.is_null() {
                    continue;
                }
                if let Some(v) = clean_new_value(v) {
                    out.insert(key.clone(), v);
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(items) => Some(Value::Array(
            items
                .iter()
                .filter_map(|item| match item {
                    Value::Null => Some(Value::Null),
                    other => clean_new_value(other),
                })
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

/// apimachinery's `sliceElementType` over both lists.
fn element_kind(original: &[Value], patch: &[Value]) -> Result<ElemKind, String> {
    let mut kind = None;
    for value in original.iter().chain(patch) {
        let this = match value {
            Value::Object(_) => ElemKind::Object,
            Value::String(_) => ElemKind::String,
            Value::Bool(_) => ElemKind::Bool,
            Value::Number(n) if n.is_f64() => ElemKind::Float,
            Value::Number(_) => ElemKind::Int,
            Value::Array(_) => return Err("lists of lists are not supported".into()),
            Value::Null => return Err("a merging list cannot hold null elements".into()),
        };
        match kind {
            None => kind = Some(this),
            Some(k) if k != this => return Err("list element types are not identical".into()),
            Some(_) => {}
        }
    }
    kind.ok_or_else(|| "no elements in any of the given slices".into())
}

pub(crate) fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{builtin, from_crd_openapi};
    use serde_json::json;

    /// A schema with one field of every patch behaviour (merge lists of objects and of
    /// primitives, replaced lists, retainKeys and replace maps).
    fn schema() -> SchemaRef {
        let item = json!({"type": "object", "properties": {
            "name": {"type": "string"}, "value": {"type": "string"}, "other": {"type": "string"},
            "nonMergingList": {"type": "array", "items": {"type": "string"}},
            "mergingIntList": {"type": "array", "x-kubernetes-patch-strategy": "merge", "items": {"type": "integer"}}
        }});
        from_crd_openapi(&json!({"type": "object", "properties": {
            "mergingList": {"type": "array", "x-kubernetes-patch-strategy": "merge",
                "x-kubernetes-patch-merge-key": "name", "items": item},
            "mergingIntList": {"type": "array", "x-kubernetes-patch-strategy": "merge", "items": {"type": "integer"}},
            "nonMergingList": {"type": "array", "items": item},
            "nonMergingIntList": {"type": "array", "items": {"type": "integer"}},
            "simpleMap": {"type": "object", "additionalProperties": {"type": "string"}},
            "retainKeysMap": {"type": "object", "x-kubernetes-patch-strategy": "retainKeys", "properties": {
                "name": {"type": "string"}, "value": {"type": "string"}, "other": {"type": "string"},
                "simpleMap": {"type": "object", "additionalProperties": {"type": "string"}}
            }},
            "replacingMap": {"type": "object", "x-kubernetes-patch-strategy": "replace",
                "additionalProperties": {"type": "string"}},
            "badStrategy": {"type": "array", "x-kubernetes-patch-strategy": "merge,replace", "items": {"type": "string"}},
            "$ref": {"type": "string"}
        }}))
        .unwrap()
    }

    fn smp(original: Value, patch: Value) -> Result<Value> {
        strategic_merge(&original, &patch, &schema())
    }

    fn ok(original: Value, patch: Value, expected: Value) {
        assert_eq!(smp(original, patch).unwrap(), expected);
    }

    fn err(original: Value, patch: Value, needle: &str) -> Error {
        let e = smp(original, patch).unwrap_err();
        assert!(
            e.to_string().contains(needle),
            "{e} does not mention {needle:?}"
        );
        e
    }

    #[test]
    fn maps_merge_and_null_deletes() {
        ok(
            json!({"simpleMap": {"a": "1", "b": "2"}, "other": "x"}),
            json!({"simpleMap": {"b": null, "c": "3"}, "other": null, "added": {"k": "v", "gone": null}}),
            json!({"simpleMap": {"a": "1", "c": "3"}, "added": {"k": "v"}}),
        );
        // Deleting what is not there is fine.
        ok(json!({}), json!({"simpleMap": null}), json!({}));
    }

    #[test]
    fn merging_list_merges_by_key_and_keeps_server_items() {
        ok(
            json!({"mergingList": [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]}),
            json!({"mergingList": [{"name": "b", "value": "3", "other": "x"}, {"name": "c"}]}),
            json!({"mergingList": [
                {"name": "a", "value": "1"},
                {"name": "b", "value": "3", "other": "x"},
                {"name": "c"}
            ]}),
        );
    }

    #[test]
    fn list_item_directives() {
        ok(
            json!({"mergingList": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}),
            json!({"mergingList": [{"name": "b", "$patch": "delete"}, {"name": "missing", "$patch": "delete"}]}),
            json!({"mergingList": [{"name": "a"}, {"name": "c"}]}),
        );
        ok(
            json!({"mergingList": [{"name": "a"}, {"name": "b"}]}),
            json!({"mergingList": [{"name": "z", "value": "1"}, {"$patch": "replace"}]}),
            json!({"mergingList": [{"name": "z", "value": "1"}]}),
        );
        err(
            json!({"mergingList": [{"name": "a"}]}),
            json!({"mergingList": [{"name": "a", "$patch": "merge"}]}),
            "merging lists cannot yet be specified",
        );
        err(
            json!({"mergingList": [{"name": "a"}]}),
            json!({"mergingList": [{"name": "a", "$patch": "frobnicate"}]}),
            "unknown patch type",
        );
        err(
            json!({"mergingList": [{"name": "a"}]}),
            json!({"mergingList": [{"$patch": "delete"}]}),
            "does not contain declared merge key: name",
        );
    }

    #[test]
    fn map_directives() {
        ok(
            json!({"simpleMap": {"a": "1"}, "keep": true}),
            json!({"simpleMap": {"$patch": "replace", "b": "2"}}),
            json!({"simpleMap": {"b": "2"}, "keep": true}),
        );
        ok(
            json!({"simpleMap": {"a": "1"}}),
            json!({"simpleMap": {"$patch": "delete"}}),
            json!({"simpleMap": {}}),
        );
        // A directive on a value the original does not have drops it, as apimachinery does.
        ok(
            json!({}),
            json!({"simpleMap": {"$patch": "replace", "a": "1"}}),
            json!({}),
        );
        let e = err(
            json!({"simpleMap": {}}),
            json!({"simpleMap": {"$patch": "merge"}}),
            "unknown patch type",
        );
        assert!(e.is_bad_request());
    }

    #[test]
    fn primitive_merge_lists_are_sets_and_keep_order() {
        ok(
            json!({"mergingIntList": [1, 2]}),
            json!({"mergingIntList": [3, 1]}),
            json!({"mergingIntList": [3, 1, 2]}),
        );
        ok(
            json!({"mergingIntList": [1, 2, 3, 2]}),
            json!({"$deleteFromPrimitiveList/mergingIntList": [2, 9]}),
            json!({"mergingIntList": [1, 3]}),
        );
        // Deleting from a list that is not there does not create it.
        ok(
            json!({}),
            json!({"$deleteFromPrimitiveList/mergingIntList": [1]}),
            json!({}),
        );
        // Also works on a list without the merge strategy.
        ok(
            json!({"nonMergingIntList": [1, 2]}),
            json!({"$deleteFromPrimitiveList/nonMergingIntList": [1]}),
            json!({"nonMergingIntList": [2]}),
        );
        err(
            json!({}),
            json!({"$deleteFromPrimitiveList": [1]}),
            "invalid patch format of primitive list",
        );
    }

    #[test]
    fn merge_metadata_applies_inside_list_items() {
        ok(
            json!({"mergingList": [{"name": "a", "mergingIntList": [1]}]}),
            json!({"mergingList": [{"name": "a", "mergingIntList": [2]}]}),
            json!({"mergingList": [{"name": "a", "mergingIntList": [2, 1]}]}),
        );
    }

    #[test]
    fn non_merging_lists_are_replaced() {
        ok(
            json!({"nonMergingList": [{"name": "a"}], "nonMergingIntList": [1, 2]}),
            json!({"nonMergingList": [{"name": "b"}], "nonMergingIntList": [3]}),
            json!({"nonMergingList": [{"name": "b"}], "nonMergingIntList": [3]}),
        );
        // Nested in a merging list item.
        ok(
            json!({"mergingList": [{"name": "a", "nonMergingList": ["x", "y"]}]}),
            json!({"mergingList": [{"name": "a", "nonMergingList": ["z"]}]}),
            json!({"mergingList": [{"name": "a", "nonMergingList": ["z"]}]}),
        );
    }

    #[test]
    fn set_element_order_orders_patch_and_server_items() {
        // Patch items in directive order; server-only items by their live positions.
        ok(
            json!({"mergingList": [{"name": "1", "other": "a"}, {"name": "2", "value": "2"}, {"name": "9"}, {"name": "3"}, {"name": "4"}]}),
            json!({"$setElementOrder/mergingList": [{"name": "2"}, {"name": "1"}, {"name": "4"}, {"name": "3"}]}),
            json!({"mergingList": [{"name": "2", "value": "2"}, {"name": "1", "other": "a"}, {"name": "9"}, {"name": "4"}, {"name": "3"}]}),
        );
        ok(
            json!({"mergingList": [{"name": "1"}, {"name": "3"}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": "3"}, {"name": "2"}, {"name": "1"}],
                "mergingList": [{"name": "3", "value": "3"}, {"name": "1", "value": "1"}]
            }),
            json!({"mergingList": [{"name": "3", "value": "3"}, {"name": "1", "value": "1"}]}),
        );
        ok(
            json!({"mergingIntList": [1, 3, 7]}),
            json!({"$setElementOrder/mergingIntList": [3, 2, 1], "mergingIntList": [2]}),
            json!({"mergingIntList": [3, 2, 1, 7]}),
        );
        // A list the original lacks is taken from the patch, directives removed.
        ok(
            json!({}),
            json!({
                "$setElementOrder/mergingList": [{"name": "b"}, {"name": "a"}],
                "mergingList": [{"name": "b"}, {"name": "a"}, {"name": "x", "$patch": "delete"}]
            }),
            json!({"mergingList": [{"name": "b"}, {"name": "a"}]}),
        );
        err(
            json!({"mergingList": [{"name": "1"}, {"name": "3"}, {"name": "2"}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
                "mergingList": [{"name": "3", "value": "3"}, {"name": "1", "value": "1"}]
            }),
            "doesn't match",
        );
        err(
            json!({}),
            json!({"$setElementOrder/mergingList": {"name": "1"}}),
            "must be a list",
        );
        err(
            json!({}),
            json!({"$setElementOrder": []}),
            "setElementOrder",
        );
        err(
            json!({"mergingList": [{"name": "1"}]}),
            json!({"$setElementOrder/mergingList": [{"value": "1"}]}),
            "does not contain declared merge key",
        );
    }

    #[test]
    fn duplicates_follow_apimachinery() {
        ok(
            json!({"mergingList": [{"name": "1"}, {"name": "2", "value": "d1"}, {"name": "3"}, {"name": "2", "value": "d2"}, {"name": "4"}]}),
            json!({"$setElementOrder/mergingList": [{"name": "2"}, {"name": "1"}, {"name": "4"}, {"name": "3"}, {"name": "2"}]}),
            json!({"mergingList": [{"name": "2", "value": "d1"}, {"name": "2", "value": "d2"}, {"name": "1"}, {"name": "4"}, {"name": "3"}]}),
        );
    }

    #[test]
    fn retain_keys_clears_unlisted_fields() {
        ok(
            json!({"retainKeysMap": {"name": "n", "value": "v", "other": "o"}}),
            json!({"retainKeysMap": {"$retainKeys": ["name", "other"], "other": "p"}}),
            json!({"retainKeysMap": {"name": "n", "other": "p"}}),
        );
        // Nulls and directives need not be listed.
        ok(
            json!({"retainKeysMap": {"name": "n", "value": "v"}}),
            json!({"retainKeysMap": {"$retainKeys": ["name"], "value": null}}),
            json!({"retainKeysMap": {"name": "n"}}),
        );
        err(
            json!({"retainKeysMap": {}}),
            json!({"retainKeysMap": {"$retainKeys": ["name"], "value": "v"}}),
            "invalid patch format of retainKeys",
        );
        err(
            json!({"retainKeysMap": {}}),
            json!({"retainKeysMap": {"$retainKeys": "name"}}),
            "must be a list",
        );
    }

    #[test]
    fn replace_strategy_replaces_maps() {
        ok(
            json!({"replacingMap": {"a": "1", "b": "2"}}),
            json!({"replacingMap": {"c": "3"}}),
            json!({"replacingMap": {"c": "3"}}),
        );
    }

    #[test]
    fn lists_without_merge_key_items_are_errors() {
        let e = err(
            json!({"mergingList": [{"name": "a", "value": "1"}]}),
            json!({"mergingList": [{"value": "b"}]}),
            "does not contain declared merge key: name",
        );
        assert!(e.is_unprocessable());
        err(
            json!({"mergingList": [{"value": "a"}]}),
            json!({"mergingList": [{"name": "b"}]}),
            "does not contain declared merge key",
        );
        err(
            json!({"mergingIntList": [1]}),
            json!({"mergingIntList": ["a"]}),
            "not identical",
        );
        err(
            json!({"mergingIntList": [1]}),
            json!({"mergingIntList": [[1]]}),
            "lists of lists",
        );
        err(
            json!({"badStrategy": ["a"]}),
            json!({"badStrategy": ["b"]}),
            "unexpected patch strategy",
        );
    }

    #[test]
    fn absent_list_fields_take_the_patch_without_directives() {
        ok(
            json!({}),
            json!({"mergingList": [{"name": "x", "$patch": "delete"}, {"name": "y", "value": null, "other": "o"}]}),
            json!({"mergingList": [{"name": "y", "other": "o"}]}),
        );
    }

    #[test]
    fn unknown_directives_and_fields_are_errors_that_say_where() {
        let e = err(
            json!({"mergingList": [{"name": "a"}]}),
            json!({"mergingList": [{"name": "a", "$frob": 1}]}),
            "unknown directive \"$frob\"",
        );
        assert!(e.to_string().contains(".mergingList[name=\"a\"]"), "{e}");
        // `$ref` is a declared field here, so it is data.
        ok(json!({}), json!({"$ref": "x"}), json!({"$ref": "x"}));
        let pod = builtin("", "v1", "Pod").unwrap();
        let e = strategic_merge(
            &json!({"spec": {"nodeSelector": {}, "bogus": {"a": 1}}}),
            &json!({"spec": {"bogus": {"b": 2}}}),
            &pod,
        )
        .unwrap_err();
        assert!(e.to_string().contains(".spec.bogus"), "{e}");
        let e = strategic_merge(&json!({}), &json!([1]), &pod).unwrap_err();
        assert!(e.is_bad_request());
    }

    #[test]
    fn type_changes_replace() {
        ok(
            json!({"simpleMap": {"a": "1"}, "n": 1}),
            json!({"simpleMap": "x", "n": {"k": null, "v": 2}}),
            json!({"simpleMap": "x", "n": {"v": 2}}),
        );
    }

    #[test]
    fn builtin_metadata_lists() {
        let deployment = builtin("apps", "v1", "Deployment").unwrap();
        let live = json!({"metadata": {"name": "web", "finalizers": ["a", "b"],
            "ownerReferences": [{"uid": "1", "name": "x"}, {"uid": "2", "name": "y"}]}});
        let out = strategic_merge(
            &live,
            &json!({"metadata": {"finalizers": ["c"], "$deleteFromPrimitiveList/finalizers": ["a"],
                "ownerReferences": [{"uid": "2", "$patch": "delete"}, {"uid": "3", "name": "z"}]}}),
            &deployment,
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["c", "b"]));
        // New items go before the server's, as apimachinery's mergeSortedSlice puts them.
        assert_eq!(
            out["metadata"]["ownerReferences"],
            json!([{"uid": "3", "name": "z"}, {"uid": "1", "name": "x"}])
        );
    }

    #[test]
    fn deployment_strategy_retain_keys() {
        let deployment = builtin("apps", "v1", "Deployment").unwrap();
        let live = json!({"spec": {"strategy": {"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}});
        let out = strategic_merge(
            &live,
            &json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            &deployment,
        )
        .unwrap();
        assert_eq!(out, json!({"spec": {"strategy": {"type": "Recreate"}}}));
    }

    #[test]
    fn volumes_merge_by_name_with_retain_keys() {
        let pod = builtin("", "v1", "Pod").unwrap();
        let live = json!({"spec": {"volumes": [
            {"name": "data", "emptyDir": {}},
            {"name": "conf", "configMap": {"name": "c"}}
        ]}});
        let out = strategic_merge(
            &live,
            &json!({"spec": {"volumes": [
                {"name": "data", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/d"}}
            ]}}),
            &pod,
        )
        .unwrap();
        assert_eq!(
            out["spec"]["volumes"],
            json!([{"name": "data", "hostPath": {"path": "/d"}}, {"name": "conf", "configMap": {"name": "c"}}])
        );
    }

    #[test]
    fn pdb_selector_is_replaced() {
        let pdb = builtin("policy", "v1", "PodDisruptionBudget").unwrap();
        let out = strategic_merge(
            &json!({"spec": {"selector": {"matchLabels": {"a": "1"}}}}),
            &json!({"spec": {"selector": {"matchLabels": {"b": "2"}}}}),
            &pdb,
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"spec": {"selector": {"matchLabels": {"b": "2"}}}})
        );
    }

    mod laws {
        use super::*;
        use proptest::prelude::{
            Strategy as _, any, prop_assert, prop_assert_eq, prop_oneof, proptest,
        };

        fn leaf() -> impl proptest::strategy::Strategy<Value = Value> {
            prop_oneof![
                any::<bool>().prop_map(Value::from),
                (-5i64..5).prop_map(Value::from),
                "[a-c]{0,2}".prop_map(Value::from),
            ]
        }

        fn document() -> impl proptest::strategy::Strategy<Value = Value> {
            let item = (
                "[a-d]",
                proptest::option::of("[x-z]"),
                proptest::collection::btree_set(0i64..4, 0..3),
            )
                .prop_map(|(name, value, ints)| {
                    let ints: Vec<i64> = ints.into_iter().collect();
                    let mut m = Map::new();
                    m.insert("name".into(), name.into());
                    if let Some(v) = value {
                        m.insert("value".into(), v.into());
                    }
                    m.insert("mergingIntList".into(), ints.into());
                    Value::Object(m)
                });
            (
                proptest::collection::btree_map("[a-c]", leaf(), 0..3),
                proptest::collection::vec(item, 0..4),
                proptest::collection::btree_set(0i64..6, 0..4),
            )
                .prop_map(|(simple, items, ints)| {
                    let ints: Vec<i64> = ints.into_iter().rev().collect();
                    let mut names = std::collections::BTreeSet::new();
                    let items: Vec<Value> = items
                        .into_iter()
                        .filter(|i| names.insert(i["name"].as_str().unwrap().to_string()))
                        .collect();
                    json!({"simpleMap": simple, "mergingList": items, "mergingIntList": ints,
                        "nonMergingIntList": ints.clone()})
                })
        }

        proptest! {
            #[test]
            fn empty_patch_is_identity(doc in document()) {
                prop_assert_eq!(smp(doc.clone(), json!({})).unwrap(), doc);
            }

            #[test]
            fn patching_with_the_document_itself_is_identity(doc in document()) {
                prop_assert_eq!(smp(doc.clone(), doc.clone()).unwrap(), doc);
            }

            #[test]
            fn patch_application_is_idempotent(doc in document(), patch in document()) {
                let once = smp(doc, patch.clone()).unwrap();
                let twice = smp(once.clone(), patch).unwrap();
                prop_assert_eq!(once, twice);
            }

            #[test]
            fn merged_lists_contain_every_patch_item(doc in document(), patch in document()) {
                let out = smp(doc, patch.clone()).unwrap();
                for item in patch["mergingList"].as_array().unwrap() {
                    let name = &item["name"];
                    prop_assert!(out["mergingList"].as_array().unwrap().iter().any(|o| &o["name"] == name));
                }
                for i in patch["mergingIntList"].as_array().unwrap() {
                    prop_assert!(out["mergingIntList"].as_array().unwrap().contains(i));
                }
                prop_assert_eq!(&out["nonMergingIntList"], &patch["nonMergingIntList"]);
            }
        }
    }
}
