//! Garbage collection against the real HTTP routes (in process, through the router) while
//! pushes run: no manifest that was accepted ever loses a blob it references, unreferenced
//! old blobs are collected, and young blobs of a push in flight are spared.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use berth_registry::{
    AuthConfig, Digest, FsBlobDriver, GcOptions, Registry, RegistryConfig, RegistryDeps,
};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn call(
    router: &axum::Router,
    method: &str,
    uri: &str,
    ct: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(ct) = ct {
        b = b.header("content-type", ct);
    }
    let resp = router
        .clone()
        .oneshot(b.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

async fn push_blob(router: &axum::Router, repo: &str, data: &[u8]) -> String {
    let d = Digest::sha256_of(data).to_string();
    let (s, _, _) = call(
        router,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
        Some("application/octet-stream"),
        data.to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    d
}

/// Pushes an image (config + two layers + manifest); returns the manifest status and the
/// digests it references.
async fn push_image(router: &axum::Router, repo: &str, seed: u32) -> (StatusCode, Vec<String>) {
    let config = format!("{{\"seed\":{seed}}}").into_bytes();
    let l1: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(seed + 3) % 251) as u8)
        .collect();
    let l2 = format!("layer-two-{seed}").into_bytes();
    let cd = push_blob(router, repo, &config).await;
    let d1 = push_blob(router, repo, &l1).await;
    tokio::task::yield_now().await;
    let d2 = push_blob(router, repo, &l2).await;
    let m = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d1, "size": l1.len()},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d2, "size": l2.len()}
        ]
    });
    let (s, _, _) = call(
        router,
        "PUT",
        &format!("/v2/{repo}/manifests/t{seed}"),
        Some("application/vnd.oci.image.manifest.v1+json"),
        m.to_string().into_bytes(),
    )
    .await;
    (s, vec![cd, d1, d2])
}

fn registry(root: &std::path::Path, grace: Duration) -> Registry {
    let mut cfg = RegistryConfig::new(root, "127.0.0.1:0".parse().unwrap());
    cfg.gc_grace = grace;
    let driver = Arc::new(FsBlobDriver::new(root.join("blobs"), None).unwrap());
    Registry::new(
        cfg,
        RegistryDeps {
            driver,
            auth: AuthConfig::disabled(),
            tls: None,
            token_key: None,
        },
    )
    .unwrap()
}

async fn assert_complete(router: &axum::Router, repo: &str, digests: &[String]) {
    for d in digests {
        let (s, _, _) = call(
            router,
            "HEAD",
            &format!("/v2/{repo}/blobs/{d}"),
            None,
            Vec::new(),
        )
        .await;
        assert_eq!(
            s,
            StatusCode::OK,
            "blob {d} of an accepted manifest in {repo} was collected"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_with_zero_grace_never_breaks_an_accepted_manifest() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().unwrap();
        let reg = registry(dir.path(), Duration::ZERO);
        let router = reg.router();
        let gc = reg.gc_handle();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let collector = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut runs = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    gc.collect(GcOptions {
                        grace: Duration::ZERO,
                        dry_run: false,
                    })
                    .await
                    .unwrap();
                    runs += 1;
                    tokio::task::yield_now().await;
                }
                runs
            })
        };
        let mut pushers = Vec::new();
        for p in 0..4u32 {
            let router = router.clone();
            pushers.push(tokio::spawn(async move {
                let mut accepted = Vec::new();
                for i in 0..15u32 {
                    let repo = format!("gc/p{p}");
                    let (s, digests) = push_image(&router, &repo, p * 100 + i).await;
                    // With no grace, GC may take a blob between upload and manifest: the
                    // manifest is then refused, never accepted with a hole.
                    assert!(
                        s == StatusCode::CREATED || s == StatusCode::BAD_REQUEST,
                        "{s}"
                    );
                    if s == StatusCode::CREATED {
                        accepted.push((repo, digests));
                    }
                }
                accepted
            }));
        }
        let mut all = Vec::new();
        for p in pushers {
            all.extend(p.await.unwrap());
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let runs = collector.await.unwrap();
        assert!(runs > 1, "collector ran {runs} times");
        // One more collection after the pushes: still nothing referenced goes.
        let r = reg
            .collect_garbage(GcOptions {
                grace: Duration::ZERO,
                dry_run: false,
            })
            .await
            .unwrap();
        assert!(r.blobs_live >= 3 * all.len().min(1));
        for (repo, digests) in &all {
            assert_complete(&router, repo, digests).await;
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_with_grace_spares_pushes_and_collects_old_garbage() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().unwrap();
        let reg = registry(dir.path(), Duration::from_secs(600));
        let router = reg.router();
        // Garbage: a blob with no manifest, committed "two hours ago".
        let junk = push_blob(&router, "gc/junk", b"unreferenced junk").await;
        let junk_path = dir
            .path()
            .join("blobs/sha256")
            .join(&junk[7..9])
            .join(&junk[7..]);
        std::fs::File::options()
            .write(true)
            .open(&junk_path)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(7200))
            .unwrap();
        // A referenced image whose blobs are also old.
        let (s, kept) = push_image(&router, "gc/kept", 1).await;
        assert_eq!(s, StatusCode::CREATED);
        for d in &kept {
            let p = dir.path().join("blobs/sha256").join(&d[7..9]).join(&d[7..]);
            std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(SystemTime::now() - Duration::from_secs(7200))
                .unwrap();
        }
        // Pushes run while collections run; every push succeeds.
        let gc = reg.gc_handle();
        let collector = tokio::spawn(async move {
            let mut deleted = Vec::new();
            for _ in 0..20 {
                let r = gc
                    .collect(GcOptions {
                        grace: Duration::from_secs(600),
                        dry_run: false,
                    })
                    .await
                    .unwrap();
                deleted.extend(r.deleted);
                tokio::task::yield_now().await;
            }
            deleted
        });
        for i in 0..20u32 {
            let (s, digests) = push_image(&router, "gc/live", 1000 + i).await;
            assert_eq!(s, StatusCode::CREATED, "a push failed while GC ran");
            assert_complete(&router, "gc/live", &digests).await;
        }
        let deleted = collector.await.unwrap();
        assert!(
            deleted.iter().any(|d| d.to_string() == junk),
            "old garbage was not collected: {deleted:?}"
        );
        assert!(!junk_path.exists());
        assert_complete(&router, "gc/kept", &kept).await;
        let (s, _, _) = call(
            &router,
            "HEAD",
            &format!("/v2/gc/junk/blobs/{junk}"),
            None,
            Vec::new(),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    })
    .await
    .unwrap();
}
