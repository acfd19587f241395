//! ConfigMap and Secret behind one trait, so reconcile has a single generic path: each kind
//! converts to the planner's [`ObjectView`] and builds the object to apply from one.
use crate::desired::{Kind, ObjectView, Payload};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};
use kube::Resource;
use serde::{Serialize, de::DeserializeOwned};
use std::collections::BTreeSet;
use std::fmt::Debug;

/// The field manager of every write; server-side apply ownership is tracked under this name.
pub const FIELD_MANAGER: &str = "kubed-cross-sync";

pub trait Syncable:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    const KIND: Kind;
    fn payload(&self) -> Payload;
    fn build(meta: ObjectMeta, payload: &Payload) -> Self;
}

impl Syncable for ConfigMap {
    const KIND: Kind = Kind::ConfigMap;
    fn payload(&self) -> Payload {
        Payload::ConfigMap {
            data: self.data.clone().unwrap_or_default(),
            binary_data: self.binary_data.clone().unwrap_or_default(),
            immutable: self.immutable.unwrap_or(false),
        }
    }
    fn build(metadata: ObjectMeta, payload: &Payload) -> Self {
        match payload {
            Payload::ConfigMap {
                data,
                binary_data,
                immutable,
            } => ConfigMap {
                metadata,
                data: Some(data.clone()),
                binary_data: Some(binary_data.clone()),
                immutable: immutable.then_some(true),
            },
            Payload::Secret { .. } => ConfigMap {
                metadata,
                ..Default::default()
            },
        }
    }
}

impl Syncable for Secret {
    const KIND: Kind = Kind::Secret;
    fn payload(&self) -> Payload {
        Payload::Secret {
            type_: self.type_.clone().unwrap_or_else(|| "Opaque".to_string()),
            data: self.data.clone().unwrap_or_default(),
            immutable: self.immutable.unwrap_or(false),
        }
    }
    fn build(metadata: ObjectMeta, payload: &Payload) -> Self {
        match payload {
            Payload::Secret {
                type_,
                data,
                immutable,
            } => Secret {
                metadata,
                type_: Some(type_.clone()),
                data: Some(data.clone()),
                immutable: immutable.then_some(true),
                string_data: None,
            },
            Payload::ConfigMap { .. } => Secret {
                metadata,
                ..Default::default()
            },
        }
    }
}

/// The planner's view of a live object.
pub fn view<K: Syncable>(obj: &K) -> ObjectView {
    let m = obj.meta();
    let (our_labels, our_annotations) =
        our_metadata_keys(m.managed_fields.as_deref().unwrap_or(&[]));
    ObjectView {
        name: m.name.clone().unwrap_or_default(),
        namespace: m.namespace.clone().unwrap_or_default(),
        uid: m.uid.clone(),
        resource_version: m.resource_version.clone(),
        labels: m.labels.clone().unwrap_or_default(),
        annotations: m.annotations.clone().unwrap_or_default(),
        payload: obj.payload(),
        our_labels,
        our_annotations,
        deleting: m.deletion_timestamp.is_some(),
    }
}

/// The object to apply for a desired copy: only name, namespace, labels, annotations and payload,
/// so nothing server-set (uid, ownerReferences, finalizers, …) can ever be carried over.
pub fn build<K: Syncable>(desired: &ObjectView) -> K {
    let meta = ObjectMeta {
        name: Some(desired.name.clone()),
        namespace: Some(desired.namespace.clone()),
        labels: Some(desired.labels.clone()),
        annotations: Some(desired.annotations.clone()),
        ..Default::default()
    };
    K::build(meta, &desired.payload)
}

/// Label and annotation keys our field manager owns through server-side apply, read from
/// `managedFields` (`f:metadata` → `f:labels` / `f:annotations` → `f:<key>`).
pub fn our_metadata_keys(entries: &[ManagedFieldsEntry]) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut labels = BTreeSet::new();
    let mut annotations = BTreeSet::new();
    for e in entries {
        if e.manager.as_deref() != Some(FIELD_MANAGER) || e.operation.as_deref() != Some("Apply") {
            continue;
        }
        let Some(fields) = e.fields_v1.as_ref() else {
            continue;
        };
        let meta = &fields.0["f:metadata"];
        for (section, out) in [
            ("f:labels", &mut labels),
            ("f:annotations", &mut annotations),
        ] {
            if let Some(m) = meta[section].as_object() {
                out.extend(
                    m.keys()
                        .filter_map(|k| k.strip_prefix("f:"))
                        .map(String::from),
                );
            }
        }
    }
    (labels, annotations)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;

    #[test]
    fn reads_our_keys_from_managed_fields() {
        let entry = |manager: &str, op: &str| ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(op.into()),
            fields_v1: Some(FieldsV1(serde_json::json!({
                "f:metadata": {"f:labels": {"f:a": {}, ".": {}}, "f:annotations": {"f:b": {}}},
                "f:data": {"f:k": {}}
            }))),
            ..Default::default()
        };
        let (l, a) = our_metadata_keys(&[
            entry(FIELD_MANAGER, "Apply"),
            entry("kubectl-edit", "Update"),
            entry(FIELD_MANAGER, "Update"),
        ]);
        assert_eq!(l, BTreeSet::from(["a".to_string()]));
        assert_eq!(a, BTreeSet::from(["b".to_string()]));
        assert_eq!(our_metadata_keys(&[]), (BTreeSet::new(), BTreeSet::new()));
    }

    #[test]
    fn build_carries_nothing_server_set() {
        let mut src = ConfigMap::default();
        src.metadata.name = Some("a".into());
        src.metadata.namespace = Some("ns".into());
        src.metadata.uid = Some("u".into());
        src.metadata.finalizers = Some(vec!["x".into()]);
        src.immutable = Some(false);
        let v = view(&src);
        let out: ConfigMap = build(&v);
        assert_eq!(out.metadata.uid, None);
        assert_eq!(out.metadata.finalizers, None);
        assert_eq!(out.metadata.owner_references, None);
        assert_eq!(out.immutable, None);
        let s = Secret::default();
        assert_eq!(
            view(&s).payload,
            Payload::Secret {
                type_: "Opaque".into(),
                data: Default::default(),
                immutable: false
            }
        );
    }
}
