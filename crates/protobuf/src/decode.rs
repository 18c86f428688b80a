//! The table-driven decoder: protobuf message bytes → `serde_json::Value`, following Go's
//! JSON rules for the Kubernetes types (which fields are written when zero or absent).
//!
//! Decoding is two passes over one message: `fill` reads every field into its slot (last
//! value wins for scalars, occurrences of a non-repeated message are kept and merged as
//! protobuf requires), then `object` writes the slots in Go declaration order. Errors carry
//! the path as it unwinds, so the happy path never builds path strings.

use crate::codec;
use crate::error::Problem;
use crate::generated::MESSAGES;
use crate::schema::{Codec, Field, INLINE, Message, OMITEMPTY, POINTER, Shape, Type};
use crate::wire::{FIXED64, LEN, Reader, VARINT};
use base64::Engine as _;
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Deepest message nesting accepted (CRD schemas nest two messages per level).
pub(crate) const MAX_DEPTH: usize = 100;

/// Limits for one decode: nesting depth, JSON values produced, bytes copied by merges.
pub(crate) struct Ctx {
    depth: usize,
    nodes: usize,
    node_limit: usize,
    copied: usize,
    copy_limit: usize,
}

impl Ctx {
    pub(crate) fn new(body_len: usize) -> Self {
        Ctx {
            depth: 0,
            nodes: 0,
            node_limit: node_limit(body_len),
            copied: 0,
            copy_limit: body_len.saturating_mul(4).max(1 << 16),
        }
    }

    pub(crate) fn count(&mut self, n: usize) -> Result<(), Fail> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > self.node_limit {
            return Err(Fail::new(FailKind::TooLarge));
        }
        Ok(())
    }
}

/// How many JSON values a body of `len` bytes may expand to. Go's encoder writes every
/// non-pointer field, so real bodies stay far below one value per byte; the margin covers
/// required fields that a sparse encoder left out.
pub(crate) fn node_limit(len: usize) -> usize {
    len.saturating_mul(8).saturating_add(4096)
}

pub(crate) enum FailKind {
    Malformed(Problem),
    Invalid(String),
    TooDeep,
    TooLarge,
}

pub(crate) enum Seg {
    Field(&'static str),
    Index(usize),
    Key(String),
}

/// A decode failure with its path, innermost segment first.
pub(crate) struct Fail {
    pub(crate) kind: FailKind,
    path: Vec<Seg>,
}

impl Fail {
    pub(crate) fn new(kind: FailKind) -> Self {
        Fail {
            kind,
            path: Vec::new(),
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Fail::new(FailKind::Invalid(reason.into()))
    }

    pub(crate) fn at(mut self, seg: Seg) -> Self {
        if !matches!(seg, Seg::Field("")) {
            self.path.push(seg);
        }
        self
    }

    /// The JSON path, outermost first: `spec.containers[2].ports`.
    pub(crate) fn path(&self) -> String {
        let mut out = String::new();
        for seg in self.path.iter().rev() {
            match seg {
                Seg::Field(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
                Seg::Key(k) => out.push_str(&format!("[{k}]")),
            }
        }
        out
    }
}

impl From<Problem> for Fail {
    fn from(p: Problem) -> Self {
        Fail::new(FailKind::Malformed(p))
    }
}

/// One field's collected value.
pub(crate) enum Slot<'a> {
    Absent,
    Scalar(Value),
    /// Occurrences of a non-repeated message field, merged when written.
    Message(Vec<&'a [u8]>),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

/// Decodes the message at `index` of the table from `buf`.
pub(crate) fn message(index: u16, buf: &[u8], ctx: &mut Ctx) -> Result<Value, Fail> {
    let msg = &MESSAGES[usize::from(index)];
    if ctx.depth >= MAX_DEPTH {
        return Err(Fail::new(FailKind::TooDeep));
    }
    ctx.depth += 1;
    ctx.count(1)?;
    let result = match msg.codec {
        Codec::Object => object(msg, buf, ctx).map(Value::Object),
        _ => codec::special(msg, buf, ctx),
    };
    ctx.depth -= 1;
    result
}

fn object(msg: &'static Message, buf: &[u8], ctx: &mut Ctx) -> Result<Map<String, Value>, Fail> {
    let mut slots = fill(msg, buf, ctx)?;
    let mut out = Map::new();
    for &i in msg.order {
        let field = &msg.fields[usize::from(i)];
        let slot = std::mem::replace(&mut slots[usize::from(i)], Slot::Absent);
        write(field, slot, &mut out, ctx).map_err(|e| e.at(Seg::Field(field.json)))?;
    }
    Ok(out)
}

/// Reads every field of `msg` in `buf` into its slot; unknown fields are skipped.
pub(crate) fn fill<'a>(
    msg: &'static Message,
    buf: &'a [u8],
    ctx: &mut Ctx,
) -> Result<Vec<Slot<'a>>, Fail> {
    let mut slots: Vec<Slot<'a>> = msg.fields.iter().map(|_| Slot::Absent).collect();
    let mut r = Reader::new(buf);
    while !r.at_end() {
        let (number, wire) = r.key()?;
        match msg.field(number) {
            Some((i, field)) => read(field, wire, &mut r, &mut slots[i], ctx)
                .map_err(|e| e.at(Seg::Field(field.json)))?,
            None => r.skip(wire)?,
        }
    }
    Ok(slots)
}

fn expect(wire: u8, expected: u8) -> Result<(), Fail> {
    if wire == expected {
        Ok(())
    } else {
        Err(Problem::WrongWireType {
            expected,
            found: wire,
        }
        .into())
    }
}

fn natural_wire(ty: Type) -> u8 {
    match ty {
        Type::Int32 | Type::Int64 | Type::Bool => VARINT,
        Type::Double => FIXED64,
        Type::String | Type::Bytes | Type::Message(_) => LEN,
    }
}

fn read<'a>(
    field: &Field,
    wire: u8,
    r: &mut Reader<'a>,
    slot: &mut Slot<'a>,
    ctx: &mut Ctx,
) -> Result<(), Fail> {
    match field.shape {
        Shape::Single => match field.ty {
            Type::Message(_) => {
                expect(wire, LEN)?;
                let bytes = r.bytes()?;
                match slot {
                    Slot::Message(parts) => parts.push(bytes),
                    _ => *slot = Slot::Message(vec![bytes]),
                }
            }
            ty => *slot = Slot::Scalar(scalar(ty, wire, r, ctx)?),
        },
        Shape::Repeated => {
            if !matches!(slot, Slot::List(_)) {
                *slot = Slot::List(Vec::new());
            }
            let Slot::List(list) = slot else {
                unreachable!("slot was just made a list")
            };
            match field.ty {
                Type::Message(t) => {
                    expect(wire, LEN)?;
                    let bytes = r.bytes()?;
                    let v = message(t, bytes, ctx).map_err(|e| e.at(Seg::Index(list.len())))?;
                    list.push(v);
                }
                ty if wire == LEN && natural_wire(ty) != LEN => {
                    // Packed repeated scalars.
                    let mut packed = Reader::new(r.bytes()?);
                    while !packed.at_end() {
                        let v = scalar(ty, natural_wire(ty), &mut packed, ctx)
                            .map_err(|e| e.at(Seg::Index(list.len())))?;
                        list.push(v);
                    }
                }
                ty => {
                    let v = scalar(ty, wire, r, ctx).map_err(|e| e.at(Seg::Index(list.len())))?;
                    list.push(v);
                }
            }
        }
        Shape::Map => {
            expect(wire, LEN)?;
            let entry = r.bytes()?;
            if !matches!(slot, Slot::Map(_)) {
                *slot = Slot::Map(BTreeMap::new());
            }
            let Slot::Map(map) = slot else {
                unreachable!("slot was just made a map")
            };
            let (key, value) = map_entry(field.ty, entry, ctx)?;
            map.insert(key, value);
        }
    }
    Ok(())
}

/// A map entry message {key = 1, value = 2}; a missing key or value is the zero value.
fn map_entry(ty: Type, entry: &[u8], ctx: &mut Ctx) -> Result<(String, Value), Fail> {
    let mut r = Reader::new(entry);
    let mut key = String::new();
    let mut scalar_value: Option<Value> = None;
    let mut message_value: Option<&[u8]> = None;
    while !r.at_end() {
        let (number, wire) = r.key()?;
        match number {
            1 => {
                expect(wire, LEN)?;
                key = String::from_utf8_lossy(r.bytes()?).into_owned();
            }
            2 => match ty {
                Type::Message(_) => {
                    expect(wire, LEN)?;
                    message_value = Some(r.bytes()?);
                }
                ty => scalar_value = Some(scalar(ty, wire, &mut r, ctx)?),
            },
            _ => r.skip(wire)?,
        }
    }
    ctx.count(1)?;
    let value = match (ty, scalar_value) {
        (Type::Message(t), _) => message(t, message_value.unwrap_or(&[]), ctx)
            .map_err(|e| e.at(Seg::Key(key.clone())))?,
        (_, Some(v)) => v,
        (ty, None) => zero(ty),
    };
    Ok((key, value))
}

fn scalar(ty: Type, wire: u8, r: &mut Reader<'_>, ctx: &mut Ctx) -> Result<Value, Fail> {
    ctx.count(1)?;
    expect(wire, natural_wire(ty))?;
    Ok(match ty {
        Type::String => Value::String(String::from_utf8_lossy(r.bytes()?).into_owned()),
        Type::Bytes => Value::String(base64::engine::general_purpose::STANDARD.encode(r.bytes()?)),
        Type::Int32 => Value::from(r.varint()? as i32),
        Type::Int64 => Value::from(r.varint()? as i64),
        Type::Bool => Value::Bool(r.varint()? != 0),
        Type::Double => float(f64::from_bits(r.fixed64()?))?,
        Type::Message(_) => unreachable!("messages are not scalars"),
    })
}

/// A float64 as Go's encoder writes it: integral values without a fraction.
fn float(v: f64) -> Result<Value, Fail> {
    if !v.is_finite() {
        return Err(Fail::invalid(format!("{v} cannot be represented in JSON")));
    }
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        return Ok(Value::from(v as i64));
    }
    Number::from_f64(v)
        .map(Value::Number)
        .ok_or_else(|| Fail::invalid(format!("{v} cannot be represented in JSON")))
}

fn zero(ty: Type) -> Value {
    match ty {
        Type::String | Type::Bytes => Value::String(String::new()),
        Type::Int32 | Type::Int64 | Type::Double => Value::from(0),
        Type::Bool => Value::Bool(false),
        Type::Message(_) => Value::Null,
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0) || n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// The bytes of a non-repeated message field: one occurrence, or all of them concatenated
/// (protobuf's merge semantics).
pub(crate) fn merged<'a>(parts: &[&'a [u8]], ctx: &mut Ctx) -> Result<Cow<'a, [u8]>, Fail> {
    match parts {
        [] => Ok(Cow::Borrowed(&[])),
        [one] => Ok(Cow::Borrowed(one)),
        many => {
            let len: usize = many.iter().map(|p| p.len()).sum();
            ctx.copied = ctx.copied.saturating_add(len);
            if ctx.copied > ctx.copy_limit {
                return Err(Fail::new(FailKind::TooLarge));
            }
            Ok(Cow::Owned(many.concat()))
        }
    }
}

/// Writes one field into `out` following Go's encoder: pointers are written when set (even
/// to zero), `omitempty` scalars are dropped when zero, non-pointer structs and fields
/// without `omitempty` are always written (absent ones as their zero value or `null`).
fn write(
    field: &Field,
    slot: Slot<'_>,
    out: &mut Map<String, Value>,
    ctx: &mut Ctx,
) -> Result<(), Fail> {
    let pointer = field.flags & POINTER != 0;
    let omitempty = field.flags & OMITEMPTY != 0;
    if field.flags & INLINE != 0 {
        let Type::Message(t) = field.ty else {
            return Err(Fail::invalid("inline field is not a message"));
        };
        let bytes = match &slot {
            Slot::Message(parts) => merged(parts, ctx)?,
            _ => Cow::Borrowed(&[][..]),
        };
        if let Value::Object(inner) = message(t, &bytes, ctx)? {
            out.extend(inner);
        }
        return Ok(());
    }
    let value = match (field.shape, slot) {
        (Shape::Single, Slot::Scalar(v)) => (pointer || !omitempty || !is_zero(&v)).then_some(v),
        (Shape::Single, Slot::Message(parts)) => {
            let Type::Message(t) = field.ty else {
                return Err(Fail::invalid("message value in a scalar field"));
            };
            let bytes = merged(&parts, ctx)?;
            Some(message(t, &bytes, ctx)?)
        }
        (Shape::Repeated, Slot::List(items)) if !items.is_empty() => Some(Value::Array(items)),
        (Shape::Map, Slot::Map(map)) if !map.is_empty() => {
            Some(Value::Object(map.into_iter().collect()))
        }
        // Absent (or empty list/map).
        (Shape::Repeated | Shape::Map, _) => (!omitempty).then_some(Value::Null),
        (Shape::Single, _) => match field.ty {
            _ if omitempty => None,
            _ if pointer => Some(Value::Null),
            Type::Bytes => Some(Value::Null),
            Type::Message(t) => Some(message(t, &[], ctx)?),
            ty => Some(zero(ty)),
        },
    };
    if let Some(v) = value {
        ctx.count(1)?;
        out.insert(field.json.to_string(), v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_as;
    use serde_json::json;

    fn ld(field: u8, payload: &[u8]) -> Vec<u8> {
        assert!(payload.len() < 128 && field < 16);
        [&[field << 3 | 2, payload.len() as u8][..], payload].concat()
    }

    fn varint_field(field: u8, v: u8) -> Vec<u8> {
        vec![field << 3, v]
    }

    #[test]
    fn pointers_keep_zero_and_omitempty_scalars_drop_it() {
        // DeploymentSpec.replicas (*int32) = 0, .minReadySeconds (int32, omitempty) = 0.
        let spec = [varint_field(1, 0), varint_field(5, 0)].concat();
        let v = decode_as(&ld(2, &spec), "apps/v1", "Deployment").unwrap();
        // selector is a pointer without omitempty (null), template a required struct ({}).
        assert_eq!(
            v["spec"],
            json!({"replicas": 0, "selector": null, "template": {}})
        );
    }

    #[test]
    fn repeated_occurrences_of_a_message_merge() {
        let first = ld(2, &varint_field(1, 2));
        let second = ld(2, &varint_field(5, 7));
        let v = decode_as(&[first, second].concat(), "apps/v1", "Deployment").unwrap();
        assert_eq!(v["spec"]["replicas"], json!(2));
        assert_eq!(v["spec"]["minReadySeconds"], json!(7));
    }

    #[test]
    fn packed_and_unpacked_repeated_scalars() {
        // Pod.spec.securityContext.supplementalGroups (repeated int64, field 4).
        let unpacked = [varint_field(4, 1), varint_field(4, 2), varint_field(4, 3)].concat();
        let packed = ld(4, &[1, 2, 3]);
        for groups in [unpacked, packed] {
            let pod = ld(2, &ld(14, &groups));
            let v = decode_as(&pod, "v1", "Pod").unwrap();
            assert_eq!(
                v["spec"]["securityContext"]["supplementalGroups"],
                json!([1, 2, 3])
            );
        }
    }

    #[test]
    fn map_keys_sort_and_missing_values_are_zero() {
        // ConfigMap.data entries out of order, one without a value.
        let data = [
            ld(2, &[ld(1, b"z"), ld(2, b"1")].concat()),
            ld(2, &ld(1, b"a")),
        ]
        .concat();
        let v = decode_as(&data, "v1", "ConfigMap").unwrap();
        assert_eq!(
            serde_json::to_string(&v["data"]).unwrap(),
            r#"{"a":"","z":"1"}"#
        );
    }

    #[test]
    fn integral_doubles_print_without_fraction() {
        assert_eq!(float(3.0).ok(), Some(json!(3)));
        assert_eq!(float(-0.5).ok(), Some(json!(-0.5)));
        assert!(float(f64::NAN).is_err());
        assert!(float(f64::INFINITY).is_err());
    }

    #[test]
    fn the_value_budget_stops_expansion() {
        let mut ctx = Ctx::new(10);
        assert!(ctx.count(node_limit(10)).is_ok());
        assert!(matches!(
            ctx.count(1),
            Err(Fail {
                kind: FailKind::TooLarge,
                ..
            })
        ));
    }

    #[test]
    fn error_paths_read_outermost_first() {
        let fail = Fail::invalid("x")
            .at(Seg::Field("containerPort"))
            .at(Seg::Index(0))
            .at(Seg::Field("ports"))
            .at(Seg::Field(""))
            .at(Seg::Key("a.b".into()))
            .at(Seg::Field("labels"));
        assert_eq!(fail.path(), "labels[a.b].ports[0].containerPort");
    }
}
