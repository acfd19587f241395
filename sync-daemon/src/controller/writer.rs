//! Every write the daemon makes goes through [`Writer`], so a dry-run (log, don't write) can
//! replace it without touching the reconcile logic.
//!
//! Write strategy: a new copy is created with POST (one request, and the API server refuses it
//! with 409 when anything by that name is there, so nothing unmanaged is ever merged into);
//! every later write is a server-side apply with the fixed field manager `kubed-cross-sync`,
//! forced only on objects that pass the ownership test (or with --adopt-existing). Apply owns
//! exactly the fields we set: labels/annotations other managers added on the target (a
//! follower's own `kubed.appscode.com/sync`) survive, a hand edit of a field we set is taken back
//! by the forced apply, and a label we stop setting is removed. Hand-added data keys are not
//! ours, so apply would keep them: those are removed with a merge patch (`null`).
//!
//! A POST records our manager as the owner of every field through an *Update* entry, which a
//! later apply cannot remove fields from (to server-side apply it is another manager). So after
//! each apply, what that entry alone owns and the desired copy omits (a label or key the source
//! dropped since the copy was made) is removed with the same merge patch as hand-added keys: an
//! extra write only when something must go, never a managedFields rewrite.
use crate::plan::annotations as ann;
use crate::plan::objects::{FIELD_MANAGER, Syncable};
use crate::plan::policy;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, Copy, Default)]
pub struct Writer {
    /// Log what would be written and write nothing.
    pub dry_run: bool,
}

impl Writer {
    /// Server-side apply of `obj`; the object as the API server stored it (`None` in dry-run).
    pub async fn apply<K: Syncable>(
        &self,
        api: &Api<K>,
        obj: &K,
        force: bool,
    ) -> Result<Option<K>, kube::Error> {
        let name = kube::ResourceExt::name_any(obj);
        if self.dry_run {
            tracing::info!(kind = K::KIND.as_str(), namespace = api.namespace().unwrap_or_default(), name = %name, force, "dry run: would apply");
            return Ok(None);
        }
        let mut pp = PatchParams::apply(FIELD_MANAGER);
        pp.force = force;
        api.patch(&name, &pp, &Patch::Apply(obj)).await.map(Some)
    }

    /// Creates `obj` (POST). A 409 means something by that name is there already; the caller
    /// reads it and decides (never merged into, as a non-forced apply would).
    pub async fn create<K: Syncable>(
        &self,
        api: &Api<K>,
        obj: &K,
    ) -> Result<Option<K>, kube::Error> {
        if self.dry_run {
            let name = kube::ResourceExt::name_any(obj);
            tracing::info!(kind = K::KIND.as_str(), namespace = api.namespace().unwrap_or_default(), name = %name, "dry run: would create");
            return Ok(None);
        }
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        api.create(&pp, obj).await.map(Some)
    }

    /// Removes keys (merge patch with `null` values; the object as stored, `None` in dry-run): `data`/`binaryData` keys someone else
    /// added, and `labels`/`annotations`/payload keys only a POST of ours owned. With
    /// `uid`, the patch carries it: on any other object by that name the API server refuses it
    /// (uid is immutable), so it never lands on an object made in place of ours.
    pub async fn remove_keys<K: Syncable>(
        &self,
        api: &Api<K>,
        name: &str,
        uid: Option<&str>,
        keys: &[(&'static str, String)],
    ) -> Result<Option<K>, kube::Error> {
        if self.dry_run {
            tracing::info!(kind = K::KIND.as_str(), namespace = api.namespace().unwrap_or_default(), name = %name, keys = keys.len(), "dry run: would remove keys");
            return Ok(None);
        }
        let body = removal_patch(uid, keys);
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        api.patch(name, &pp, &Patch::Merge(body)).await.map(Some)
    }

    /// Deletes `name` if its uid is still `uid` (so a re-created unrelated object is never hit).
    /// `Ok(true)`: gone now; `Ok(false)`: deletion pending (finalizers).
    pub async fn delete<K: Syncable>(
        &self,
        api: &Api<K>,
        name: &str,
        uid: Option<&str>,
    ) -> Result<bool, kube::Error> {
        if self.dry_run {
            tracing::info!(kind = K::KIND.as_str(), namespace = api.namespace().unwrap_or_default(), name = %name, "dry run: would delete");
            return Ok(true);
        }
        let dp = DeleteParams {
            preconditions: uid.map(|u| Preconditions {
                uid: Some(u.to_string()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &dp).await {
            Ok(either) => Ok(either.is_right()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Releases our copy `name` (if its uid is still `uid`): removes our origin labels, origin
    /// and retention annotations, and our field manager's entry from managedFields, so the
    /// object stays with its data and nothing of ours touches it again. One GET (for the live
    /// managedFields and resourceVersion, which guards the patch) and one merge patch. Gone
    /// already: nothing to do.
    pub async fn release<K: Syncable>(
        &self,
        api: &Api<K>,
        name: &str,
        uid: Option<&str>,
    ) -> Result<(), kube::Error> {
        if self.dry_run {
            tracing::info!(kind = K::KIND.as_str(), namespace = api.namespace().unwrap_or_default(), name = %name, "dry run: would release");
            return Ok(());
        }
        let Some(live) = api.get_opt(name).await? else {
            return Ok(());
        };
        let m = live.meta();
        let body = release_patch(
            m.managed_fields.as_deref().unwrap_or(&[]),
            uid.or(m.uid.as_deref()),
            m.resource_version.as_deref(),
        );
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        api.patch(name, &pp, &Patch::Merge(body)).await.map(|_| ())
    }

    pub async fn create_namespace(
        &self,
        api: &Api<Namespace>,
        name: &str,
    ) -> Result<(), kube::Error> {
        if self.dry_run {
            tracing::info!(namespace = %name, "dry run: would create namespace");
            return Ok(());
        }
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))
            .map_err(kube::Error::SerdeError)?;
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        match api.create(&pp, &ns).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The merge patch that removes `keys` (`labels` and `annotations` under `metadata`, payload
/// sections at the top), carrying `uid` as a precondition.
fn removal_patch(uid: Option<&str>, keys: &[(&'static str, String)]) -> Value {
    let mut body = Map::new();
    let mut meta = Map::new();
    if let Some(uid) = uid {
        meta.insert("uid".into(), uid.into());
    }
    for (field, key) in keys {
        let parent = match *field {
            "labels" | "annotations" => &mut meta,
            _ => &mut body,
        };
        let section = (parent.entry(*field)).or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = section {
            m.insert(key.clone(), Value::Null);
        }
    }
    if !meta.is_empty() {
        body.insert("metadata".into(), Value::Object(meta));
    }
    Value::Object(body)
}

/// The merge patch that releases a copy: `null` for our markers, the managedFields without our
/// entries (Apply, and the Update entry of a copy never updated since its POST) (a list holding one empty entry when nothing else is left: the API server ignores
/// an empty list), and uid + resourceVersion as preconditions.
fn release_patch(
    managed: &[ManagedFieldsEntry],
    uid: Option<&str>,
    resource_version: Option<&str>,
) -> Value {
    let others: Vec<&ManagedFieldsEntry> = managed
        .iter()
        .filter(|e| e.manager.as_deref() != Some(FIELD_MANAGER))
        .collect();
    let managed_fields = match others.is_empty() {
        true => json!([{}]),
        false => json!(others),
    };
    let null_labels: Map<String, Value> =
        [ann::ORIGIN_NAME, ann::ORIGIN_NAMESPACE, ann::ORIGIN_CLUSTER]
            .iter()
            .map(|k| (k.to_string(), Value::Null))
            .collect();
    let null_annotations: Map<String, Value> = [ann::ORIGIN, policy::ON_DELETE]
        .iter()
        .map(|k| (k.to_string(), Value::Null))
        .collect();
    let mut meta = Map::new();
    if let Some(u) = uid {
        meta.insert("uid".into(), u.into());
    }
    if let Some(rv) = resource_version {
        meta.insert("resourceVersion".into(), rv.into());
    }
    meta.insert("labels".into(), Value::Object(null_labels));
    meta.insert("annotations".into(), Value::Object(null_annotations));
    meta.insert("managedFields".into(), managed_fields);
    json!({ "metadata": meta })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn entry(manager: &str, op: &str) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(op.into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_removal_patch_puts_metadata_keys_under_metadata() {
        let keys = [
            ("labels", "gone".to_string()),
            ("annotations", "note".to_string()),
            ("data", "k".to_string()),
            ("binaryData", "b".to_string()),
        ];
        assert_eq!(
            removal_patch(Some("u-1"), &keys),
            json!({
                "metadata": {"uid": "u-1", "labels": {"gone": null}, "annotations": {"note": null}},
                "data": {"k": null},
                "binaryData": {"b": null},
            })
        );
        assert_eq!(
            removal_patch(None, &keys[2..3]),
            json!({"data": {"k": null}})
        );
    }

    #[test]
    fn a_release_drops_our_markers_and_our_entries_only() {
        let p = release_patch(
            &[
                entry(FIELD_MANAGER, "Apply"),
                entry(FIELD_MANAGER, "Update"),
                entry("kubectl-edit", "Update"),
            ],
            Some("u-1"),
            Some("42"),
        );
        let m = &p["metadata"];
        assert_eq!(m["uid"], "u-1");
        assert_eq!(m["resourceVersion"], "42");
        assert_eq!(m["labels"][ann::ORIGIN_CLUSTER], Value::Null);
        assert!(
            m["labels"]
                .as_object()
                .unwrap()
                .contains_key(ann::ORIGIN_NAME)
        );
        assert!(
            m["annotations"]
                .as_object()
                .unwrap()
                .contains_key(policy::ON_DELETE)
        );
        let kept = m["managedFields"].as_array().unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0]["manager"], "kubectl-edit");
        // Ours alone: one empty entry, which makes the API server drop managedFields.
        let p = release_patch(&[entry(FIELD_MANAGER, "Apply")], None, None);
        assert_eq!(p["metadata"]["managedFields"], json!([{}]));
        assert!(!p["metadata"].as_object().unwrap().contains_key("uid"));
    }
}
