//! Garbage collection: mark and sweep of blobs that no manifest references.
//!
//! Safe while pushes run (see docs/adr "registry garbage collection"):
//! 1. Mark without any lock: every manifest linked in any repository, and every blob and
//!    manifest those reference, is live.
//! 2. Candidates are unmarked blobs committed before `start - grace` and not checked for
//!    existence (HEAD) by a client within the grace period; a push uploads its blobs before
//!    its manifest, so blobs of a running push are young and spared.
//! 3. Sweep under the exclusive side of the service's GC lock, which manifest PUTs, upload
//!    commits and mounts hold shared: re-mark the manifests linked since the mark started,
//!    then delete the remaining candidates and their repository links. A manifest PUT either
//!    completed before the sweep (and was re-marked) or checks its blobs after it (and gets
//!    `MANIFEST_BLOB_UNKNOWN` instead of a dangling reference).

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use crate::digest::Digest;
use crate::error::Result;
use crate::manifest::{self, Reference};
use crate::service::Service;

/// What a collection did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct GcReport {
    pub manifests: usize,
    pub blobs_total: usize,
    pub blobs_live: usize,
    pub blobs_deleted: usize,
    pub bytes_freed: u64,
    pub uploads_purged: usize,
    pub deleted: Vec<Digest>,
    pub dry_run: bool,
}

/// Options of a collection.
#[derive(Clone, Copy, Debug)]
pub struct GcOptions {
    /// Blobs younger than this are never deleted.
    pub grace: Duration,
    /// Report what would be deleted without deleting.
    pub dry_run: bool,
}

async fn mark_manifest(svc: &Service, d: &Digest, live: &mut HashSet<Digest>) -> Result<()> {
    if !live.insert(d.clone()) {
        return Ok(());
    }
    let body = match svc
        .driver
        .read_small(d, svc.settings.max_manifest_bytes)
        .await
    {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    if let Ok(p) = manifest::parse(&body, None) {
        for r in p.references {
            match r {
                Reference::Blob(b) => {
                    live.insert(b);
                }
                // Children are linked manifests in their own right and marked as such; mark
                // them here too in case they were unlinked while the index still names them.
                Reference::Manifest(m) => Box::pin(mark_manifest(svc, &m, live)).await?,
            }
        }
    }
    Ok(())
}

async fn mark(
    svc: &Service,
    since: Option<SystemTime>,
    live: &mut HashSet<Digest>,
) -> Result<usize> {
    let mut n = 0;
    for repo in svc.meta.repositories()? {
        for (d, modified) in svc.meta.manifests(&repo)? {
            if since.is_some_and(|s| modified < s) {
                continue;
            }
            n += 1;
            mark_manifest(svc, &d, live).await?;
        }
    }
    Ok(n)
}

pub(crate) async fn collect(svc: &Service, opts: GcOptions) -> Result<GcReport> {
    let start = SystemTime::now();
    let cutoff = start
        .checked_sub(opts.grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut live = HashSet::new();
    let mut report = GcReport {
        dry_run: opts.dry_run,
        ..GcReport::default()
    };
    report.manifests = mark(svc, None, &mut live).await?;
    let all = svc.driver.walk().await?;
    report.blobs_total = all.len();
    let mut candidates: Vec<(Digest, u64)> = all
        .into_iter()
        .filter(|(d, st)| {
            !live.contains(d) && st.modified < cutoff && !svc.recently_touched(d, opts.grace)
        })
        .map(|(d, st)| (d, st.size))
        .collect();
    {
        let _exclusive = svc.gc_lock.write().await;
        // Manifests linked (or re-pushed) since the mark began; one second of slack covers
        // coarse file-system timestamps.
        let since = start
            .checked_sub(Duration::from_secs(1))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        mark(svc, Some(since), &mut live).await?;
        candidates.retain(|(d, _)| !live.contains(d));
        if !opts.dry_run {
            let doomed: HashSet<&Digest> = candidates.iter().map(|(d, _)| d).collect();
            for (d, size) in &candidates {
                if svc.driver.delete(d).await? {
                    report.bytes_freed += size;
                }
            }
            for repo in svc.meta.repositories()? {
                for (d, _) in svc.meta.blob_links(&repo)? {
                    if doomed.contains(&d) {
                        svc.meta.unlink_blob(&repo, &d)?;
                    }
                }
            }
        }
    }
    report.blobs_live = report.blobs_total - candidates.len();
    report.blobs_deleted = candidates.len();
    report.deleted = candidates.into_iter().map(|(d, _)| d).collect();
    if !opts.dry_run {
        let stale = start
            .checked_sub(svc.uploads.ttl)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        report.uploads_purged = svc.driver.purge_uploads(stale).await?;
    }
    tracing::info!(
        deleted = report.blobs_deleted,
        bytes = report.bytes_freed,
        "garbage collection finished"
    );
    Ok(report)
}
