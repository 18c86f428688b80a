//! Namespace lifecycle and per-namespace defaults through the real API server: deleting a
//! namespace removes its contents (and waits for finalizers, reporting them), every active
//! namespace gets a `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap, and the
//! controllers record Events.

use std::time::Duration;

use berth_testing::{TEST_CA_PEM, TestCluster, TestClusterOptions};
use berth_tests::{WAIT, create, unique, wait_for, within};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Secret, ServiceAccount};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn deleting_a_namespace_removes_its_contents_then_the_namespace() -> anyhow::Result<()> {
    within(LIMIT, async {
        let cluster = TestCluster::start(TestClusterOptions::default()).await?;
        let client = cluster.client();
        let ns = unique("nsdel");
        let namespaces: Api<Namespace> = Api::all(client.clone());
        create(&namespaces, json!({"metadata": {"name": ns}})).await?;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        for i in 0..3 {
            create(
                &cms,
                json!({"metadata": {"name": format!("cm{i}")}, "data": {"k": "v"}}),
            )
            .await?;
        }
        create(
            &secrets,
            json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}}),
        )
        .await?;
        // A neighbour namespace is untouched.
        let other = unique("nskeep");
        create(&namespaces, json!({"metadata": {"name": other}})).await?;
        let other_cms: Api<ConfigMap> = Api::namespaced(client.clone(), &other);
        create(&other_cms, json!({"metadata": {"name": "keep"}})).await?;

        namespaces.delete(&ns, &DeleteParams::default()).await?;
        wait_for("the namespace to be deleted", WAIT, || async {
            Ok(namespaces.get_opt(&ns).await?.is_none().then_some(()))
        })
        .await?;
        assert!(cms.list(&ListParams::default()).await?.items.is_empty());
        assert!(secrets.list(&ListParams::default()).await?.items.is_empty());
        assert!(other_cms.get_opt("keep").await?.is_some());
        cluster.stop().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_finalizer_in_the_namespace_holds_it_and_is_reported() -> anyhow::Result<()> {
    within(LIMIT, async {
        let cluster = TestCluster::start(TestClusterOptions::default()).await?;
        let client = cluster.client();
        let ns = unique("nshold");
        let namespaces: Api<Namespace> = Api::all(client.clone());
        create(&namespaces, json!({"metadata": {"name": ns}})).await?;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        create(
            &cms,
            json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
        )
        .await?;
        namespaces.delete(&ns, &DeleteParams::default()).await?;
        let message = wait_for(
            "the namespace to report the remaining finalizer",
            WAIT,
            || async {
                let n = namespaces.get(&ns).await?;
                let conds = n.status.and_then(|s| s.conditions).unwrap_or_default();
                Ok(conds
                    .into_iter()
                    .find(|c| c.type_ == "NamespaceFinalizersRemaining" && c.status == "True")
                    .and_then(|c| c.message))
            },
        )
        .await?;
        assert!(
            message.contains("example.com/hold in 1 resource instances"),
            "{message}"
        );
        let n = namespaces.get(&ns).await?;
        assert_eq!(
            n.status.and_then(|s| s.phase).as_deref(),
            Some("Terminating")
        );
        let remaining = n.metadata.deletion_timestamp.is_some();
        assert!(remaining);
        // Creating content in a terminating namespace is refused by the API server.
        assert!(
            create(&cms, json!({"metadata": {"name": "late"}}))
                .await
                .is_err()
        );
        cms.patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await?;
        wait_for("the namespace to be deleted", WAIT, || async {
            Ok(namespaces.get_opt(&ns).await?.is_none().then_some(()))
        })
        .await?;
        cluster.stop().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn every_namespace_gets_a_default_service_account_and_the_root_ca() -> anyhow::Result<()> {
    within(LIMIT, async {
        let cluster = TestCluster::start(TestClusterOptions::default()).await?;
        let client = cluster.client();
        // The built-in namespaces too.
        for ns in ["default", "kube-system", "kube-public"] {
            let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
            wait_for(&format!("serviceaccount {ns}/default"), WAIT, || async {
                Ok(sas.get_opt("default").await?)
            })
            .await?;
        }
        let ns = unique("nssa");
        create(
            &Api::<Namespace>::all(client.clone()),
            json!({"metadata": {"name": ns}}),
        )
        .await?;
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
        let first = wait_for("the default serviceaccount", WAIT, || async {
            Ok(sas.get_opt("default").await?)
        })
        .await?;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let ca = wait_for("kube-root-ca.crt", WAIT, || async {
            Ok(cms.get_opt("kube-root-ca.crt").await?)
        })
        .await?;
        assert_eq!(
            ca.data
                .unwrap_or_default()
                .get("ca.crt")
                .map(String::as_str),
            Some(TEST_CA_PEM)
        );
        // Deleted: recreated. Tampered with: restored.
        sas.delete("default", &DeleteParams::default()).await?;
        let second = wait_for(
            "the default serviceaccount to be recreated",
            WAIT,
            || async {
                Ok(sas
                    .get_opt("default")
                    .await?
                    .filter(|s| s.uid() != first.uid()))
            },
        )
        .await?;
        assert_ne!(second.uid(), first.uid());
        cms.patch(
            "kube-root-ca.crt",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"ca.crt": "tampered"}})),
        )
        .await?;
        wait_for("kube-root-ca.crt to be restored", WAIT, || async {
            let cm = cms.get("kube-root-ca.crt").await?;
            Ok((cm
                .data
                .unwrap_or_default()
                .get("ca.crt")
                .map(String::as_str)
                == Some(TEST_CA_PEM))
            .then_some(()))
        })
        .await?;
        // The controller recorded what it did.
        let events: Api<Event> = Api::namespaced(client.clone(), &ns);
        let ev = wait_for("an event about the service account", WAIT, || async {
            let list = events.list(&ListParams::default()).await?;
            Ok(list
                .items
                .into_iter()
                .find(|e| e.involved_object.kind.as_deref() == Some("ServiceAccount")))
        })
        .await?;
        assert_eq!(ev.reason.as_deref(), Some("Created"));
        assert_eq!(
            ev.source.and_then(|s| s.component).as_deref(),
            Some("berth-controller-manager")
        );
        assert!(ev.count.unwrap_or(0) >= 1);
        assert!(ev.first_timestamp.is_some() && ev.last_timestamp.is_some());
        cluster.stop().await;
        Ok(())
    })
    .await
}
