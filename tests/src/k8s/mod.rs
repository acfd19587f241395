//! The Kubernetes side of the tests and the bench: the sync annotations and origin labels, object
//! builders, namespaces, objects, the copies of a source, Events and watches. Plain calls return
//! errors naming the object; the `wait_*` calls are test-only API and panic at their deadline.
use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::Client;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::error::TestbedError;

mod copies;
mod objects;
mod watch;

pub use copies::{copies, copy_values, events, wait_copies, wait_event};
pub use objects::{Namespaced, create, create_all, delete, get, merge};
pub use watch::{CopyCount, Seen, WatchTask, watch_configmaps, watch_value};

pub const SYNC: &str = "kubed.appscode.com/sync";
pub const SYNC_CONTEXTS: &str = "kubed.appscode.com/sync-contexts";
pub const ORIGIN: &str = "kubed.appscode.com/origin";
pub const ORIGIN_NAME: &str = "kubed.appscode.com/origin.name";
pub const ORIGIN_NAMESPACE: &str = "kubed.appscode.com/origin.namespace";
pub const ORIGIN_CLUSTER: &str = "kubed.appscode.com/origin.cluster";

/// How long the waits give the daemon: generous for a loaded 2-core machine; the daemon itself
/// reacts within a second.
pub const SOON: Duration = Duration::from_secs(30);

/// Key/value pairs as a label (or annotation, or data) map.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn configmap(
    name: &str,
    annotations: &[(&str, &str)],
    l: &[(&str, &str)],
    data: &[(&str, &str)],
) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels(l)),
            annotations: Some(labels(annotations)),
            ..Default::default()
        },
        data: Some(labels(data)),
        ..Default::default()
    }
}

pub fn secret(
    name: &str,
    type_: &str,
    annotations: &[(&str, &str)],
    data: &[(&str, &[u8])],
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            annotations: Some(labels(annotations)),
            ..Default::default()
        },
        type_: Some(type_.to_string()),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

/// A source as the bench and the load and fault suites make them: one ~1 KiB value `v`, and
/// `contexts` (if any) as its sync-contexts annotation.
pub fn load_configmap(ns: &str, name: &str, contexts: &[String], value: &str) -> ConfigMap {
    let mut annotations = BTreeMap::new();
    if !contexts.is_empty() {
        annotations.insert(SYNC_CONTEXTS.to_string(), contexts.join(","));
    }
    let pad = "x".repeat(1024usize.saturating_sub(value.len()));
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(ns.to_string()),
            annotations: Some(annotations),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            ("v".to_string(), value.to_string()),
            ("pad".to_string(), pad),
        ])),
        ..Default::default()
    }
}

/// A Secret source `name` to `contexts` whose `password` is `prefix`, a dash and 24 random hex
/// digits: a value distinctive enough to look for in the daemon's logs, where it must never be.
/// Returns the Secret and the value.
pub fn password_secret(name: &str, contexts: &[String], prefix: &str) -> (Secret, String) {
    let value = format!("{prefix}-{}", crate::random_hex(12));
    let contexts = contexts.join(",");
    let s = secret(
        name,
        "Opaque",
        &[(SYNC_CONTEXTS, &contexts)],
        &[("password", value.as_bytes())],
    );
    (s, value)
}

fn api_err(action: &'static str, object: String) -> impl FnOnce(kube::Error) -> TestbedError {
    move |source| TestbedError::Api {
        action,
        object,
        source,
    }
}

/// Creates namespace `name` with `labels`; one that exists already is an error.
pub async fn create_ns(
    client: &Client,
    name: &str,
    labels: &[(&str, &str)],
) -> Result<(), TestbedError> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(self::labels(labels)),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .map(|_| ())
        .map_err(api_err("create", format!("namespace {name}")))
}

/// `create_ns`, where a namespace that exists already is fine (its labels are left as they are).
pub async fn ensure_ns(
    client: &Client,
    name: &str,
    labels: &[(&str, &str)],
) -> Result<(), TestbedError> {
    match create_ns(client, name, labels).await {
        Err(TestbedError::Api {
            source: kube::Error::Api(s),
            ..
        }) if s.code == 409 => Ok(()),
        other => other,
    }
}

/// Sets (or with `None` removes) one namespace label.
pub async fn label_ns(
    client: &Client,
    name: &str,
    key: &str,
    value: Option<&str>,
) -> Result<(), TestbedError> {
    Api::<Namespace>::all(client.clone())
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {key: value}}})),
        )
        .await
        .map(|_| ())
        .map_err(api_err("label", format!("namespace {name}")))
}

/// Deletes namespace `name`, best effort (cleanup: whatever is left goes with the testbed).
pub async fn delete_ns(client: &Client, name: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn builders_match_the_json_the_tests_used_to_write() {
        let cm = configmap("c", &[(SYNC, "")], &[("app", "x")], &[("k", "v")]);
        let want: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "c", "labels": {"app": "x"}, "annotations": {SYNC: ""}},
            "data": {"k": "v"},
        }))
        .unwrap();
        assert_eq!(cm, want);
        let s = secret("s", "kubernetes.io/tls", &[], &[("tls.crt", b"C")]);
        let v: Value = serde_json::to_value(&s).unwrap();
        assert_eq!(v["data"]["tls.crt"], "Qw==");
        assert_eq!(v["type"], "kubernetes.io/tls");
    }

    #[test]
    fn load_sources_weigh_a_kibibyte_and_name_their_followers() {
        let cm = load_configmap("n", "s", &["a".into(), "b".into()], "v1");
        let data = cm.data.unwrap();
        assert_eq!(data["v"].len() + data["pad"].len(), 1024);
        assert_eq!(cm.metadata.annotations.unwrap()[SYNC_CONTEXTS], "a,b");
        let plain = load_configmap("n", "p", &[], "v1");
        assert!(plain.metadata.annotations.unwrap().is_empty());
        let (s, value) = password_secret("creds", &["a".into(), "b".into()], "t");
        assert!(
            value.starts_with("t-") && value.len() == "t-".len() + 24,
            "{value}"
        );
        assert_eq!(s.data.unwrap()["password"].0, value.as_bytes());
        assert_eq!(s.metadata.annotations.unwrap()[SYNC_CONTEXTS], "a,b");
    }
}
