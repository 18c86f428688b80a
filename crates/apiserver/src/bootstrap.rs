//! Objects every cluster has: the `default`, `kube-system`, `kube-public` and
//! `kube-node-lease` namespaces, and the `kubernetes` Service in `default` (the first IP of
//! the service range) with Endpoints pointing at this API server. Created through the API
//! like any client would, and left alone when they exist.

use k8s_openapi::api::core::v1::{Endpoints, Namespace, Service};
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::auth::Identity;
use crate::error::ApiError;
use crate::server::ApiServer;

fn to_api(e: kube::Error) -> ApiError {
    ApiError::internal(format!("bootstrap: {e}"))
}

async fn create_if_missing<K>(api: &Api<K>, obj: serde_json::Value) -> Result<(), ApiError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(obj).map_err(ApiError::internal)?;
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(to_api(e)),
    }
}

/// Creates the built-in objects that are missing.
pub async fn bootstrap(server: &ApiServer) -> Result<(), ApiError> {
    let client = server.client(Identity::system("apiserver"));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        create_if_missing(
            &namespaces,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await?;
    }
    let cfg = &server.state().config;
    let ip = cfg.kubernetes_service_ip().to_string();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    create_if_missing(
        &services,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": ip, "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": cfg.advertise.port()}], "sessionAffinity": "None", "type": "ClusterIP"}
        }),
    )
    .await?;
    let endpoints: Api<Endpoints> = Api::namespaced(client, "default");
    let desired = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": cfg.advertise.ip().to_string()}], "ports": [{"name": "https", "port": cfg.advertise.port(), "protocol": "TCP"}]}]
    });
    let desired_ep: Endpoints =
        serde_json::from_value(desired.clone()).map_err(ApiError::internal)?;
    match endpoints.get_opt("kubernetes").await.map_err(to_api)? {
        None => create_if_missing(&endpoints, desired).await?,
        Some(current) if current.subsets != desired_ep.subsets => {
            let mut updated = current.clone();
            updated.subsets = desired_ep.subsets;
            endpoints
                .replace("kubernetes", &PostParams::default(), &updated)
                .await
                .map_err(to_api)?;
        }
        Some(_) => {}
    }
    Ok(())
}
