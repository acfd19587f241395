//! Every write the daemon makes goes through [`Writer`], so a dry-run (log, don't write) can
//! replace it without touching the reconcile logic.
//!
//! Write strategy: server-side apply with the fixed field manager `kubed-cross-sync`, forced only
//! on objects that pass the ownership test (or with --adopt-existing). Apply owns exactly the
//! fields we set: labels/annotations other managers added on the target (a follower's own
//! `kubed.appscode.com/sync`) survive, a hand edit of a field we set is taken back by the forced
//! apply, and a label we stop setting is removed. Hand-added data keys are not ours, so apply
//! would keep them: those are removed with a merge patch (`null`). Create/replace with
//! resourceVersion would need a GET before each write and would drop target-only keys.
use crate::plan::objects::{FIELD_MANAGER, Syncable};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, Copy, Default)]
pub struct Writer {
    /// Log what would be written and write nothing.
    pub dry_run: bool,
}

impl Writer {
    pub async fn apply<K: Syncable>(
        &self,
        api: &Api<K>,
        obj: &K,
        force: bool,
    ) -> Result<(), kube::Error> {
        let name = kube::ResourceExt::name_any(obj);
        if self.dry_run {
            tracing::info!(kind = K::KIND.as_str(), namespace = api.namespace().unwrap_or_default(), name = %name, force, "dry run: would apply");
            return Ok(());
        }
        let mut pp = PatchParams::apply(FIELD_MANAGER);
        pp.force = force;
        api.patch(&name, &pp, &Patch::Apply(obj)).await.map(|_| ())
    }

    /// Removes data/binaryData keys someone else added (merge patch with `null` values). With
    /// `uid`, the patch carries it: on any other object by that name the API server refuses it
    /// (uid is immutable), so it never lands on an object made in place of ours.
    pub async fn remove_keys<K: Syncable>(
        &self,
        api: &Api<K>,
        name: &str,
        uid: Option<&str>,
        keys: &[(&'static str, String)],
    ) -> Result<(), kube::Error> {
        if self.dry_run {
            tracing::info!(kind = K::KIND.as_str(), namespace = api.namespace().unwrap_or_default(), name = %name, keys = keys.len(), "dry run: would remove keys");
            return Ok(());
        }
        let mut body = Map::new();
        for (field, key) in keys {
            let section = body
                .entry(*field)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = section {
                m.insert(key.clone(), Value::Null);
            }
        }
        if let Some(uid) = uid {
            body.insert("metadata".into(), serde_json::json!({ "uid": uid }));
        }
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        api.patch(name, &pp, &Patch::Merge(Value::Object(body)))
            .await
            .map(|_| ())
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
