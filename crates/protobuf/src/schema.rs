//! The shape of the generated table (`generated.rs`): per protobuf message, its fields by
//! number with their JSON names, value types and Go presence rules, and the kinds that can be
//! decoded. Everything is `static`: decoding builds no schema at run time.

/// How a message becomes JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Codec {
    /// A JSON object with one property per field.
    Object,
    /// `meta/v1 Time` {seconds, nanos} → RFC 3339 with seconds, or `null` when zero.
    Time,
    /// `meta/v1 MicroTime` → RFC 3339 with microseconds, or `null` when zero.
    MicroTime,
    /// `meta/v1 Duration` {duration ns} → Go's `time.Duration` string (`"1h0m0s"`). No kind
    /// decoded at v1.33 reaches a Duration field; the codec is kept for the table's sake.
    #[allow(dead_code)]
    Duration,
    /// `resource.Quantity` {string} → the string.
    Quantity,
    /// `intstr.IntOrString` {type, intVal, strVal} → a number or a string.
    IntOrString,
    /// `runtime.RawExtension`, `meta/v1 FieldsV1`, `apiextensions/v1 JSON`: {raw bytes} → the
    /// embedded JSON document.
    RawJson,
    /// A Go named slice (`type ExtraValue []string`): {repeated items = 1} → an array.
    List,
    /// `JSONSchemaPropsOrArray` {schema = 1, jSONSchemas = 2} → the schemas array or the schema.
    SchemaOrArray,
    /// `JSONSchemaPropsOrBool` {allows = 1, schema = 2} → the schema or a boolean.
    SchemaOrBool,
    /// `JSONSchemaPropsOrStringArray` {schema = 1, property = 2} → the strings or the schema.
    SchemaOrStringArray,
}

/// The value type of a field (of each element for repeated fields, of each value for maps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Type {
    String,
    Int32,
    Int64,
    Bool,
    Double,
    /// Base64 in JSON.
    Bytes,
    /// Index into `MESSAGES`.
    Message(u16),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    Single,
    Repeated,
    /// `map<string, T>`: entries are messages {key = 1, value = 2}.
    Map,
}

/// The Go field is a pointer: an explicit zero is kept.
pub(crate) const POINTER: u8 = 1;
/// The Go json tag has `omitempty`.
pub(crate) const OMITEMPTY: u8 = 2;
/// The Go field is embedded with `json:",inline"`: its properties join the parent object.
pub(crate) const INLINE: u8 = 4;

#[derive(Debug)]
pub(crate) struct Field {
    pub number: u32,
    /// JSON property name; empty for inline fields.
    pub json: &'static str,
    pub ty: Type,
    pub shape: Shape,
    pub flags: u8,
}

#[derive(Debug)]
pub(crate) struct Message {
    /// Full protobuf name, e.g. `io.k8s.api.apps.v1.Deployment`.
    pub name: &'static str,
    pub codec: Codec,
    /// Sorted by field number.
    pub fields: &'static [Field],
    /// Output order (Go declaration order): indices into `fields`.
    pub order: &'static [u8],
}

impl Message {
    pub(crate) fn field(&self, number: u32) -> Option<(usize, &'static Field)> {
        let i = self
            .fields
            .binary_search_by_key(&number, |f| f.number)
            .ok()?;
        Some((i, &self.fields[i]))
    }
}

/// Shorthand used by the generated table.
pub(crate) const fn f(number: u32, json: &'static str, ty: Type, shape: Shape, flags: u8) -> Field {
    Field {
        number,
        json,
        ty,
        shape,
        flags,
    }
}
