//! Housekeeping by policy: dead containers beyond the per-container and per-node counts
//! (oldest first; the newest exited instance of each container stays for `logs --previous`),
//! unused images when the image filesystem passes its high threshold (least recently used
//! first, down to the low threshold), and pod directories no pod or sandbox owns any more.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_cri::ContainerState;
use tokio_util::sync::CancellationToken;

use crate::context::NodeContext;
use crate::pods::PodIndex;

pub struct Housekeeper {
    ctx: Arc<NodeContext>,
    index: PodIndex,
    /// When each image (by digest) was last seen in use.
    last_used: HashMap<String, Instant>,
    started: Instant,
}

/// Which exited containers to remove: per (sandbox, name) all but the newest `keep_each`,
/// then the oldest until at most `keep_total` remain; none younger than `min_age`.
pub fn dead_to_remove(
    containers: &[berth_cri::ContainerStatus],
    keep_each: usize,
    keep_total: usize,
    min_age: Duration,
    now_ns: i64,
) -> Vec<String> {
    let old_enough = |c: &berth_cri::ContainerStatus| {
        c.finished_at_ns
            .is_none_or(|f| now_ns.saturating_sub(f) >= min_age.as_nanos() as i64)
    };
    let mut groups: HashMap<(&str, &str), Vec<&berth_cri::ContainerStatus>> = HashMap::new();
    for c in containers
        .iter()
        .filter(|c| c.state == ContainerState::Exited)
    {
        groups.entry((&c.sandbox_id, &c.name)).or_default().push(c);
    }
    let mut remove = Vec::new();
    let mut kept = Vec::new();
    for (_, mut v) in groups {
        v.sort_by_key(|c| std::cmp::Reverse((c.attempt, c.created_at_ns)));
        for (i, c) in v.into_iter().enumerate() {
            if i >= keep_each && old_enough(c) {
                remove.push(c.id.clone());
            } else {
                kept.push(c);
            }
        }
    }
    if kept.len() > keep_total {
        kept.sort_by_key(|c| c.finished_at_ns.unwrap_or(c.created_at_ns));
        let excess = kept.len() - keep_total;
        remove.extend(
            kept.into_iter()
                .filter(|c| old_enough(c))
                .take(excess)
                .map(|c| c.id.clone()),
        );
    }
    remove
}

impl Housekeeper {
    pub fn new(ctx: Arc<NodeContext>, index: PodIndex) -> Housekeeper {
        Housekeeper {
            ctx,
            index,
            last_used: HashMap::new(),
            started: Instant::now(),
        }
    }

    pub async fn run(
        mut self,
        synced: tokio::sync::watch::Receiver<bool>,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(self.ctx.config.housekeeping.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if *synced.borrow() {
                self.once().await;
            }
        }
    }

    /// One round of housekeeping.
    pub async fn once(&mut self) {
        let policy = self.ctx.config.housekeeping.clone();
        let snap = match self.ctx.runtime.snapshot().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "housekeeping: cannot list containers");
                return;
            }
        };
        let now_ns = i64::try_from(jiff::Timestamp::now().as_nanosecond()).unwrap_or(i64::MAX);
        for id in dead_to_remove(
            &snap.containers,
            policy.max_dead_per_container,
            policy.max_dead_containers,
            policy.min_dead_age,
            now_ns,
        ) {
            match self.ctx.runtime.remove_container(&id).await {
                Ok(()) => tracing::debug!(container = %id, "removed a dead container"),
                Err(e) => {
                    tracing::warn!(container = %id, error = %e, "cannot remove a dead container")
                }
            }
        }
        // Images.
        for c in &snap.containers {
            if !c.image.digest.is_empty() {
                self.last_used
                    .insert(c.image.digest.clone(), Instant::now());
            }
        }
        self.images(&policy).await;
        // Pod directories nobody owns.
        let live: HashSet<String> = self
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .chain(snap.sandboxes.iter().map(|s| s.uid.clone()))
            .collect();
        let pods_dir = self.ctx.config.pods_dir();
        for e in std::fs::read_dir(&pods_dir).into_iter().flatten().flatten() {
            let uid = e.file_name().to_string_lossy().into_owned();
            if !live.contains(&uid) {
                let d = pods_dir.clone();
                let u = uid.clone();
                match tokio::task::spawn_blocking(move || crate::volumes::teardown(&d, &u)).await {
                    Ok(Ok(())) => tracing::info!(pod = %uid, "removed an orphaned pod directory"),
                    Ok(Err(e)) => {
                        tracing::warn!(pod = %uid, error = %e, "cannot remove an orphaned pod directory")
                    }
                    Err(_) => {}
                }
            }
        }
        let logs = self.ctx.config.logs_dir();
        for e in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let uid = n.rsplit('_').next().unwrap_or_default().to_string();
            if !live.contains(&uid) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    async fn images(&mut self, policy: &crate::config::HousekeepingPolicy) {
        let Ok(fs) = self.ctx.runtime.image_fs_info().await else {
            return;
        };
        if fs.capacity_bytes == 0 {
            return;
        }
        let used = fs.capacity_bytes.saturating_sub(fs.available_bytes);
        let pct = |u: u64| u * 100 / fs.capacity_bytes;
        if pct(used) < u64::from(policy.image_gc_high_percent) {
            return;
        }
        let target = fs.capacity_bytes * u64::from(policy.image_gc_low_percent) / 100;
        let mut to_free = used.saturating_sub(target);
        let Ok(images) = self.ctx.runtime.list_images().await else {
            return;
        };
        let Ok(snap) = self.ctx.runtime.snapshot().await else {
            return;
        };
        let in_use: HashSet<&str> = snap
            .containers
            .iter()
            .map(|c| c.image.digest.as_str())
            .collect();
        let mut candidates: Vec<_> = images
            .into_iter()
            .filter(|i| !in_use.contains(i.digest.as_str()))
            .filter(|i| {
                let since = self
                    .last_used
                    .get(&i.digest)
                    .copied()
                    .unwrap_or(self.started);
                since.elapsed() >= policy.image_min_age
            })
            .collect();
        candidates.sort_by_key(|i| {
            self.last_used
                .get(&i.digest)
                .copied()
                .unwrap_or(self.started)
        });
        tracing::info!(
            used_percent = pct(used),
            "image filesystem above its high threshold; removing unused images"
        );
        for i in candidates {
            if to_free == 0 {
                break;
            }
            let name = i.names.first().cloned().unwrap_or_else(|| i.id.clone());
            match self.ctx.runtime.remove_image(&name).await {
                Ok(()) => {
                    tracing::info!(image = %name, "removed an unused image");
                    to_free = to_free.saturating_sub(i.size_bytes);
                    self.last_used.remove(&i.digest);
                }
                Err(e) => {
                    tracing::warn!(image = %name, error = %e, "cannot remove an unused image")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead(
        id: &str,
        sandbox: &str,
        name: &str,
        attempt: u32,
        finished: i64,
    ) -> berth_cri::ContainerStatus {
        berth_cri::ContainerStatus {
            id: id.into(),
            sandbox_id: sandbox.into(),
            name: name.into(),
            attempt,
            image: Default::default(),
            state: ContainerState::Exited,
            created_at_ns: finished - 10,
            started_at_ns: None,
            finished_at_ns: Some(finished),
            exit_code: Some(1),
            reason: None,
            message: None,
            log_path: Default::default(),
            labels: Default::default(),
            annotations: Default::default(),
        }
    }

    #[test]
    fn keeps_the_newest_per_container_and_caps_the_node() {
        let cs = vec![
            dead("a0", "s1", "web", 0, 100),
            dead("a1", "s1", "web", 1, 200),
            dead("a2", "s1", "web", 2, 300),
            dead("b0", "s2", "db", 0, 50),
        ];
        let mut r = dead_to_remove(&cs, 1, 10, Duration::ZERO, 1000);
        r.sort();
        assert_eq!(r, vec!["a0", "a1"]);
        let r = dead_to_remove(&cs, 1, 1, Duration::ZERO, 1000);
        assert!(r.contains(&"b0".to_string()) && r.len() == 3);
        assert!(dead_to_remove(&cs, 1, 10, Duration::from_nanos(900), 1000).len() == 1);
    }
}
