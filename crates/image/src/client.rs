//! A distribution-API client for any OCI registry: the Docker/OCI token flow (401 →
//! `WWW-Authenticate: Bearer realm,service,scope` → token endpoint with Basic credentials →
//! retry) or plain Basic, manifests by tag or digest, blob downloads with `Range` for
//! resumption, and uploads (HEAD check, cross-repository mount, POST + streamed PUT).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use futures::Stream;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};

use crate::digest::Digest;
use crate::error::{ImageError, Result};

/// How to reach a registry.
#[derive(Clone, Debug, Default)]
pub struct EndpointConfig {
    /// `host[:port]`.
    pub host: String,
    /// Speak plain HTTP instead of HTTPS.
    pub plain_http: bool,
    /// Skip TLS certificate verification.
    pub insecure_skip_verify: bool,
    /// Extra CA certificate (PEM) to trust, e.g. the cluster CA.
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<String>,
}

#[derive(Clone, Debug)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// A client for one registry.
#[derive(Clone)]
pub struct RegistryClient {
    cfg: EndpointConfig,
    base: String,
    http: reqwest::Client,
    challenge: Arc<Mutex<Option<Challenge>>>,
    tokens: Arc<Mutex<HashMap<String, String>>>,
}

/// Parses `Bearer realm="…",service="…",scope="…"` style parameters.
fn parse_challenge(v: &str) -> Option<Challenge> {
    let (scheme, rest) = v.trim().split_once(' ').unwrap_or((v.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = HashMap::new();
    let mut s = rest;
    while let Some((k, after)) = s.split_once('=') {
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (val, tail) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (&q[..end], q.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.insert(k, val.to_owned());
        s = tail;
    }
    Some(Challenge::Bearer {
        realm: params.remove("realm")?,
        service: params.remove("service"),
    })
}

impl RegistryClient {
    pub fn new(cfg: EndpointConfig) -> Result<RegistryClient> {
        let err = |reason: String| ImageError::Auth {
            registry: cfg.host.clone(),
            reason,
        };
        let mut b = reqwest::Client::builder().pool_max_idle_per_host(8);
        if cfg.insecure_skip_verify {
            b = b.tls_danger_accept_invalid_certs(true);
        }
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca).map_err(|e| ImageError::io("read CA file", ca, e))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| err(format!("CA file {}: {e}", ca.display())))?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let http = b.build().map_err(|e| ImageError::Http {
            registry: cfg.host.clone(),
            source: e,
        })?;
        let base = format!(
            "{}://{}",
            if cfg.plain_http { "http" } else { "https" },
            cfg.host
        );
        Ok(RegistryClient {
            cfg,
            base,
            http,
            challenge: Arc::default(),
            tokens: Arc::default(),
        })
    }

    pub fn host(&self) -> &str {
        &self.cfg.host
    }

    fn http_err(&self, e: reqwest::Error) -> ImageError {
        ImageError::Http {
            registry: self.cfg.host.clone(),
            source: e,
        }
    }

    fn basic_header(&self) -> Option<String> {
        let (u, p) = (
            self.cfg.username.as_ref()?,
            self.cfg.password.as_deref().unwrap_or(""),
        );
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        ))
    }

    fn auth_header(&self, scope: &str) -> Option<String> {
        match self.challenge.lock().expect("lock").clone()? {
            Challenge::Basic => self.basic_header(),
            Challenge::Bearer { .. } => self
                .tokens
                .lock()
                .expect("lock")
                .get(scope)
                .map(|t| format!("Bearer {t}")),
        }
    }

    async fn fetch_token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<()> {
        let mut q: Vec<(&str, &str)> = vec![("scope", scope)];
        if let Some(s) = service {
            q.push(("service", s));
        }
        if let Some(u) = &self.cfg.username {
            q.push(("account", u));
        }
        let qs: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&q)
            .finish();
        let sep = if realm.contains('?') { '&' } else { '?' };
        let mut req = self.http.get(format!("{realm}{sep}{qs}"));
        if let Some(b) = self.basic_header() {
            req = req.header(header::AUTHORIZATION, b);
        }
        let resp = req.send().await.map_err(|e| self.http_err(e))?;
        if !resp.status().is_success() {
            return Err(ImageError::Auth {
                registry: self.cfg.host.clone(),
                reason: format!("token endpoint {realm} answered {}", resp.status()),
            });
        }
        let v: serde_json::Value = resp.json().await.map_err(|e| self.http_err(e))?;
        let t = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| ImageError::Auth {
                registry: self.cfg.host.clone(),
                reason: "token response without a token".into(),
            })?;
        self.tokens
            .lock()
            .expect("lock")
            .insert(scope.to_owned(), t.to_owned());
        Ok(())
    }

    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.base)
        }
    }

    /// Sends a request built by `build` (which may be called twice), answering one
    /// authentication challenge for `scope` on the way.
    async fn send(
        &self,
        scope: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let mut retried = false;
        loop {
            let mut req = build(&self.http);
            if let Some(a) = self.auth_header(scope) {
                req = req.header(header::AUTHORIZATION, a);
            }
            let resp = req.send().await.map_err(|e| self.http_err(e))?;
            if resp.status() != StatusCode::UNAUTHORIZED || retried {
                return Ok(resp);
            }
            retried = true;
            let ch = resp
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_challenge)
                .ok_or_else(|| ImageError::Auth {
                    registry: self.cfg.host.clone(),
                    reason: "401 without a usable challenge".into(),
                })?;
            if let Challenge::Bearer { realm, service } = &ch {
                self.fetch_token(realm, service.as_deref(), scope).await?;
            } else if self.cfg.username.is_none() {
                return Err(ImageError::Auth {
                    registry: self.cfg.host.clone(),
                    reason: "credentials required".into(),
                });
            }
            *self.challenge.lock().expect("lock") = Some(ch);
        }
    }

    async fn fail(&self, url: &str, resp: reqwest::Response) -> ImageError {
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.pointer("/errors/0/message")
                    .and_then(|m| m.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| body.chars().take(200).collect());
        if status == 401 || status == 403 {
            return ImageError::Auth {
                registry: self.cfg.host.clone(),
                reason: format!("{status} for {url}: {message}"),
            };
        }
        ImageError::Registry {
            registry: self.cfg.host.clone(),
            url: url.to_owned(),
            status,
            message,
        }
    }

    fn pull_scope(repo: &str) -> String {
        format!("repository:{repo}:pull")
    }

    fn push_scope(repo: &str) -> String {
        format!("repository:{repo}:pull,push")
    }

    /// Fetches a manifest; returns its bytes, media type and digest (verified when the
    /// reference is a digest).
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(Bytes, String, Digest)> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let resp = self
            .send(&Self::pull_scope(repo), |c| {
                c.get(&url)
                    .header(header::ACCEPT, crate::model::MANIFEST_ACCEPT)
            })
            .await?;
        if !resp.status().is_success() {
            return Err(self.fail(&url, resp).await);
        }
        let mt = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_owned())
            .unwrap_or_default();
        let body = resp.bytes().await.map_err(|e| self.http_err(e))?;
        let digest = match reference.parse::<Digest>() {
            Ok(d) => {
                let mut h = d.hasher();
                h.update(&body);
                let actual = h.finish();
                if actual != d {
                    return Err(ImageError::DigestMismatch {
                        what: format!("manifest {repo}@{d}"),
                        expected: d.to_string(),
                        actual: actual.to_string(),
                    });
                }
                d
            }
            Err(_) => Digest::sha256_of(&body),
        };
        Ok((body, mt, digest))
    }

    /// Starts a blob download at `offset`; returns the stream and whether the registry
    /// honoured the offset (206) rather than starting over (200).
    pub async fn get_blob(
        &self,
        repo: &str,
        d: &Digest,
        offset: u64,
    ) -> Result<(impl Stream<Item = reqwest::Result<Bytes>> + use<>, bool)> {
        let url = self.url(&format!("/v2/{repo}/blobs/{d}"));
        let resp = self
            .send(&Self::pull_scope(repo), |c| {
                let r = c.get(&url);
                if offset > 0 {
                    r.header(header::RANGE, format!("bytes={offset}-"))
                } else {
                    r
                }
            })
            .await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(self.fail(&url, resp).await);
        }
        Ok((resp.bytes_stream(), status == StatusCode::PARTIAL_CONTENT))
    }

    /// Whether the repository has the blob.
    pub async fn has_blob(&self, repo: &str, d: &Digest) -> Result<bool> {
        let url = self.url(&format!("/v2/{repo}/blobs/{d}"));
        let resp = self.send(&Self::push_scope(repo), |c| c.head(&url)).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.fail(&url, resp).await),
        }
    }

    /// Uploads a blob from `body` (POST then one streamed PUT), or mounts it from `from`.
    pub async fn push_blob(
        &self,
        repo: &str,
        d: &Digest,
        size: u64,
        mount_from: Option<&str>,
        body: impl FnOnce() -> reqwest::Body,
    ) -> Result<()> {
        let scope = Self::push_scope(repo);
        let mut start = format!("/v2/{repo}/blobs/uploads/");
        if let Some(from) = mount_from {
            start.push_str(&format!("?mount={d}&from={from}"));
        }
        let start_url = self.url(&start);
        let resp = self
            .send(&scope, |c| {
                c.post(&start_url).header(header::CONTENT_LENGTH, 0)
            })
            .await?;
        if resp.status() == StatusCode::CREATED {
            return Ok(());
        }
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.fail(&start_url, resp).await);
        }
        let loc = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ImageError::Registry {
                registry: self.cfg.host.clone(),
                url: start_url.clone(),
                status: 202,
                message: "no Location".into(),
            })?
            .to_owned();
        let sep = if loc.contains('?') { '&' } else { '?' };
        let put_url = self.url(&format!("{loc}{sep}digest={d}"));
        let mut req = self
            .http
            .request(Method::PUT, &put_url)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, size)
            .body(body());
        if let Some(a) = self.auth_header(&scope) {
            req = req.header(header::AUTHORIZATION, a);
        }
        let resp = req.send().await.map_err(|e| self.http_err(e))?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.fail(&put_url, resp).await);
        }
        Ok(())
    }

    /// Uploads a manifest under `reference` (a tag or its digest).
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: Bytes,
    ) -> Result<Digest> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let mt = HeaderValue::from_str(media_type)
            .map_err(|_| ImageError::invalid("media type", media_type))?;
        let resp = self
            .send(&Self::push_scope(repo), |c| {
                let mut h = HeaderMap::new();
                h.insert(header::CONTENT_TYPE, mt.clone());
                c.put(&url).headers(h).body(body.clone())
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.fail(&url, resp).await);
        }
        Ok(Digest::sha256_of(&body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        match parse_challenge(
            r#"Bearer realm="https://r/token",service="reg",scope="repository:a:pull""#,
        ) {
            Some(Challenge::Bearer { realm, service }) => {
                assert_eq!(realm, "https://r/token");
                assert_eq!(service.as_deref(), Some("reg"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        ));
        assert!(parse_challenge("Negotiate").is_none());
    }
}
