//! Authentication of requests and the token endpoint (`GET /token?service=…&scope=…`), which
//! follows the Docker token specification: Basic credentials (or none, for anonymous
//! access) in, a bearer token limited to the granted scopes out. An `insufficient_scope`
//! is answered with 401 and a challenge naming the scope, as clients expect.

use axum::response::Response;
use http::{HeaderMap, StatusCode, header};
use serde_json::json;

use crate::auth::{Actions, AuthMode, Grant, Identity};
use crate::error::{RegistryError, Result};
use crate::http::{App, basic_credentials, json_response};
use crate::token::{AccessEntry, TOKEN_LIFETIME};

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .map(str::trim)
}

fn invalid_credentials(app: &App) -> RegistryError {
    let challenge = match app.auth.as_ref().map(|a| &a.config.mode) {
        Some(AuthMode::Basic { realm }) => format!("Basic realm=\"{realm}\""),
        _ => "Basic realm=\"berth\"".to_owned(),
    };
    RegistryError::Unauthorized {
        challenge,
        scope: None,
    }
}

async fn identity_from_credentials(app: &App, headers: &HeaderMap) -> Result<Option<Identity>> {
    let Some(auth) = &app.auth else {
        return Ok(None);
    };
    let Some(authn) = &auth.config.authenticator else {
        return Err(invalid_credentials(app));
    };
    if let Some((u, p)) = basic_credentials(headers) {
        return match authn.basic(&u, &p).await? {
            Some(id) => Ok(Some(id)),
            None => Err(invalid_credentials(app)),
        };
    }
    if let Some(t) = bearer(headers) {
        return match authn.bearer(t).await? {
            Some(id) => Ok(Some(id)),
            None => Err(invalid_credentials(app)),
        };
    }
    Ok(None)
}

/// Who is calling. Wrong credentials are an error (401), missing ones are `Anonymous`.
pub(crate) async fn authenticate(app: &App, headers: &HeaderMap) -> Result<Grant> {
    let Some(auth) = &app.auth else {
        return Ok(Grant::All);
    };
    if matches!(auth.config.mode, AuthMode::None) {
        return Ok(Grant::All);
    }
    if let AuthMode::Token { service, .. } = &auth.config.mode
        && let Some(t) = bearer(headers)
        && let Some(claims) = auth.issuer.verify(t, service)
    {
        return Ok(Grant::Token(claims));
    }
    if headers.contains_key(header::AUTHORIZATION) {
        if let Some(id) = identity_from_credentials(app, headers).await? {
            return Ok(Grant::Identity(id));
        }
        return Err(invalid_credentials(app));
    }
    Ok(Grant::Anonymous)
}

/// `GET /token`: issues a bearer token for the requested scopes that the caller holds.
pub(crate) async fn token_endpoint(
    app: &App,
    headers: HeaderMap,
    q: Vec<(String, String)>,
) -> Result<Response> {
    let Some(auth) = &app.auth else {
        return Err(RegistryError::Unsupported {
            operation: "token endpoint without auth".into(),
        });
    };
    let AuthMode::Token { service, .. } = &auth.config.mode else {
        return Err(RegistryError::Unsupported {
            operation: "token endpoint without token auth".into(),
        });
    };
    let id = identity_from_credentials(app, &headers).await?;
    let grant = match &id {
        Some(i) => Grant::Identity(i.clone()),
        None => Grant::Anonymous,
    };
    let mut access = Vec::new();
    for (_, scope) in q.iter().filter(|(k, _)| k == "scope") {
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            let Some((kind_name, actions)) = s.rsplit_once(':') else {
                continue;
            };
            let Some((kind, name)) = kind_name.split_once(':') else {
                continue;
            };
            match kind {
                "repository" => {
                    let granted = Actions::parse(actions).intersect(auth.allowed(&grant, name));
                    if !granted.is_empty() {
                        access.push(AccessEntry {
                            kind: kind.into(),
                            name: name.into(),
                            actions: granted.names().into_iter().map(String::from).collect(),
                        });
                    }
                }
                "registry" if name == "catalog" && auth.may_list_catalog(&grant) => {
                    access.push(AccessEntry {
                        kind: kind.into(),
                        name: name.into(),
                        actions: vec!["*".into()],
                    });
                }
                _ => {}
            }
        }
    }
    let subject = id.map(|i| i.name).unwrap_or_default();
    let (token, issued) = auth.issuer.issue(&subject, service, access);
    let issued_at = jiff::Timestamp::from_second(issued as i64)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let body = json!({
        "token": token,
        "access_token": token,
        "expires_in": TOKEN_LIFETIME.as_secs(),
        "issued_at": issued_at,
    });
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).expect("token JSON"),
    ))
}
