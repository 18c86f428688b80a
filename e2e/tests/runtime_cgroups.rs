//! Cgroups under `berth runtime`: memory limit → OOMKilled, pids limit refuses forks, cpu
//! settings land in the files, pause/resume through the freezer, `events --stats`, and
//! cgroup v2 where the kernel has it (skipped with a logged reason where it does not).

mod runtime_support;

use std::path::Path;

use runtime_support::{Bundle, Rt};
use serde_json::json;

fn v1_dir(controller: &str, cgroup: &str) -> std::path::PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(cgroup.trim_start_matches('/'))
}

fn is_v1() -> bool {
    Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
}

#[test]
fn memory_limit_kills_and_reports_oom_killed() {
    let rt = Rt::new();
    // Touch 256 MiB under a 32 MiB limit (swap capped too).
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "dd if=/dev/zero of=/dev/shm/fill bs=1M count=256; echo survived",
    ]);
    b.config["linux"]["resources"]["memory"] = json!({"limit": 33554432, "swap": 33554432});
    b.save();
    let id = berth_e2e::unique_name("oom");
    rt.ok(&["run", "-d", "-b", b.path().to_str().unwrap(), &id]);
    rt.wait_status(&id, "stopped");
    let st = rt.state(&id);
    assert_eq!(st["exit"]["reason"], "OOMKilled", "{st}");
    assert_eq!(st["exit"]["oomKilled"], true);
    rt.ok(&["delete", &id]);
}

#[test]
fn pids_limit_refuses_forks() {
    let rt = Rt::new();
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    b.config["linux"]["resources"]["pids"] = json!({"limit": 5});
    b.save();
    let id = berth_e2e::unique_name("pid");
    rt.ok(&["run", "-d", "-b", b.path().to_str().unwrap(), &id]);
    // The init and an exec'd shell leave room for three more; the fourth fork fails.
    let out = rt.run(&[
        "exec",
        &id,
        "sh",
        "-c",
        "i=0; while true; do sleep 1000 & i=$((i+1)); echo $i; done",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout.lines().last(), Some("3"), "{stdout}");
    assert!(stderr.contains("can't fork"), "{stderr}");
    let pids: Vec<i64> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(pids.len(), 4, "the init and three sleeps remain");
    if is_v1() {
        let events =
            std::fs::read_to_string(v1_dir("pids", &b.cgroup).join("pids.events")).unwrap();
        assert_eq!(events.trim(), "max 1", "one fork refused");
    }
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn resources_land_in_cgroup_files_and_stats_are_reported() {
    let rt = Rt::new();
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    b.config["linux"]["resources"]["memory"] = json!({"limit": 67108864});
    b.config["linux"]["resources"]["cpu"] =
        json!({"shares": 512, "quota": 50000, "period": 100000});
    b.config["linux"]["resources"]["pids"] = json!({"limit": 64});
    b.save();
    let id = berth_e2e::unique_name("res");
    rt.ok(&["run", "-d", "-b", b.path().to_str().unwrap(), &id]);
    if is_v1() {
        let read = |c: &str, f: &str| {
            std::fs::read_to_string(v1_dir(c, &b.cgroup).join(f))
                .unwrap()
                .trim()
                .to_owned()
        };
        assert_eq!(read("memory", "memory.limit_in_bytes"), "67108864");
        assert_eq!(read("cpu", "cpu.shares"), "512");
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(read("pids", "pids.max"), "64");
    }
    let ev: serde_json::Value = serde_json::from_str(&rt.ok(&["events", "--stats", &id])).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["data"]["memory"]["usage"]["limit"], 67108864);
    assert!(ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0);
    assert_eq!(ev["data"]["pids"]["current"], 1);
    assert_eq!(ev["data"]["pids"]["limit"], 64);
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn pause_and_resume_freeze_the_container() {
    let rt = Rt::new();
    let b = Bundle::busybox(&[
        "sh",
        "-c",
        "while true; do date +%s%N > /dev/shm/t; sleep 0.01; done",
    ]);
    let id = berth_e2e::unique_name("pz");
    rt.ok(&["run", "-d", "-b", b.path().to_str().unwrap(), &id]);
    rt.ok(&["pause", &id]);
    assert_eq!(rt.status(&id), "paused");
    let err = rt.fails(&["pause", &id]);
    assert!(err.contains("paused"), "{err}");
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let state = st
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(state == "S" || state == "D", "frozen task state {state}");
    rt.ok(&["resume", &id]);
    assert_eq!(rt.status(&id), "running");
    rt.fails(&["resume", &id]);
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn cgroup_v2_when_the_kernel_offers_it() {
    let unified = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("cgroup.controllers").exists());
    let Some(unified) = unified else {
        eprintln!("SKIP cgroup v2: no cgroup2 hierarchy is mounted on this host");
        return;
    };
    let rt = Rt::new();
    let b = Bundle::busybox(&["sh", "-c", "cat /proc/self/cgroup; sleep 1000"]);
    let id = berth_e2e::unique_name("v2");
    let out = rt
        .cmd()
        .args([
            "--cgroup-version",
            "2",
            "run",
            "-d",
            "-b",
            b.path().to_str().unwrap(),
            "--container-log",
        ])
        .arg(b.path().join("log"))
        .arg(&id)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v2 = |args: &[&str]| {
        let mut all = vec!["--cgroup-version", "2"];
        all.extend_from_slice(args);
        rt.ok(&all)
    };
    let dir = unified.join(b.cgroup.trim_start_matches('/'));
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|l| l == pid.to_string()),
        "init is in {}",
        dir.display()
    );
    berth_e2e::wait_until(
        "the container's own view",
        std::time::Duration::from_secs(10),
        || {
            let log = std::fs::read_to_string(b.path().join("log")).ok()?;
            log.contains(&format!("0::{}", b.cgroup)).then_some(())
        },
    );
    v2(&["pause", &id]);
    assert_eq!(
        std::fs::read_to_string(dir.join("cgroup.freeze"))
            .unwrap()
            .trim(),
        "1"
    );
    v2(&["resume", &id]);
    let ev: serde_json::Value = serde_json::from_str(&v2(&["events", "--stats", &id])).unwrap();
    assert!(ev["data"]["cpu"]["usage"]["total"].as_u64().is_some());
    let controllers =
        std::fs::read_to_string(unified.join("cgroup.controllers")).unwrap_or_default();
    if controllers.split_whitespace().any(|c| c == "memory") {
        eprintln!("cgroup v2 has the memory controller: limits are covered by the v1 tests' logic");
    } else {
        eprintln!(
            "SKIP cgroup v2 limits: the v2 hierarchy has no memory/pids/cpu controller here ({controllers:?})"
        );
    }
    v2(&["delete", "--force", &id]);
    assert!(!dir.exists(), "v2 cgroup removed");
}
