//! Name validation rules of Kubernetes object names and label/annotation syntax.

/// RFC 1123 subdomain: at most 253 characters, lowercase alphanumerics, `-` and `.`,
/// starting and ending with an alphanumeric.
pub fn validate_dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err("must be no more than 253 characters".into());
    }
    let ok = !s.is_empty()
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase() || *c == b'-')
        })
        && s.bytes().all(|c| !c.is_ascii_uppercase());
    if ok {
        Ok(())
    } else {
        Err("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into())
    }
}

/// RFC 1123 label: at most 63 characters, lowercase alphanumerics and `-`, starting and
/// ending with an alphanumeric.
pub fn validate_dns1123_label(s: &str) -> Result<(), String> {
    if s.len() > 63 {
        return Err("must be no more than 63 characters".into());
    }
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase() || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".into())
    }
}

/// RFC 1035 label (Service names): like an RFC 1123 label but starting with a letter.
pub fn validate_dns1035_label(s: &str) -> Result<(), String> {
    if s.len() > 63 {
        return Err("must be no more than 63 characters".into());
    }
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase() || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".into())
    }
}

/// Path-segment names (most resources accept any name that is a valid path segment;
/// Kubernetes validates those kinds as DNS subdomains, which is what berth does too).
pub fn validate_path_segment(s: &str) -> Result<(), String> {
    if s == "." || s == ".." {
        return Err(format!("may not be '{s}'"));
    }
    for bad in ["/", "%"] {
        if s.contains(bad) {
            return Err(format!("may not contain '{bad}'"));
        }
    }
    Ok(())
}

/// Which name rule a kind uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    Subdomain,
    Label1123,
    Label1035,
    PathSegment,
}

impl NameRule {
    pub fn for_kind(group: &str, kind: &str) -> NameRule {
        match (group, kind) {
            ("", "Namespace") => NameRule::Label1123,
            ("", "Service") => NameRule::Label1035,
            ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
            _ => NameRule::Subdomain,
        }
    }

    pub fn validate(self, s: &str) -> Result<(), String> {
        match self {
            NameRule::Subdomain => validate_dns1123_subdomain(s),
            NameRule::Label1123 => validate_dns1123_label(s),
            NameRule::Label1035 => validate_dns1035_label(s),
            NameRule::PathSegment => validate_path_segment(s),
        }
    }

    /// Length a `generateName` prefix is cut to before the random suffix is appended.
    pub fn max_generated_prefix(self) -> usize {
        match self {
            NameRule::Label1123 | NameRule::Label1035 => 63 - 5,
            _ => 253 - 5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains_and_labels() {
        assert!(validate_dns1123_subdomain("my-app.example").is_ok());
        assert!(validate_dns1123_subdomain("My-App").is_err());
        assert!(validate_dns1123_subdomain("-a").is_err());
        assert!(validate_dns1123_subdomain("a..b").is_err());
        assert!(validate_dns1123_label("a.b").is_err());
        assert!(validate_dns1123_label(&"a".repeat(64)).is_err());
        assert!(validate_dns1035_label("1abc").is_err());
        assert!(validate_dns1035_label("abc1").is_ok());
        assert!(validate_path_segment("system:admin").is_ok());
        assert!(validate_path_segment("a/b").is_err());
    }
}
