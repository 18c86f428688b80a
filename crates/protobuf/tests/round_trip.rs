//! Round trips against two independent implementations: each object is built with k8s-pb's
//! prost structs, encoded with prost inside a `k8s\0` + `runtime.Unknown` envelope, decoded
//! by berth-protobuf, and compared with the JSON that the same object serializes to as a
//! k8s-openapi value (the expected JSON is parsed into the k8s-openapi type and serialized
//! back, so a property k8s-openapi does not know would be dropped and fail the comparison).

use k8s_openapi::Resource;
use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::autoscaling::v2 as hpa;
use k8s_pb::api::batch::v1 as batch;
use k8s_pb::api::coordination::v1 as coordination;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::networking::v1 as net;
use k8s_pb::api::policy::v1 as policy;
use k8s_pb::api::rbac::v1 as rbac;
use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as ext;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message as _;
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

/// Encodes `pb`, decodes it, and compares with `expected` after a pass through `K`.
fn check<K>(pb: &impl prost::Message, expected: Value)
where
    K: Resource + k8s_openapi::serde::Serialize + k8s_openapi::serde::de::DeserializeOwned,
{
    let body = envelope(K::API_VERSION, K::KIND, pb.encode_to_vec());
    let decoded = berth_protobuf::decode(&body).unwrap_or_else(|e| panic!("{}: {e}", K::KIND));
    let typed: K =
        serde_json::from_value(expected).expect("expected JSON fits the k8s-openapi type");
    let expected = serde_json::to_value(&typed).expect("serialize");
    assert_eq!(decoded, expected, "{} {}", K::API_VERSION, K::KIND);
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn q(v: &str) -> Quantity {
    Quantity { string: s(v) }
}

fn int_or_str(v: &str) -> IntOrString {
    IntOrString {
        r#type: Some(1),
        int_val: None,
        str_val: s(v),
    }
}

fn int_or_int(v: i32) -> IntOrString {
    IntOrString {
        r#type: Some(0),
        int_val: Some(v),
        str_val: None,
    }
}

/// 2024-01-02T03:04:05Z
const T0: i64 = 1_704_164_645;

fn time(offset: i64) -> meta::Time {
    meta::Time {
        seconds: Some(T0 + offset),
        nanos: Some(0),
    }
}

fn object_meta(name: &str, namespace: Option<&str>) -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: s(name),
        namespace: namespace.map(String::from),
        uid: s("6f1c2d3e-0000-4000-8000-000000000001"),
        resource_version: s("4711"),
        generation: Some(3),
        creation_timestamp: Some(time(0)),
        labels: map(&[("app", "web"), ("tier", "front")]),
        annotations: map(&[("example.com/owner", "team-a")]),
        owner_references: vec![meta::OwnerReference {
            api_version: s("example.com/v1"),
            kind: s("Owner"),
            name: s("root"),
            uid: s("6f1c2d3e-0000-4000-8000-000000000002"),
            controller: Some(true),
            block_owner_deletion: Some(false),
        }],
        finalizers: strings(&["example.com/cleanup"]),
        ..Default::default()
    }
}

fn object_meta_json(name: &str, namespace: Option<&str>) -> Value {
    let mut m = json!({
        "name": name,
        "uid": "6f1c2d3e-0000-4000-8000-000000000001",
        "resourceVersion": "4711",
        "generation": 3,
        "creationTimestamp": "2024-01-02T03:04:05Z",
        "labels": {"app": "web", "tier": "front"},
        "annotations": {"example.com/owner": "team-a"},
        "ownerReferences": [{
            "apiVersion": "example.com/v1", "kind": "Owner", "name": "root",
            "uid": "6f1c2d3e-0000-4000-8000-000000000002", "controller": true, "blockOwnerDeletion": false
        }],
        "finalizers": ["example.com/cleanup"]
    });
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    m
}

fn selector() -> meta::LabelSelector {
    meta::LabelSelector {
        match_labels: map(&[("app", "web")]),
        match_expressions: vec![meta::LabelSelectorRequirement {
            key: s("tier"),
            operator: s("In"),
            values: strings(&["front", "edge"]),
        }],
    }
}

fn selector_json() -> Value {
    json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "edge"]}]})
}

fn pod_template() -> core::PodTemplateSpec {
    core::PodTemplateSpec {
        metadata: Some(meta::ObjectMeta {
            labels: map(&[("app", "web")]),
            ..Default::default()
        }),
        spec: Some(core::PodSpec {
            volumes: vec![
                core::Volume {
                    name: s("config"),
                    volume_source: Some(core::VolumeSource {
                        config_map: Some(core::ConfigMapVolumeSource {
                            local_object_reference: Some(core::LocalObjectReference {
                                name: s("web-config"),
                            }),
                            default_mode: Some(0o644),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                },
                core::Volume {
                    name: s("scratch"),
                    volume_source: Some(core::VolumeSource {
                        empty_dir: Some(core::EmptyDirVolumeSource {
                            medium: s("Memory"),
                            size_limit: Some(q("64Mi")),
                        }),
                        ..Default::default()
                    }),
                },
            ],
            containers: vec![core::Container {
                name: s("web"),
                image: s("registry.example/web:1.2.3"),
                command: strings(&["/bin/web"]),
                args: strings(&["--port=8080", "--verbose"]),
                working_dir: s("/srv"),
                ports: vec![core::ContainerPort {
                    name: s("http"),
                    container_port: Some(8080),
                    protocol: s("TCP"),
                    ..Default::default()
                }],
                env: vec![
                    core::EnvVar {
                        name: s("MODE"),
                        value: s("production"),
                        value_from: None,
                    },
                    core::EnvVar {
                        name: s("LEVEL"),
                        value: None,
                        value_from: Some(core::EnvVarSource {
                            config_map_key_ref: Some(core::ConfigMapKeySelector {
                                local_object_reference: Some(core::LocalObjectReference {
                                    name: s("web-config"),
                                }),
                                key: s("level"),
                                optional: Some(false),
                            }),
                            ..Default::default()
                        }),
                    },
                ],
                resources: Some(core::ResourceRequirements {
                    limits: [
                        ("cpu".to_string(), q("500m")),
                        ("memory".to_string(), q("256Mi")),
                    ]
                    .into(),
                    requests: [("cpu".to_string(), q("100m"))].into(),
                    claims: vec![],
                }),
                volume_mounts: vec![core::VolumeMount {
                    name: s("config"),
                    read_only: Some(true),
                    mount_path: s("/etc/web"),
                    ..Default::default()
                }],
                liveness_probe: Some(core::Probe {
                    handler: Some(core::ProbeHandler {
                        http_get: Some(core::HttpGetAction {
                            path: s("/healthz"),
                            port: Some(int_or_str("http")),
                            scheme: s("HTTP"),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    initial_delay_seconds: Some(5),
                    period_seconds: Some(10),
                    ..Default::default()
                }),
                readiness_probe: Some(core::Probe {
                    handler: Some(core::ProbeHandler {
                        tcp_socket: Some(core::TcpSocketAction {
                            port: Some(int_or_int(8080)),
                            host: None,
                        }),
                        ..Default::default()
                    }),
                    failure_threshold: Some(3),
                    ..Default::default()
                }),
                image_pull_policy: s("IfNotPresent"),
                security_context: Some(core::SecurityContext {
                    capabilities: Some(core::Capabilities {
                        add: vec![],
                        drop: strings(&["ALL"]),
                    }),
                    run_as_user: Some(1000),
                    run_as_non_root: Some(true),
                    allow_privilege_escalation: Some(false),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            restart_policy: s("Always"),
            termination_grace_period_seconds: Some(30),
            dns_policy: s("ClusterFirst"),
            node_selector: map(&[("kubernetes.io/os", "linux")]),
            service_account_name: s("web"),
            automount_service_account_token: Some(false),
            tolerations: vec![core::Toleration {
                key: s("node.kubernetes.io/not-ready"),
                operator: s("Exists"),
                effect: s("NoExecute"),
                toleration_seconds: Some(300),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

fn pod_template_json() -> Value {
    json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "volumes": [
                {"name": "config", "configMap": {"name": "web-config", "defaultMode": 420}},
                {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}
            ],
            "containers": [{
                "name": "web",
                "image": "registry.example/web:1.2.3",
                "command": ["/bin/web"],
                "args": ["--port=8080", "--verbose"],
                "workingDir": "/srv",
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "env": [
                    {"name": "MODE", "value": "production"},
                    {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "web-config", "key": "level", "optional": false}}}
                ],
                "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m"}},
                "volumeMounts": [{"name": "config", "readOnly": true, "mountPath": "/etc/web"}],
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"}, "initialDelaySeconds": 5, "periodSeconds": 10},
                "readinessProbe": {"tcpSocket": {"port": 8080}, "failureThreshold": 3},
                "imagePullPolicy": "IfNotPresent",
                "securityContext": {
                    "capabilities": {"drop": ["ALL"]},
                    "runAsUser": 1000,
                    "runAsNonRoot": true,
                    "allowPrivilegeEscalation": false
                }
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "serviceAccountName": "web",
            "automountServiceAccountToken": false,
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
        }
    })
}

#[test]
fn deployment() {
    let pb = apps::Deployment {
        metadata: Some(object_meta("web", Some("prod"))),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(3),
            selector: Some(selector()),
            template: Some(pod_template()),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: Some(int_or_int(0)),
                    max_surge: Some(int_or_str("25%")),
                }),
            }),
            min_ready_seconds: Some(5),
            revision_history_limit: Some(10),
            paused: None,
            progress_deadline_seconds: Some(600),
        }),
        status: Some(apps::DeploymentStatus {
            observed_generation: Some(3),
            replicas: Some(3),
            updated_replicas: Some(3),
            ready_replicas: Some(2),
            available_replicas: Some(2),
            unavailable_replicas: Some(1),
            conditions: vec![apps::DeploymentCondition {
                r#type: s("Available"),
                status: s("True"),
                last_update_time: Some(time(60)),
                last_transition_time: Some(time(30)),
                reason: s("MinimumReplicasAvailable"),
                message: s("Deployment has minimum availability."),
            }],
            ..Default::default()
        }),
    };
    let expected = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": object_meta_json("web", Some("prod")),
        "spec": {
            "replicas": 3,
            "selector": selector_json(),
            "template": pod_template_json(),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            "minReadySeconds": 5,
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600
        },
        "status": {
            "observedGeneration": 3, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 2,
            "availableReplicas": 2, "unavailableReplicas": 1,
            "conditions": [{
                "type": "Available", "status": "True",
                "lastUpdateTime": "2024-01-02T03:05:05Z", "lastTransitionTime": "2024-01-02T03:04:35Z",
                "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."
            }]
        }
    });
    check::<k8s_openapi::api::apps::v1::Deployment>(&pb, expected);
}

#[test]
fn job_and_cronjob() {
    let job_spec = batch::JobSpec {
        parallelism: Some(2),
        completions: Some(4),
        active_deadline_seconds: Some(600),
        backoff_limit: Some(6),
        ttl_seconds_after_finished: Some(3600),
        completion_mode: s("Indexed"),
        suspend: Some(false),
        template: Some(pod_template()),
        ..Default::default()
    };
    let job_spec_json = json!({
        "parallelism": 2, "completions": 4, "activeDeadlineSeconds": 600, "backoffLimit": 6,
        "ttlSecondsAfterFinished": 3600, "completionMode": "Indexed", "suspend": false,
        "template": pod_template_json()
    });
    let job = batch::Job {
        metadata: Some(object_meta("batch-1", Some("jobs"))),
        spec: Some(job_spec.clone()),
        status: Some(batch::JobStatus {
            start_time: Some(time(1)),
            active: Some(2),
            succeeded: Some(1),
            completed_indexes: s("0"),
            ready: Some(2),
            ..Default::default()
        }),
    };
    check::<k8s_openapi::api::batch::v1::Job>(
        &job,
        json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": object_meta_json("batch-1", Some("jobs")),
            "spec": job_spec_json,
            "status": {"startTime": "2024-01-02T03:04:06Z", "active": 2, "succeeded": 1, "completedIndexes": "0", "ready": 2}
        }),
    );

    let cron = batch::CronJob {
        metadata: Some(object_meta("nightly", Some("jobs"))),
        spec: Some(batch::CronJobSpec {
            schedule: s("0 3 * * *"),
            time_zone: s("Europe/Paris"),
            starting_deadline_seconds: Some(120),
            concurrency_policy: s("Forbid"),
            suspend: Some(false),
            job_template: Some(batch::JobTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels: map(&[("job", "nightly")]),
                    ..Default::default()
                }),
                spec: Some(job_spec),
            }),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(1),
        }),
        status: Some(batch::CronJobStatus {
            active: vec![core::ObjectReference {
                kind: s("Job"),
                namespace: s("jobs"),
                name: s("nightly-1"),
                uid: s("u-1"),
                api_version: s("batch/v1"),
                ..Default::default()
            }],
            last_schedule_time: Some(time(3600)),
            last_successful_time: Some(time(3700)),
        }),
    };
    check::<k8s_openapi::api::batch::v1::CronJob>(
        &cron,
        json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": object_meta_json("nightly", Some("jobs")),
            "spec": {
                "schedule": "0 3 * * *", "timeZone": "Europe/Paris", "startingDeadlineSeconds": 120,
                "concurrencyPolicy": "Forbid", "suspend": false,
                "jobTemplate": {"metadata": {"labels": {"job": "nightly"}}, "spec": job_spec_json},
                "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1
            },
            "status": {
                "active": [{"kind": "Job", "namespace": "jobs", "name": "nightly-1", "uid": "u-1", "apiVersion": "batch/v1"}],
                "lastScheduleTime": "2024-01-02T04:04:05Z",
                "lastSuccessfulTime": "2024-01-02T04:05:45Z"
            }
        }),
    );
}

#[test]
fn service() {
    let pb = core::Service {
        metadata: Some(object_meta("web", Some("prod"))),
        spec: Some(core::ServiceSpec {
            ports: vec![
                core::ServicePort {
                    name: s("http"),
                    protocol: s("TCP"),
                    app_protocol: s("http"),
                    port: Some(80),
                    target_port: Some(int_or_str("http")),
                    node_port: Some(30080),
                },
                core::ServicePort {
                    name: s("metrics"),
                    protocol: s("TCP"),
                    port: Some(9090),
                    target_port: Some(int_or_int(9090)),
                    node_port: Some(30090),
                    ..Default::default()
                },
            ],
            selector: map(&[("app", "web")]),
            cluster_ip: s("10.43.0.12"),
            cluster_ips: strings(&["10.43.0.12"]),
            r#type: s("NodePort"),
            session_affinity: s("ClientIP"),
            session_affinity_config: Some(core::SessionAffinityConfig {
                client_ip: Some(core::ClientIpConfig {
                    timeout_seconds: Some(10800),
                }),
            }),
            external_traffic_policy: s("Local"),
            ip_families: strings(&["IPv4"]),
            ip_family_policy: s("SingleStack"),
            internal_traffic_policy: s("Cluster"),
            ..Default::default()
        }),
        status: Some(core::ServiceStatus {
            load_balancer: Some(core::LoadBalancerStatus {
                ingress: vec![core::LoadBalancerIngress {
                    ip: s("192.0.2.10"),
                    ip_mode: s("VIP"),
                    ports: vec![core::PortStatus {
                        port: Some(80),
                        protocol: s("TCP"),
                        error: None,
                    }],
                    ..Default::default()
                }],
            }),
            conditions: vec![],
        }),
    };
    check::<k8s_openapi::api::core::v1::Service>(
        &pb,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": object_meta_json("web", Some("prod")),
            "spec": {
                "ports": [
                    {"name": "http", "protocol": "TCP", "appProtocol": "http", "port": 80, "targetPort": "http", "nodePort": 30080},
                    {"name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": 9090, "nodePort": 30090}
                ],
                "selector": {"app": "web"},
                "clusterIP": "10.43.0.12", "clusterIPs": ["10.43.0.12"], "type": "NodePort",
                "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                "externalTrafficPolicy": "Local", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "internalTrafficPolicy": "Cluster"
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10", "ipMode": "VIP", "ports": [{"port": 80, "protocol": "TCP"}]}]}}
        }),
    );
}

#[test]
fn configmap_secret_namespace() {
    let cm = core::ConfigMap {
        metadata: Some(object_meta("settings", Some("prod"))),
        immutable: Some(true),
        data: map(&[("mode", "fast"), ("multi", "line one\nline two\n")]),
        binary_data: [("blob".to_string(), vec![0u8, 1, 2, 0xff, 0xfe])].into(),
    };
    check::<k8s_openapi::api::core::v1::ConfigMap>(
        &cm,
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": object_meta_json("settings", Some("prod")),
            "immutable": true,
            "data": {"mode": "fast", "multi": "line one\nline two\n"},
            "binaryData": {"blob": "AAEC//4="}
        }),
    );

    let secret = core::Secret {
        metadata: Some(object_meta("creds", Some("prod"))),
        immutable: None,
        data: [
            ("key".to_string(), vec![0x00, 0x9f, 0x92, 0x96, 0xff]),
            ("user".to_string(), b"admin".to_vec()),
        ]
        .into(),
        string_data: BTreeMap::new(),
        r#type: s("Opaque"),
    };
    check::<k8s_openapi::api::core::v1::Secret>(
        &secret,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": object_meta_json("creds", Some("prod")),
            "data": {"key": "AJ+Slv8=", "user": "YWRtaW4="},
            "type": "Opaque"
        }),
    );

    let ns = core::Namespace {
        metadata: Some(object_meta("team-a", None)),
        spec: Some(core::NamespaceSpec {
            finalizers: strings(&["kubernetes"]),
        }),
        status: Some(core::NamespaceStatus {
            phase: s("Terminating"),
            conditions: vec![core::NamespaceCondition {
                r#type: s("NamespaceDeletionContentFailure"),
                status: s("False"),
                last_transition_time: Some(time(10)),
                reason: s("ContentDeleted"),
                message: s("All content successfully deleted"),
            }],
        }),
    };
    check::<k8s_openapi::api::core::v1::Namespace>(
        &ns,
        json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": object_meta_json("team-a", None),
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Terminating", "conditions": [{
                "type": "NamespaceDeletionContentFailure", "status": "False",
                "lastTransitionTime": "2024-01-02T03:04:15Z", "reason": "ContentDeleted",
                "message": "All content successfully deleted"
            }]}
        }),
    );
}

#[test]
fn horizontal_pod_autoscaler_v2() {
    let pb = hpa::HorizontalPodAutoscaler {
        metadata: Some(object_meta("web", Some("prod"))),
        spec: Some(hpa::HorizontalPodAutoscalerSpec {
            scale_target_ref: Some(hpa::CrossVersionObjectReference {
                kind: s("Deployment"),
                name: s("web"),
                api_version: s("apps/v1"),
            }),
            min_replicas: Some(2),
            max_replicas: Some(10),
            metrics: vec![
                hpa::MetricSpec {
                    r#type: s("Resource"),
                    resource: Some(hpa::ResourceMetricSource {
                        name: s("cpu"),
                        target: Some(hpa::MetricTarget {
                            r#type: s("Utilization"),
                            average_utilization: Some(80),
                            ..Default::default()
                        }),
                    }),
                    ..Default::default()
                },
                hpa::MetricSpec {
                    r#type: s("Pods"),
                    pods: Some(hpa::PodsMetricSource {
                        metric: Some(hpa::MetricIdentifier {
                            name: s("requests_per_second"),
                            selector: Some(meta::LabelSelector {
                                match_labels: map(&[("verb", "GET")]),
                                ..Default::default()
                            }),
                        }),
                        target: Some(hpa::MetricTarget {
                            r#type: s("AverageValue"),
                            average_value: Some(q("1k")),
                            ..Default::default()
                        }),
                    }),
                    ..Default::default()
                },
            ],
            behavior: Some(hpa::HorizontalPodAutoscalerBehavior {
                scale_up: None,
                scale_down: Some(hpa::HpaScalingRules {
                    stabilization_window_seconds: Some(300),
                    select_policy: s("Min"),
                    policies: vec![hpa::HpaScalingPolicy {
                        r#type: s("Percent"),
                        value: Some(10),
                        period_seconds: Some(60),
                    }],
                    ..Default::default()
                }),
            }),
        }),
        status: Some(hpa::HorizontalPodAutoscalerStatus {
            observed_generation: Some(3),
            last_scale_time: Some(time(120)),
            current_replicas: Some(4),
            desired_replicas: Some(5),
            current_metrics: vec![hpa::MetricStatus {
                r#type: s("Resource"),
                resource: Some(hpa::ResourceMetricStatus {
                    name: s("cpu"),
                    current: Some(hpa::MetricValueStatus {
                        average_utilization: Some(93),
                        average_value: Some(q("372m")),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }],
            conditions: vec![hpa::HorizontalPodAutoscalerCondition {
                r#type: s("AbleToScale"),
                status: s("True"),
                last_transition_time: Some(time(60)),
                reason: s("ReadyForNewScale"),
                message: s("recommended size matches current size"),
            }],
        }),
    };
    check::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>(
        &pb,
        json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": object_meta_json("web", Some("prod")),
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                "minReplicas": 2, "maxReplicas": 10,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
                    {"type": "Pods", "pods": {
                        "metric": {"name": "requests_per_second", "selector": {"matchLabels": {"verb": "GET"}}},
                        "target": {"type": "AverageValue", "averageValue": "1k"}
                    }}
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Min",
                    "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}]}}
            },
            "status": {
                "observedGeneration": 3, "lastScaleTime": "2024-01-02T03:06:05Z",
                "currentReplicas": 4, "desiredReplicas": 5,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 93, "averageValue": "372m"}}}],
                "conditions": [{"type": "AbleToScale", "status": "True", "lastTransitionTime": "2024-01-02T03:05:05Z",
                    "reason": "ReadyForNewScale", "message": "recommended size matches current size"}]
            }
        }),
    );
}

#[test]
fn eviction_and_pod_disruption_budget() {
    let eviction = policy::Eviction {
        metadata: Some(meta::ObjectMeta {
            name: s("web-abc"),
            namespace: s("prod"),
            ..Default::default()
        }),
        delete_options: Some(meta::DeleteOptions {
            grace_period_seconds: Some(0),
            preconditions: Some(meta::Preconditions {
                uid: s("u-9"),
                resource_version: s("17"),
            }),
            propagation_policy: s("Foreground"),
            dry_run: strings(&["All"]),
            ..Default::default()
        }),
    };
    check::<k8s_openapi::api::policy::v1::Eviction>(
        &eviction,
        json!({
            "apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": "web-abc", "namespace": "prod"},
            "deleteOptions": {"gracePeriodSeconds": 0, "preconditions": {"uid": "u-9", "resourceVersion": "17"},
                "propagationPolicy": "Foreground", "dryRun": ["All"]}
        }),
    );

    let pdb = policy::PodDisruptionBudget {
        metadata: Some(object_meta("web", Some("prod"))),
        spec: Some(policy::PodDisruptionBudgetSpec {
            min_available: Some(int_or_str("50%")),
            selector: Some(selector()),
            max_unavailable: None,
            unhealthy_pod_eviction_policy: s("AlwaysAllow"),
        }),
        status: Some(policy::PodDisruptionBudgetStatus {
            observed_generation: Some(3),
            disrupted_pods: [("web-x".to_string(), time(5))].into(),
            disruptions_allowed: Some(1),
            current_healthy: Some(3),
            desired_healthy: Some(2),
            expected_pods: Some(3),
            conditions: vec![meta::Condition {
                r#type: s("DisruptionAllowed"),
                status: s("True"),
                observed_generation: Some(3),
                last_transition_time: Some(time(7)),
                reason: s("SufficientPods"),
                message: s(""),
            }],
        }),
    };
    check::<k8s_openapi::api::policy::v1::PodDisruptionBudget>(
        &pdb,
        json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": object_meta_json("web", Some("prod")),
            "spec": {"minAvailable": "50%", "selector": selector_json(), "unhealthyPodEvictionPolicy": "AlwaysAllow"},
            "status": {
                "observedGeneration": 3, "disruptedPods": {"web-x": "2024-01-02T03:04:10Z"},
                "disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3,
                "conditions": [{"type": "DisruptionAllowed", "status": "True", "observedGeneration": 3,
                    "lastTransitionTime": "2024-01-02T03:04:12Z", "reason": "SufficientPods", "message": ""}]
            }
        }),
    );
}

#[test]
fn ingress() {
    let backend = |name: &str, port: net::ServiceBackendPort| net::IngressBackend {
        service: Some(net::IngressServiceBackend {
            name: s(name),
            port: Some(port),
        }),
        resource: None,
    };
    let pb = net::Ingress {
        metadata: Some(object_meta("web", Some("prod"))),
        spec: Some(net::IngressSpec {
            ingress_class_name: s("berth"),
            default_backend: Some(backend(
                "fallback",
                net::ServiceBackendPort {
                    name: s("http"),
                    number: None,
                },
            )),
            tls: vec![net::IngressTls {
                hosts: strings(&["web.example"]),
                secret_name: s("web-tls"),
            }],
            rules: vec![net::IngressRule {
                host: s("web.example"),
                ingress_rule_value: Some(net::IngressRuleValue {
                    http: Some(net::HttpIngressRuleValue {
                        paths: vec![
                            net::HttpIngressPath {
                                path: s("/api"),
                                path_type: s("Prefix"),
                                backend: Some(backend(
                                    "api",
                                    net::ServiceBackendPort {
                                        name: None,
                                        number: Some(8080),
                                    },
                                )),
                            },
                            net::HttpIngressPath {
                                path: s("/"),
                                path_type: s("Exact"),
                                backend: Some(backend(
                                    "web",
                                    net::ServiceBackendPort {
                                        name: s("http"),
                                        number: None,
                                    },
                                )),
                            },
                        ],
                    }),
                }),
            }],
        }),
        status: Some(net::IngressStatus {
            load_balancer: Some(net::IngressLoadBalancerStatus {
                ingress: vec![net::IngressLoadBalancerIngress {
                    ip: s("192.0.2.20"),
                    ..Default::default()
                }],
            }),
        }),
    };
    check::<k8s_openapi::api::networking::v1::Ingress>(
        &pb,
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": object_meta_json("web", Some("prod")),
            "spec": {
                "ingressClassName": "berth",
                "defaultBackend": {"service": {"name": "fallback", "port": {"name": "http"}}},
                "tls": [{"hosts": ["web.example"], "secretName": "web-tls"}],
                "rules": [{"host": "web.example", "http": {"paths": [
                    {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 8080}}}},
                    {"path": "/", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {"name": "http"}}}}
                ]}}]
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.20"}]}}
        }),
    );
}

#[test]
fn role_and_role_binding() {
    let role = rbac::Role {
        metadata: Some(object_meta("pod-reader", Some("prod"))),
        rules: vec![
            rbac::PolicyRule {
                verbs: strings(&["get", "list", "watch"]),
                api_groups: strings(&["", "apps"]),
                resources: strings(&["pods", "deployments"]),
                resource_names: strings(&["web"]),
                non_resource_ur_ls: vec![],
            },
            rbac::PolicyRule {
                verbs: strings(&["create"]),
                api_groups: strings(&[""]),
                resources: strings(&["pods/exec"]),
                ..Default::default()
            },
        ],
    };
    check::<k8s_openapi::api::rbac::v1::Role>(
        &role,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": object_meta_json("pod-reader", Some("prod")),
            "rules": [
                {"verbs": ["get", "list", "watch"], "apiGroups": ["", "apps"], "resources": ["pods", "deployments"], "resourceNames": ["web"]},
                {"verbs": ["create"], "apiGroups": [""], "resources": ["pods/exec"]}
            ]
        }),
    );
    let binding = rbac::RoleBinding {
        metadata: Some(object_meta("read-pods", Some("prod"))),
        subjects: vec![
            rbac::Subject {
                kind: s("User"),
                api_group: s("rbac.authorization.k8s.io"),
                name: s("alice"),
                namespace: None,
            },
            rbac::Subject {
                kind: s("ServiceAccount"),
                api_group: s(""),
                name: s("builder"),
                namespace: s("prod"),
            },
        ],
        role_ref: Some(rbac::RoleRef {
            api_group: s("rbac.authorization.k8s.io"),
            kind: s("Role"),
            name: s("pod-reader"),
        }),
    };
    check::<k8s_openapi::api::rbac::v1::RoleBinding>(
        &binding,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": object_meta_json("read-pods", Some("prod")),
            "subjects": [
                {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
                {"kind": "ServiceAccount", "name": "builder", "namespace": "prod"}
            ],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"}
        }),
    );
}

#[test]
fn lease_micro_time() {
    let pb = coordination::Lease {
        metadata: Some(meta::ObjectMeta {
            name: s("kube-scheduler"),
            namespace: s("kube-system"),
            ..Default::default()
        }),
        spec: Some(coordination::LeaseSpec {
            holder_identity: s("node-1_7c1f"),
            lease_duration_seconds: Some(15),
            acquire_time: Some(meta::MicroTime {
                seconds: Some(T0),
                nanos: Some(123_456_789),
            }),
            renew_time: Some(meta::MicroTime {
                seconds: Some(T0 + 10),
                nanos: Some(500_000_000),
            }),
            lease_transitions: Some(2),
            ..Default::default()
        }),
    };
    check::<k8s_openapi::api::coordination::v1::Lease>(
        &pb,
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "kube-scheduler", "namespace": "kube-system"},
            "spec": {"holderIdentity": "node-1_7c1f", "leaseDurationSeconds": 15,
                "acquireTime": "2024-01-02T03:04:05.123456Z", "renewTime": "2024-01-02T03:04:15.500000Z",
                "leaseTransitions": 2}
        }),
    );
}

#[test]
fn custom_resource_definition_schema_unions() {
    let props =
        |pairs: Vec<(&str, ext::JsonSchemaProps)>| -> BTreeMap<String, ext::JsonSchemaProps> {
            pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
        };
    let string = ext::JsonSchemaProps {
        r#type: s("string"),
        ..Default::default()
    };
    let raw = |v: &str| {
        Some(ext::Json {
            raw: Some(v.as_bytes().to_vec()),
        })
    };
    let schema = ext::JsonSchemaProps {
        r#type: s("object"),
        required: strings(&["spec"]),
        properties: props(vec![(
            "spec",
            ext::JsonSchemaProps {
                r#type: s("object"),
                properties: props(vec![
                    (
                        "size",
                        ext::JsonSchemaProps {
                            r#type: s("integer"),
                            minimum: Some(1.5),
                            maximum: Some(10.5),
                            default: raw("3"),
                            ..Default::default()
                        },
                    ),
                    (
                        "mode",
                        ext::JsonSchemaProps {
                            r#type: s("string"),
                            r#enum: vec![
                                ext::Json {
                                    raw: Some(b"\"fast\"".to_vec()),
                                },
                                ext::Json {
                                    raw: Some(b"\"safe\"".to_vec()),
                                },
                            ],
                            ..Default::default()
                        },
                    ),
                    (
                        "tags",
                        ext::JsonSchemaProps {
                            r#type: s("array"),
                            items: Some(Box::new(ext::JsonSchemaPropsOrArray {
                                schema: Some(Box::new(string.clone())),
                                j_son_schemas: vec![],
                            })),
                            x_kubernetes_list_type: s("set"),
                            ..Default::default()
                        },
                    ),
                    (
                        "labels",
                        ext::JsonSchemaProps {
                            r#type: s("object"),
                            additional_properties: Some(Box::new(ext::JsonSchemaPropsOrBool {
                                allows: Some(true),
                                schema: Some(Box::new(string.clone())),
                            })),
                            ..Default::default()
                        },
                    ),
                    (
                        "extra",
                        ext::JsonSchemaProps {
                            r#type: s("object"),
                            x_kubernetes_preserve_unknown_fields: Some(true),
                            additional_properties: Some(Box::new(ext::JsonSchemaPropsOrBool {
                                allows: Some(false),
                                schema: None,
                            })),
                            ..Default::default()
                        },
                    ),
                    (
                        "port",
                        ext::JsonSchemaProps {
                            x_kubernetes_int_or_string: Some(true),
                            ..Default::default()
                        },
                    ),
                ]),
                ..Default::default()
            },
        )]),
        ..Default::default()
    };
    let pb = ext::CustomResourceDefinition {
        metadata: Some(meta::ObjectMeta {
            name: s("widgets.example.com"),
            ..Default::default()
        }),
        spec: Some(ext::CustomResourceDefinitionSpec {
            group: s("example.com"),
            names: Some(ext::CustomResourceDefinitionNames {
                plural: s("widgets"),
                singular: s("widget"),
                short_names: strings(&["wg"]),
                kind: s("Widget"),
                list_kind: s("WidgetList"),
                categories: strings(&["all"]),
            }),
            scope: s("Namespaced"),
            versions: vec![ext::CustomResourceDefinitionVersion {
                name: s("v1"),
                served: Some(true),
                storage: Some(true),
                schema: Some(ext::CustomResourceValidation {
                    open_apiv3_schema: Some(schema),
                }),
                subresources: Some(ext::CustomResourceSubresources {
                    status: Some(ext::CustomResourceSubresourceStatus {}),
                    scale: Some(ext::CustomResourceSubresourceScale {
                        spec_replicas_path: s(".spec.size"),
                        status_replicas_path: s(".status.size"),
                        label_selector_path: None,
                    }),
                }),
                additional_printer_columns: vec![ext::CustomResourceColumnDefinition {
                    name: s("Size"),
                    r#type: s("integer"),
                    json_path: s(".spec.size"),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    check::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>(
        &pb,
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "names": {"plural": "widgets", "singular": "widget", "shortNames": ["wg"], "kind": "Widget", "listKind": "WidgetList", "categories": ["all"]},
                "scope": "Namespaced",
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {
                        "type": "object", "required": ["spec"],
                        "properties": {"spec": {"type": "object", "properties": {
                            "size": {"type": "integer", "minimum": 1.5, "maximum": 10.5, "default": 3},
                            "mode": {"type": "string", "enum": ["fast", "safe"]},
                            "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "additionalProperties": false},
                            "port": {"x-kubernetes-int-or-string": true}
                        }}}
                    }},
                    "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size"}},
                    "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]
                }]
            }
        }),
    );
}
