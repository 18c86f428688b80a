//! End-to-end: container lifecycle on a real node — a failing liveness probe restarts the
//! container and raises restartCount, a memory hog is OOMKilled, readiness gates Ready, a
//! crashing container backs off (CrashLoopBackOff), init containers run first and in order,
//! ConfigMaps and Secrets reach containers as environment and as files (updated in place),
//! the downward API, and graceful termination runs preStop hooks.

mod agent_support;

use agent_support::*;
use berth_e2e::wait_until;

fn events(n: &Node, pod: &str) -> String {
    n.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={pod}"),
        "-o",
        "custom-columns=REASON:.reason,MESSAGE:.message",
    ])
}

#[test]
fn probes_restarts_oom_and_readiness() {
    let n = Node::start(&[]);
    let tmp = tempfile::tempdir().expect("tmp");
    push_busybox(&n, tmp.path(), "tools:1", &["sleep", "3600"]);
    apply(
        &n,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: liveness}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: c
    image: tools:1
    command: ["sh", "-c", "touch /tmp/alive; sleep 2; rm /tmp/alive; sleep 3600"]
    livenessProbe:
      exec: {command: ["test", "-f", "/tmp/alive"]}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: tools:1
    command: ["tail", "/dev/zero"]
    resources: {limits: {memory: 16Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: gated}
spec:
  containers:
  - name: c
    image: tools:1
    readinessProbe:
      exec: {command: ["test", "-f", "/tmp/ready"]}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  containers:
  - name: c
    image: tools:1
    command: ["sh", "-c", "echo crashing; exit 2"]
"#,
    );
    // Liveness: restarted, with the reason in events and lastState.
    let p = wait_pod(
        &n,
        "liveness",
        "restarted after its liveness probe failed",
        |p| {
            container(p, "c")["restartCount"].as_i64().unwrap_or(0) >= 1
                && container(p, "c")["state"]["running"].is_object()
        },
    );
    let last = &container(&p, "c")["lastState"]["terminated"];
    assert!(last["exitCode"].as_i64().is_some_and(|c| c != 0), "{p}");
    let ev = events(&n, "liveness");
    assert!(ev.contains("Liveness probe failed"), "{ev}");
    assert!(
        ev.contains("failed liveness probe, will be restarted"),
        "{ev}"
    );

    // OOM: the memory cgroup's killer ends it.
    let p = wait_pod(&n, "hog", "OOMKilled", |p| {
        container(p, "c")["state"]["terminated"]["reason"] == "OOMKilled"
    });
    assert_eq!(phase(&p), "Failed");
    assert_eq!(container(&p, "c")["state"]["terminated"]["exitCode"], 137);

    // Readiness gates Ready, both ways.
    let p = wait_pod(&n, "gated", "running", |p| phase(p) == "Running");
    assert!(!ready(&p));
    n.ok(&["exec", "gated", "--", "touch", "/tmp/ready"]);
    wait_pod(&n, "gated", "Ready", ready);
    n.ok(&["exec", "gated", "--", "rm", "/tmp/ready"]);
    let p = wait_pod(&n, "gated", "not Ready again", |p| !ready(p));
    assert_eq!(container(&p, "c")["ready"], false);

    // A crashing container backs off.
    let p = wait_pod(&n, "crasher", "CrashLoopBackOff", |p| {
        container(p, "c")["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    });
    assert!(container(&p, "c")["restartCount"].as_i64().unwrap_or(0) >= 1);
    assert_eq!(container(&p, "c")["lastState"]["terminated"]["exitCode"], 2);
    assert!(n.ok(&["logs", "crasher"]).contains("crashing"));
    assert!(
        n.ok(&["logs", "--previous", "crasher"])
            .contains("crashing")
    );
    let ev = events(&n, "crasher");
    assert!(ev.contains("BackOff"), "{ev}");
    let get = n.ok(&["get", "pod", "crasher"]);
    assert!(get.contains("CrashLoopBackOff"), "{get}");
}

#[test]
fn config_volumes_init_containers_and_termination() {
    let n = Node::start(&[]);
    let tmp = tempfile::tempdir().expect("tmp");
    push_busybox(&n, tmp.path(), "tools:1", &["sleep", "3600"]);
    apply(
        &n,
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hello, color: blue}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata:
  name: configured
  labels: {app: configured, tier: web}
spec:
  initContainers:
  - name: first
    image: tools:1
    command: ["sh", "-c", "echo first >> /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  - name: second
    image: tools:1
    command: ["sh", "-c", "echo second >> /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: app
    image: tools:1
    command: ["sh", "-c", "cat /work/order; exec sleep 3600"]
    env:
    - name: GREETING
      valueFrom: {configMapKeyRef: {name: settings, key: greeting}}
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: creds, key: password}}
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: MEM_LIMIT_MI
      valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}
    - name: COMBINED
      value: "$(GREETING)-$(POD_NAME)"
    envFrom:
    - prefix: CFG_
      configMapRef: {name: settings}
    resources: {limits: {memory: 64Mi}}
    volumeMounts:
    - {name: work, mountPath: /work}
    - {name: cfg, mountPath: /etc/cfg}
    - {name: sec, mountPath: /etc/sec}
    - {name: info, mountPath: /etc/info}
    - {name: mem, mountPath: /scratch}
    - {name: token, mountPath: /var/run/secrets/tokens}
    lifecycle:
      preStop:
        exec: {command: ["sh", "-c", "echo stopping > /work/prestop"]}
  volumes:
  - {name: work, hostPath: {path: WORKDIR, type: DirectoryOrCreate}}
  - {name: cfg, configMap: {name: settings}}
  - {name: sec, secret: {secretName: creds, defaultMode: 0400}}
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: name, fieldRef: {fieldPath: metadata.name}}
  - {name: mem, emptyDir: {medium: Memory, sizeLimit: 8Mi}}
  - name: token
    projected:
      sources:
      - serviceAccountToken: {path: token, expirationSeconds: 3600}
      - configMap: {name: settings, items: [{key: greeting, path: greeting}]}
"#
        .replace("WORKDIR", tmp.path().join("work").to_str().unwrap())
        .as_str(),
    );
    let p = wait_pod(&n, "configured", "Running", |p| {
        phase(p) == "Running" && ready(p)
    });
    // The node's container-creating helpers (kept for a while after use) are killed: the next
    // container is created by a new one, without a failed attempt.
    let helpers_of_node = format!(
        "{} serve-creates",
        n.data_dir().join("agent/cri/runtime").display()
    );
    let helpers = pids_with(&helpers_of_node);
    assert!(!helpers.is_empty(), "no runtime helper is running");
    for pid in &helpers {
        // SAFETY: SIGKILL to a helper process of this test's node.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    apply(
        &n,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: after-helpers}
spec:
  containers:
  - {name: c, image: tools:1, command: ["sleep", "3600"]}
"#,
    );
    wait_pod(&n, "after-helpers", "Running", |p| phase(p) == "Running");
    let ev = events(&n, "after-helpers");
    assert!(!ev.contains("Failed"), "{ev}");
    n.ok(&["delete", "pod", "after-helpers", "--wait=true"]);
    // Init containers ran first, in order, and completed.
    let inits = p["status"]["initContainerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(inits.len(), 2);
    for i in &inits {
        assert_eq!(i["state"]["terminated"]["reason"], "Completed", "{i}");
    }
    let order = wait_until("the app's output", WAIT, || {
        let l = n.ok(&["logs", "configured"]);
        (!l.is_empty()).then_some(l)
    });
    assert_eq!(order, "first\nsecond\n");
    assert!(n.ok(&["logs", "configured", "-c", "first"]).is_empty());

    // Environment.
    let env = n.ok(&["exec", "configured", "--", "env"]);
    for want in [
        "GREETING=hello",
        "PASSWORD=s3cret",
        "POD_NAME=configured",
        "MEM_LIMIT_MI=64",
        "COMBINED=hello-configured",
        "CFG_color=blue",
        "KUBERNETES_SERVICE_HOST=",
    ] {
        assert!(env.contains(want), "{want} missing from:\n{env}");
    }
    // Files.
    let cat = |path: &str| n.ok(&["exec", "configured", "--", "cat", path]);
    assert_eq!(cat("/etc/cfg/greeting"), "hello");
    assert_eq!(cat("/etc/sec/password"), "s3cret");
    assert_eq!(cat("/etc/info/name"), "configured");
    assert!(cat("/etc/info/labels").contains("tier=\"web\""));
    let mode = n.ok(&[
        "exec",
        "configured",
        "--",
        "stat",
        "-L",
        "-c",
        "%a",
        "/etc/sec/password",
    ]);
    assert_eq!(mode.trim(), "400");
    let df = n.ok(&["exec", "configured", "--", "df", "-k", "/scratch"]);
    assert!(df.contains("tmpfs") && df.contains("8192"), "{df}");
    // Secrets, the downward API and projected volumes (here a service account token and a
    // configMap key) are in memory, as with kubelet; a configMap volume is on the node's disk.
    let mounts = n.ok(&["exec", "configured", "--", "cat", "/proc/mounts"]);
    let fs_of = |dir: &str| {
        mounts
            .lines()
            .find(|l| l.split(' ').nth(1) == Some(dir))
            .and_then(|l| l.split(' ').nth(2))
            .unwrap_or("(not mounted)")
            .to_string()
    };
    assert_eq!(fs_of("/etc/sec"), "tmpfs", "{mounts}");
    assert_eq!(fs_of("/etc/info"), "tmpfs", "{mounts}");
    assert_eq!(fs_of("/var/run/secrets/tokens"), "tmpfs", "{mounts}");
    let token = cat("/var/run/secrets/tokens/token");
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    assert_eq!(cat("/var/run/secrets/tokens/greeting"), "hello");
    assert_ne!(fs_of("/etc/cfg"), "tmpfs", "{mounts}");
    let ro = n.kubectl(&[
        "exec",
        "configured",
        "--",
        "sh",
        "-c",
        "echo x > /etc/cfg/new",
    ]);
    assert!(!ro.status.success(), "configMap volumes are read-only");
    // Updates reach the running container in place.
    n.ok(&[
        "patch",
        "configmap",
        "settings",
        "-p",
        r#"{"data":{"greeting":"bonjour"}}"#,
    ]);
    wait_until("the configMap update in the volume", WAIT, || {
        (cat("/etc/cfg/greeting") == "bonjour").then_some(())
    });
    n.ok(&["label", "pod", "configured", "tier=api", "--overwrite"]);
    wait_until("the label change in the downward API volume", WAIT, || {
        cat("/etc/info/labels")
            .contains("tier=\"api\"")
            .then_some(())
    });

    // A missing ConfigMap keeps a container waiting with CreateContainerConfigError.
    apply(
        &n,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: misconfigured}
spec:
  containers:
  - name: c
    image: tools:1
    env:
    - name: X
      valueFrom: {configMapKeyRef: {name: absent, key: x}}
"#,
    );
    let p = wait_pod(&n, "misconfigured", "CreateContainerConfigError", |p| {
        container(p, "c")["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    });
    assert!(
        container(&p, "c")["state"]["waiting"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("absent")),
        "{p}"
    );

    // Graceful deletion runs preStop and the pod goes away.
    n.ok(&["delete", "pod", "configured", "--wait=true"]);
    let prestop = std::fs::read_to_string(tmp.path().join("work/prestop")).unwrap_or_default();
    assert_eq!(prestop, "stopping\n");
    // With nothing left to create, the node's runtime helpers exit (after 30 s unused).
    wait_until("the unused runtime helpers to exit", WAIT, || {
        pids_with(&helpers_of_node).is_empty().then_some(())
    });
}

/// The pod cgroup directories of a node (`/berth/<node>/kubepods/**/pod<uid>`), any hierarchy.
fn pod_cgroups(node: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![std::path::PathBuf::from("/sys/fs/cgroup/memory/berth").join(node)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if e.file_name().to_string_lossy().starts_with("pod") {
                    out.push(e.path());
                }
                stack.push(e.path());
            }
        }
    }
    out
}

#[test]
fn security_image_pulls_storage_and_cleanup() {
    let n = Node::start(&[]);
    let tmp = tempfile::tempdir().expect("tmp");
    push_busybox(&n, tmp.path(), "tools:1", &["sleep", "3600"]);
    apply(
        &n,
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: locked}
spec:
  securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000}
  containers:
  - name: c
    image: tools:1
    securityContext:
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: data}}
---
apiVersion: v1
kind: Pod
metadata: {name: rootless}
spec:
  containers:
  - name: c
    image: tools:1
    securityContext: {runAsNonRoot: true}
---
apiVersion: v1
kind: Pod
metadata: {name: missing-image}
spec:
  containers:
  - {name: c, image: "no-such-image:1"}
---
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: tools:1
    command: ["sh", "-c", "exit 1"]
"#,
    );
    let p = wait_pod(&n, "locked", "Running", |p| phase(p) == "Running");
    assert_eq!(container(&p, "c")["ready"], true);
    let id = n.ok(&["exec", "locked", "--", "id"]);
    assert!(
        id.contains("uid=1000") && id.contains("gid=3000") && id.contains("2000"),
        "{id}"
    );
    let caps = n.ok(&["exec", "locked", "--", "grep", "CapEff", "/proc/1/status"]);
    assert!(caps.contains("0000000000000000"), "{caps}");
    let ro = n.kubectl(&["exec", "locked", "--", "touch", "/rootfile"]);
    assert!(!ro.status.success(), "the root filesystem is read-only");
    // The claim was provisioned and bound; the volume is writable and on the host.
    n.ok(&[
        "exec",
        "locked",
        "--",
        "sh",
        "-c",
        "echo persisted > /data/f",
    ]);
    let pvc = json(&n, &["get", "pvc", "data"]);
    assert_eq!(pvc["status"]["phase"], "Bound");
    let pv = json(
        &n,
        &["get", "pv", pvc["spec"]["volumeName"].as_str().unwrap()],
    );
    let host = pv["spec"]["hostPath"]["path"]
        .as_str()
        .expect("a hostPath volume");
    assert_eq!(
        std::fs::read_to_string(std::path::Path::new(host).join("f")).unwrap(),
        "persisted\n"
    );
    let _ = std::fs::remove_dir_all(host);

    // runAsNonRoot with an image that runs as root is refused.
    let p = wait_pod(&n, "rootless", "CreateContainerConfigError", |p| {
        container(p, "c")["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    });
    assert!(
        container(&p, "c")["state"]["waiting"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("runAsNonRoot")),
        "{p}"
    );

    // A missing image: ErrImagePull, then ImagePullBackOff.
    wait_pod(&n, "missing-image", "ImagePullBackOff", |p| {
        container(p, "c")["state"]["waiting"]["reason"] == "ImagePullBackOff"
    });

    // Dead containers are kept by policy: the newest exited instance only.
    wait_pod(&n, "crasher", "several restarts", |p| {
        container(p, "c")["restartCount"].as_i64().unwrap_or(0) >= 3
    });
    let uid = json(&n, &["get", "pod", "crasher"])["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let log_dir = std::fs::read_dir(n.data_dir().join("agent/logs"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(&uid))
        .expect("the pod's log directory")
        .path()
        .join("c");
    wait_until("housekeeping to remove older dead instances", WAIT, || {
        let logs = std::fs::read_dir(&log_dir).map(|d| d.count()).unwrap_or(0);
        (logs <= 2).then_some(())
    });

    // Deleting the pods leaves no sandbox, pod directory, mount or pod cgroup behind.
    assert!(!pod_cgroups(&n.name).is_empty());
    n.ok(&["delete", "pods", "--all", "--grace-period=1", "--wait=true"]);
    wait_until("the node to be clean", WAIT, || {
        let sandboxes = std::fs::read_dir(n.data_dir().join("agent/cri/sandboxes"))
            .map(|d| d.count())
            .unwrap_or(0);
        let pods = std::fs::read_dir(n.data_dir().join("agent/pods"))
            .map(|d| d.count())
            .unwrap_or(0);
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(n.data_dir().to_str().unwrap()))
            .count();
        (sandboxes == 0
            && pods == 0
            && mounts == 0
            && n.containers().is_empty()
            && pod_cgroups(&n.name).is_empty())
        .then_some(())
    });
}
