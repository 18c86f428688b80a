//! Shared pieces of berth's benchmark programs (`bench/src/bin/*`): statistics over samples,
//! the machine's load, and the report format. Every benchmark runs berth and its reference
//! tool in the same run, interleaved where it can, and prints its headline figures and the
//! ratio last. Results and the exact command go into `BENCHMARKS.md`.

pub mod etcd;

/// Benchmarks run the API server and store in process: they use the allocator the `berth`
/// binary uses, so in-process figures match the real server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

/// Summary statistics of a set of samples.
#[derive(Clone, Debug)]
pub struct Stats {
    pub n: usize,
    pub median: f64,
    pub p99: f64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(samples: &[f64]) -> Stats {
        assert!(!samples.is_empty(), "no samples");
        let mut s = samples.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        Stats {
            n: s.len(),
            median: percentile_sorted(&s, 50.0),
            p99: percentile_sorted(&s, 99.0),
            mean: s.iter().sum::<f64>() / s.len() as f64,
            min: s[0],
            max: s[s.len() - 1],
        }
    }

    pub fn of_durations(samples: &[Duration]) -> Stats {
        Stats::of(
            &samples
                .iter()
                .map(|d| d.as_secs_f64() * 1e3)
                .collect::<Vec<_>>(),
        )
    }
}

/// The `p`-th percentile (nearest rank) of sorted samples.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The 1-minute load average, to print beside results on a shared machine.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// A child process stopped on drop.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    /// SIGTERM first, so that nginx's master stops its workers and berth stops cleanly;
    /// SIGKILL if it is still there 5 s later.
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile_sorted(&s, 50.0), 50.0);
        assert_eq!(percentile_sorted(&s, 99.0), 99.0);
        let st = Stats::of(&[3.0, 1.0, 2.0]);
        assert_eq!((st.median, st.min, st.max), (2.0, 1.0, 3.0));
    }
}
