//! Image references (`[registry/]repository[:tag][@digest]`) and how unqualified names
//! resolve to a default registry.

use std::fmt;

use crate::digest::Digest;
use crate::error::{ImageError, Result};

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// `host[:port]`, or `None` for an unqualified name.
    pub registry: Option<String>,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl ImageRef {
    /// Parses a reference. The first path component is a registry when it contains `.` or
    /// `:` or is `localhost` (Docker's rule); otherwise the name is unqualified.
    pub fn parse(s: &str) -> Result<ImageRef> {
        let bad = |reason: &str| ImageError::ReferenceInvalid {
            reference: s.to_owned(),
            reason: reason.to_owned(),
        };
        if s.is_empty() {
            return Err(bad("empty"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (
                r,
                Some(d.parse::<Digest>().map_err(|_| bad("invalid digest"))?),
            ),
            None => (s, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, p))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first.to_owned()), p)
            }
            _ => (None, rest),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, Some(t.to_owned())),
            _ => (path, None),
        };
        validate_repository(repository).map_err(|r| bad(&r))?;
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && (t.as_bytes()[0].is_ascii_alphanumeric() || t.starts_with('_'))
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !ok {
                return Err(bad("invalid tag"));
            }
        }
        Ok(ImageRef {
            registry,
            repository: repository.to_owned(),
            tag,
            digest,
        })
    }

    /// The tag, `latest` when neither tag nor digest was given.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// What to ask a registry for: the digest if any, else the tag.
    pub fn reference(&self) -> String {
        match &self.digest {
            Some(d) => d.to_string(),
            None => self.tag_or_latest().to_owned(),
        }
    }

    /// This reference with `registry` filled in when it was unqualified.
    pub fn qualify(&self, default_registry: &str) -> ImageRef {
        let mut r = self.clone();
        if r.registry.is_none() {
            r.registry = Some(default_registry.to_owned());
        }
        r
    }

    /// The name the local store records (`[registry/]repository:tag`), without a digest.
    pub fn store_name(&self) -> String {
        let base = match &self.registry {
            Some(r) => format!("{r}/{}", self.repository),
            None => self.repository.clone(),
        };
        match (&self.tag, &self.digest) {
            (None, Some(d)) => format!("{base}@{d}"),
            _ => format!("{base}:{}", self.tag_or_latest()),
        }
    }
}

fn validate_repository(r: &str) -> std::result::Result<(), String> {
    if r.is_empty() || r.len() > 255 {
        return Err("repository must be 1 to 255 characters".into());
    }
    for c in r.split('/') {
        let b = c.as_bytes();
        let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
        if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
            return Err(format!(
                "component {c:?} must start and end with a lower-case letter or digit"
            ));
        }
        if !b
            .iter()
            .all(|&x| alnum(x) || matches!(x, b'.' | b'_' | b'-'))
        {
            return Err(format!("component {c:?} may contain only [a-z0-9._-]"));
        }
        if c.contains("..") || c.contains("___") {
            return Err(format!("component {c:?} has an invalid separator"));
        }
    }
    Ok(())
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(r) = &self.registry {
            write!(f, "{r}/")?;
        }
        f.write_str(&self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        let r = ImageRef::parse("web:1").unwrap();
        assert_eq!(
            (r.registry, r.repository.as_str(), r.tag.as_deref()),
            (None, "web", Some("1"))
        );
        let r = ImageRef::parse("127.0.0.1:5000/team/app").unwrap();
        assert_eq!(r.registry.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag_or_latest(), "latest");
        let d = Digest::sha256_of(b"x");
        let r = ImageRef::parse(&format!("localhost/a@{d}")).unwrap();
        assert_eq!(r.digest, Some(d));
        assert_eq!(
            ImageRef::parse("my-image:latest")
                .unwrap()
                .qualify("reg:5000")
                .to_string(),
            "reg:5000/my-image:latest"
        );
        for bad in ["", "UPPER", "a/:x", "a:b c", "a@sha256:zz", "a/../b"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }
}
