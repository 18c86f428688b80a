//! The query parameters of API requests.

use crate::error::{ApiError, Result};

/// How unknown and duplicate fields in a request body are treated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    #[default]
    Strict,
}

/// Parsed query parameters (unknown parameters are kept in `raw` for subresources such as
/// `log` and `exec`).
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub limit: usize,
    pub continue_token: Option<String>,
    pub watch: bool,
    pub allow_watch_bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout_seconds: Option<u64>,
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub field_validation: Option<FieldValidation>,
    pub force: bool,
    pub propagation_policy: Option<String>,
    pub grace_period_seconds: Option<i64>,
    pub orphan_dependents: Option<bool>,
    pub include_object: Option<String>,
    pub raw: Vec<(String, String)>,
}

fn parse_bool(name: &str, v: &str) -> Result<bool> {
    match v {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "invalid value {v:?} for query parameter {name}: must be true or false"
        ))),
    }
}

impl Query {
    pub fn parse(query: Option<&str>) -> Result<Query> {
        let mut q = Query::default();
        let Some(query) = query else {
            return Ok(q);
        };
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let (k, v) = (k.into_owned(), v.into_owned());
            match k.as_str() {
                "labelSelector" => q.label_selector = Some(v),
                "fieldSelector" => q.field_selector = Some(v),
                "resourceVersion" => q.resource_version = Some(v).filter(|s| !s.is_empty()),
                "resourceVersionMatch" => {
                    q.resource_version_match = Some(v).filter(|s| !s.is_empty())
                }
                "limit" => {
                    q.limit = v
                        .parse::<i64>()
                        .map_err(|_| {
                            ApiError::bad_request(format!("invalid value {v:?} for limit"))
                        })?
                        .max(0) as usize
                }
                "continue" => q.continue_token = Some(v).filter(|s| !s.is_empty()),
                "watch" => q.watch = parse_bool(&k, &v)?,
                "allowWatchBookmarks" => q.allow_watch_bookmarks = parse_bool(&k, &v)?,
                "sendInitialEvents" => q.send_initial_events = parse_bool(&k, &v)?,
                "timeoutSeconds" => {
                    q.timeout_seconds = Some(v.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid value {v:?} for timeoutSeconds"))
                    })?)
                }
                "timeout" => {}
                "dryRun" => {
                    if v != "All" {
                        return Err(ApiError::bad_request(format!(
                            "Invalid dryRun value {v:?}: only \"All\" is supported"
                        )));
                    }
                    q.dry_run = true
                }
                "fieldManager" => q.field_manager = Some(v),
                "fieldValidation" => {
                    q.field_validation = Some(match v.as_str() {
                        "Strict" => FieldValidation::Strict,
                        "Warn" => FieldValidation::Warn,
                        "Ignore" => FieldValidation::Ignore,
                        _ => {
                            return Err(ApiError::bad_request(format!(
                                "fieldValidation must be one of Ignore, Warn, or Strict, got {v:?}"
                            )));
                        }
                    })
                }
                "force" => q.force = parse_bool(&k, &v)?,
                "propagationPolicy" => q.propagation_policy = Some(v),
                "gracePeriodSeconds" => {
                    q.grace_period_seconds = Some(v.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid value {v:?} for gracePeriodSeconds"))
                    })?)
                }
                "orphanDependents" => q.orphan_dependents = Some(parse_bool(&k, &v)?),
                "includeObject" => q.include_object = Some(v),
                "pretty" => {}
                _ => q.raw.push((k, v)),
            }
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubectl_queries() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb&limit=500&fieldValidation=Strict&command=ls&command=-l",
        ))
        .unwrap();
        assert_eq!(q.label_selector.as_deref(), Some("app=web"));
        assert_eq!(q.limit, 500);
        assert_eq!(q.field_validation, Some(FieldValidation::Strict));
        assert_eq!(q.raw.iter().filter(|(k, _)| k == "command").count(), 2);
        assert!(Query::parse(Some("dryRun=Some")).is_err());
        assert!(Query::parse(Some("watch=maybe")).is_err());
    }
}
