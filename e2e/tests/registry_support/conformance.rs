//! A black-box conformance test of the OCI distribution spec v1.1, runnable against any
//! registry URL. It covers the categories of the official suite: pull, push (monolithic,
//! POST+PUT, chunked incl. out-of-order → 416, streamed, cross-repository mount, cancel),
//! content discovery (tags with `n`/`last`, referrers with `artifactType`) and content
//! management (delete tag, manifest, blob), plus a few checks from the spec the official
//! suite leaves out (missing `Accept`, 413 for big manifests, sha512, form content types).
//!
//! Every check is recorded as passed or failed with the reason; callers decide what must
//! pass. Knobs (environment, for pointing it at another registry): `OCI_ROOT_URL`,
//! `OCI_NAMESPACE`, `OCI_CROSSMOUNT_NAMESPACE`, `OCI_USERNAME`, `OCI_PASSWORD`.

use std::collections::HashMap;
use std::sync::Mutex;

use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256, Sha512};

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn sha512(data: &[u8]) -> String {
    format!("sha512:{}", hex::encode(Sha512::digest(data)))
}

/// Where to run.
#[derive(Clone, Debug)]
pub struct Target {
    pub base: String,
    pub repo: String,
    pub repo2: String,
    pub creds: Option<(String, String)>,
}

impl Target {
    /// From `OCI_*` variables, with defaults.
    pub fn from_env(default_base: &str, unique: &str) -> Target {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Target {
            base: var("OCI_ROOT_URL").unwrap_or_else(|| default_base.to_owned()),
            repo: var("OCI_NAMESPACE").unwrap_or_else(|| format!("conformance/{unique}/a")),
            repo2: var("OCI_CROSSMOUNT_NAMESPACE")
                .unwrap_or_else(|| format!("conformance/{unique}/b")),
            creds: var("OCI_USERNAME").map(|u| (u, var("OCI_PASSWORD").unwrap_or_default())),
        }
    }
}

impl Target {
    /// The same target at `base` unless `OCI_ROOT_URL` overrides it.
    pub fn with_base(mut self, base: &str) -> Target {
        if std::env::var("OCI_ROOT_URL")
            .map(|v| v.is_empty())
            .unwrap_or(true)
        {
            self.base = base.to_owned();
        }
        self
    }
}

/// Outcome of every check.
#[derive(Debug, Default)]
pub struct Report {
    pub results: Vec<(String, Result<(), String>)>,
}

impl Report {
    pub fn failures(&self) -> Vec<String> {
        self.results
            .iter()
            .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
            .collect()
    }

    pub fn failed(&self, name: &str) -> bool {
        self.results.iter().any(|(n, r)| n == name && r.is_err())
    }

    pub fn print(&self) {
        for (n, r) in &self.results {
            match r {
                Ok(()) => eprintln!("PASS {n}"),
                Err(e) => eprintln!("FAIL {n}: {e}"),
            }
        }
        let failed = self.results.iter().filter(|(_, r)| r.is_err()).count();
        eprintln!(
            "conformance: {} checks, {} failed",
            self.results.len(),
            failed
        );
    }
}

/// A thin HTTP client that answers Basic and Bearer challenges.
pub struct Http {
    pub t: Target,
    pub c: reqwest::Client,
    tokens: Mutex<HashMap<String, String>>,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, k: &str) -> Option<String> {
        self.headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn error_code(&self) -> Option<String> {
        self.json()
            .pointer("/errors/0/code")
            .and_then(|c| c.as_str())
            .map(str::to_owned)
    }
}

impl Http {
    pub fn new(t: Target) -> Http {
        let c = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Http {
            t,
            c,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    fn abs(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.t.base)
        }
    }

    pub async fn req(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let url = self.abs(path);
        let scope = scope_for(&url);
        for attempt in 0..2 {
            let mut r = self.c.request(method.clone(), &url);
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            if let Some(tok) = self.tokens.lock().unwrap().get(&scope).cloned() {
                r = r.header(header::AUTHORIZATION, tok);
            }
            if let Some(b) = &body {
                r = r.body(b.clone());
            }
            let resp = r
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
            if status == StatusCode::UNAUTHORIZED
                && attempt == 0
                && self.t.creds.is_some()
                && let Some(auth) = self.answer(&headers, &scope).await
            {
                self.tokens.lock().unwrap().insert(scope.clone(), auth);
                continue;
            }
            return Resp {
                status,
                headers,
                body,
            };
        }
        unreachable!()
    }

    async fn answer(&self, h: &HeaderMap, scope: &str) -> Option<String> {
        let (u, p) = self.t.creds.clone()?;
        let ch = h.get(header::WWW_AUTHENTICATE)?.to_str().ok()?.to_owned();
        if ch.starts_with("Basic") {
            let r = self
                .c
                .get(&self.t.base)
                .basic_auth(&u, Some(&p))
                .build()
                .ok()?;
            return r
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
        }
        let realm = ch.split("realm=\"").nth(1)?.split('"').next()?.to_owned();
        let service = ch
            .split("service=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("")
            .to_owned();
        // Ask for what the challenge names plus this request's scopes (a mount also needs
        // pull on its source repository, as real clients request).
        let mut scopes: Vec<String> = scope.split(' ').map(str::to_owned).collect();
        if let Some(c) = ch
            .split("scope=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
        {
            scopes.push(c.to_owned());
        }
        let enc = |v: &str| {
            v.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        };
        let resp = self
            .c
            .get(format!(
                "{realm}?service={}{}",
                enc(&service),
                scopes
                    .iter()
                    .map(|s| format!("&scope={}", enc(s)))
                    .collect::<String>()
            ))
            .basic_auth(&u, Some(&p))
            .send()
            .await
            .ok()?;
        let v: Value = resp.json().await.ok()?;
        Some(format!(
            "Bearer {}",
            v.get("token").or_else(|| v.get("access_token"))?.as_str()?
        ))
    }
}

fn scope_for(url: &str) -> String {
    let path = url.split("/v2/").nth(1).unwrap_or("");
    let name = ["/blobs/", "/manifests/", "/tags/", "/referrers/"]
        .iter()
        .filter_map(|m| path.find(m).map(|i| &path[..i]))
        .next()
        .unwrap_or("");
    let mut scope = if name.is_empty() {
        "registry:catalog:*".to_owned()
    } else {
        format!("repository:{name}:pull,push,delete")
    };
    if let Some(from) = url.split("from=").nth(1) {
        scope.push_str(&format!(
            " repository:{}:pull",
            from.split('&').next().unwrap_or("")
        ));
    }
    scope
}

const OCTET: (&str, &str) = ("Content-Type", "application/octet-stream");
const ACCEPT_ALL: (&str, &str) = (
    "Accept",
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json",
);
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

struct Suite<'a> {
    h: &'a Http,
    report: Report,
}

fn expect(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(msg()) }
}

fn status_in(r: &Resp, ok: &[u16], what: &str) -> Result<(), String> {
    expect(ok.contains(&r.status.as_u16()), || {
        format!(
            "{what}: status {} (wanted {ok:?}), body {}",
            r.status,
            String::from_utf8_lossy(&r.body)
                .chars()
                .take(300)
                .collect::<String>()
        )
    })
}

fn location(r: &Resp) -> Result<String, String> {
    r.header("location")
        .ok_or_else(|| "no Location header".to_owned())
}

fn with_query(loc: &str, q: &str) -> String {
    if loc.contains('?') {
        format!("{loc}&{q}")
    } else {
        format!("{loc}?{q}")
    }
}

impl Suite<'_> {
    fn record(&mut self, name: &str, r: Result<(), String>) {
        self.report.results.push((name.to_owned(), r));
    }

    async fn push_blob(&self, repo: &str, data: &[u8]) -> Result<String, String> {
        let d = sha256(data);
        let r = self
            .h
            .req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/"),
                &[],
                None,
            )
            .await;
        status_in(&r, &[202], "POST upload")?;
        let r = self
            .h
            .req(
                Method::PUT,
                &with_query(&location(&r)?, &format!("digest={d}")),
                &[OCTET],
                Some(data.to_vec()),
            )
            .await;
        status_in(&r, &[201], "PUT blob")?;
        Ok(d)
    }

    async fn push_manifest(&self, repo: &str, reference: &str, m: &Value) -> Result<Resp, String> {
        let body = serde_json::to_vec(m).unwrap();
        let mt = m
            .get("mediaType")
            .and_then(|v| v.as_str())
            .unwrap_or(OCI_MANIFEST)
            .to_owned();
        let r = self
            .h
            .req(
                Method::PUT,
                &format!("/v2/{repo}/manifests/{reference}"),
                &[("Content-Type", mt.as_str())],
                Some(body),
            )
            .await;
        status_in(&r, &[201], "PUT manifest")?;
        Ok(r)
    }

    async fn image(&self, repo: &str, layer: &[u8]) -> Result<(Value, String, String), String> {
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let cd = self.push_blob(repo, config).await?;
        let ld = self.push_blob(repo, layer).await?;
        let m = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": layer.len()}],
        });
        let md = sha256(&serde_json::to_vec(&m).unwrap());
        Ok((m, md, ld))
    }
}

/// Runs every check against the target.
pub async fn run(h: &Http) -> Report {
    let mut s = Suite {
        h,
        report: Report::default(),
    };
    let repo = h.t.repo.clone();
    let repo2 = h.t.repo2.clone();
    let missing = sha256(b"never pushed by the conformance suite");

    // ---- pull
    let r = h.req(Method::GET, "/v2/", &[], None).await;
    s.record("pull/ping", status_in(&r, &[200], "GET /v2/"));
    let r = h
        .req(
            Method::HEAD,
            &format!("/v2/{repo}/blobs/{missing}"),
            &[],
            None,
        )
        .await;
    s.record("pull/head-missing-blob-404", status_in(&r, &[404], "HEAD"));
    let r = h
        .req(
            Method::GET,
            &format!("/v2/{repo}/blobs/{missing}"),
            &[],
            None,
        )
        .await;
    s.record(
        "pull/get-missing-blob-404",
        status_in(&r, &[404], "GET").and(expect(
            r.error_code().as_deref() == Some("BLOB_UNKNOWN"),
            || format!("code {:?}", r.error_code()),
        )),
    );
    let layer: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let pushed = s.image(&repo, &layer).await;
    s.record(
        "push/post-put-blobs",
        pushed.as_ref().map(|_| ()).map_err(Clone::clone),
    );
    let Ok((manifest, md, ld)) = pushed else {
        return s.report;
    };
    let r = s.push_manifest(&repo, "tagtest0", &manifest).await;
    s.record(
        "push/manifest-put-201",
        r.and_then(|r| {
            expect(
                r.header("docker-content-digest").as_deref() == Some(md.as_str()),
                || {
                    format!(
                        "Docker-Content-Digest {:?}",
                        r.header("docker-content-digest")
                    )
                },
            )
        }),
    );
    let r = h
        .req(Method::HEAD, &format!("/v2/{repo}/blobs/{ld}"), &[], None)
        .await;
    s.record(
        "pull/head-blob-200",
        status_in(&r, &[200], "HEAD").and(expect(
            r.header("content-length").as_deref() == Some("5000"),
            || format!("Content-Length {:?}", r.header("content-length")),
        )),
    );
    let r = h
        .req(Method::GET, &format!("/v2/{repo}/blobs/{ld}"), &[], None)
        .await;
    s.record(
        "pull/get-blob-200",
        status_in(&r, &[200], "GET").and(expect(r.body == layer, || "body differs".into())),
    );
    for (range, want_status, want) in [
        ("bytes=500-1499", 206, Some("bytes 500-1499/5000")),
        ("bytes=500-", 206, Some("bytes 500-4999/5000")),
        ("bytes=-500", 206, Some("bytes 4500-4999/5000")),
        ("bytes=2000-50000", 206, Some("bytes 2000-4999/5000")),
        ("bytes=500-0", 416, None),
        ("bytes=5000-10000", 416, None),
    ] {
        let r = h
            .req(
                Method::GET,
                &format!("/v2/{repo}/blobs/{ld}"),
                &[("Range", range)],
                None,
            )
            .await;
        let res = status_in(&r, &[want_status], range).and(match want {
            Some(cr) => expect(r.header("content-range").as_deref() == Some(cr), || {
                format!("Content-Range {:?}", r.header("content-range"))
            }),
            None => Ok(()),
        });
        s.record(&format!("pull/range {range}"), res);
    }
    let r = h
        .req(
            Method::GET,
            &format!("/v2/{repo}/manifests/{missing}"),
            &[ACCEPT_ALL],
            None,
        )
        .await;
    s.record(
        "pull/get-missing-manifest-404",
        status_in(&r, &[404], "GET"),
    );
    let r = h
        .req(
            Method::HEAD,
            &format!("/v2/{repo}/manifests/nosuchtag"),
            &[ACCEPT_ALL],
            None,
        )
        .await;
    s.record("pull/head-missing-tag-404", status_in(&r, &[404], "HEAD"));
    let r = h
        .req(
            Method::GET,
            &format!("/v2/{repo}/manifests/{md}"),
            &[ACCEPT_ALL],
            None,
        )
        .await;
    s.record(
        "pull/get-manifest-by-digest",
        status_in(&r, &[200], "GET").and(expect(sha256(&r.body) == md, || {
            "body digest differs".into()
        })),
    );
    let r = h
        .req(
            Method::HEAD,
            &format!("/v2/{repo}/manifests/tagtest0"),
            &[ACCEPT_ALL],
            None,
        )
        .await;
    s.record(
        "pull/head-manifest-by-tag",
        status_in(&r, &[200], "HEAD").and(expect(
            r.header("docker-content-digest").as_deref() == Some(md.as_str()),
            || "digest header".into(),
        )),
    );
    let r = h
        .req(
            Method::GET,
            &format!("/v2/{repo}/manifests/tagtest0"),
            &[],
            None,
        )
        .await;
    s.record(
        "pull/get-manifest-without-accept",
        status_in(&r, &[200], "GET without Accept"),
    );
    let r = h
        .req(
            Method::GET,
            &format!("/v2/{repo}/blobs/sha256:abc"),
            &[],
            None,
        )
        .await;
    s.record(
        "pull/error-json-on-400",
        status_in(&r, &[400, 404], "GET malformed digest")
            .and(expect(r.json().pointer("/errors/0/code").is_some(), || {
                "error body is not OCI error JSON".into()
            })),
    );

    // ---- push
    let r = h
        .req(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            None,
        )
        .await;
    s.record(
        "push/post-session",
        status_in(&r, &[202], "POST").and(location(&r).map(|_| ())),
    );
    let mono = b"monolithic single POST".to_vec();
    let r = h
        .req(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(&mono)),
            &[OCTET],
            Some(mono.clone()),
        )
        .await;
    s.record(
        "push/post-monolithic-201-or-202",
        status_in(&r, &[201, 202], "POST with digest"),
    );
    let form = b"a=b&digest=sha256:00".to_vec();
    let r = h
        .req(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            None,
        )
        .await;
    let res = match location(&r) {
        Ok(loc) => {
            let r = h
                .req(
                    Method::PUT,
                    &with_query(&loc, &format!("digest={}", sha256(&form))),
                    &[("Content-Type", "application/x-www-form-urlencoded")],
                    Some(form.clone()),
                )
                .await;
            status_in(&r, &[201], "PUT with a form content type")
        }
        Err(e) => Err(e),
    };
    s.record("push/body-never-parsed-as-form", res);

    // chunked
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 253) as u8).collect();
    let dd = sha256(&data);
    let res: Result<(), String> = async {
        let r = h
            .req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/"),
                &[],
                None,
            )
            .await;
        status_in(&r, &[202], "POST")?;
        let loc = location(&r)?;
        let r = h
            .req(
                Method::PATCH,
                &loc,
                &[OCTET, ("Content-Range", "0-999")],
                Some(data[..1000].to_vec()),
            )
            .await;
        status_in(&r, &[202], "first chunk")?;
        expect(r.header("range").as_deref() == Some("0-999"), || {
            format!("Range after first chunk {:?}", r.header("range"))
        })?;
        let loc = location(&r)?;
        let r = h
            .req(
                Method::PATCH,
                &loc,
                &[OCTET, ("Content-Range", "1500-3499")],
                Some(data[1000..3000].to_vec()),
            )
            .await;
        status_in(&r, &[416], "out-of-order chunk")?;
        let r = h
            .req(
                Method::PATCH,
                &loc,
                &[OCTET, ("Content-Range", "0-999")],
                Some(data[..1000].to_vec()),
            )
            .await;
        status_in(&r, &[416], "retried previous chunk")?;
        let r = h.req(Method::GET, &loc, &[], None).await;
        status_in(&r, &[204], "upload status")?;
        expect(r.header("range").as_deref() == Some("0-999"), || {
            format!("status Range {:?}", r.header("range"))
        })?;
        let loc = location(&r)?;
        let r = h
            .req(
                Method::PATCH,
                &loc,
                &[OCTET, ("Content-Range", "1000-2999")],
                Some(data[1000..].to_vec()),
            )
            .await;
        status_in(&r, &[202], "second chunk")?;
        let loc = location(&r)?;
        let r = h
            .req(
                Method::PUT,
                &with_query(&loc, &format!("digest={dd}")),
                &[OCTET],
                Some(Vec::new()),
            )
            .await;
        status_in(&r, &[201], "closing PUT")?;
        let r = h
            .req(Method::GET, &format!("/v2/{repo}/blobs/{dd}"), &[], None)
            .await;
        expect(r.body == data, || "chunked blob content differs".into())
    }
    .await;
    s.record("push/chunked-with-out-of-order-416", res);

    // streamed
    let stream_data = vec![42u8; 70_000];
    let res: Result<(), String> = async {
        let r = h
            .req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/"),
                &[],
                None,
            )
            .await;
        let loc = location(&r)?;
        let r = h
            .req(Method::PATCH, &loc, &[OCTET], Some(stream_data.clone()))
            .await;
        status_in(&r, &[202], "streamed PATCH")?;
        let r = h
            .req(
                Method::PUT,
                &with_query(&location(&r)?, &format!("digest={}", sha256(&stream_data))),
                &[OCTET],
                None,
            )
            .await;
        status_in(&r, &[201], "PUT")
    }
    .await;
    s.record("push/streamed", res);

    // digest mismatch
    let res: Result<(), String> = async {
        let r = h
            .req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/"),
                &[],
                None,
            )
            .await;
        let loc = location(&r)?;
        let wrong = sha256(b"something else entirely");
        let r = h
            .req(
                Method::PUT,
                &with_query(&loc, &format!("digest={wrong}")),
                &[OCTET],
                Some(b"actual content".to_vec()),
            )
            .await;
        status_in(&r, &[400], "PUT with wrong digest")?;
        expect(r.error_code().as_deref() == Some("DIGEST_INVALID"), || {
            format!("code {:?}", r.error_code())
        })?;
        let r = h
            .req(
                Method::HEAD,
                &format!("/v2/{repo}/blobs/{wrong}"),
                &[],
                None,
            )
            .await;
        status_in(&r, &[404], "blob after mismatch")
    }
    .await;
    s.record("push/digest-mismatch-400", res);

    // cancel
    let res: Result<(), String> = async {
        let r = h
            .req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/"),
                &[],
                None,
            )
            .await;
        let loc = location(&r)?;
        let r = h.req(Method::DELETE, &loc, &[], None).await;
        status_in(&r, &[204], "DELETE session")?;
        let r = h.req(Method::GET, &loc, &[], None).await;
        status_in(&r, &[404], "status of a cancelled session")
    }
    .await;
    s.record("push/cancel", res);

    // mount
    let r = h
        .req(
            Method::POST,
            &format!("/v2/{repo2}/blobs/uploads/?mount={ld}&from={repo}"),
            &[],
            None,
        )
        .await;
    let res = status_in(&r, &[201, 202], "mount");
    let res = if res.is_ok() && r.status == 201 {
        let r = h
            .req(Method::HEAD, &format!("/v2/{repo2}/blobs/{ld}"), &[], None)
            .await;
        status_in(&r, &[200], "HEAD mounted blob")
    } else {
        res
    };
    s.record(
        "push/mount-201",
        res.and(expect(r.status == 201, || "mount answered 202".into())),
    );
    let r = h
        .req(
            Method::POST,
            &format!("/v2/{repo2}/blobs/uploads/?mount={missing}&from={repo}"),
            &[],
            None,
        )
        .await;
    s.record(
        "push/mount-missing-202",
        status_in(&r, &[202], "mount of a missing blob").and(location(&r).map(|_| ())),
    );
    let r = h
        .req(
            Method::POST,
            &format!("/v2/{repo2}/blobs/uploads/?mount={ld}"),
            &[],
            None,
        )
        .await;
    s.record(
        "push/mount-without-from-202",
        status_in(&r, &[201, 202], "mount without from"),
    );

    // manifests
    let empty = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": manifest["config"].clone(), "layers": []});
    s.record(
        "push/manifest-without-layers",
        s.push_manifest(&repo, "nolayers", &empty).await.map(|_| ()),
    );
    let bad = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": manifest["config"].clone(),
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": missing, "size": 1}]});
    let r = h
        .req(
            Method::PUT,
            &format!("/v2/{repo}/manifests/bad"),
            &[("Content-Type", OCI_MANIFEST)],
            Some(serde_json::to_vec(&bad).unwrap()),
        )
        .await;
    s.record(
        "push/manifest-blob-unknown-400",
        status_in(&r, &[400], "manifest with a missing layer").and(expect(
            r.error_code().as_deref() == Some("MANIFEST_BLOB_UNKNOWN"),
            || format!("code {:?}", r.error_code()),
        )),
    );
    let mut big = manifest.clone();
    big["annotations"] = json!({"filler": "x".repeat(5 * 1024 * 1024)});
    let r = h
        .req(
            Method::PUT,
            &format!("/v2/{repo}/manifests/big"),
            &[("Content-Type", OCI_MANIFEST)],
            Some(serde_json::to_vec(&big).unwrap()),
        )
        .await;
    s.record(
        "push/manifest-over-4mib-413",
        status_in(&r, &[413], "5 MiB manifest"),
    );
    let r = h
        .req(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{}", sha256(b"wrong")),
            &[("Content-Type", OCI_MANIFEST)],
            Some(serde_json::to_vec(&manifest).unwrap()),
        )
        .await;
    s.record(
        "push/manifest-digest-mismatch-400",
        status_in(&r, &[400], "PUT by a wrong digest"),
    );
    let s512 = b"sha512 content".to_vec();
    let res: Result<(), String> = async {
        let r = h
            .req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/"),
                &[],
                None,
            )
            .await;
        let r = h
            .req(
                Method::PUT,
                &with_query(&location(&r)?, &format!("digest={}", sha512(&s512))),
                &[OCTET],
                Some(s512.clone()),
            )
            .await;
        status_in(&r, &[201], "PUT sha512")?;
        let r = h
            .req(
                Method::GET,
                &format!("/v2/{repo}/blobs/{}", sha512(&s512)),
                &[],
                None,
            )
            .await;
        status_in(&r, &[200], "GET by sha512")?;
        expect(
            r.header("docker-content-digest")
                .as_deref()
                .is_none_or(|d| d == sha512(&s512)),
            || format!("digest header {:?}", r.header("docker-content-digest")),
        )
    }
    .await;
    s.record("push/sha512", res);

    // ---- content discovery
    for t in ["b", "a", "c", "Z", "9"] {
        let _ = s.push_manifest(&repo, t, &manifest).await;
    }
    let r = h
        .req(Method::GET, &format!("/v2/{repo}/tags/list"), &[], None)
        .await;
    let tags: Vec<String> = r.json()["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut sorted = tags.clone();
    sorted.sort();
    s.record(
        "discovery/tags-list-sorted",
        status_in(&r, &[200], "tags/list").and(expect(
            tags == sorted && tags.contains(&"tagtest0".to_owned()),
            || format!("tags {tags:?}"),
        )),
    );
    let r = h
        .req(Method::GET, &format!("/v2/{repo}/tags/list?n=2"), &[], None)
        .await;
    let page: Vec<Value> = r.json()["tags"].as_array().cloned().unwrap_or_default();
    s.record(
        "discovery/tags-list-n",
        status_in(&r, &[200], "n=2").and(expect(
            page.len() == 2 && r.header("link").is_some_and(|l| l.contains("rel=\"next\"")),
            || format!("page {page:?}, Link {:?}", r.header("link")),
        )),
    );
    let r = h
        .req(
            Method::GET,
            &format!("/v2/{repo}/tags/list?n=2&last=a"),
            &[],
            None,
        )
        .await;
    let page: Vec<String> = r.json()["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    s.record(
        "discovery/tags-list-last",
        expect(page == ["b", "c"], || format!("page after 'a' {page:?}")),
    );
    let r = h
        .req(
            Method::GET,
            &format!("/v2/{repo}/referrers/{missing}"),
            &[],
            None,
        )
        .await;
    s.record(
        "discovery/referrers-empty",
        status_in(&r, &[200], "referrers of an unknown subject").and(expect(
            r.json()["manifests"]
                .as_array()
                .is_some_and(|a| a.is_empty()),
            || "not an empty index".into(),
        )),
    );
    let empty_cfg = b"{}".to_vec();
    let ecd = s.push_blob(&repo, &empty_cfg).await.unwrap_or_default();
    let artifact = |at: &str, subject: &str| {
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": at,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": ecd, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": ecd, "size": 2}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1}})
    };
    let a1 = artifact("application/vnd.example.sbom", &md);
    let a2 = artifact("application/vnd.example.sig", &md);
    let a1d = sha256(&serde_json::to_vec(&a1).unwrap());
    let r = s.push_manifest(&repo, &a1d, &a1).await;
    s.record(
        "discovery/subject-put-oci-subject-header",
        r.and_then(|r| {
            expect(
                r.header("oci-subject").as_deref() == Some(md.as_str()),
                || format!("OCI-Subject {:?}", r.header("oci-subject")),
            )
        }),
    );
    let _ = s
        .push_manifest(&repo, &sha256(&serde_json::to_vec(&a2).unwrap()), &a2)
        .await;
    let r = h
        .req(
            Method::GET,
            &format!("/v2/{repo}/referrers/{md}"),
            &[],
            None,
        )
        .await;
    let n = r.json()["manifests"]
        .as_array()
        .map(|a| a.len())
        .unwrap_or(0);
    s.record(
        "discovery/referrers-list",
        status_in(&r, &[200], "referrers")
            .and(expect(n == 2, || format!("{n} referrers, wanted 2"))),
    );
    let r = h
        .req(
            Method::GET,
            &format!("/v2/{repo}/referrers/{md}?artifactType=application/vnd.example.sbom"),
            &[],
            None,
        )
        .await;
    let list = r.json()["manifests"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    s.record(
        "discovery/referrers-artifact-type-filter",
        status_in(&r, &[200], "filtered referrers").and(expect(
            list.len() == 1
                && list[0]["digest"] == json!(a1d)
                && r.header("oci-filters-applied").as_deref() == Some("artifactType"),
            || {
                format!(
                    "{list:?}, OCI-Filters-Applied {:?}",
                    r.header("oci-filters-applied")
                )
            },
        )),
    );
    let orphan = artifact("application/vnd.example.sbom", &missing);
    s.record(
        "discovery/subject-missing-accepted",
        s.push_manifest(
            &repo,
            &sha256(&serde_json::to_vec(&orphan).unwrap()),
            &orphan,
        )
        .await
        .map(|_| ()),
    );

    // ---- catalog (Docker API, not in the OCI spec): sorted, paginated with Link.
    let r = h.req(Method::GET, "/v2/_catalog?n=1", &[], None).await;
    let repos: Vec<Value> = r.json()["repositories"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let res = status_in(&r, &[200], "_catalog?n=1").and(expect(
        repos.len() == 1 && r.header("link").is_some(),
        || format!("{repos:?}, Link {:?}", r.header("link")),
    ));
    let res = res.and({
        let r = h.req(Method::GET, "/v2/_catalog?n=1000", &[], None).await;
        let all: Vec<String> = r.json()["repositories"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut sorted = all.clone();
        sorted.sort();
        expect(all == sorted && all.contains(&repo), || {
            format!("catalog {all:?}")
        })
    });
    s.record("extra/catalog-pagination", res);

    // ---- content management
    let r = h
        .req(
            Method::DELETE,
            &format!("/v2/{repo}/manifests/Z"),
            &[],
            None,
        )
        .await;
    s.record("management/delete-tag", status_in(&r, &[202], "DELETE tag"));
    let r = h
        .req(Method::GET, &format!("/v2/{repo}/tags/list"), &[], None)
        .await;
    s.record(
        "management/tags-reflect-tag-delete",
        expect(!String::from_utf8_lossy(&r.body).contains("\"Z\""), || {
            "deleted tag still listed".into()
        }),
    );
    let r = h
        .req(
            Method::DELETE,
            &format!("/v2/{repo}/manifests/{md}"),
            &[],
            None,
        )
        .await;
    s.record(
        "management/delete-manifest",
        status_in(&r, &[202], "DELETE manifest"),
    );
    let r = h
        .req(
            Method::GET,
            &format!("/v2/{repo}/manifests/{md}"),
            &[ACCEPT_ALL],
            None,
        )
        .await;
    s.record(
        "management/deleted-manifest-404",
        status_in(&r, &[404], "GET deleted manifest"),
    );
    let r = h
        .req(Method::GET, &format!("/v2/{repo}/tags/list"), &[], None)
        .await;
    s.record(
        "management/tags-reflect-manifest-delete",
        expect(
            !String::from_utf8_lossy(&r.body).contains("tagtest0"),
            || format!("tags {}", String::from_utf8_lossy(&r.body)),
        ),
    );
    let r = h
        .req(Method::DELETE, &format!("/v2/{repo}/blobs/{ld}"), &[], None)
        .await;
    s.record(
        "management/delete-blob",
        status_in(&r, &[202], "DELETE blob"),
    );
    let r = h
        .req(Method::GET, &format!("/v2/{repo}/blobs/{ld}"), &[], None)
        .await;
    s.record(
        "management/deleted-blob-404",
        status_in(&r, &[404], "GET deleted blob"),
    );
    s.report
}
