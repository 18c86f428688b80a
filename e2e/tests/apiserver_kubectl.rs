//! End-to-end: the real `berth server --disable-agent` driven by the real kubectl 1.32
//! through what issue 2 lists — apply of the seeds' manifests, get/describe/explain/watch,
//! strategic merge re-apply, server-side apply conflicts, generators that send protobuf,
//! scale/label/annotate/patch/edit, cascading deletes and finalizers, namespace deletion,
//! bad input, and a kill -9 + restart that keeps objects and resourceVersions.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use berth_e2e::server::BerthServer;
use berth_e2e::wait_until;

fn fixture(name: &str) -> String {
    format!(
        "{}/fixtures/seed-workflow/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn json(s: &BerthServer, args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&s.ok(&a)).expect("kubectl -o json prints JSON")
}

fn write_tmp(dir: &std::path::Path, name: &str, content: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write fixture");
    p.to_string_lossy().into_owned()
}

#[test]
fn seed_manifests_apply_and_read_back_like_kubernetes() {
    let s = BerthServer::start(&[]);
    let out = s.ok(&[
        "apply",
        "-f",
        &fixture("deployment-mywebapp.yaml"),
        "-f",
        &fixture("service-mywebapp.yaml"),
        "-f",
        &fixture("hpa-mywebapp.yaml"),
    ]);
    assert!(out.contains("deployment.apps/mywebapp created"), "{out}");
    assert!(out.contains("service/mywebapp created"), "{out}");
    assert!(
        out.contains("horizontalpodautoscaler.autoscaling/mywebapp created"),
        "{out}"
    );
    // Re-applying unchanged manifests changes nothing.
    let again = s.ok(&["apply", "-f", &fixture("deployment-mywebapp.yaml")]);
    assert!(again.contains("unchanged"), "{again}");

    // Tables with Kubernetes' columns.
    let deploy = s.ok(&["get", "deploy", "mywebapp"]);
    assert!(
        deploy.starts_with("NAME       READY   UP-TO-DATE   AVAILABLE   AGE"),
        "{deploy}"
    );
    let wide = s.ok(&["get", "deploy", "-o", "wide"]);
    assert!(
        wide.contains("CONTAINERS")
            && wide.contains("mywebapp:latest")
            && wide.contains("app=mywebapp"),
        "{wide}"
    );
    let svc = s.ok(&["get", "svc", "mywebapp"]);
    assert!(
        svc.contains("ClusterIP") && svc.contains("80/TCP") && svc.contains("10.43."),
        "{svc}"
    );
    let labels = s.ok(&["get", "deploy", "--show-labels"]);
    assert!(labels.contains("LABELS"), "{labels}");
    let all_ns = s.ok(&["get", "svc", "-A"]);
    assert!(
        all_ns.contains("NAMESPACE")
            && all_ns.contains("kubernetes")
            && all_ns.contains("mywebapp"),
        "{all_ns}"
    );
    let hpa = s.ok(&["get", "hpa"]);
    assert!(
        hpa.contains("Deployment/mywebapp") && hpa.contains("cpu:"),
        "{hpa}"
    );
    let all = s.ok(&["get", "all"]);
    assert!(
        all.contains("deployment.apps/mywebapp")
            && all.contains("service/mywebapp")
            && all.contains("horizontalpodautoscaler.autoscaling/mywebapp"),
        "{all}"
    );

    // The objects as stored, with server-set fields and defaults.
    let d = json(&s, &["get", "deploy", "mywebapp"]);
    assert_eq!(d["metadata"]["generation"], 1);
    assert!(d["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "Always"
    );
    let yaml = s.ok(&["get", "deploy", "mywebapp", "-o", "yaml"]);
    assert!(
        yaml.contains("resourceVersion:") && yaml.contains("creationTimestamp:"),
        "{yaml}"
    );
    // The HPA was written as autoscaling/v2beta2 and reads back in every served version.
    let raw = |path: &str| -> serde_json::Value {
        serde_json::from_str(&s.ok(&["get", "--raw", path])).expect("JSON")
    };
    let beta =
        raw("/apis/autoscaling/v2beta2/namespaces/default/horizontalpodautoscalers/mywebapp");
    assert_eq!(beta["apiVersion"], "autoscaling/v2beta2");
    assert_eq!(
        beta["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        80
    );
    let v1 = raw("/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/mywebapp");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 80);

    let described = s.ok(&["describe", "deploy", "mywebapp"]);
    assert!(
        described.contains("Name:")
            && described.contains("mywebapp")
            && described.contains("Selector:"),
        "{described}"
    );
    let explained = s.ok(&["explain", "deployment.spec.replicas"]);
    assert!(
        explained.contains("FIELD: replicas <integer>"),
        "{explained}"
    );
}

#[test]
fn watch_prints_changes_as_they_happen() {
    let s = BerthServer::start(&[]);
    s.ok(&["create", "configmap", "before", "--from-literal=a=1"]);
    let mut child = Command::new("kubectl")
        .env("KUBECONFIG", s.kubeconfig())
        .args(["get", "configmaps", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut created = false;
    let found = wait_until(
        "kubectl get -w to print the new configmap",
        Duration::from_secs(30),
        || {
            while let Ok(l) = rx.try_recv() {
                seen.push(l);
            }
            if !created && seen.iter().any(|l| l.contains("before")) {
                s.ok(&["create", "configmap", "during", "--from-literal=b=2"]);
                created = true;
            }
            seen.iter().find(|l| l.starts_with("during")).cloned()
        },
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        found.contains('1'),
        "the DATA column shows one key: {found}"
    );
}

#[test]
fn reapply_adds_then_removes_a_container_with_strategic_merge() {
    let s = BerthServer::start(&[]);
    let base = std::fs::read_to_string(fixture("deployment-mywebapp.yaml")).expect("fixture");
    let with_sidecar = base.replace(
        "        resources:",
        "        ports:\n        - containerPort: 8080\n        resources:",
    ) + "      - name: sidecar\n        image: busybox:1.36\n        command: [\"sleep\", \"3600\"]\n";
    let dir = tempfile::tempdir().expect("tmp");
    let base_f = write_tmp(dir.path(), "base.yaml", &base);
    let side_f = write_tmp(dir.path(), "side.yaml", &with_sidecar);
    s.ok(&["apply", "-f", &base_f]);
    s.ok(&["apply", "-f", &side_f]);
    let d = json(&s, &["get", "deploy", "mywebapp"]);
    let names: Vec<_> = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["mywebapp", "sidecar"]);
    assert_eq!(d["metadata"]["generation"], 2);
    // Fields set by others survive a client-side apply (three-way merge).
    s.ok(&["label", "deploy", "mywebapp", "owner=ops"]);
    s.ok(&["apply", "-f", &base_f]);
    let d = json(&s, &["get", "deploy", "mywebapp"]);
    let names: Vec<_> = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["mywebapp"]);
    assert!(
        d["spec"]["template"]["spec"]["containers"][0]
            .get("ports")
            .is_none()
    );
    assert_eq!(d["metadata"]["labels"]["owner"], "ops");
    assert_eq!(d["metadata"]["generation"], 3);
}

#[test]
fn server_side_apply_reports_conflicts_until_forced() {
    let s = BerthServer::start(&[]);
    let dep = fixture("deployment-mywebapp.yaml");
    s.ok(&["apply", "--server-side", "-f", &dep]);
    let d = json(&s, &["get", "deploy", "mywebapp", "--show-managed-fields"]);
    let managers: Vec<_> = d["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap().to_string())
        .collect();
    assert!(managers.contains(&"kubectl".to_string()), "{managers:?}");
    // Another manager takes spec.replicas.
    s.ok(&["scale", "deploy", "mywebapp", "--replicas=5"]);
    let err = s.fails(&["apply", "--server-side", "-f", &dep]);
    assert!(
        err.contains("conflict") && err.contains(".spec.replicas"),
        "{err}"
    );
    let d = json(&s, &["get", "deploy", "mywebapp"]);
    assert_eq!(d["spec"]["replicas"], 5, "a failed apply writes nothing");
    s.ok(&["apply", "--server-side", "--force-conflicts", "-f", &dep]);
    let d = json(&s, &["get", "deploy", "mywebapp"]);
    assert_eq!(d["spec"]["replicas"], 3);
}

#[test]
fn generators_send_protobuf_and_work() {
    let s = BerthServer::start(&[]);
    s.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--replicas=2",
    ]);
    s.ok(&[
        "create",
        "job",
        "once",
        "--image=busybox",
        "--",
        "echo",
        "hi",
    ]);
    s.ok(&[
        "create",
        "configmap",
        "cfg",
        "--from-literal=mode=fast",
        "--from-literal=level=3",
    ]);
    s.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=password=s3cr3t",
    ]);
    s.ok(&["create", "namespace", "team-a"]);
    s.ok(&["create", "service", "nodeport", "np", "--tcp=80:8080"]);
    let d = json(&s, &["get", "deploy", "web"]);
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    let j = json(&s, &["get", "job", "once"]);
    assert_eq!(
        j["spec"]["template"]["spec"]["containers"][0]["command"],
        serde_json::json!(["echo", "hi"])
    );
    let c = json(&s, &["get", "cm", "cfg"]);
    assert_eq!(c["data"]["mode"], "fast");
    let sec = json(&s, &["get", "secret", "creds"]);
    assert_eq!(sec["data"]["password"], "czNjcjN0");
    let np = json(&s, &["get", "svc", "np"]);
    let port = np["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&port), "{port}");
    assert!(s.ok(&["get", "ns"]).contains("team-a"));
}

#[test]
fn scale_label_annotate_patch_and_edit() {
    let s = BerthServer::start(&[]);
    s.ok(&["apply", "-f", &fixture("deployment-mywebapp.yaml")]);
    s.ok(&["scale", "deploy", "mywebapp", "--replicas=4"]);
    s.ok(&["label", "deploy", "mywebapp", "tier=web"]);
    s.ok(&["annotate", "deploy", "mywebapp", "team=blue"]);
    s.ok(&["patch", "deploy", "mywebapp", "--type", "strategic", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"mywebapp","image":"mywebapp:v2"}]}}}}"#]);
    s.ok(&[
        "patch",
        "deploy",
        "mywebapp",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"labels":{"stage":"prod"}}}"#,
    ]);
    s.ok(&[
        "patch",
        "deploy",
        "mywebapp",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/spec/minReadySeconds","value":5}]"#,
    ]);
    let d = json(&s, &["get", "deploy", "mywebapp"]);
    assert_eq!(d["spec"]["replicas"], 4);
    assert_eq!(d["metadata"]["labels"]["tier"], "web");
    assert_eq!(d["metadata"]["labels"]["stage"], "prod");
    assert_eq!(d["metadata"]["annotations"]["team"], "blue");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "mywebapp:v2"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"], "200m",
        "merge kept the rest of the container"
    );
    assert_eq!(d["spec"]["minReadySeconds"], 5);
    let scale: serde_json::Value = serde_json::from_str(&s.ok(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/default/deployments/mywebapp/scale",
    ]))
    .expect("JSON");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 4);

    let out = s.kubectl_with(
        &["edit", "deploy", "mywebapp"],
        &[("KUBE_EDITOR", "sed -i s/replicas:\\ 4/replicas:\\ 6/")],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        json(&s, &["get", "deploy", "mywebapp"])["spec"]["replicas"],
        6
    );
}

#[test]
fn cascading_deletes_finalizers_and_namespace_deletion() {
    let s = BerthServer::start(&[]);
    // Owner and dependents linked by ownerReferences (as controllers create them).
    let mk_owned = |owner: &str, uid: &str, name: &str| {
        let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name,
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": owner, "uid": uid, "blockOwnerDeletion": true}]}});
        s.kubectl_with(&["create", "-f", "-"], &[], Some(&cm.to_string()))
    };
    for policy in ["background", "foreground", "orphan"] {
        let owner = format!("owner-{policy}");
        s.ok(&["create", "configmap", &owner]);
        let uid = json(&s, &["get", "cm", &owner])["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_string();
        let dep = format!("dep-{policy}");
        assert!(mk_owned(&owner, &uid, &dep).status.success());
        s.ok(&["delete", "cm", &owner, &format!("--cascade={policy}")]);
        if policy == "orphan" {
            let d = wait_until(
                "the orphan's ownerReference to be removed",
                Duration::from_secs(30),
                || {
                    let d = json(&s, &["get", "cm", &dep]);
                    d["metadata"].get("ownerReferences").is_none().then_some(d)
                },
            );
            assert_eq!(d["metadata"]["name"], dep.as_str());
        } else {
            s.ok(&[
                "wait",
                "--for=delete",
                &format!("cm/{dep}"),
                "--timeout=60s",
            ]);
        }
        assert!(s.kubectl(&["get", "cm", &owner]).status.code() != Some(0));
    }

    // A finalizer holds an object until it is removed.
    s.ok(&["create", "configmap", "held"]);
    s.ok(&[
        "patch",
        "cm",
        "held",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ]);
    s.ok(&["delete", "cm", "held", "--wait=false"]);
    let d = json(&s, &["get", "cm", "held"]);
    assert!(d["metadata"]["deletionTimestamp"].is_string());
    s.ok(&[
        "patch",
        "cm",
        "held",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    s.ok(&["wait", "--for=delete", "cm/held", "--timeout=30s"]);

    // Deleting a namespace removes its contents, and nothing new may be created meanwhile.
    s.ok(&["create", "namespace", "doomed"]);
    s.ok(&["create", "configmap", "c1", "-n", "doomed"]);
    s.ok(&["create", "deployment", "d1", "--image=x", "-n", "doomed"]);
    wait_until(
        "the default service account",
        Duration::from_secs(30),
        || {
            s.kubectl(&["get", "sa", "default", "-n", "doomed"])
                .status
                .success()
                .then_some(())
        },
    );
    s.ok(&["delete", "namespace", "doomed", "--timeout=60s"]);
    let err = s.fails(&["get", "ns", "doomed"]);
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
}

#[test]
fn bad_input_is_rejected_with_status_and_nothing_is_written() {
    let s = BerthServer::start(&[]);
    let dir = tempfile::tempdir().expect("tmp");
    // Malformed JSON and YAML bodies.
    let broken = write_tmp(
        dir.path(),
        "broken.json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x""#,
    );
    let err = s.fails(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps",
        "-f",
        &broken,
    ]);
    assert!(
        err.contains("BadRequest") || err.contains("error decoding"),
        "{err}"
    );
    // Unknown fields under Strict (kubectl's default).
    let unknown = write_tmp(
        dir.path(),
        "unknown.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: strict\ndata:\n  a: b\nbogus: 1\n",
    );
    let err = s.fails(&["apply", "-f", &unknown]);
    assert!(err.contains("unknown field \"bogus\""), "{err}");
    s.fails(&["get", "cm", "strict"]);
    // Wrong kind for the endpoint.
    let wrong = write_tmp(
        dir.path(),
        "wrong.json",
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"w"}}"#,
    );
    let err = s.fails(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps",
        "-f",
        &wrong,
    ]);
    assert!(err.contains("does not match"), "{err}");
    let wrong_v = write_tmp(
        dir.path(),
        "wrongv.json",
        r#"{"apiVersion":"apps/v1beta1","kind":"Deployment","metadata":{"name":"w"}}"#,
    );
    let err = s.fails(&[
        "create",
        "--raw",
        "/apis/apps/v1/namespaces/default/deployments",
        "-f",
        &wrong_v,
    ]);
    assert!(
        err.contains("does not match the expected API version"),
        "{err}"
    );
    // Invalid names.
    let err = s.fails(&["create", "configmap", "Bad_Name"]);
    assert!(
        err.contains("metadata.name: Invalid value: \"Bad_Name\""),
        "{err}"
    );
    // Validation errors name their fields.
    let invalid = write_tmp(
        dir.path(),
        "invalid.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: bad\nspec:\n  selector:\n    matchLabels: {app: a}\n  template:\n    metadata:\n      labels: {app: b}\n    spec:\n      containers:\n      - name: c\n",
    );
    let err = s.fails(&["apply", "-f", &invalid]);
    assert!(
        err.contains("is invalid")
            && err.contains("spec.template.spec.containers[0].image: Required value"),
        "{err}"
    );
    s.fails(&["get", "deploy", "bad"]);
    // Bodies over 3 MiB.
    let big = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"a":"{}"}}}}"#,
        "x".repeat(3 * 1024 * 1024 + 10)
    );
    let big_f = write_tmp(dir.path(), "big.json", &big);
    let err = s.fails(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps",
        "-f",
        &big_f,
    ]);
    assert!(
        err.contains("too large") || err.contains("RequestEntityTooLarge") || err.contains("413"),
        "{err}"
    );
    s.fails(&["get", "cm", "big"]);
    // Impossible patches leave the object unchanged.
    s.ok(&["create", "configmap", "target", "--from-literal=k=v"]);
    let rv = json(&s, &["get", "cm", "target"])["metadata"]["resourceVersion"].clone();
    let err = s.fails(&[
        "patch",
        "cm",
        "target",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/data/missing/deeper","value":"x"}]"#,
    ]);
    assert!(!err.is_empty());
    let err = s.fails(&[
        "patch",
        "cm",
        "target",
        "--type",
        "json",
        "-p",
        r#"{"not":"a list"}"#,
    ]);
    assert!(!err.is_empty());
    let err = s.fails(&[
        "patch",
        "cm",
        "target",
        "--type",
        "strategic",
        "-p",
        r#"{"data":{"$patch":"explode"}}"#,
    ]);
    assert!(!err.is_empty());
    assert_eq!(
        json(&s, &["get", "cm", "target"])["metadata"]["resourceVersion"],
        rv
    );
    malformed_protobuf_unsupported_types_and_missing_credentials(&s);
}

fn malformed_protobuf_unsupported_types_and_missing_credentials(s: &BerthServer) {
    let before = json(s, &["get", "cm"])["items"].as_array().unwrap().len();
    let cms = "/api/v1/namespaces/default/configmaps";
    let protobuf = "application/vnd.kubernetes.protobuf";
    let (code, body) = s.curl("POST", cms, protobuf, b"k8s\x00\x0a\xff\xff\xff");
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("\"kind\":\"Status\"") && body.contains("protobuf"),
        "{body}"
    );
    let (code, body) = s.curl("POST", cms, protobuf, b"not protobuf at all");
    assert_eq!(code, 400, "{body}");
    let (code, body) = s.curl("POST", cms, "text/plain", b"a=b");
    assert_eq!(code, 415, "{body}");
    // No credentials: 401.
    let out = std::process::Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("https://{}/api/v1/namespaces", s.addr))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");
    let after = json(s, &["get", "cm"])["items"].as_array().unwrap().len();
    assert_eq!(before, after, "nothing was written");
}

#[test]
fn objects_and_resource_versions_survive_kill_9() {
    let mut s = BerthServer::start(&[]);
    s.ok(&[
        "apply",
        "-f",
        &fixture("deployment-mywebapp.yaml"),
        "-f",
        &fixture("service-mywebapp.yaml"),
    ]);
    for i in 0..20 {
        s.ok(&[
            "create",
            "configmap",
            &format!("cm-{i}"),
            &format!("--from-literal=i={i}"),
        ]);
    }
    let before = json(&s, &["get", "deploy,svc,cm"]);
    let list: serde_json::Value =
        serde_json::from_str(&s.ok(&["get", "--raw", "/api/v1/namespaces/default/configmaps"]))
            .expect("JSON");
    let list_rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse::<i64>()
        .unwrap();
    s.kill9();
    s.restart();
    let after = json(&s, &["get", "deploy,svc,cm"]);
    let key = |v: &serde_json::Value| -> Vec<(String, String, String)> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["kind"].as_str().unwrap_or("").to_string(),
                    o["metadata"]["name"].as_str().unwrap().to_string(),
                    o["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect()
    };
    assert_eq!(key(&before), key(&after));
    // New writes continue the revision sequence.
    s.ok(&["create", "configmap", "after-restart"]);
    let rv = json(&s, &["get", "cm", "after-restart"])["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse::<i64>()
        .unwrap();
    assert!(rv > list_rv, "{rv} > {list_rv}");
    // A clean stop exits 0.
    let status = s.stop().expect("running");
    assert!(status.success(), "{status}");
}

const CRONTAB_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    additionalPrinterColumns:
    - name: Spec
      type: string
      jsonPath: .spec.cronSpec
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [cronSpec]
            properties:
              cronSpec:
                type: string
                pattern: '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'
              image:
                type: string
              replicas:
                type: integer
                minimum: 1
                maximum: 10
                default: 1
          status:
            type: object
            properties:
              ready: {type: boolean}
"#;

#[test]
fn custom_resource_definitions_serve_their_resources() {
    let s = BerthServer::start(&[]);
    let dir = tempfile::tempdir().expect("tmp");
    let crd = write_tmp(dir.path(), "crd.yaml", CRONTAB_CRD);
    s.ok(&["apply", "-f", &crd]);
    s.ok(&[
        "wait",
        "--for=condition=established",
        "crd/crontabs.stable.example.com",
        "--timeout=30s",
    ]);
    let ct = write_tmp(
        dir.path(),
        "ct.yaml",
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: my-cron\nspec:\n  cronSpec: \"* * * * */5\"\n  image: my-cron-image\n",
    );
    s.ok(&["apply", "-f", &ct]);
    let table = s.ok(&["get", "ct"]);
    assert!(
        table.contains("SPEC") && table.contains("REPLICAS") && table.contains("* * * * */5"),
        "{table}"
    );
    let obj = json(&s, &["get", "crontab", "my-cron"]);
    assert_eq!(obj["spec"]["replicas"], 1, "schema default applied");
    // Schema validation names the field; nothing is written.
    let bad = write_tmp(
        dir.path(),
        "bad.yaml",
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: bad-cron\nspec:\n  cronSpec: \"every minute\"\n  replicas: 50\n",
    );
    let err = s.fails(&["apply", "-f", &bad]);
    assert!(
        err.contains("spec.cronSpec") && err.contains("spec.replicas"),
        "{err}"
    );
    s.fails(&["get", "crontab", "bad-cron"]);
    // Unknown fields are rejected under Strict.
    let unknown = write_tmp(
        dir.path(),
        "unknown.yaml",
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: u\nspec:\n  cronSpec: \"* * * * *\"\n  bogus: 1\n",
    );
    let err = s.fails(&["apply", "-f", &unknown]);
    assert!(err.contains("unknown field \"spec.bogus\""), "{err}");
    // The status subresource is separate from the main resource.
    s.ok(&[
        "patch",
        "crontab",
        "my-cron",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"ready":true}}"#,
    ]);
    assert_eq!(
        json(&s, &["get", "crontab", "my-cron"])["status"]["ready"],
        true
    );
    s.ok(&["explain", "crontab.spec.cronSpec"]);
    // Deleting the CRD removes its objects first.
    s.ok(&[
        "delete",
        "crd",
        "crontabs.stable.example.com",
        "--timeout=60s",
    ]);
    let err = s.fails(&["get", "crontabs.stable.example.com"]);
    assert!(
        err.contains("doesn't have a resource type")
            || err.contains("not found")
            || err.contains("NotFound"),
        "{err}"
    );
}

#[test]
fn dry_run_field_validation_modes_paging_and_selectors() {
    let s = BerthServer::start(&[]);
    let dir = tempfile::tempdir().expect("tmp");
    // dryRun=All validates and defaults but writes nothing.
    let out = s.ok(&[
        "apply",
        "--dry-run=server",
        "-f",
        &fixture("deployment-mywebapp.yaml"),
        "-o",
        "json",
    ]);
    let d: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    s.fails(&["get", "deploy", "mywebapp"]);
    s.ok(&["create", "configmap", "dry", "--dry-run=server"]);
    s.fails(&["get", "cm", "dry"]);
    // fieldValidation: Warn reports and stores, Ignore is silent.
    let warned = write_tmp(
        dir.path(),
        "w.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: warned\nbogus: 1\n",
    );
    let out = s.kubectl(&["apply", "--validate=warn", "-f", &warned]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && stderr.contains("unknown field \"bogus\""),
        "{stderr}"
    );
    s.ok(&["get", "cm", "warned"]);
    let ignored = write_tmp(
        dir.path(),
        "i.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ignored\nbogus: 1\n",
    );
    let out = s.kubectl(&["apply", "--validate=false", "-f", &ignored]);
    assert!(out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("bogus"));
    // limit/continue through kubectl's chunking, and label/field selectors.
    for i in 0..12 {
        let name = format!("p{i:02}");
        s.ok(&["create", "configmap", &name, "--from-literal=a=b"]);
        s.ok(&[
            "label",
            "cm",
            &name,
            &format!("tier={}", ["web", "db", "cache"][i % 3]),
        ]);
    }
    let chunked = s.ok(&["get", "cm", "--chunk-size=5", "-o", "name"]);
    assert_eq!(
        chunked
            .lines()
            .filter(|l| l.starts_with("configmap/p"))
            .count(),
        12
    );
    assert_eq!(
        s.ok(&["get", "cm", "-l", "tier in (web,db)", "-o", "name"])
            .lines()
            .count(),
        8
    );
    assert_eq!(
        s.ok(&["get", "cm", "-l", "tier!=web,tier", "-o", "name"])
            .lines()
            .count(),
        8
    );
    let by_field = s.ok(&[
        "get",
        "cm",
        "--field-selector",
        "metadata.name=p03",
        "-o",
        "name",
    ]);
    assert_eq!(by_field.trim(), "configmap/p03");
    let err = s.fails(&["get", "cm", "--field-selector", "spec.nodeName=x"]);
    assert!(err.contains("field label not supported"), "{err}");
    // Field selectors on pods.
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p1"},"spec":{"nodeName":"n1","containers":[{"name":"c","image":"busybox"}]}}"#;
    assert!(
        s.kubectl_with(&["create", "-f", "-"], &[], Some(pod))
            .status
            .success()
    );
    let on_node = s.ok(&[
        "get",
        "pods",
        "--field-selector",
        "spec.nodeName=n1,status.phase!=Succeeded",
        "-o",
        "name",
    ]);
    assert_eq!(on_node.trim(), "pod/p1");
    assert_eq!(
        s.ok(&[
            "get",
            "pods",
            "--field-selector",
            "spec.nodeName=n2",
            "-o",
            "name"
        ])
        .trim(),
        ""
    );
}
