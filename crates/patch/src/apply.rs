//! Server-side apply and `managedFields` bookkeeping, as Kubernetes' field manager does them
//! (apimachinery `util/managedfields` over structured-merge-diff's `merge.Updater`):
//!
//! * [`apply`]: merges an applied configuration into the live object (creating it when
//!   absent), removes what the same manager applied before and no longer applies unless
//!   someone else owns it, refuses to change fields other managers own (unless forced), and
//!   records the manager's `Apply` entry.
//! * [`record_update`]: for every other write (create, update, patch), records an `Update`
//!   entry owning the fields the write changed and takes them away from other managers.
//!
//! The layers Kubernetes stacks are reproduced: meta fields are never owned, the first apply
//! to an object nobody tracked gives its existing fields to `before-first-apply`, at most ten
//! `Update` managers are kept (older ones merge into `ancient-changes`), managed fields
//! supplied by a write replace the stored ones (how kubectl migrates client-side apply
//! ownership), and for the `kubectl` manager conflicts with fields whose values still match
//! the `last-applied-configuration` annotation are allowed (the client-side to server-side
//! apply upgrade), and the annotation is kept in sync.
//!
//! Not reproduced: conversion between API versions (managers recorded under another version
//! of the same resource are compared on this version's object) and `reconcileManagedFields
//! WithSchemaChanges`.

use std::sync::LazyLock;

use serde_json::{Map, Value};

use crate::error::{Error, FieldConflict, Result};
use crate::fieldpath::{PathDisplay, PathElement, Set, to_go_json, values_equal};
use crate::managed::{Entry, Managed, ManagerId, Operation, unix_seconds};
use crate::schema::{Arena, NodeId, SchemaRef};
use crate::typed::{Comparison, Walker};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const BEFORE_FIRST_APPLY: &str = "before-first-apply";
const ANCIENT_CHANGES: &str = "ancient-changes";
const MAX_UPDATE_MANAGERS: usize = 10;
/// Kubernetes' limit on the total size of an object's annotations.
const MAX_ANNOTATIONS_SIZE: usize = 256 * 1024;

/// One server-side apply request.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions<'a> {
    /// The `fieldManager` query parameter (required by Kubernetes for apply).
    pub manager: &'a str,
    /// The `force` query parameter: take ownership of conflicting fields.
    pub force: bool,
    /// The group/version of the endpoint (`apps/v1`, `v1`); the configuration must use it.
    pub api_version: &'a str,
    /// The subresource written (`status`, `scale`), if any.
    pub subresource: Option<&'a str>,
    /// The time recorded in the manager's entry (RFC 3339, e.g. `2026-01-01T00:00:00Z`).
    pub time: &'a str,
    /// Fields this endpoint resets and that nobody may own through it, as dotted paths:
    /// `["status"]` for the main resource of a kind with a status subresource,
    /// `["spec", "metadata.labels"]` for `deployments/status`.
    pub reset_fields: &'a [&'a str],
}

/// One non-apply write (create, update or patch).
#[derive(Debug, Clone, Copy)]
pub struct UpdateOptions<'a> {
    /// The `fieldManager` query parameter, or the default the server derives (Kubernetes
    /// uses the user agent's program name).
    pub manager: &'a str,
    /// The group/version of the endpoint.
    pub api_version: &'a str,
    /// The subresource written, if any (its writes cannot set `managedFields`).
    pub subresource: Option<&'a str>,
    /// The time recorded when the write changed something (RFC 3339).
    pub time: &'a str,
    /// As [`ApplyOptions::reset_fields`].
    pub reset_fields: &'a [&'a str],
}

/// Server-side apply of `config` (the `application/apply-patch+yaml` body, parsed) to `live`
/// (`None` to create). Returns the new object with its `metadata.managedFields` updated; an
/// unchanged object when the apply is a no-op. Conflicts are [`Error::Conflicts`], listing
/// each field and its manager as Kubernetes words them.
///
/// The kind of `config` must match the schema's; the caller checks it (as Kubernetes'
/// version check does) and applies defaulting and validation to the result.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    options: &ApplyOptions<'_>,
    schema: &SchemaRef,
) -> Result<Value> {
    let Value::Object(config_map) = config else {
        return Err(Error::bad_config(
            "",
            "an applied configuration must be a JSON object",
        ));
    };
    let api_version = config_map
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if api_version != options.api_version {
        return Err(Error::bad_config(
            ".apiVersion",
            format!(
                "Incorrect version specified in apply patch. Specified patch version: {api_version}, expected: {}",
                options.api_version
            ),
        ));
    }
    if config
        .pointer("/metadata/managedFields")
        .is_some_and(|v| !v.is_null())
    {
        return Err(Error::bad_config(
            ".metadata.managedFields",
            "metadata.managedFields must be nil",
        ));
    }

    let ctx = Ctx::new(schema, options.reset_fields);
    let (live_object, stored_managed_value) = match live {
        Some(live) => split_managed_fields(live),
        None => (Value::Object(Map::new()), None),
    };
    let stored = match &stored_managed_value {
        Some(value) => {
            Managed::decode(value).map_err(|message| Error::BadManagedFields { message })?
        }
        None => Managed::default(),
    };
    let mut managed = stored.clone();

    // A live object nobody tracked: its fields belong to `before-first-apply`.
    if managed.is_empty() && live.is_some() {
        let zero = ctx.arena.zero_value(ctx.root, 0);
        let id = ManagerId::new(
            BEFORE_FIRST_APPLY,
            Operation::Update,
            options.api_version,
            options.subresource,
        );
        ctx.record(
            &zero,
            &live_object,
            &mut managed,
            &id,
            options.api_version,
            options.time,
        );
    }

    let applier = ManagerId::new(
        options.manager,
        Operation::Apply,
        options.api_version,
        options.subresource,
    );
    let outcome = match ctx.apply(
        &live_object,
        config,
        managed.clone(),
        &applier,
        options,
        options.force,
    )? {
        Ok(done) => done,
        Err(conflicts) => {
            // kubectl's upgrade from client-side apply: conflicts on fields whose live value
            // still is the last applied one are not conflicts.
            let allowed = (options.manager == "kubectl")
                .then(|| ctx.allowed_by_last_applied(&live_object, options.api_version))
                .flatten();
            let remaining: Vec<(ManagerId, Set)> = match &allowed {
                Some(allowed) => conflicts
                    .into_iter()
                    .map(|(id, set)| {
                        let left = set.difference(allowed);
                        (id, left)
                    })
                    .filter(|(_, set)| !set.is_empty())
                    .collect(),
                None => conflicts,
            };
            if !remaining.is_empty() {
                return Err(conflict_error(remaining));
            }
            match ctx.apply(&live_object, config, managed, &applier, options, true)? {
                Ok(done) => done,
                Err(conflicts) => return Err(conflict_error(conflicts)),
            }
        }
    };
    let (new_object, mut managed) = outcome;
    let changed = new_object.is_some();
    let mut result = new_object.unwrap_or_else(|| live_object.clone());
    if changed && let Some(entry) = managed.get_mut(&applier) {
        entry.time = Some(options.time.to_string());
    }
    if options.manager == "kubectl" {
        sync_last_applied(&mut result, config);
    }
    Walker::new(ctx.arena, false).drop_nulls(&mut result, ctx.root);
    finish(
        &mut result,
        &live_object,
        &managed,
        &stored,
        stored_managed_value,
    );
    Ok(result)
}

/// Records a create, update or patch by `options.manager` in `new`'s
/// `metadata.managedFields`: the fields it changed from `old` (`None` on create) become its
/// own and leave other managers. Managed fields that `new` carries replace the stored ones
/// (unless a subresource is written); `[]` resets them. Objects that have no managed fields
/// are not tracked, as in Kubernetes. Never fails: undecodable managed fields are dropped.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    options: &UpdateOptions<'_>,
    schema: &SchemaRef,
) {
    let Some(new_metadata) = new.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let supplied = new_metadata.shift_remove("managedFields");
    let stored_value = old.and_then(|o| o.pointer("/metadata/managedFields"));
    let stored = stored_value.and_then(|v| Managed::decode(v).ok());
    let mut managed = if options.subresource.is_some() {
        stored.clone().unwrap_or_default()
    } else if is_reset(supplied.as_ref()) {
        Managed::default()
    } else {
        match supplied.as_ref().map(Managed::decode) {
            Some(Ok(m)) if !m.is_empty() => m,
            _ => stored.clone().unwrap_or_default(),
        }
    };
    if managed.is_empty() && old.is_some() {
        return;
    }
    let ctx = Ctx::new(schema, options.reset_fields);
    let id = ManagerId::new(
        options.manager,
        Operation::Update,
        options.api_version,
        options.subresource,
    );
    let zero;
    let live = match old {
        Some(old) => old,
        None => {
            zero = ctx.arena.zero_value(ctx.root, 0);
            &zero
        }
    };
    ctx.record(
        live,
        new,
        &mut managed,
        &id,
        options.api_version,
        options.time,
    );
    cap_update_managers(&mut managed);
    match (old, stored_value, stored) {
        (Some(old), Some(stored_value), Some(stored))
            if managed.same_ignoring_time(&stored) && equal_ignoring_managed_fields(old, new) =>
        {
            set_managed_fields(new, Some(stored_value.clone()));
        }
        _ => set_managed_fields(new, managed.encode()),
    }
}

/// `[]` or `[{}]`: the client asks to forget all managers.
fn is_reset(supplied: Option<&Value>) -> bool {
    match supplied {
        Some(Value::Array(items)) => {
            items.is_empty()
                || (items.len() == 1 && items[0].as_object().is_some_and(Map::is_empty))
        }
        _ => false,
    }
}

struct Ctx<'a> {
    arena: &'a Arena,
    root: NodeId,
    reset: Set,
    strip: &'static Set,
}

/// Fields nobody owns (apimachinery's stripMetaManager).
static STRIP: LazyLock<Set> = LazyLock::new(|| {
    let mut strip = Set::new();
    for path in [
        &["apiVersion"][..],
        &["kind"],
        &["metadata"],
        &["metadata", "name"],
        &["metadata", "namespace"],
        &["metadata", "creationTimestamp"],
        &["metadata", "selfLink"],
        &["metadata", "uid"],
        &["metadata", "clusterName"],
        &["metadata", "generation"],
        &["metadata", "managedFields"],
        &["metadata", "resourceVersion"],
    ] {
        let path: Vec<PathElement> = path.iter().map(|s| PathElement::field(s)).collect();
        strip.insert(&path);
    }
    strip
});

impl<'a> Ctx<'a> {
    fn new(schema: &'a SchemaRef, reset_fields: &[&str]) -> Self {
        let mut reset = Set::new();
        for dotted in reset_fields {
            let path: Vec<PathElement> = dotted
                .split('.')
                .filter(|s| !s.is_empty())
                .map(PathElement::field)
                .collect();
            reset.insert(&path);
        }
        Ctx {
            arena: &schema.arena,
            root: schema.root,
            reset,
            strip: &STRIP,
        }
    }

    /// structured-merge-diff's `update`: compares the objects and takes the changed fields
    /// from every manager but `except`; with `force` false, changed fields others own are
    /// returned as conflicts instead.
    fn update(
        &self,
        live: &Value,
        new: &Value,
        managed: &mut Managed,
        except: Option<&ManagerId>,
        force: bool,
    ) -> std::result::Result<Comparison, Vec<(ManagerId, Set)>> {
        let mut compare = Walker::new(self.arena, false).compare(live, new, self.root);
        compare.exclude(&self.reset);
        let changed = compare.modified.union(&compare.added);
        let mut conflicts = Vec::new();
        for entry in &managed.entries {
            if Some(&entry.id) == except {
                continue;
            }
            let conflict = entry.set.intersection(&changed);
            if !conflict.is_empty() {
                conflicts.push((entry.id.clone(), conflict));
            }
        }
        if !force && !conflicts.is_empty() {
            return Err(conflicts);
        }
        for entry in &mut managed.entries {
            if Some(&entry.id) == except {
                continue;
            }
            if let Some((_, conflict)) = conflicts.iter().find(|(id, _)| *id == entry.id) {
                entry.set = entry.set.difference(conflict);
            }
            if !compare.removed.is_empty() {
                entry.set = entry.set.difference(&compare.removed);
            }
        }
        managed.drop_empty();
        Ok(compare)
    }

    /// An `Update` by `id` from `live` to `new` (managedFieldsUpdater + stripMeta +
    /// structured-merge-diff's `Update`).
    fn record(
        &self,
        live: &Value,
        new: &Value,
        managed: &mut Managed,
        id: &ManagerId,
        api_version: &str,
        time: &str,
    ) {
        let Ok(compare) = self.update(live, new, managed, None, true) else {
            unreachable!("forced updates have no conflicts")
        };
        let owned = compare
            .modified
            .union(&compare.added)
            .recursive_difference(&self.reset)
            .difference(self.strip);
        if owned.is_empty() {
            return;
        }
        let set = match managed.get(id) {
            Some(previous) => owned.union(&previous.set),
            None => owned,
        };
        managed.put(Entry {
            id: id.clone(),
            api_version: api_version.to_string(),
            set,
            time: Some(time.to_string()),
        });
    }

    /// structured-merge-diff's `Apply` (+ stripMeta). `Ok(Err(conflicts))` when other
    /// managers own fields the apply changes and `force` is false. The object is `None` when
    /// the apply changes nothing.
    #[allow(clippy::type_complexity)]
    fn apply(
        &self,
        live: &Value,
        config: &Value,
        mut managed: Managed,
        applier: &ManagerId,
        options: &ApplyOptions<'_>,
        force: bool,
    ) -> Result<std::result::Result<(Option<Value>, Managed), Vec<(ManagerId, Set)>>> {
        let mut strict = Walker::new(self.arena, true);
        let set = strict.field_set(config, self.root)?;
        let merged = strict.merge(live, config, self.root)?;
        let last = managed.get(applier).map(|e| e.set.clone());
        let previous_time = managed.get(applier).and_then(|e| e.time.clone());
        managed.put(Entry {
            id: applier.clone(),
            api_version: options.api_version.to_string(),
            set: set.recursive_difference(&self.reset),
            time: previous_time,
        });
        let new = match &last {
            Some(last) if !last.is_empty() => self.prune(&merged, &managed, last),
            _ => merged,
        };
        if let Err(conflicts) = self.update(live, &new, &mut managed, Some(applier), force) {
            return Ok(Err(conflicts));
        }
        if let Some(entry) = managed.get_mut(applier) {
            entry.set = entry.set.difference(self.strip);
        }
        managed.drop_empty();
        let changed = !values_equal(live, &new);
        Ok(Ok((changed.then_some(new), managed)))
    }

    /// Removes what the applier applied last time and applies no more, unless another
    /// manager owns it (structured-merge-diff's `prune`, `addBackOwnedItems`,
    /// `addBackDanglingItems`).
    fn prune(&self, merged: &Value, managed: &Managed, last: &Set) -> Value {
        let w = Walker::new(self.arena, false);
        let named = |s: &Set| w.ensure_named_fields_are_members(s, Some(self.root));
        let field_set = |v: &Value| {
            let mut walker = Walker::new(self.arena, false);
            walker.field_set(v, self.root).unwrap_or_default()
        };
        let last = named(last);
        let pruned = w.remove(merged, &last, self.root);

        let mut all = Set::new();
        for entry in &managed.entries {
            all = all.union(&entry.set);
        }
        let merged_set = named(&field_set(merged));
        let pruned_set = named(&field_set(&pruned));
        let owned = named(&all);
        let pruned = w.remove(
            merged,
            &merged_set.difference(&pruned_set.union(&owned)),
            self.root,
        );

        let pruned_set = named(&field_set(&pruned));
        w.remove(
            merged,
            &merged_set.difference(&pruned_set).intersection(&last),
            self.root,
        )
    }

    /// The fields kubectl may take over from client-side apply: those of the
    /// `last-applied-configuration` annotation whose live value is still the applied one.
    fn allowed_by_last_applied(&self, live: &Value, api_version: &str) -> Option<Set> {
        let text = live
            .pointer("/metadata/annotations")?
            .get(LAST_APPLIED)?
            .as_str()?;
        if text.is_empty() {
            return None;
        }
        let last: Value = serde_json::from_str(text).ok()?;
        if last.get("apiVersion").and_then(Value::as_str) != Some(api_version) {
            return None;
        }
        let set = Walker::new(self.arena, true)
            .field_set(&last, self.root)
            .ok()?;
        let compare = Walker::new(self.arena, false).compare(&last, live, self.root);
        Some(
            set.difference(&compare.modified)
                .difference(&compare.added)
                .difference(&compare.removed),
        )
    }
}

fn conflict_error(mut conflicts: Vec<(ManagerId, Set)>) -> Error {
    conflicts.sort_by_key(|(id, _)| id.key());
    let mut list = Vec::new();
    let mut lines = Vec::new();
    for (id, set) in &conflicts {
        let manager = id.display();
        lines.push(format!("conflicts with {manager}:"));
        for path in set.paths() {
            let path = PathDisplay(&path).to_string();
            lines.push(format!("- {path}"));
            list.push(FieldConflict {
                manager: manager.clone(),
                path,
            });
        }
    }
    let message = if list.len() == 1 {
        format!("Apply failed with 1 conflict: {}", list[0])
    } else {
        format!(
            "Apply failed with {} conflicts: {}",
            list.len(),
            lines.join("\n")
        )
    };
    Error::Conflicts {
        conflicts: list,
        message,
    }
}

/// Drops managers beyond the ten most recent `Update` ones into `ancient-changes`
/// (apimachinery's capManagersManager).
fn cap_update_managers(managed: &mut Managed) {
    let mut updaters: Vec<ManagerId> = managed
        .entries
        .iter()
        .filter(|e| e.id.operation == Operation::Update)
        .map(|e| e.id.clone())
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    let time_of =
        |id: &ManagerId, m: &Managed| unix_seconds(m.get(id).and_then(|e| e.time.as_deref()));
    updaters.sort_by(|a, b| {
        time_of(a, managed)
            .cmp(&time_of(b, managed))
            .then_with(|| a.key().cmp(&b.key()))
    });
    let mut first_of_version: Vec<(String, ManagerId)> = Vec::new();
    let mut length = updaters.len();
    for id in updaters {
        if length <= MAX_UPDATE_MANAGERS {
            break;
        }
        let Some(entry) = managed.get(&id).cloned() else {
            continue;
        };
        let version = entry.api_version.clone();
        let bucket = ManagerId::new(ANCIENT_CHANGES, Operation::Update, &version, None);
        match first_of_version.iter().find(|(v, _)| *v == version) {
            Some((_, first)) => {
                if managed.get(&bucket).is_none()
                    && let Some(mut first_entry) = managed.remove(first)
                {
                    first_entry.id = bucket.clone();
                    managed.put(first_entry);
                }
                let bucket_set = managed
                    .get(&bucket)
                    .map(|b| b.set.clone())
                    .unwrap_or_default();
                managed.put(Entry {
                    id: bucket.clone(),
                    api_version: version,
                    set: entry.set.union(&bucket_set),
                    time: entry.time.clone(),
                });
                managed.remove(&id);
                length -= 1;
            }
            None => first_of_version.push((version, id)),
        }
    }
}

/// The object without `metadata.managedFields`, and that value.
fn split_managed_fields(object: &Value) -> (Value, Option<Value>) {
    let mut copy = object.clone();
    let managed = copy
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.shift_remove("managedFields"));
    (copy, managed.filter(|v| !v.is_null()))
}

fn set_managed_fields(object: &mut Value, managed: Option<Value>) {
    let Value::Object(map) = object else { return };
    match managed {
        Some(value) => {
            let metadata = map
                .entry("metadata")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(metadata) = metadata {
                metadata.insert("managedFields".into(), value);
            }
        }
        None => {
            if let Some(Value::Object(metadata)) = map.get_mut("metadata") {
                metadata.shift_remove("managedFields");
            }
        }
    }
}

/// Writes the managed fields into the result, keeping the stored entries verbatim when
/// nothing but their timestamps would change (Kubernetes' IgnoreManagedFieldsTimestamps).
fn finish(
    result: &mut Value,
    live: &Value,
    managed: &Managed,
    stored: &Managed,
    stored_value: Option<Value>,
) {
    if let Some(stored_value) = stored_value
        && values_equal(result, live)
        && managed.same_ignoring_time(stored)
    {
        set_managed_fields(result, Some(stored_value));
        return;
    }
    set_managed_fields(result, managed.encode());
}

/// Equal objects, `metadata.managedFields` aside (compared without copying).
fn equal_ignoring_managed_fields(a: &Value, b: &Value) -> bool {
    let (Value::Object(a), Value::Object(b)) = (a, b) else {
        return values_equal(a, b);
    };
    let same_maps = |a: &Map<String, Value>, b: &Map<String, Value>, skip: &str| {
        let len = |m: &Map<String, Value>| m.len() - usize::from(m.contains_key(skip));
        len(a) == len(b)
            && a.iter()
                .filter(|(k, _)| k.as_str() != skip)
                .all(|(k, v)| b.get(k).is_some_and(|w| values_equal(v, w)))
    };
    if !same_maps(a, b, "metadata") {
        return false;
    }
    match (a.get("metadata"), b.get("metadata")) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => same_maps(x, y, "managedFields"),
        (x, y) => x == y,
    }
}

/// kubectl's server-side apply keeps an existing `last-applied-configuration` annotation in
/// step with what it applies (apimachinery's lastAppliedUpdater).
fn sync_last_applied(result: &mut Value, config: &Value) {
    let Some(annotations) = result
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if annotations
        .get(LAST_APPLIED)
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return;
    }
    let mut applied = config.clone();
    if let Some(a) = applied
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        a.shift_remove(LAST_APPLIED);
    }
    let mut text = to_go_json(&applied);
    text.push('\n');
    annotations.insert(LAST_APPLIED.into(), Value::String(text));
    let size: usize = annotations
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    if size > MAX_ANNOTATIONS_SIZE {
        annotations.shift_remove(LAST_APPLIED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::builtin;
    use serde_json::json;

    const T1: &str = "2026-02-01T10:00:00Z";
    const T2: &str = "2026-02-01T10:05:00Z";

    fn pod() -> SchemaRef {
        builtin("", "v1", "Pod").unwrap()
    }

    fn opts<'a>(manager: &'a str, time: &'a str) -> ApplyOptions<'a> {
        ApplyOptions {
            manager,
            force: false,
            api_version: "v1",
            subresource: None,
            time,
            reset_fields: &["status"],
        }
    }

    fn update<'a>(manager: &'a str, time: &'a str) -> UpdateOptions<'a> {
        UpdateOptions {
            manager,
            api_version: "v1",
            subresource: None,
            time,
            reset_fields: &["status"],
        }
    }

    fn pod_config(image: &str, labels: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "labels": labels},
            "spec": {"containers": [{"name": "nginx", "image": image}]}
        })
    }

    fn fields_of(object: &Value, manager: &str) -> String {
        let entry = object["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == manager)
            .unwrap_or_else(|| panic!("no {manager} in {object}"));
        serde_json::to_string(&entry["fieldsV1"]).unwrap()
    }

    fn without_managed_fields(v: &Value) -> Value {
        let mut v = v.clone();
        set_managed_fields(&mut v, None);
        v
    }

    #[test]
    fn create_by_apply_owns_exactly_the_applied_fields() {
        let config = pod_config("nginx:1", json!({"app": "web"}));
        let out = apply(None, &config, &opts("kubectl", T1), &pod()).unwrap();
        assert_eq!(without_managed_fields(&out), config);
        assert_eq!(
            out["metadata"]["managedFields"],
            json!([{
                "manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": T1,
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}}}}
            }])
        );
    }

    #[test]
    fn reapplying_without_a_field_removes_it_unless_someone_else_owns_it() {
        let first = apply(
            None,
            &pod_config("nginx:1", json!({"a": "1", "b": "2"})),
            &opts("kubectl", T1),
            &pod(),
        )
        .unwrap();
        // Another manager sets label c and co-owns b (same value, so no conflict).
        let mut other = first.clone();
        other["metadata"]["labels"]["c"] = json!("3");
        record_update(Some(&first), &mut other, &update("editor", T1), &pod());
        let co = apply(Some(&other), &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"b": "2"}}}),
            &opts("helper", T1), &pod()).unwrap();
        let out = apply(
            Some(&co),
            &pod_config("nginx:1", json!({"a": "1"})),
            &opts("kubectl", T2),
            &pod(),
        )
        .unwrap();
        assert_eq!(
            out["metadata"]["labels"],
            json!({"a": "1", "b": "2", "c": "3"})
        );
        // Without the co-owner, b goes.
        let out = apply(
            Some(&other),
            &pod_config("nginx:1", json!({"a": "1"})),
            &opts("kubectl", T2),
            &pod(),
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"a": "1", "c": "3"}));
        assert_eq!(
            fields_of(&out, "kubectl"),
            r#"{"f:metadata":{"f:labels":{"f:a":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{}}}}}"#
        );
        // Removing every label leaves no null behind.
        let out = apply(
            Some(&first),
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1"}]}}),
            &opts("kubectl", T2),
            &pod(),
        )
        .unwrap();
        assert!(out["metadata"].get("labels").is_none(), "{out}");
    }

    #[test]
    fn conflicts_list_every_field_and_force_takes_them() {
        let first = apply(
            None,
            &pod_config("nginx:1", json!({"a": "1"})),
            &opts("one", T1),
            &pod(),
        )
        .unwrap();
        let err = apply(
            Some(&first),
            &pod_config("nginx:2", json!({"a": "2"})),
            &opts("two", T2),
            &pod(),
        )
        .unwrap_err();
        assert!(err.is_conflict());
        assert_eq!(
            err.to_string(),
            "Apply failed with 2 conflicts: conflicts with \"one\":\n- .metadata.labels.a\n- .spec.containers[name=\"nginx\"].image"
        );
        let forced = apply(
            Some(&first),
            &pod_config("nginx:2", json!({"a": "2"})),
            &ApplyOptions {
                force: true,
                ..opts("two", T2)
            },
            &pod(),
        )
        .unwrap();
        assert_eq!(forced["spec"]["containers"][0]["image"], "nginx:2");
        assert_eq!(
            fields_of(&forced, "one"),
            r#"{"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:name":{}}}}}"#
        );
        // Same values: shared ownership, no conflict.
        let shared = apply(
            Some(&first),
            &pod_config("nginx:1", json!({"a": "1"})),
            &opts("two", T2),
            &pod(),
        )
        .unwrap();
        assert_eq!(fields_of(&shared, "one"), fields_of(&shared, "two"));
    }

    #[test]
    fn bad_configurations_are_bad_requests_naming_the_field() {
        let schema = pod();
        let check = |config: Value, needle: &str| {
            let e = apply(None, &config, &opts("m", T1), &schema).unwrap_err();
            assert!(e.is_bad_request(), "{e}");
            assert!(e.to_string().contains(needle), "{e} lacks {needle}");
        };
        check(
            json!({"apiVersion": "v2", "kind": "Pod"}),
            "Incorrect version specified in apply patch",
        );
        check(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"managedFields": []}}),
            "managedFields must be nil",
        );
        check(
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {"bogus": 1}}),
            ".spec.bogus: field not declared in schema",
        );
        check(
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": "x"}}),
            "expected a list",
        );
        check(
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"image": "x"}]}}),
            "omits all key fields",
        );
        check(
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "a"}, {"name": "a"}]}}),
            "duplicate entries for key",
        );
        check(
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {"activeDeadlineSeconds": "x"}}),
            "expected numeric",
        );
        check(json!([]), "must be a JSON object");
    }

    #[test]
    fn first_apply_to_an_untracked_object_gives_existing_fields_to_before_first_apply() {
        let live = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"x": "1"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1"}]}});
        let out = apply(
            Some(&live),
            &pod_config("nginx:1", json!({"a": "1"})),
            &opts("kubectl", T1),
            &pod(),
        )
        .unwrap();
        assert_eq!(
            fields_of(&out, "before-first-apply"),
            r#"{"f:metadata":{"f:labels":{".":{},"f:x":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{}}}}}"#
        );
        assert_eq!(out["metadata"]["labels"], json!({"x": "1", "a": "1"}));
    }

    #[test]
    fn reset_fields_are_never_owned() {
        let mut config = pod_config("nginx:1", json!({}));
        config["status"] = json!({"phase": "Running"});
        let out = apply(None, &config, &opts("kubectl", T1), &pod()).unwrap();
        assert!(!fields_of(&out, "kubectl").contains("status"));
        // The status subresource: only status is owned, with the subresource recorded.
        let status_opts = ApplyOptions {
            subresource: Some("status"),
            reset_fields: &["spec", "metadata"],
            ..opts("kubelet", T2)
        };
        let out = apply(Some(&out), &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "status": {"phase": "Failed"}}), &status_opts, &pod()).unwrap();
        let kubelet = out["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == "kubelet")
            .unwrap()
            .clone();
        assert_eq!(kubelet["subresource"], "status");
        assert_eq!(kubelet["fieldsV1"], json!({"f:status": {"f:phase": {}}}));
    }

    #[test]
    fn record_update_tracks_changes_and_keeps_untracked_objects_untracked() {
        let schema = pod();
        let mut created = pod_config("nginx:1", json!({"a": "1"}));
        record_update(None, &mut created, &update("kubectl-create", T1), &schema);
        assert_eq!(created["metadata"]["managedFields"][0]["time"], T1);
        // An update that changes nothing keeps the entry (and its time) as is.
        let mut same = created.clone();
        record_update(
            Some(&created),
            &mut same,
            &update("kubectl-create", T2),
            &schema,
        );
        assert_eq!(same, created);
        // A change by another manager moves the field.
        let mut changed = created.clone();
        changed["spec"]["containers"][0]["image"] = json!("nginx:2");
        record_update(
            Some(&created),
            &mut changed,
            &update("kubectl-set", T2),
            &schema,
        );
        assert_eq!(
            fields_of(&changed, "kubectl-set"),
            r#"{"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{"f:image":{}}}}}"#
        );
        assert!(!fields_of(&changed, "kubectl-create").contains("f:image"));
        // Objects without managed fields are not tracked by updates.
        let untracked = without_managed_fields(&created);
        let mut next = untracked.clone();
        next["metadata"]["labels"]["b"] = json!("2");
        record_update(Some(&untracked), &mut next, &update("x", T2), &schema);
        assert!(next["metadata"].get("managedFields").is_none());
        // `[]` resets, a subresource cannot set managed fields.
        let mut reset = created.clone();
        reset["metadata"]["managedFields"] = json!([]);
        record_update(Some(&created), &mut reset, &update("x", T2), &schema);
        assert!(reset["metadata"].get("managedFields").is_none());
        let mut sub = created.clone();
        sub["metadata"]["managedFields"] = json!([]);
        sub["status"] = json!({"phase": "Running"});
        record_update(
            Some(&created),
            &mut sub,
            &UpdateOptions {
                subresource: Some("status"),
                reset_fields: &["spec"],
                ..update("kubelet", T2)
            },
            &schema,
        );
        let entries = sub["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1]["subresource"], "status");
        // Undecodable managed fields in the write fall back to the stored ones.
        let mut bad = created.clone();
        bad["metadata"]["managedFields"] = json!([{"manager": "x"}]);
        record_update(Some(&created), &mut bad, &update("x", T2), &schema);
        assert_eq!(bad, created);
    }

    #[test]
    fn at_most_ten_update_managers() {
        let schema = pod();
        let mut object = pod_config("nginx:1", json!({}));
        record_update(
            None,
            &mut object,
            &update("m0", "2026-01-01T00:00:00Z"),
            &schema,
        );
        for i in 1..=11 {
            let mut next = object.clone();
            next["metadata"]["labels"][format!("l{i}")] = json!("v");
            let time = format!("2026-01-01T00:00:{i:02}Z");
            record_update(
                Some(&object),
                &mut next,
                &update(&format!("m{i}"), &time),
                &schema,
            );
            object = next;
        }
        let managers: Vec<&str> = object["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers.len(), 10);
        assert!(managers.contains(&"ancient-changes"), "{managers:?}");
        assert!(
            !managers.contains(&"m0") && !managers.contains(&"m1") && !managers.contains(&"m2"),
            "{managers:?}"
        );
        let ancient = fields_of(&object, "ancient-changes");
        assert!(
            ancient.contains("f:l1")
                && ancient.contains("f:l2")
                && ancient.contains("f:containers"),
            "{ancient}"
        );
    }

    #[test]
    fn set_items_are_values() {
        let schema = builtin("apps", "v1", "Deployment").unwrap();
        let config = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "finalizers": ["a/b", "c"]}});
        let out = apply(
            None,
            &config,
            &ApplyOptions {
                api_version: "apps/v1",
                ..opts("m", T1)
            },
            &schema,
        )
        .unwrap();
        assert_eq!(
            fields_of(&out, "m"),
            r#"{"f:metadata":{"f:finalizers":{"v:\"a/b\"":{},"v:\"c\"":{}}}}"#
        );
        let dropped = apply(Some(&out), &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "finalizers": ["c"]}}),
            &ApplyOptions { api_version: "apps/v1", ..opts("m", T2) }, &schema).unwrap();
        assert_eq!(dropped["metadata"]["finalizers"], json!(["c"]));
    }

    #[test]
    fn appliers_and_updaters_share_a_set() {
        let schema = crate::schema::from_crd_openapi(&json!({"type": "object", "properties": {
            "list": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
        }}))
        .unwrap();
        let o = |list: Value| json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "k"}, "list": list});
        let first = apply(None, &o(json!(["a", "c"])), &opts("default", T1), &schema).unwrap();
        let mut updated = o(json!(["a", "b", "c", "d"]));
        updated["metadata"]["managedFields"] = first["metadata"]["managedFields"].clone();
        record_update(
            Some(&first),
            &mut updated,
            &update("controller", T1),
            &schema,
        );
        let out = apply(
            Some(&updated),
            &o(json!(["a", "aprime", "c", "cprime"])),
            &opts("default", T2),
            &schema,
        )
        .unwrap();
        assert_eq!(out["list"], json!(["a", "b", "aprime", "c", "d", "cprime"]));
        assert_eq!(
            fields_of(&out, "default"),
            r#"{"f:list":{"v:\"a\"":{},"v:\"aprime\"":{},"v:\"c\"":{},"v:\"cprime\"":{}}}"#
        );
        assert_eq!(
            fields_of(&out, "controller"),
            r#"{"f:list":{"v:\"b\"":{},"v:\"d\"":{}}}"#
        );
        // The applier drops c: nobody else owns it, so it goes; b stays with the controller.
        let out = apply(Some(&out), &o(json!(["a"])), &opts("default", T2), &schema).unwrap();
        assert_eq!(out["list"], json!(["a", "b", "d"]));
    }

    mod laws {
        use super::*;
        use crate::typed::Walker;
        use proptest::prelude::{Strategy as _, prop_assert, prop_assert_eq, proptest};

        fn config() -> impl proptest::strategy::Strategy<Value = Value> {
            let container = (
                "[a-c]",
                proptest::option::of("img[0-2]"),
                proptest::collection::btree_map("[A-C]", "[xy]", 0..3),
            )
                .prop_map(|(name, image, env)| {
                    let mut c = json!({"name": name});
                    if let Some(image) = image {
                        c["image"] = json!(image);
                    }
                    if !env.is_empty() {
                        c["env"] = Value::Array(
                            env.into_iter()
                                .map(|(k, v)| json!({"name": k, "value": v}))
                                .collect(),
                        );
                    }
                    c
                });
            (
                proptest::collection::btree_map("[a-d]", "[0-2]", 0..4),
                proptest::collection::vec(container, 1..4),
                proptest::option::of(0i64..100),
            )
                .prop_map(|(labels, containers, deadline)| {
                    let mut seen = std::collections::BTreeSet::new();
                    let containers: Vec<Value> = containers
                        .into_iter()
                        .filter(|c| seen.insert(c["name"].as_str().unwrap().to_string()))
                        .collect();
                    let mut config = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                        "spec": {"containers": containers}});
                    if !labels.is_empty() {
                        config["metadata"]["labels"] = json!(labels);
                    }
                    if let Some(d) = deadline {
                        config["spec"]["activeDeadlineSeconds"] = json!(d);
                    }
                    config
                })
        }

        fn owned(object: &Value, manager: &str) -> Set {
            let entry = object["metadata"]["managedFields"]
                .as_array()
                .and_then(|a| a.iter().find(|e| e["manager"] == manager));
            entry
                .map(|e| Set::from_fields_v1(&e["fieldsV1"]).unwrap())
                .unwrap_or_default()
        }

        proptest! {
            #[test]
            fn apply_twice_is_idempotent(a in config(), b in config()) {
                let first = apply(None, &a, &opts("kubectl", T1), &pod()).unwrap();
                let once = apply(Some(&first), &b, &opts("kubectl", T2), &pod()).unwrap();
                let twice = apply(Some(&once), &b, &opts("kubectl", "2026-02-01T11:00:00Z"), &pod()).unwrap();
                prop_assert_eq!(once, twice);
            }

            #[test]
            fn the_applier_owns_exactly_the_applied_fields(a in config(), b in config()) {
                let schema = pod();
                let first = apply(None, &a, &opts("kubectl", T1), &schema).unwrap();
                let out = apply(Some(&first), &b, &opts("kubectl", T2), &schema).unwrap();
                let expected = Walker::new(&schema.arena, true)
                    .field_set(&b, schema.root)
                    .unwrap()
                    .difference(&STRIP);
                prop_assert_eq!(owned(&out, "kubectl"), expected);
            }

            #[test]
            fn a_sole_applier_ends_with_its_configuration(a in config(), b in config()) {
                let first = apply(None, &a, &opts("kubectl", T1), &pod()).unwrap();
                prop_assert_eq!(without_managed_fields(&first), a);
                let out = apply(Some(&first), &b, &opts("kubectl", T2), &pod()).unwrap();
                let out = without_managed_fields(&out);
                // Everything applied is there with the applied value; nothing else is.
                let schema = pod();
                let walker = Walker::new(&schema.arena, false);
                let applied = Walker::new(&schema.arena, true).field_set(&b, schema.root).unwrap();
                let mut w = Walker::new(&schema.arena, false);
                let present = w.field_set(&out, schema.root).unwrap();
                prop_assert_eq!(walker.ensure_named_fields_are_members(&present, Some(schema.root)),
                    walker.ensure_named_fields_are_members(&applied, Some(schema.root)));
                prop_assert!(Walker::new(&schema.arena, false).compare(&b, &out, schema.root).modified.is_empty());
            }

            #[test]
            fn updates_with_the_same_values_never_conflict(a in config()) {
                let mut created = a.clone();
                record_update(None, &mut created, &update("creator", T1), &pod());
                let out = apply(Some(&created), &a, &opts("kubectl", T2), &pod());
                prop_assert!(out.is_ok(), "{:?}", out.err());
            }
        }
    }
}
