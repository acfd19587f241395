//! Namespaced objects (ConfigMaps, Secrets, Events): create, merge-patch as a person would,
//! delete, get, and bulk creates with bounded concurrency.
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::api_err;
use crate::error::TestbedError;

/// A namespaced object kind the helpers handle (ConfigMap, Secret, Event, Lease, ...).
pub trait Namespaced:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + Serialize
    + DeserializeOwned
{
}

impl<K> Namespaced for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + Serialize
        + DeserializeOwned
{
}

/// "ConfigMap ns/name", for errors.
fn object<K: Namespaced>(ns: &str, name: &str) -> String {
    format!("{} {ns}/{name}", K::kind(&()))
}

pub async fn create<K: Namespaced>(client: &Client, ns: &str, obj: &K) -> Result<K, TestbedError> {
    Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), obj)
        .await
        .map_err(api_err("create", object::<K>(ns, &obj.name_any())))
}

/// A merge patch as a person would make it (field manager `e2e-hand`).
pub async fn merge<K: Namespaced>(
    client: &Client,
    ns: &str,
    name: &str,
    patch: Value,
) -> Result<K, TestbedError> {
    let pp = PatchParams {
        field_manager: Some("e2e-hand".into()),
        ..Default::default()
    };
    Api::<K>::namespaced(client.clone(), ns)
        .patch(name, &pp, &Patch::Merge(patch))
        .await
        .map_err(api_err("patch", object::<K>(ns, name)))
}

/// Deletes the object; one that is not there is fine.
pub async fn delete<K: Namespaced>(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<(), TestbedError> {
    match Api::<K>::namespaced(client.clone(), ns)
        .delete(name, &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(api_err("delete", object::<K>(ns, name))(e)),
    }
}

pub async fn get<K: Namespaced>(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Option<K>, TestbedError> {
    Api::<K>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(api_err("get", object::<K>(ns, name)))
}

/// Creates every ConfigMap (each in its own namespace) with at most `concurrency` requests in
/// flight; returns the wall time.
pub async fn create_all(
    client: &Client,
    objects: Vec<ConfigMap>,
    concurrency: usize,
) -> Result<Duration, TestbedError> {
    let start = Instant::now();
    stream::iter(objects)
        .map(|cm| {
            let client = client.clone();
            async move {
                let ns = cm.metadata.namespace.clone().unwrap_or_default();
                create(&client, &ns, &cm).await.map(|_| ())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(start.elapsed())
}
