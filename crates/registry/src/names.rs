//! Validation of repository names and tags (OCI distribution spec grammar). Validated names
//! are safe path components: no component starts with `.` or `_`, so `..` and the
//! registry's own `_`-prefixed directories cannot be named.

use crate::error::{RegistryError, Result};

/// Longest repository name accepted.
pub const MAX_NAME_LEN: usize = 255;

/// Checks `name` against `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
pub fn validate_name(name: &str) -> Result<()> {
    let invalid = |reason: &str| RegistryError::NameInvalid {
        name: name.chars().take(300).collect(),
        reason: reason.to_owned(),
    };
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid("longer than 255 characters"));
    }
    for component in name.split('/') {
        validate_component(component)
            .map_err(|r| invalid(&format!("component {component:?} {r}")))?;
    }
    Ok(())
}

fn validate_component(c: &str) -> std::result::Result<(), &'static str> {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() {
        return Err("is empty");
    }
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return Err("must start and end with a lower-case letter or digit");
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: '.', '_', '__' or one or more '-'.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return Err("has a character outside [a-z0-9._-]"),
        }
        if i >= b.len() || !alnum(b[i]) || i == start {
            return Err("has a separator not followed by a letter or digit");
        }
    }
    Ok(())
}

/// Checks `tag` against `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<()> {
    let invalid = |reason: &str| RegistryError::TagInvalid {
        tag: tag.chars().take(200).collect(),
        reason: reason.to_owned(),
    };
    let b = tag.as_bytes();
    if b.is_empty() || b.len() > 128 {
        return Err(invalid("must be 1 to 128 characters"));
    }
    if !(b[0].is_ascii_alphanumeric() || b[0] == b'_') {
        return Err(invalid("must start with a letter, digit or '_'"));
    }
    if !b
        .iter()
        .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
    {
        return Err(invalid(
            "may contain only letters, digits, '_', '.' and '-'",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "a",
            "library/busybox",
            "a.b_c__d---e/f0",
            "x/y/z",
            "my-image",
        ] {
            validate_name(ok).unwrap();
        }
        for bad in [
            "", "A", "a//b", "a/", "/a", "a_", "_a", "a___b", "a..b", "..", "a/../b", "a/_blobs",
            "a b",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert!(validate_name(&"a".repeat(256)).is_err());
    }

    #[test]
    fn tags() {
        validate_tag(&"a".repeat(128)).unwrap();
        validate_tag("_x.Y-1").unwrap();
        for bad in ["", ".a", "-a", "a/b", "a:b"] {
            assert!(validate_tag(bad).is_err(), "{bad}");
        }
        assert!(validate_tag(&"a".repeat(129)).is_err());
    }
}
