//! HTTP routing of the distribution API: the path is parsed by hand (repository names
//! contain slashes, so `/v2/<name>/…` is matched from its end), the caller is
//! authenticated once, and each route checks the actions it needs before calling the
//! repository service. Every response carries `Docker-Distribution-Api-Version`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use tracing::Instrument as _;

use crate::api_error;
use crate::auth::{Actions, AuthMode, AuthState, Grant};
use crate::error::{RegistryError, Result};
use crate::names::validate_name;
use crate::service::Service;

/// Marks a connection as TLS (for the scheme of the token realm).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnTls(pub bool);

pub(crate) struct App {
    pub svc: Arc<Service>,
    pub auth: Option<AuthState>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Base,
    Catalog,
    Token,
    Tags(String),
    Manifest(String, String),
    Blob(String, String),
    UploadStart(String),
    Upload(String, String),
    Referrers(String, String),
}

/// Maps a request path to a route (names are validated by the caller).
pub(crate) fn parse_route(path: &str) -> Option<Route> {
    if path == "/token" {
        return Some(Route::Token);
    }
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Route::Base);
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let name = |k: usize| (n > k).then(|| segs[..n - k].join("/"));
    if n >= 3 && segs[n - 2] == "tags" && segs[n - 1] == "list" {
        return Some(Route::Tags(name(2)?));
    }
    if n >= 3 && segs[n - 2] == "manifests" {
        return Some(Route::Manifest(name(2)?, segs[n - 1].to_owned()));
    }
    if n >= 3 && segs[n - 2] == "referrers" {
        return Some(Route::Referrers(name(2)?, segs[n - 1].to_owned()));
    }
    if n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
        return Some(if segs[n - 1].is_empty() {
            Route::UploadStart(name(3)?)
        } else {
            Route::Upload(name(3)?, segs[n - 1].to_owned())
        });
    }
    if n >= 3 && segs[n - 2] == "blobs" {
        if segs[n - 1] == "uploads" {
            return Some(Route::UploadStart(name(2)?));
        }
        return Some(Route::Blob(name(2)?, segs[n - 1].to_owned()));
    }
    None
}

/// The router's single handler.
pub(crate) async fn dispatch(State(app): State<Arc<App>>, req: Request) -> Response {
    let head = req.method() == Method::HEAD;
    let span = tracing::debug_span!("request", method = %req.method(), path = %req.uri().path());
    let mut resp = match handle(&app, req).instrument(span).await {
        Ok(r) => r,
        Err(e) => api_error::response(&e, head),
    };
    resp.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    resp
}

async fn handle(app: &App, req: Request) -> Result<Response> {
    let path = req.uri().path().to_owned();
    let Some(route) = parse_route(&path) else {
        return Err(RegistryError::NameInvalid {
            name: path,
            reason: "no such API route".into(),
        });
    };
    match &route {
        Route::Tags(n)
        | Route::Manifest(n, _)
        | Route::Blob(n, _)
        | Route::UploadStart(n)
        | Route::Upload(n, _)
        | Route::Referrers(n, _) => validate_name(n)?,
        _ => {}
    }
    if route == Route::Token {
        let q = query(&req);
        return crate::http_auth::token_endpoint(app, req.headers().clone(), q).await;
    }
    let grant = crate::http_auth::authenticate(app, req.headers()).await?;
    let ctx = Ctx {
        app,
        grant,
        tls: req.extensions().get::<ConnTls>().is_some_and(|t| t.0),
        host: req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_else(|| "localhost".into()),
    };
    match route {
        Route::Base => {
            if ctx.app.auth.is_some() && matches!(ctx.grant, Grant::Anonymous) {
                return Err(ctx.challenge(None, false));
            }
            Ok(json_response(StatusCode::OK, b"{}".to_vec()))
        }
        Route::Catalog => crate::http_manifests::catalog(&ctx, req).await,
        Route::Tags(name) => {
            ctx.require(&name, Actions::PULL)?;
            crate::http_manifests::tags(&ctx, &name, req).await
        }
        Route::Manifest(name, reference) => {
            crate::http_manifests::manifest(&ctx, &name, &reference, req).await
        }
        Route::Referrers(name, digest) => {
            ctx.require(&name, Actions::PULL)?;
            crate::http_manifests::referrers(&ctx, &name, &digest, req).await
        }
        Route::Blob(name, digest) => crate::http_blobs::blob(&ctx, &name, &digest, req).await,
        Route::UploadStart(name) => crate::http_blobs::upload_start(&ctx, &name, req).await,
        Route::Upload(name, id) => crate::http_blobs::upload(&ctx, &name, &id, req).await,
        Route::Token => unreachable!("handled above"),
    }
}

/// A request's authenticated context.
pub(crate) struct Ctx<'a> {
    pub app: &'a App,
    pub grant: Grant,
    pub tls: bool,
    /// The Host header, or the HTTP/2 `:authority`.
    pub host: String,
}

impl Ctx<'_> {
    pub(crate) fn svc(&self) -> &Service {
        &self.app.svc
    }

    pub(crate) fn allowed(&self, repo: &str) -> Actions {
        match &self.app.auth {
            None => Actions::ALL,
            Some(a) => a.allowed(&self.grant, repo),
        }
    }

    /// Fails with 401 (or 403 for a known Basic user) unless `need` is allowed in `repo`.
    pub(crate) fn require(&self, repo: &str, need: Actions) -> Result<()> {
        if self.allowed(repo).contains(need) {
            return Ok(());
        }
        // Challenge for what the client needs: pushes also need pull.
        let want = if need.contains(Actions::PUSH) {
            need.union(Actions::PULL)
        } else {
            need
        };
        let scope = format!("repository:{repo}:{}", want.names().join(","));
        Err(self.challenge(Some(scope), true))
    }

    pub(crate) fn challenge(&self, scope: Option<String>, insufficient: bool) -> RegistryError {
        let Some(auth) = &self.app.auth else {
            return RegistryError::Denied {
                scope: scope.unwrap_or_default(),
                challenge: String::new(),
            };
        };
        match &auth.config.mode {
            AuthMode::None => RegistryError::Denied {
                scope: scope.unwrap_or_default(),
                challenge: String::new(),
            },
            AuthMode::Basic { realm } => {
                let challenge = format!("Basic realm=\"{realm}\"");
                if matches!(self.grant, Grant::Anonymous) {
                    RegistryError::Unauthorized { challenge, scope }
                } else {
                    RegistryError::Denied {
                        scope: scope.unwrap_or_default(),
                        challenge,
                    }
                }
            }
            AuthMode::Token { realm, service } => {
                let realm = realm.clone().unwrap_or_else(|| self.default_realm());
                let mut c = format!("Bearer realm=\"{realm}\",service=\"{service}\"");
                if let Some(s) = &scope {
                    c.push_str(&format!(",scope=\"{s}\""));
                }
                if insufficient && !matches!(self.grant, Grant::Anonymous) {
                    c.push_str(",error=\"insufficient_scope\"");
                }
                RegistryError::Unauthorized {
                    challenge: c,
                    scope,
                }
            }
        }
    }

    fn default_realm(&self) -> String {
        let host = &self.host;
        format!("{}://{host}/token", if self.tls { "https" } else { "http" })
    }
}

pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .expect("valid response")
}

/// Query parameters of a request, in order (keys may repeat).
pub(crate) fn query(req: &Request) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

pub(crate) fn query_get<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(parse_route("/v2/"), Some(Route::Base));
        assert_eq!(parse_route("/v2"), Some(Route::Base));
        assert_eq!(parse_route("/v2/_catalog"), Some(Route::Catalog));
        assert_eq!(
            parse_route("/v2/a/b/tags/list"),
            Some(Route::Tags("a/b".into()))
        );
        assert_eq!(
            parse_route("/v2/a/manifests/latest"),
            Some(Route::Manifest("a".into(), "latest".into()))
        );
        assert_eq!(
            parse_route("/v2/a/b/blobs/uploads/"),
            Some(Route::UploadStart("a/b".into()))
        );
        assert_eq!(
            parse_route("/v2/a/blobs/uploads"),
            Some(Route::UploadStart("a".into()))
        );
        assert_eq!(
            parse_route("/v2/a/blobs/uploads/xyz"),
            Some(Route::Upload("a".into(), "xyz".into()))
        );
        assert_eq!(
            parse_route("/v2/a/blobs/sha256:00"),
            Some(Route::Blob("a".into(), "sha256:00".into()))
        );
        assert_eq!(
            parse_route("/v2/blobs/blobs/x"),
            Some(Route::Blob("blobs".into(), "x".into()))
        );
        assert_eq!(
            parse_route("/v2/a/referrers/sha256:00"),
            Some(Route::Referrers("a".into(), "sha256:00".into()))
        );
        assert_eq!(parse_route("/v2/manifests/x"), None);
        assert_eq!(parse_route("/other"), None);
    }
}
