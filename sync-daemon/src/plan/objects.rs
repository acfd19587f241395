//! ConfigMap and Secret behind one trait, so reconcile has a single generic path: each kind
//! converts to the planner's [`ObjectView`] and builds the object to apply from one.
use crate::plan::kinds::{Kind, NamespaceView, ObjectView, Payload};
use crate::plan::summary::{CopyMeta, CopySummary, OwnedKeys, Ownership, summarize};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
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
    /// A Secret's type (`Opaque` when unset); `None` for a ConfigMap. Without copying the payload.
    fn secret_type(&self) -> Option<&str>;
    /// Drops data, binaryData / data (what a cached non-source never needs).
    fn clear_payload(&mut self);
    fn build(meta: ObjectMeta, payload: &Payload) -> Self;
}

impl Syncable for ConfigMap {
    const KIND: Kind = Kind::ConfigMap;
    fn secret_type(&self) -> Option<&str> {
        None
    }
    fn clear_payload(&mut self) {
        self.data = None;
        self.binary_data = None;
    }
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
    fn secret_type(&self) -> Option<&str> {
        Some(self.type_.as_deref().unwrap_or("Opaque"))
    }
    fn clear_payload(&mut self) {
        self.data = None;
        self.string_data = None;
    }
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

/// The planner's view of a namespace: its labels, and whether it is going away (a deletion
/// timestamp, or the Terminating phase), in which case it gets no new copies.
pub fn namespace_view(n: &Namespace) -> NamespaceView {
    NamespaceView {
        name: n.metadata.name.clone().unwrap_or_default(),
        labels: n.metadata.labels.clone().unwrap_or_default(),
        terminating: n.metadata.deletion_timestamp.is_some()
            || n.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating"),
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
    let mut ours = OwnedKeys::default();
    for e in entries.iter().filter(|e| is_ours(e)) {
        collect(e, &mut ours);
    }
    (ours.labels, ours.annotations)
}

/// Keys that only the Update entry of our field manager owns (a copy created by POST, whose
/// fields no later apply of ours took over): server-side apply cannot remove them, so the
/// writer does when the desired copy omits them.
pub fn post_owned_keys(entries: &[ManagedFieldsEntry]) -> OwnedKeys {
    let (mut posted, mut others) = (OwnedKeys::default(), OwnedKeys::default());
    for e in entries {
        let update = e.operation.as_deref() == Some("Update");
        match (e.manager.as_deref() == Some(FIELD_MANAGER), update) {
            (true, true) => collect(e, &mut posted),
            (true, false) => {}
            (false, _) => collect(e, &mut others),
        }
    }
    posted.without(&others)
}

/// What a stored copy has that the desired one omits and only our POST owned, as
/// `(section, key)` for a removal patch (sections `labels`, `annotations`, `data`, `binaryData`).
pub fn post_leftovers<K: Syncable>(
    stored: &K,
    desired: &ObjectView,
) -> Vec<(&'static str, String)> {
    let m = stored.meta();
    let owned = post_owned_keys(m.managed_fields.as_deref().unwrap_or(&[]));
    if owned == OwnedKeys::default() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let meta = [
        ("labels", &m.labels, &desired.labels, &owned.labels),
        (
            "annotations",
            &m.annotations,
            &desired.annotations,
            &owned.annotations,
        ),
    ];
    for (section, have, want, ours) in meta {
        for k in have.iter().flat_map(|h| h.keys()) {
            if ours.contains(k) && !want.contains_key(k) {
                out.push((section, k.clone()));
            }
        }
    }
    let payload = stored.payload().extra_keys(&desired.payload);
    out.extend(
        payload
            .into_iter()
            .filter(|(_, k)| owned.payload.contains(k)),
    );
    out
}

/// Trims an object for the source caches: managedFields and kubectl's last-applied copy are
/// never needed, and an object without sync annotations needs no payload (when one is added,
/// the watch delivers the object again, whole). Keeps memory proportional to the sources.
pub fn trim_source<K: Syncable>(obj: &mut K) {
    let m = obj.meta_mut();
    m.managed_fields = None;
    // Nor are these, which the apiserver sets and no copy or Event carries.
    m.creation_timestamp = None;
    m.generate_name = None;
    if let Some(a) = m.annotations.as_mut() {
        a.remove(crate::plan::annotations::LAST_APPLIED);
    }
    let source = m
        .annotations
        .as_ref()
        .is_some_and(crate::plan::annotations::has_sync_keys);
    if !source {
        obj.clear_payload();
    }
}

/// The summary the copy caches keep instead of the object: from its metadata alone (a watch of
/// copies carries nothing else), so a written object and its watch event summarise alike.
pub fn summary(m: &ObjectMeta) -> CopySummary {
    let empty = std::collections::BTreeMap::new();
    let meta = CopyMeta {
        name: m.name.as_deref().unwrap_or_default(),
        namespace: m.namespace.as_deref().unwrap_or_default(),
        uid: m.uid.as_deref(),
        resource_version: m.resource_version.as_deref(),
        deleting: m.deletion_timestamp.is_some(),
        labels: m.labels.as_ref().unwrap_or(&empty),
        annotations: m.annotations.as_ref().unwrap_or(&empty),
    };
    summarize(meta, &ownership(m.managed_fields.as_deref().unwrap_or(&[])))
}

/// Who owns what, from managedFields: the keys ours alone own, whether another manager owns
/// anything outside `metadata`, and whether ours set `immutable`.
pub fn ownership(entries: &[ManagedFieldsEntry]) -> Ownership {
    let (mut ours, mut others) = (OwnedKeys::default(), OwnedKeys::default());
    let (mut foreign_payload, mut immutable) = (false, false);
    for e in entries {
        let top = e.fields_v1.as_ref().and_then(|f| f.0.as_object());
        let fields = top.into_iter().flat_map(|m| m.keys());
        if is_ours(e) {
            collect(e, &mut ours);
            immutable |= fields.clone().any(|k| k == "f:immutable");
        } else {
            collect(e, &mut others);
            foreign_payload |= fields.clone().any(|k| k != "f:metadata" && k != ".");
        }
    }
    Ownership {
        ours: ours.without(&others),
        foreign_payload,
        immutable,
    }
}

/// An entry of our field manager: its Apply entry, or the Update entry a create by POST leaves
/// (it owns every field of the new copy until the first update moves them to the Apply entry,
/// see `controller/writer.rs`). Either way the keys are ours.
fn is_ours(e: &ManagedFieldsEntry) -> bool {
    e.manager.as_deref() == Some(FIELD_MANAGER)
        && matches!(e.operation.as_deref(), Some("Apply" | "Update"))
}

fn collect(e: &ManagedFieldsEntry, out: &mut OwnedKeys) {
    let Some(fields) = e.fields_v1.as_ref() else {
        return;
    };
    let keys = |v: &serde_json::Value, out: &mut BTreeSet<String>| {
        if let Some(m) = v.as_object() {
            out.extend(
                m.keys()
                    .filter_map(|k| k.strip_prefix("f:"))
                    .map(String::from),
            );
        }
    };
    let meta = &fields.0["f:metadata"];
    keys(&meta["f:labels"], &mut out.labels);
    keys(&meta["f:annotations"], &mut out.annotations);
    keys(&fields.0["f:data"], &mut out.payload);
    keys(&fields.0["f:binaryData"], &mut out.payload);
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
    fn trimmed_sources_keep_what_planning_reads() {
        let mut cm = ConfigMap::default();
        cm.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
        cm.metadata.creation_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()),
        );
        cm.metadata.annotations = Some(
            [
                (
                    crate::plan::annotations::LAST_APPLIED.to_string(),
                    "{}".to_string(),
                ),
                (crate::plan::annotations::SYNC.to_string(), String::new()),
            ]
            .into(),
        );
        cm.data = Some([("k".to_string(), "v".to_string())].into());
        let mut plain = cm.clone();
        plain.metadata.annotations = None;
        trim_source(&mut cm);
        trim_source(&mut plain);
        assert_eq!(cm.metadata.managed_fields, None);
        assert_eq!(cm.metadata.creation_timestamp, None);
        assert_eq!(cm.metadata.annotations.as_ref().map(|a| a.len()), Some(1));
        assert!(cm.data.is_some(), "a source keeps its payload");
        assert!(plain.data.is_none(), "a non-source drops it");
    }

    fn entry(manager: &str, op: &str, fields: serde_json::Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(op.into()),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        }
    }

    #[test]
    fn owned_keys_exclude_what_another_manager_shares() {
        let ours = entry(
            FIELD_MANAGER,
            "Apply",
            serde_json::json!({
                "f:metadata": {"f:labels": {"f:a": {}, "f:b": {}}, "f:annotations": {"f:n": {}}},
                "f:data": {"f:k": {}, "f:v": {}}, "f:binaryData": {"f:bin": {}}
            }),
        );
        let theirs = entry(
            "kubectl-edit",
            "Update",
            serde_json::json!({"f:metadata": {"f:labels": {"f:b": {}}}, "f:data": {"f:v": {}}}),
        );
        let own = ownership(&[ours.clone(), theirs.clone()]);
        assert!(own.foreign_payload, "kubectl-edit owns data.v");
        assert!(!own.immutable);
        let k = own.ours;
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        // Another manager's labels alone leave the payload trusted; ours setting `immutable`
        // is seen.
        let labels_only = entry(
            "kubectl-label",
            "Update",
            serde_json::json!({"f:metadata": {"f:labels": {"f:x": {}}}}),
        );
        let sealed = entry(
            FIELD_MANAGER,
            "Apply",
            serde_json::json!({"f:immutable": {}}),
        );
        let own = ownership(&[ours, labels_only, sealed]);
        assert!(!own.foreign_payload && own.immutable);
        assert_eq!(k.labels, set(&["a"]));
        assert_eq!(k.annotations, set(&["n"]));
        assert_eq!(k.payload, set(&["bin", "k"]));
        assert_eq!(ownership(&[]).ours, OwnedKeys::default());
        // A copy made by POST: our Update entry owns its keys.
        let created = entry(
            FIELD_MANAGER,
            "Update",
            serde_json::json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:data": {"f:k": {}}}),
        );
        let k = ownership(std::slice::from_ref(&created)).ours;
        assert_eq!((k.labels, k.payload), (set(&["a"]), set(&["k"])));
        let their_update = ManagedFieldsEntry {
            manager: Some("other".into()),
            ..created
        };
        assert_eq!(ownership(&[their_update]).ours, OwnedKeys::default());
    }

    #[test]
    fn leftovers_are_what_only_our_post_owned_and_the_copy_no_longer_wants() {
        let mut stored = ConfigMap::default();
        stored.metadata.labels = Some(
            [("keep", "1"), ("gone", "1"), ("shared", "1")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
        );
        stored.data = Some(
            [("k", "v"), ("dropped", "x")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
        );
        stored.metadata.managed_fields = Some(vec![
            entry(
                FIELD_MANAGER,
                "Update",
                serde_json::json!({
                    "f:metadata": {"f:labels": {"f:keep": {}, "f:gone": {}, "f:shared": {}}},
                    "f:data": {"f:k": {}, "f:dropped": {}}
                }),
            ),
            entry(
                FIELD_MANAGER,
                "Apply",
                serde_json::json!({"f:data": {"f:k": {}}}),
            ),
            entry(
                "someone",
                "Update",
                serde_json::json!({"f:metadata": {"f:labels": {"f:shared": {}}}}),
            ),
        ]);
        let mut desired = view(&stored);
        desired.labels.retain(|k, _| k == "keep");
        if let Payload::ConfigMap { data, .. } = &mut desired.payload {
            data.retain(|k, _| k == "k");
        }
        let left = post_leftovers(&stored, &desired);
        assert_eq!(
            left,
            vec![
                ("labels", "gone".to_string()),
                ("data", "dropped".to_string())
            ],
            "a key another manager shares stays"
        );
        // A copy made by apply has no leftovers.
        stored.metadata.managed_fields = None;
        assert!(post_leftovers(&stored, &desired).is_empty());
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
