//! What a process sees from inside a `berth runtime` container: PID 1, its hostname, no host
//! processes or interfaces, masked and read-only paths, the default capability set, seccomp
//! and no_new_privs, a read-only root.

mod runtime_support;

use runtime_support::{Bundle, Rt};
use serde_json::json;

fn inside(script: &str, edit: impl FnOnce(&mut serde_json::Value)) -> (i32, String, String) {
    let rt = Rt::new();
    let mut b = Bundle::busybox(&["sh", "-c", script]);
    edit(&mut b.config);
    b.save();
    rt.run_container(&berth_e2e::unique_name("is"), &b)
}

#[test]
fn pid_one_hostname_and_no_host_processes_or_interfaces() {
    let (code, out, err) = inside(
        "echo pid=$$; hostname; ps -o pid | wc -l; ls /sys/class/net; cat /proc/self/cgroup | grep -c berth-e2e",
        |_| {},
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "pid=1");
    assert_eq!(lines[1], "runc");
    // Header + sh + ps + wc: nothing of the host's.
    let procs: usize = lines[2].trim().parse().unwrap();
    assert!(procs <= 4, "saw {procs} lines of ps output: {out}");
    assert_eq!(
        lines[3], "lo",
        "only loopback in a new network namespace: {out}"
    );
    assert!(
        lines[4].parse::<u32>().unwrap() >= 1,
        "container is in its cgroup: {out}"
    );
}

#[test]
fn masked_and_readonly_paths_and_readonly_root() {
    let host_has_kcore = std::path::Path::new("/proc/kcore").exists();
    if !host_has_kcore {
        eprintln!("note: this kernel has no /proc/kcore; checking the other masked paths");
    }
    let (code, out, err) = inside(
        "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; [ -e /proc/kcore ] && wc -c < /proc/kcore || echo 0; \
         echo x > /proc/sys/kernel/domainname 2>/dev/null && echo sys-writable || echo sys-ro; \
         touch /newfile 2>/dev/null && echo root-writable || echo root-ro; \
         touch /tmp/x 2>/dev/null && echo tmp-writable || echo tmp-ro; \
         touch /dev/shm/x && echo shm-writable",
        |_| {},
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines[0], "0", "/proc/timer_list is masked");
    assert_eq!(lines[1], "0", "/sys/firmware is masked");
    assert_eq!(lines[2], "0", "/proc/kcore is masked (or absent)");
    assert_eq!(lines[3], "sys-ro");
    assert_eq!(lines[4], "root-ro");
    assert_eq!(lines[5], "tmp-ro", "rootfs is read-only, /tmp is on it");
    assert_eq!(lines[6], "shm-writable");
}

#[test]
fn default_capabilities_seccomp_and_no_new_privs() {
    let (code, out, err) = inside(
        "grep -E '^(Cap|Seccomp:|NoNewPrivs)' /proc/self/status; mkdir /dev/shm/d",
        |c| {
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
            });
        },
    );
    assert_ne!(code, 0, "mkdir must be refused by the filter");
    assert!(
        err.contains("Function not implemented"),
        "ENOSYS from the filter: {err}"
    );
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("{name} missing in {out}"))
    };
    // AUDIT_WRITE (29), KILL (5), NET_BIND_SERVICE (10).
    let default = "0000000020000420";
    assert_eq!(field("CapBnd:"), default);
    assert_eq!(field("CapPrm:"), default);
    assert_eq!(field("CapEff:"), default);
    assert_eq!(field("CapInh:"), "0000000000000000");
    assert_eq!(field("Seccomp:"), "2");
    assert_eq!(field("NoNewPrivs:"), "1");
}

#[test]
fn user_env_cwd_and_rlimits() {
    let (code, out, err) = inside("id -u; id -g; id -G; echo $GREETING; pwd; ulimit -n", |c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [1002]});
        c["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!("GREETING=hello"));
        c["process"]["cwd"] = json!("/tmp");
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}]);
    });
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "1000\n1001\n1001 1002\nhello\n/tmp\n256\n");
}
