//! The small Kubernetes API and process helpers of `tests/model.rs`: the daemon as a child
//! process, create / merge-patch / delete of ConfigMaps and Secrets by `Kind`, and objects as the
//! model (`model_world`) sees them.
use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use e2e::daemon::Daemon;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::Value;

use crate::model_world::{Kind, Labels, Obj, Pos};

pub fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The daemon under test: `sync-daemon run` on all namespaces of the source cluster. Dropping it
/// SIGKILLs it: a crash, as far as the clusters can tell.
pub fn start_daemon(kubeconfig: &Path, log: &Path, cluster_name: &str) -> Daemon {
    Daemon::builder(kubeconfig)
        .cluster_name(cluster_name)
        .resync_period("30s")
        .metrics_addr("127.0.0.1:0")
        .env("RUST_LOG", "info,sync_daemon=debug")
        .env("NO_COLOR", "1")
        .log(log)
        .spawn()
        .expect("start sync-daemon")
}

pub fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

pub async fn create(c: &Client, kind: Kind, ns: &str, body: Value) -> Result<String, kube::Error> {
    let pp = PostParams::default();
    Ok(match kind {
        Kind::ConfigMap => Api::<ConfigMap>::namespaced(c.clone(), ns)
            .create(&pp, &serde_json::from_value(body).unwrap())
            .await?
            .resource_version(),
        Kind::Secret => Api::<Secret>::namespaced(c.clone(), ns)
            .create(&pp, &serde_json::from_value(body).unwrap())
            .await?
            .resource_version(),
    }
    .unwrap_or_default())
}

/// A JSON merge patch under field manager `manager`; returns the new resourceVersion.
pub async fn merge(
    c: &Client,
    kind: Kind,
    ns: &str,
    name: &str,
    body: Value,
    manager: &str,
) -> Result<String, kube::Error> {
    let pp = PatchParams {
        field_manager: Some(manager.into()),
        ..Default::default()
    };
    let patch = Patch::Merge(body);
    Ok(match kind {
        Kind::ConfigMap => Api::<ConfigMap>::namespaced(c.clone(), ns)
            .patch(name, &pp, &patch)
            .await?
            .resource_version(),
        Kind::Secret => Api::<Secret>::namespaced(c.clone(), ns)
            .patch(name, &pp, &patch)
            .await?
            .resource_version(),
    }
    .unwrap_or_default())
}

pub async fn delete(c: &Client, kind: Kind, ns: &str, name: &str) -> Result<(), kube::Error> {
    let dp = DeleteParams::default();
    match kind {
        Kind::ConfigMap => Api::<ConfigMap>::namespaced(c.clone(), ns)
            .delete(name, &dp)
            .await
            .map(|_| ()),
        Kind::Secret => Api::<Secret>::namespaced(c.clone(), ns)
            .delete(name, &dp)
            .await
            .map(|_| ()),
    }
}

pub fn obj_of_cm(o: ConfigMap) -> (String, String, Obj) {
    let obj = Obj {
        data: o.data.clone().unwrap_or_default(),
        secret_type: None,
        labels: o.labels().clone(),
        annotations: o.annotations().clone(),
        rv: o.resource_version().unwrap_or_default(),
    };
    (o.namespace().unwrap_or_default(), o.name_any(), obj)
}

pub fn obj_of_secret(o: Secret) -> (String, String, Obj) {
    let data = o
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    let obj = Obj {
        data,
        secret_type: Some(o.type_.clone().unwrap_or_else(|| "Opaque".into())),
        labels: o.labels().clone(),
        annotations: o.annotations().clone(),
        rv: o.resource_version().unwrap_or_default(),
    };
    (o.namespace().unwrap_or_default(), o.name_any(), obj)
}

/// Data as a merge patch / create body: Secret values base64, removed keys null.
pub fn data_json(
    kind: Kind,
    new: &BTreeMap<String, String>,
    old: &BTreeMap<String, String>,
) -> Value {
    let mut m = serde_json::Map::new();
    for k in old.keys().filter(|k| !new.contains_key(*k)) {
        m.insert(k.clone(), Value::Null);
    }
    for (k, v) in new {
        let v = if kind == Kind::Secret {
            b64(v)
        } else {
            v.clone()
        };
        m.insert(k.clone(), Value::String(v));
    }
    Value::Object(m)
}

/// The value key a hand edit changes and a look-alike carries.
pub fn value_key(kind: Kind) -> &'static str {
    match kind {
        Kind::ConfigMap => "v",
        Kind::Secret => "password",
    }
}

pub fn pos(cluster: &'static str, kind: Kind, ns: String, name: String) -> Pos {
    Pos {
        cluster,
        kind,
        ns,
        name,
    }
}

pub async fn observe_one(c: &Client, p: &Pos) -> Result<Option<Obj>, kube::Error> {
    Ok(match p.kind {
        Kind::ConfigMap => Api::<ConfigMap>::namespaced(c.clone(), &p.ns)
            .get_opt(&p.name)
            .await?
            .map(|o| obj_of_cm(o).2),
        Kind::Secret => Api::<Secret>::namespaced(c.clone(), &p.ns)
            .get_opt(&p.name)
            .await?
            .map(|o| obj_of_secret(o).2),
    })
}

pub fn set_opt(map: &mut Labels, key: &str, value: Option<String>) {
    match value {
        Some(v) => map.insert(key.to_string(), v),
        None => map.remove(key),
    };
}

/// Creates namespace `name` (one that exists already is a failure).
pub async fn create_ns(c: &Client, name: &str, labels: &Labels) {
    let labels: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if let Err(e) = e2e::k8s::create_ns(c, name, &labels).await {
        panic!("{}", e2e::error_chain(&e));
    }
}
