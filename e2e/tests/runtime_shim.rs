//! The shim model: a detached container outlives the process that created it, a new process
//! adopts it from the state directory, its output lands in a CRI-format log with size-based
//! rotation, and the shim records the exit.

mod runtime_support;

use std::time::Duration;

use runtime_support::{Bundle, Rt};

fn is_cri_line(line: &str) -> bool {
    let mut parts = line.splitn(4, ' ');
    let (ts, stream, tag) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    parts.next().is_some()
        && ts.parse::<jiff::Timestamp>().is_ok()
        && ts.ends_with('Z')
        && ts.len() == "2006-01-02T15:04:05.000000000Z".len()
        && (stream == "stdout" || stream == "stderr")
        && (tag == "F" || tag == "P")
}

#[test]
fn container_outlives_its_creator_and_is_adopted() {
    let rt = Rt::new();
    let b = Bundle::busybox(&["sh", "-c", "echo hello; echo oops >&2; sleep 1000"]);
    let id = berth_e2e::unique_name("ad");
    let log = b.path().join("ctr.log");
    // The creating process exits right away...
    rt.ok(&[
        "run",
        "-d",
        "-b",
        b.path().to_str().unwrap(),
        "--container-log",
        log.to_str().unwrap(),
        &id,
    ]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    // ...and the container's parent is the shim, not init.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid: i32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let parent_cmd = std::fs::read(format!("/proc/{ppid}/cmdline")).unwrap();
    assert!(
        String::from_utf8_lossy(&parent_cmd).starts_with("berth-shim"),
        "parent of the init: {parent_cmd:?}"
    );
    // Every later command is a new process: it finds, lists, stops and deletes the container
    // from the state directory alone.
    let list = rt.ok(&["list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with(&id) && l.contains("running")),
        "{list}"
    );
    berth_e2e::wait_until("both lines in the CRI log", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&log).ok()?;
        (text.lines().count() >= 2).then_some(text)
    });
    let text = std::fs::read_to_string(&log).unwrap();
    for line in text.lines() {
        assert!(is_cri_line(line), "not CRI format: {line:?}");
    }
    assert!(
        text.lines().any(|l| l.contains(" stdout F hello")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.contains(" stderr F oops")), "{text}");
    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped");
    let st = rt.state(&id);
    assert_eq!(st["exit"]["code"], 137, "{st}");
    assert_eq!(st["exit"]["reason"], "Error");
    assert!(
        st["exit"]["exitedAt"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok(),
        "{st}"
    );
    berth_e2e::wait_until("the shim to exit", Duration::from_secs(10), || {
        std::fs::read(format!("/proc/{ppid}/cmdline"))
            .map_or(Some(()), |c| (!c.starts_with(b"berth-shim")).then_some(()))
    });
    rt.ok(&["delete", &id]);
}

#[test]
fn logs_rotate_by_size_and_keep_partial_lines_apart() {
    let rt = Rt::new();
    // 400 lines of ~100 bytes, then a 20 KiB line without newline (split as P + F).
    let b = Bundle::busybox(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 400 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done; \
         head -c 20480 /dev/zero | tr '\\0' 'y'",
    ]);
    let id = berth_e2e::unique_name("rot");
    let log = b.path().join("rot.log");
    rt.ok(&[
        "run",
        "-d",
        "-b",
        b.path().to_str().unwrap(),
        "--container-log",
        log.to_str().unwrap(),
        "--container-log-max-size",
        "8192",
        "--container-log-max-files",
        "3",
        &id,
    ]);
    rt.wait_status(&id, "stopped");
    berth_e2e::wait_until("the exit record", Duration::from_secs(10), || {
        rt.state(&id)["exit"].as_object().cloned()
    });
    let rotated: Vec<_> = (1..=3)
        .map(|n| b.path().join(format!("rot.log.{n}")))
        .collect();
    assert!(
        rotated[0].exists() && rotated[1].exists(),
        "two rotated files kept"
    );
    assert!(!rotated[2].exists(), "no more than max-files in total");
    for f in [&log, &rotated[0], &rotated[1]] {
        let text = std::fs::read_to_string(f).unwrap();
        for line in text.lines() {
            assert!(is_cri_line(line), "{}: not CRI: {line:.80}", f.display());
        }
    }
    let live = std::fs::read_to_string(&log).unwrap();
    let older = std::fs::read_to_string(&rotated[1]).unwrap();
    let all = format!(
        "{older}{}{}",
        std::fs::read_to_string(&rotated[0]).unwrap(),
        live
    );
    assert!(
        all.contains(" stdout P yyyy"),
        "a 20 KiB line is split with the P tag"
    );
    assert!(
        all.lines().last().unwrap().contains(" stdout F yyyy"),
        "and ends with F"
    );
    assert!(all.contains("line-399-"), "the last full line before it");
    rt.ok(&["delete", &id]);
}
