//! Messages whose Go types have their own JSON encoding: times, durations, quantities,
//! int-or-string, embedded raw JSON, named slices and the JSON-schema unions of CRDs.

use crate::decode::{Ctx, Fail, Slot, fill, merged, message};
use crate::error::Problem;
use crate::schema::{Codec, Message, Type};
use crate::wire::{LEN, Reader};
use serde_json::Value;

/// `time.Time{}`'s Unix seconds: Go writes `null` for it.
const GO_ZERO_TIME_UNIX: i64 = -62_135_596_800;

pub(crate) fn special(msg: &'static Message, buf: &[u8], ctx: &mut Ctx) -> Result<Value, Fail> {
    if msg.codec == Codec::RawJson {
        return raw_json_message(buf, ctx);
    }
    if buf.is_empty() && matches!(msg.codec, Codec::Time | Codec::MicroTime) {
        // Go decodes an empty time as time.Time{}, which it writes as null.
        return Ok(Value::Null);
    }
    let mut slots = fill(msg, buf, ctx)?;
    let mut take = |number: u32| -> Slot<'_> {
        match msg.field(number) {
            Some((i, _)) => std::mem::replace(&mut slots[i], Slot::Absent),
            None => Slot::Absent,
        }
    };
    match msg.codec {
        Codec::Object => Err(Fail::invalid("object message routed to a special codec")),
        // Go's Time keeps whole seconds only.
        Codec::Time => time(int(take(1)).unwrap_or(0), 0, false),
        Codec::MicroTime => {
            // Go truncates to microseconds, then normalises the nanoseconds into the seconds.
            let nanos = int(take(2)).unwrap_or(0);
            let nanos = nanos - nanos % 1000;
            let seconds = int(take(1))
                .unwrap_or(0)
                .saturating_add(nanos.div_euclid(1_000_000_000));
            time(seconds, nanos.rem_euclid(1_000_000_000), true)
        }
        Codec::Duration => Ok(Value::String(go_duration(int(take(1)).unwrap_or(0)))),
        Codec::Quantity => {
            let s = string(take(1)).unwrap_or_default();
            if s.is_empty() {
                return Ok(Value::String("0".into()));
            }
            if !is_quantity(&s) {
                return Err(Fail::invalid(format!("{s:?} is not a quantity")).at_field("string"));
            }
            Ok(Value::String(s))
        }
        Codec::IntOrString => match int(take(1)).unwrap_or(0) {
            0 => Ok(Value::from(int(take(2)).unwrap_or(0))),
            1 => Ok(Value::String(string(take(3)).unwrap_or_default())),
            other => Err(Fail::invalid(format!(
                "IntOrString type {other} is neither 0 (int) nor 1 (string)"
            ))),
        },
        Codec::RawJson => Err(Fail::invalid("raw JSON message routed to the slot decoder")),
        Codec::List => match take(1) {
            Slot::List(items) if !items.is_empty() => Ok(Value::Array(items)),
            _ => Ok(Value::Null),
        },
        Codec::SchemaOrArray => match (take(2), take(1)) {
            (Slot::List(items), _) if !items.is_empty() => Ok(Value::Array(items)),
            (_, Slot::Message(parts)) => schema(msg, 1, &parts, ctx),
            _ => Ok(Value::Null),
        },
        Codec::SchemaOrBool => match (take(2), take(1)) {
            (Slot::Message(parts), _) => schema(msg, 2, &parts, ctx),
            (_, Slot::Scalar(Value::Bool(allows))) => Ok(Value::Bool(allows)),
            _ => Ok(Value::Bool(false)),
        },
        Codec::SchemaOrStringArray => match (take(2), take(1)) {
            (Slot::List(items), _) if !items.is_empty() => Ok(Value::Array(items)),
            (_, Slot::Message(parts)) => schema(msg, 1, &parts, ctx),
            _ => Ok(Value::Null),
        },
    }
}

impl Fail {
    fn at_field(self, name: &'static str) -> Self {
        self.at(crate::decode::Seg::Field(name))
    }
}

fn int(slot: Slot<'_>) -> Option<i64> {
    match slot {
        Slot::Scalar(v) => v.as_i64(),
        _ => None,
    }
}

fn string(slot: Slot<'_>) -> Option<String> {
    match slot {
        Slot::Scalar(Value::String(s)) => Some(s),
        _ => None,
    }
}

fn schema(
    msg: &'static Message,
    number: u32,
    parts: &[&[u8]],
    ctx: &mut Ctx,
) -> Result<Value, Fail> {
    let Some((_, field)) = msg.field(number) else {
        return Ok(Value::Null);
    };
    let Type::Message(t) = field.ty else {
        return Err(Fail::invalid("schema field is not a message"));
    };
    let bytes = merged(parts, ctx)?;
    message(t, &bytes, ctx).map_err(|e| e.at_field(field.json))
}

/// RFC 3339 in UTC: `2024-01-02T03:04:05Z`, or with `micro` six fraction digits.
fn time(seconds: i64, nanos: i64, micro: bool) -> Result<Value, Fail> {
    if seconds == GO_ZERO_TIME_UNIX && nanos == 0 {
        return Ok(Value::Null);
    }
    let ts = jiff::Timestamp::new(seconds, nanos as i32)
        .map_err(|e| Fail::invalid(format!("time {seconds}s {nanos}ns is out of range: {e}")))?;
    let dt = jiff::tz::Offset::UTC.to_datetime(ts);
    if !(0..=9999).contains(&dt.year()) {
        return Err(Fail::invalid(format!(
            "time {seconds}s has a year outside 0000-9999"
        )));
    }
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    if micro {
        s.push_str(&format!(".{:06}", dt.subsec_nanosecond() / 1000));
    }
    s.push('Z');
    Ok(Value::String(s))
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
pub(crate) fn go_duration(d: i64) -> String {
    let neg = d < 0;
    let mut u = d.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        let (prec, unit) = match u {
            0 => return "0s".into(),
            u if u < 1_000 => (0, "ns"),
            u if u < 1_000_000 => (3, "µs"),
            _ => (6, "ms"),
        };
        let (frac, int) = fraction(u, prec);
        out.push_str(&int.to_string());
        out.push_str(&frac);
        out.push_str(unit);
    } else {
        let (frac, secs) = fraction(u, 9);
        u = secs;
        let mut s = format!("{}{frac}s", u % 60);
        u /= 60;
        if u > 0 {
            s = format!("{}m{s}", u % 60);
            u /= 60;
            if u > 0 {
                s = format!("{u}h{s}");
            }
        }
        out = s;
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

/// Splits off `prec` decimal digits of `v`: (".5" without trailing zeros, or "", rest).
fn fraction(mut v: u64, prec: u32) -> (String, u64) {
    let mut digits = Vec::new();
    let mut print = false;
    for _ in 0..prec {
        let digit = (v % 10) as u8;
        print = print || digit != 0;
        if print {
            digits.push(b'0' + digit);
        }
        v /= 10;
    }
    if !print {
        return (String::new(), v);
    }
    digits.push(b'.');
    digits.reverse();
    (String::from_utf8(digits).unwrap_or_default(), v)
}

/// The quantity grammar of `resource.ParseQuantity`: signed decimal number, then a binary
/// SI suffix (Ki..Ei), a decimal SI suffix (n, u, m, k, M..E) or an exponent (e3, E-2).
fn is_quantity(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let number_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_len);
    let digits = number.chars().filter(char::is_ascii_digit).count();
    if digits == 0 || number.matches('.').count() > 1 {
        return false;
    }
    match suffix {
        "" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => true,
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => true,
        _ => {
            let Some(exp) = suffix.strip_prefix(['e', 'E']) else {
                return false;
            };
            let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            !exp.is_empty() && exp.chars().all(|c| c.is_ascii_digit())
        }
    }
}

/// An embedded document (`RawExtension`, `FieldsV1`, `JSON`) {raw = 1}: JSON text, or
/// itself a Kubernetes protobuf envelope. Absent or empty → `null`, as Go writes it.
fn raw_json_message(buf: &[u8], ctx: &mut Ctx) -> Result<Value, Fail> {
    let mut r = Reader::new(buf);
    let mut raw: &[u8] = &[];
    while !r.at_end() {
        let (number, wire) = r.key()?;
        if number != 1 {
            r.skip(wire)?;
            continue;
        }
        if wire != LEN {
            return Err(Fail::from(Problem::WrongWireType {
                expected: LEN,
                found: wire,
            })
            .at_field("raw"));
        }
        raw = r.bytes()?;
    }
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    if raw.starts_with(crate::envelope::MAGIC) {
        return crate::envelope::decode_nested(raw, ctx);
    }
    ctx.count(raw.len() / 2)?;
    serde_json::from_slice(raw)
        .map_err(|e| Fail::invalid(format!("embedded document is not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        for (ns, s) in [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (1_500_000_000, "1.5s"),
            (60_000_000_000, "1m0s"),
            (3_600_000_000_000, "1h0m0s"),
            (5_400_000_000_000, "1h30m0s"),
            (-1_500_000_000, "-1.5s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ] {
            assert_eq!(go_duration(ns), s, "{ns}");
        }
    }

    #[test]
    fn times_print_rfc3339() {
        assert_eq!(
            time(1_704_164_645, 0, false).ok(),
            Some(Value::from("2024-01-02T03:04:05Z"))
        );
        assert_eq!(
            time(0, 0, false).ok(),
            Some(Value::from("1970-01-01T00:00:00Z"))
        );
        assert_eq!(
            time(1_704_164_645, 123_456_000, true).ok(),
            Some(Value::from("2024-01-02T03:04:05.123456Z"))
        );
        assert_eq!(time(GO_ZERO_TIME_UNIX, 0, false).ok(), Some(Value::Null));
        assert!(time(i64::MAX, 0, false).is_err());
    }

    #[test]
    fn quantity_grammar() {
        for ok in [
            "1", "100m", "1.5Gi", "-2", "+3k", ".5", "5.", "1e3", "2E-2", "10Ki", "0",
        ] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "Gi", "1.2.3", "1x", "1e", "1ki", "--1", "1 Gi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
