//! The Kubernetes protobuf envelope: the magic bytes `k8s\0`, then a `runtime.Unknown`
//! message {typeMeta = 1 {apiVersion = 1, kind = 2}, raw = 2, contentEncoding = 3,
//! contentType = 4} whose `raw` holds the object of that kind.

use crate::decode::{Ctx, Fail, FailKind, MAX_DEPTH, Seg, message, node_limit};
use crate::error::{Error, Problem};
use crate::generated::{KINDS, MESSAGES, META_KINDS};
use crate::wire::{LEN, Reader};
use serde_json::{Map, Value};

pub(crate) const MAGIC: &[u8] = b"k8s\0";
const UNKNOWN: &str = "io.k8s.apimachinery.pkg.runtime.Unknown";

struct Unknown<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
    content_type: String,
}

fn string_field(r: &mut Reader<'_>, wire: u8) -> Result<String, Fail> {
    if wire != LEN {
        return Err(Problem::WrongWireType {
            expected: LEN,
            found: wire,
        }
        .into());
    }
    Ok(String::from_utf8_lossy(r.bytes()?).into_owned())
}

fn read_unknown(buf: &[u8]) -> Result<Unknown<'_>, Fail> {
    let mut unknown = Unknown {
        api_version: String::new(),
        kind: String::new(),
        raw: &[],
        content_encoding: String::new(),
        content_type: String::new(),
    };
    let mut r = Reader::new(buf);
    while !r.at_end() {
        let (number, wire) = r.key()?;
        match number {
            1 => {
                let at = |e: Fail| e.at(Seg::Field("typeMeta"));
                if wire != LEN {
                    return Err(at(Problem::WrongWireType {
                        expected: LEN,
                        found: wire,
                    }
                    .into()));
                }
                let mut tm = Reader::new(r.bytes().map_err(|p| at(p.into()))?);
                while !tm.at_end() {
                    let (n, w) = tm.key().map_err(|p| at(p.into()))?;
                    match n {
                        1 => {
                            unknown.api_version = string_field(&mut tm, w)
                                .map_err(|e| at(e.at(Seg::Field("apiVersion"))))?
                        }
                        2 => {
                            unknown.kind = string_field(&mut tm, w)
                                .map_err(|e| at(e.at(Seg::Field("kind"))))?
                        }
                        _ => tm.skip(w).map_err(|p| at(p.into()))?,
                    }
                }
            }
            2 => {
                if wire != LEN {
                    return Err(Fail::from(Problem::WrongWireType {
                        expected: LEN,
                        found: wire,
                    })
                    .at(Seg::Field("raw")));
                }
                unknown.raw = r.bytes().map_err(|p| Fail::from(p).at(Seg::Field("raw")))?;
            }
            3 => {
                unknown.content_encoding =
                    string_field(&mut r, wire).map_err(|e| e.at(Seg::Field("contentEncoding")))?
            }
            4 => {
                unknown.content_type =
                    string_field(&mut r, wire).map_err(|e| e.at(Seg::Field("contentType")))?
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(unknown)
}

/// The table index of `(api_version, kind)`.
pub(crate) fn lookup(api_version: &str, kind: &str) -> Option<u16> {
    if let Ok(i) = KINDS.binary_search_by(|(a, k, _)| (*a, *k).cmp(&(api_version, kind))) {
        return Some(KINDS[i].2);
    }
    // DeleteOptions and friends are registered in every group version.
    let known_group_version =
        api_version == "meta.k8s.io/v1" || KINDS.iter().any(|(a, _, _)| *a == api_version);
    if !known_group_version {
        return None;
    }
    META_KINDS.iter().find(|(k, _)| *k == kind).map(|(_, i)| *i)
}

/// Decodes `raw` as `kind` and puts `kind` and `apiVersion` first, as Go's encoder does.
fn typed_object(
    index: u16,
    raw: &[u8],
    api_version: &str,
    kind: &str,
    ctx: &mut Ctx,
) -> Result<Value, Fail> {
    let Value::Object(fields) = message(index, raw, ctx)? else {
        return Err(Fail::invalid(format!(
            "{kind} does not decode to an object"
        )));
    };
    let mut out = Map::with_capacity(fields.len() + 2);
    out.insert("kind".into(), Value::String(kind.into()));
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.extend(
        fields
            .into_iter()
            .filter(|(k, _)| k != "kind" && k != "apiVersion"),
    );
    Ok(Value::Object(out))
}

fn to_error(fail: Fail, message: &str, body_len: usize) -> Error {
    let path = fail.path();
    let message = message.to_string();
    match fail.kind {
        FailKind::Malformed(problem) => Error::Malformed {
            message,
            path,
            problem,
        },
        FailKind::Invalid(reason) => Error::InvalidValue {
            message,
            path,
            reason,
        },
        FailKind::TooDeep => Error::TooDeep {
            message,
            path,
            limit: MAX_DEPTH,
        },
        FailKind::TooLarge => Error::TooLarge {
            body_len,
            limit: node_limit(body_len),
        },
    }
}

/// Decodes a Kubernetes protobuf body (`k8s\0` + `runtime.Unknown`) of a built-in kind into
/// the JSON object Kubernetes would produce for it, with `kind` and `apiVersion` set.
pub fn decode(body: &[u8]) -> Result<Value, Error> {
    let rest = body.strip_prefix(MAGIC).ok_or(Error::MissingMagic)?;
    let unknown = read_unknown(rest).map_err(|f| to_error(f, UNKNOWN, body.len()))?;
    if !unknown.content_encoding.is_empty() {
        return Err(Error::UnsupportedEncoding {
            encoding: unknown.content_encoding,
        });
    }
    if !unknown.content_type.is_empty() && unknown.content_type != crate::CONTENT_TYPE {
        return Err(Error::UnsupportedContentType {
            content_type: unknown.content_type,
        });
    }
    if unknown.api_version.is_empty() || unknown.kind.is_empty() {
        return Err(Error::MissingTypeMeta);
    }
    decode_raw(unknown.raw, &unknown.api_version, &unknown.kind, body.len())
}

/// Decodes the bare message bytes `raw` (no magic, no envelope) as `kind` of `api_version`,
/// e.g. a subresource body whose kind the URL decides.
pub fn decode_as(raw: &[u8], api_version: &str, kind: &str) -> Result<Value, Error> {
    decode_raw(raw, api_version, kind, raw.len())
}

fn decode_raw(raw: &[u8], api_version: &str, kind: &str, body_len: usize) -> Result<Value, Error> {
    let index = lookup(api_version, kind).ok_or_else(|| Error::UnknownKind {
        api_version: api_version.into(),
        kind: kind.into(),
    })?;
    let mut ctx = Ctx::new(body_len);
    typed_object(index, raw, api_version, kind, &mut ctx)
        .map_err(|f| to_error(f, MESSAGES[usize::from(index)].name, body_len))
}

/// Whether `decode` knows `kind` of `api_version`.
pub fn supports(api_version: &str, kind: &str) -> bool {
    lookup(api_version, kind).is_some()
}

/// An envelope embedded in a `RawExtension`.
pub(crate) fn decode_nested(body: &[u8], ctx: &mut Ctx) -> Result<Value, Fail> {
    let unknown = read_unknown(&body[MAGIC.len()..])?;
    if !unknown.content_encoding.is_empty() {
        return Err(Fail::invalid(format!(
            "unsupported content encoding {:?}",
            unknown.content_encoding
        )));
    }
    let index = lookup(&unknown.api_version, &unknown.kind).ok_or_else(|| {
        Fail::invalid(format!(
            "unknown kind {} {}",
            unknown.api_version, unknown.kind
        ))
    })?;
    typed_object(index, unknown.raw, &unknown.api_version, &unknown.kind, ctx)
}
