//! The building blocks of validators: Kubernetes field paths (`spec.containers[0].image`,
//! `data[key]`), error constructors that render the offending value the way Kubernetes' Go
//! code does (strings quoted, numbers bare, maps and selectors in Go syntax), and the common
//! checks shared by kinds (names, labels, selectors, ports, IPs, CIDRs, percentages,
//! immutability).

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::{FieldError, FieldErrorType, FieldErrors};

/// `parent.child` (or `child` at the root).
pub fn child(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

/// `parent[i]`.
pub fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// `parent[key]`.
pub fn key(parent: &str, k: &str) -> String {
    format!("{parent}[{k}]")
}

/// Go's `%q` of a string.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn error(
    kind: FieldErrorType,
    field: impl Into<String>,
    value: Option<String>,
    detail: impl Into<String>,
) -> FieldError {
    FieldError {
        kind,
        field: field.into(),
        value,
        detail: detail.into(),
    }
}

/// `Required value[: detail]`.
pub fn required(field: impl Into<String>, detail: &str) -> FieldError {
    error(FieldErrorType::Required, field, None, detail)
}

/// `Forbidden: detail`.
pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> FieldError {
    error(FieldErrorType::Forbidden, field, None, detail)
}

/// `Invalid value: "value": detail` for a string value.
pub fn invalid(field: impl Into<String>, value: &str, detail: impl Into<String>) -> FieldError {
    error(FieldErrorType::Invalid, field, Some(quote(value)), detail)
}

/// `Invalid value: 5: detail` for a number.
pub fn invalid_num(field: impl Into<String>, value: i64, detail: impl Into<String>) -> FieldError {
    error(
        FieldErrorType::Invalid,
        field,
        Some(value.to_string()),
        detail,
    )
}

/// `Invalid value: <rendered>: detail` with a value already rendered in Go syntax.
pub fn invalid_raw(
    field: impl Into<String>,
    rendered: String,
    detail: impl Into<String>,
) -> FieldError {
    error(FieldErrorType::Invalid, field, Some(rendered), detail)
}

/// `Unsupported value: "value": supported values: "a", "b"`.
pub fn not_supported(field: impl Into<String>, value: &str, allowed: &[&str]) -> FieldError {
    let allowed: Vec<String> = allowed.iter().map(|a| quote(a)).collect();
    let detail = if allowed.is_empty() {
        String::new()
    } else {
        format!("supported values: {}", allowed.join(", "))
    };
    error(
        FieldErrorType::NotSupported,
        field,
        Some(quote(value)),
        detail,
    )
}

/// `Duplicate value: "value"`.
pub fn duplicate(field: impl Into<String>, value: &str) -> FieldError {
    error(FieldErrorType::Duplicate, field, Some(quote(value)), "")
}

/// `Duplicate value: <rendered>`.
pub fn duplicate_raw(field: impl Into<String>, rendered: String) -> FieldError {
    error(FieldErrorType::Duplicate, field, Some(rendered), "")
}

/// `Not found: "value"`.
pub fn not_found(field: impl Into<String>, value: &str) -> FieldError {
    error(FieldErrorType::NotFound, field, Some(quote(value)), "")
}

/// `Too many: n: must have at most max items`.
pub fn too_many(field: impl Into<String>, n: usize, max: usize) -> FieldError {
    error(
        FieldErrorType::TooMany,
        field,
        Some(n.to_string()),
        format!("must have at most {max} items"),
    )
}

/// The text of a JSON value as Go would print it inside an error (strings quoted).
pub fn render(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        Value::Null => "null".into(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// Go's `%#v` of a `map[string]string` (keys sorted; `(nil)` when absent).
pub fn go_map(m: Option<&Value>) -> String {
    match m.and_then(|v| v.as_object()) {
        None => "map[string]string(nil)".into(),
        Some(m) => {
            let mut pairs: Vec<(&String, &Value)> = m.iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            let parts: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}:{}", quote(k), quote(v.as_str().unwrap_or_default())))
                .collect();
            format!("map[string]string{{{}}}", parts.join(", "))
        }
    }
}

/// Go's `%#v` of a `[]string`.
pub fn go_strings(v: Option<&Value>) -> String {
    match v.and_then(|v| v.as_array()) {
        None => "[]string(nil)".into(),
        Some(a) => {
            let parts: Vec<String> = a
                .iter()
                .map(|s| quote(s.as_str().unwrap_or_default()))
                .collect();
            format!("[]string{{{}}}", parts.join(", "))
        }
    }
}

/// Go's `%#v` of a `metav1.LabelSelector` (as Kubernetes prints it in immutability errors).
pub fn go_label_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel.filter(|s| s.is_object()) else {
        return "(*v1.LabelSelector)(nil)".into();
    };
    let exprs = match sel.get("matchExpressions").and_then(|v| v.as_array()) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(a) => {
            let parts: Vec<String> = a
                .iter()
                .map(|e| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        quote(str_of(e, "key")),
                        quote(str_of(e, "operator")),
                        go_strings(e.get("values"))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", parts.join(", "))
        }
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{}}}",
        go_map(sel.get("matchLabels")),
        exprs
    )
}

/// A string field of an object, or "".
pub fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(|x| x.as_str()).unwrap_or("")
}

/// An integer field of an object (absent: None).
pub fn int_of(v: &Value, k: &str) -> Option<i64> {
    v.get(k).and_then(|x| x.as_i64())
}

/// The elements of an array field (none when absent).
pub fn arr<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k)
        .and_then(|x| x.as_array())
        .map(|a| a.as_slice())
        .unwrap_or_default()
}

/// Whether a field is absent or null.
pub fn absent(v: &Value, k: &str) -> bool {
    v.get(k).is_none_or(|x| x.is_null())
}

/// Whether a field is absent, null, or an empty string/array/object.
pub fn empty(v: &Value, k: &str) -> bool {
    match v.get(k) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        _ => false,
    }
}

pub const IS_NEGATIVE: &str = "must be greater than or equal to 0";
pub const IMMUTABLE: &str = "field is immutable";

/// `must be greater than or equal to 0` for a present negative integer.
pub fn non_negative(errs: &mut FieldErrors, obj: &Value, k: &str, path: &str) {
    if let Some(n) = int_of(obj, k).filter(|n| *n < 0) {
        errs.push(invalid_num(child(path, k), n, IS_NEGATIVE));
    }
}

/// Kubernetes' RFC 1123 label check (`ValidateDNS1123Label`).
pub fn dns1123_label(errs: &mut FieldErrors, value: &str, path: impl Into<String>) {
    if let Err(msg) = crate::names::validate_dns1123_label(value) {
        errs.push(invalid(path, value, msg));
    }
}

/// Kubernetes' RFC 1123 subdomain check.
pub fn dns1123_subdomain(errs: &mut FieldErrors, value: &str, path: impl Into<String>) {
    if let Err(msg) = crate::names::validate_dns1123_subdomain(value) {
        errs.push(invalid(path, value, msg));
    }
}

fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let ex: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{msg} (e.g. {}regex used for validation is '{fmt}')",
        ex.join(" or ")
    )
}

const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";

fn is_qualified_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Kubernetes' `IsQualifiedName`: the messages for an invalid label key, condition type, ...
pub fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else if let Err(msg) = crate::names::validate_dns1123_subdomain(prefix) {
                errs.push(format!("prefix part {msg}"));
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".into());
    }
    if !is_qualified_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Reports every `IsQualifiedName` problem of `value` at `path`.
pub fn qualified_name(errs: &mut FieldErrors, value: &str, path: &str) {
    for msg in qualified_name_errors(value) {
        errs.push(invalid(path, value, msg));
    }
}

/// Kubernetes' `IsValidLabelValue` messages.
pub fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".into());
    }
    if !value.is_empty() && !is_qualified_part(value) {
        errs.push(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?",
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// `ValidateLabels` of a `map[string]string` (selectors, node selectors, template labels).
pub fn labels(errs: &mut FieldErrors, m: Option<&Value>, path: &str) {
    let Some(m) = m else { return };
    let Some(m) = m.as_object() else {
        errs.push(invalid_raw(path, render(m), "must be a map of strings"));
        return;
    };
    for (k, v) in m {
        qualified_name(errs, k, path);
        match v.as_str() {
            Some(v) => {
                for msg in label_value_errors(v) {
                    errs.push(invalid(path, v, msg));
                }
            }
            None => errs.push(invalid_raw(key(path, k), render(v), "must be a string")),
        }
    }
}

/// `ValidateLabelSelector` of a structured selector.
pub fn label_selector(errs: &mut FieldErrors, sel: Option<&Value>, path: &str) {
    let Some(sel) = sel.filter(|s| !s.is_null()) else {
        return;
    };
    if !sel.is_object() {
        errs.push(invalid_raw(path, render(sel), "must be a label selector"));
        return;
    }
    labels(errs, sel.get("matchLabels"), &child(path, "matchLabels"));
    for (i, e) in arr(sel, "matchExpressions").iter().enumerate() {
        let p = index(&child(path, "matchExpressions"), i);
        let values = arr(e, "values");
        match str_of(e, "operator") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(required(
                        child(&p, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(forbidden(
                        child(&p, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            op => errs.push(invalid(
                child(&p, "operator"),
                op,
                "not a valid selector operator",
            )),
        }
        qualified_name(errs, str_of(e, "key"), &child(&p, "key"));
        for (j, v) in values.iter().enumerate() {
            let v = v.as_str().unwrap_or_default();
            for msg in label_value_errors(v) {
                errs.push(invalid(index(&child(&p, "values"), j), v, msg));
            }
        }
    }
}

/// Whether a structured selector (already validated) matches a label map. An absent
/// selector matches nothing; an empty one everything.
pub fn selector_matches(sel: Option<&Value>, labels: Option<&Map<String, Value>>) -> bool {
    match sel.filter(|s| s.is_object()) {
        None => false,
        Some(s) => crate::selector::LabelSelector::from_structured(s)
            .map(|ls| ls.matches_json(labels))
            .unwrap_or(false),
    }
}

/// Whether a structured selector has no requirement at all.
pub fn selector_is_empty(sel: &Value) -> bool {
    empty(sel, "matchLabels") && empty(sel, "matchExpressions")
}

/// `must be between 1 and 65535, inclusive` for ports.
pub const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";

/// Kubernetes' `IsValidPortName` messages.
pub fn port_name_errors(name: &str) -> Vec<&'static str> {
    let mut errs = Vec::new();
    if name.len() > 15 {
        errs.push("must be no more than 15 characters");
    }
    if name.is_empty()
        || !name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if !name.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)");
    }
    if name.contains("--") {
        errs.push("must not contain consecutive hyphens");
    }
    if name.starts_with('-') || name.ends_with('-') {
        errs.push("must not begin or end with a hyphen");
    }
    errs
}

/// `ValidatePortNumOrName` of an int-or-string port.
pub fn port_num_or_name(errs: &mut FieldErrors, v: Option<&Value>, path: &str) {
    match v {
        Some(Value::Number(n)) => {
            let p = n.as_i64().unwrap_or(0);
            if !(1..=65535).contains(&p) {
                errs.push(invalid_num(path, p, PORT_RANGE));
            }
        }
        Some(Value::String(s)) => {
            for msg in port_name_errors(s) {
                errs.push(invalid(path, s, msg));
            }
        }
        Some(other) if !other.is_null() => errs.push(invalid_raw(
            path,
            render(other),
            "must be an integer or a port name",
        )),
        _ => errs.push(invalid_num(path, 0, PORT_RANGE)),
    }
}

/// Whether a string is an IP address (Kubernetes accepts IPv4 with leading zeros too, which
/// berth does not).
pub fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

/// `IsValidIP`.
pub fn valid_ip(errs: &mut FieldErrors, s: &str, path: impl Into<String>) {
    if !is_ip(s) {
        errs.push(invalid(
            path,
            s,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ));
    }
}

/// A parsed CIDR: address and prefix length.
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((ip, len))
}

/// `IsValidCIDR`.
pub fn valid_cidr(errs: &mut FieldErrors, s: &str, path: impl Into<String>) {
    if parse_cidr(s).is_none() {
        errs.push(invalid(
            path,
            s,
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        ));
    }
}

/// Whether `inner` lies in `outer` (same family).
pub fn cidr_contains(outer: (IpAddr, u8), ip: IpAddr) -> bool {
    match (outer.0, ip) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = if outer.1 == 0 {
                0
            } else {
                u32::MAX << (32 - outer.1)
            };
            (u32::from(a) & mask) == (u32::from(b) & mask)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = if outer.1 == 0 {
                0
            } else {
                u128::MAX << (128 - outer.1)
            };
            (u128::from(a) & mask) == (u128::from(b) & mask)
        }
        _ => false,
    }
}

/// `ValidatePositiveIntOrPercent` and, when `max_100`, `IsNotMoreThan100Percent`. Returns
/// the integer or percent value (for "both zero" checks).
pub fn int_or_percent(errs: &mut FieldErrors, v: Option<&Value>, path: &str, max_100: bool) -> i64 {
    match v {
        Some(Value::String(s)) => {
            let digits = s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()));
            match digits {
                None => {
                    errs.push(invalid(
                        path,
                        s,
                        "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                    ));
                    0
                }
                Some(d) => {
                    let pct: i64 = d.parse().unwrap_or(i64::MAX);
                    if max_100 && pct > 100 {
                        errs.push(invalid(path, s, "must not be greater than 100%"));
                    }
                    pct
                }
            }
        }
        Some(Value::Number(n)) => {
            let i = n.as_i64().unwrap_or(-1);
            if i < 0 {
                errs.push(invalid_num(path, i, IS_NEGATIVE));
            }
            i
        }
        Some(Value::Null) | None => 0,
        Some(other) => {
            errs.push(invalid_raw(
                path,
                render(other),
                "must be an integer or percentage (e.g '5%')",
            ));
            0
        }
    }
}

/// `field is immutable` when `new` and `old` differ at `k` (absent and null are equal).
pub fn immutable(
    errs: &mut FieldErrors,
    new: &Value,
    old: &Value,
    k: &str,
    path: &str,
    rendered: impl FnOnce(Option<&Value>) -> String,
) {
    let a = new.get(k).filter(|v| !v.is_null());
    let b = old.get(k).filter(|v| !v.is_null());
    if a != b {
        errs.push(invalid_raw(child(path, k), rendered(a), IMMUTABLE));
    }
}

/// Renders an optional value for an immutability error.
pub fn render_opt(v: Option<&Value>) -> String {
    v.map_or_else(|| "null".to_string(), render)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_renderings() {
        assert_eq!(quote("a\"b\n"), "\"a\\\"b\\n\"");
        assert_eq!(
            go_map(Some(&json!({"b": "2", "a": "1"}))),
            "map[string]string{\"a\":\"1\", \"b\":\"2\"}"
        );
        assert_eq!(go_map(None), "map[string]string(nil)");
        assert_eq!(
            go_label_selector(Some(&json!({"matchLabels": {"app": "nginx2"}}))),
            "v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"nginx2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
        );
        assert_eq!(
            go_strings(Some(&json!(["10.0.0.1"]))),
            "[]string{\"10.0.0.1\"}"
        );
    }

    #[test]
    fn names_labels_and_selectors() {
        assert!(qualified_name_errors("app.kubernetes.io/name").is_empty());
        assert_eq!(
            qualified_name_errors("/x"),
            vec!["prefix part must be non-empty".to_string()]
        );
        assert!(qualified_name_errors("a/b/c")[0].starts_with("a qualified name must consist"));
        assert!(qualified_name_errors("-x")[0].starts_with("name part must consist"));
        assert!(label_value_errors("").is_empty());
        assert_eq!(label_value_errors("bad value").len(), 1);
        let mut errs = FieldErrors::default();
        label_selector(
            &mut errs,
            Some(
                &json!({"matchLabels": {"a": "b c"}, "matchExpressions": [{"key": "k", "operator": "In"}, {"key": "k", "operator": "Near"}]}),
            ),
            "spec.selector",
        );
        let text: Vec<String> = errs.0.iter().map(|e| e.to_string()).collect();
        assert!(
            text[0].starts_with(
                "spec.selector.matchLabels: Invalid value: \"b c\": a valid label must be"
            ),
            "{text:?}"
        );
        assert_eq!(
            text[1],
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
        );
        assert_eq!(
            text[2],
            "spec.selector.matchExpressions[1].operator: Invalid value: \"Near\": not a valid selector operator"
        );
        assert!(selector_matches(
            Some(&json!({"matchLabels": {"app": "x"}})),
            json!({"app": "x", "b": "c"}).as_object()
        ));
        assert!(!selector_matches(None, json!({"app": "x"}).as_object()));
    }

    #[test]
    fn ports_ips_cidrs_and_percentages() {
        assert!(port_name_errors("http").is_empty());
        assert_eq!(
            port_name_errors("8080"),
            vec!["must contain at least one letter (a-z)"]
        );
        assert_eq!(
            port_name_errors("a--b"),
            vec!["must not contain consecutive hyphens"]
        );
        assert!(
            port_name_errors("this-name-is-too-long")
                .contains(&"must be no more than 15 characters")
        );
        let c = parse_cidr("10.42.0.0/16").unwrap();
        assert!(cidr_contains(c, "10.42.3.4".parse().unwrap()));
        assert!(!cidr_contains(c, "10.43.0.1".parse().unwrap()));
        assert!(parse_cidr("10.0.0.0/33").is_none() && parse_cidr("10.0.0.0").is_none());
        let mut errs = FieldErrors::default();
        assert_eq!(
            int_or_percent(&mut errs, Some(&json!("25%")), "p", true),
            25
        );
        assert_eq!(
            int_or_percent(&mut errs, Some(&json!("150%")), "p", true),
            150
        );
        int_or_percent(&mut errs, Some(&json!("abc")), "p", true);
        int_or_percent(&mut errs, Some(&json!(-1)), "p", true);
        let text: Vec<String> = errs.0.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            text[0],
            "p: Invalid value: \"150%\": must not be greater than 100%"
        );
        assert!(text[1].contains("a valid percent string"));
        assert_eq!(
            text[2],
            "p: Invalid value: -1: must be greater than or equal to 0"
        );
    }
}
