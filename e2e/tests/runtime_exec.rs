//! `berth runtime exec`: a new process in a running container's namespaces and cgroup, with
//! its env, user and exit code, and optionally a terminal.

mod runtime_support;

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

use runtime_support::{Bundle, Rt};

fn running(rt: &Rt) -> (Bundle, String, i64) {
    let b = Bundle::busybox(&["sleep", "1000"]);
    let id = berth_e2e::unique_name("ex");
    rt.ok(&["run", "-d", "-b", b.path().to_str().unwrap(), &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    (b, id, pid)
}

#[test]
fn exec_shares_the_namespaces_and_cgroup_and_returns_the_exit_code() {
    let rt = Rt::new();
    let (_b, id, pid) = running(&rt);
    let script = "for n in mnt pid net ipc uts; do readlink /proc/self/ns/$n; done; hostname; echo $$; cat /proc/self/cgroup | grep memory";
    let out = rt.ok(&["exec", &id, "sh", "-c", script]);
    let lines: Vec<&str> = out.lines().collect();
    for (i, n) in ["mnt", "pid", "net", "ipc", "uts"].iter().enumerate() {
        let init = std::fs::read_link(format!("/proc/{pid}/ns/{n}")).unwrap();
        assert_eq!(
            lines[i],
            init.to_string_lossy(),
            "{n} namespace of exec and init"
        );
    }
    assert_eq!(lines[5], "runc");
    let exec_pid: i32 = lines[6].parse().unwrap();
    assert!(
        exec_pid > 1,
        "a new process in the container's pid namespace"
    );
    assert!(
        lines[7].contains("/berth-e2e/"),
        "exec joined the container's cgroup: {}",
        lines[7]
    );

    let out = rt.run(&["exec", &id, "sh", "-c", "exit 42"]);
    assert_eq!(out.status.code(), Some(42));
    let out = rt.ok(&[
        "exec",
        "--env",
        "X=1",
        "--user",
        "1000:1000",
        "--cwd",
        "/tmp",
        &id,
        "sh",
        "-c",
        "echo $X $(id -u) $(pwd)",
    ]);
    assert_eq!(out, "1 1000 /tmp\n");
    let err = rt.fails(&["exec", &id, "/no/such/thing"]);
    assert!(err.contains("executable file not found"), "{err}");
    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped");
    let err = rt.fails(&["exec", &id, "true"]);
    assert!(err.contains("not running"), "{err}");
}

fn recv_fd(sock: &std::os::unix::net::UnixStream) -> OwnedFd {
    let mut buf = [0u8; 64];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::empty(),
    )
    .expect("recvmsg");
    for c in msg.cmsgs().expect("cmsgs") {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the descriptor was just received and is ours.
            return unsafe { OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no descriptor received");
}

#[test]
fn exec_with_a_terminal_through_a_console_socket() {
    let rt = Rt::new();
    let (_b, id, _) = running(&rt);
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("console.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let mut child = rt
        .cmd()
        .args([
            "exec",
            "--tty",
            "--console-socket",
            sock_path.to_str().unwrap(),
            &id,
            "sh",
            "-c",
        ])
        .arg("tty; stty size; exit 7")
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (conn, _) = listener.accept().unwrap();
    let master = std::fs::File::from(recv_fd(&conn));
    let mut text = Vec::new();
    let mut m = &master;
    let mut buf = [0u8; 256];
    loop {
        match m.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains("/dev/pts/"),
        "the process has a terminal: {text:?}"
    );
    assert_eq!(child.wait().unwrap().code(), Some(7));
    rt.ok(&["delete", "--force", &id]);
}
