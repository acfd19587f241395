//! One source key in one target cluster: read (the caches, and a GET where only the object can
//! tell) → plan (the pure planner, as `status` plans) → write (`write.rs`, every write through
//! the [`Writer`](crate::controller::writer::Writer)) → report (hooks, Warning Events on the
//! source). One generic path serves ConfigMap and Secret.
use crate::cache::Cached;
use crate::controller::context::{Context, TargetCluster};
use crate::controller::errors::SyncError;
use crate::ops::hooks::Synced;
use crate::plan::diff::desired_copy;
use crate::plan::objects::{self, Syncable};
use crate::plan::policy::FOLLOWER_NAMESPACES;
use crate::plan::source::{Settings, Source};
use crate::plan::summary::{self, CopySummary, Missing};
use crate::plan::{KeyPlan, Kind, ObjectView, Outcome, Problem, SourceKey};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use std::collections::{BTreeMap, BTreeSet};

impl Context {
    pub async fn reconcile(&self, idx: usize, key: &SourceKey) -> Result<Outcome, SyncError> {
        match key.kind {
            Kind::ConfigMap => self.reconcile_kind::<ConfigMap>(idx, key).await,
            Kind::Secret => self.reconcile_kind::<Secret>(idx, key).await,
        }
    }

    async fn reconcile_kind<K: Cached>(
        &self,
        idx: usize,
        key: &SourceKey,
    ) -> Result<Outcome, SyncError> {
        // A target that left the kubeconfig: nothing more to do there.
        let Some(t) = self.targets.get(idx) else {
            return Ok(Outcome::CONVERGED);
        };
        let (t, s) = (&*t, &self.settings);
        // A large source waits for its share of the payload budget (held to the end).
        let cache = K::cache(&self.sources);
        let _share = (self.payloads)
            .take(cache.size(key.namespace(), key.name()))
            .await;
        // Read: the source and our copies from the caches.
        let object = cache.get(key.namespace(), key.name());
        let view = object.as_ref().map(objects::view);
        // A follower's namespaces only for a source that picks them by selector.
        let namespaces = match (t.local, &view) {
            (true, _) => self.sources.namespace_views(),
            (false, Some(v)) if v.annotations.contains_key(FOLLOWER_NAMESPACES) => {
                t.copies.namespace_views()
            }
            _ => Vec::new(),
        };
        let copies = t.copies.of(K::KIND).copies_of(key.namespace(), key.name());
        let copies: Vec<&CopySummary> = copies.iter().collect();
        // Plan, reading by name only what the caches cannot decide.
        let names = self.names();
        let plan = KeyPlan::new(view.as_ref(), &t.target(&namespaces), s, &names.contexts());
        // A create finds out by its 409 what is in the way; a dry run, which sends no create,
        // reads instead, so what it logs is what a real run would do.
        let missing = match self.writer.dry_run {
            true => Missing::Read,
            false => Missing::Create,
        };
        let read = read_by_name::<K>(t, key, plan.to_read(&copies, s, missing)).await?;
        let actions = plan.actions(&copies, &read, s);
        verify_read::<K>(t, plan.source.as_ref(), &read, s);
        // Write.
        let mut written = (self.write_all::<K>(t, key, actions, plan.problems.clone())).await;
        // A look-alike in the way is watched until it goes (then this key runs again).
        t.copies.lookouts.keep(key, &written.conflicts);
        // Report.
        let problems = std::mem::take(&mut written.problems);
        let outcome = written.outcome.with_problems(!problems.is_empty());
        self.report(idx, &t.cluster.context, key, object.as_ref(), problems)
            .await;
        if let Some(e) = written.error {
            return Err(e);
        }
        let converged = outcome == Outcome::CONVERGED;
        let synced = Synced {
            source_rv: (plan.source.as_ref())
                .and_then(|src| src.object.resource_version.as_deref()),
            wrote: written.wrote,
            created: if converged { &written.created } else { &[] },
            wanted: plan.wanted.len(),
            converged,
        };
        self.hooks.synced(&t.cluster.context, key, &synced);
        Ok(outcome)
    }

    /// Publishes Warning Events for the problems not yet reported for this (target, key); a
    /// source that is gone forgets its reported problems.
    async fn report<K: Syncable>(
        &self,
        idx: usize,
        cluster: &str,
        key: &SourceKey,
        object: Option<&K>,
        problems: Vec<Problem>,
    ) {
        let slot = (idx, key.clone());
        let Some(object) = object else {
            self.lock_reported().remove(&slot);
            return;
        };
        let notes: BTreeSet<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.reason, p.note))
            .collect();
        {
            let mut g = self.lock_reported();
            // Only keys with open problems are remembered, so the map stays small.
            let before = if notes.is_empty() {
                g.remove(&slot)
            } else {
                g.insert(slot, notes.clone())
            };
            if before.unwrap_or_default() == notes {
                return;
            }
        }
        let reference = object.object_ref(&());
        for p in problems {
            self.hooks.problem(cluster, p.reason);
            tracing::warn!(cluster = %cluster, source = %key, reason = p.reason, note = %p.note, "sync problem");
            self.events.warning(&reference, p.reason, &p.note).await;
        }
    }

    fn lock_reported(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<(usize, SourceKey), BTreeSet<String>>>
    {
        self.reported.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A copy read whole that has exactly the desired payload: its summary may carry the payload's
/// identity until the copy changes (see [`crate::cache::copies::CopyCache::verify`]), so a copy
/// whose payload another manager shares is not read again on every pass.
fn verify_read<K: Syncable>(
    t: &TargetCluster,
    source: Option<&Source<'_>>,
    read: &BTreeMap<String, Option<ObjectView>>,
    s: &Settings,
) {
    let Some(src) = source else { return };
    for (ns, obj) in read {
        let Some(obj) = obj else { continue };
        let desired = desired_copy(src, ns, s);
        if let Some(id) = summary::verified_identity(obj, &desired) {
            let rv = obj.resource_version.as_deref();
            t.copies.of(K::KIND).verify(ns, &obj.name, rv, id);
        }
    }
}

/// GETs the source's name in each of `namespaces` (`None`: nothing there). An unmanaged object
/// may be where no copy of ours is cached (the cache only holds objects with our labels), and a
/// copy edited by hand can only be diffed whole.
async fn read_by_name<K: Syncable>(
    t: &TargetCluster,
    key: &SourceKey,
    namespaces: BTreeSet<String>,
) -> Result<BTreeMap<String, Option<ObjectView>>, SyncError> {
    let mut read = BTreeMap::new();
    for ns in namespaces {
        let found = read_one::<K>(t, key, &ns).await?;
        read.insert(ns, found);
    }
    Ok(read)
}

/// GETs the source's name in `namespace` of target `t`, as the planner sees it (`None`: nothing
/// there).
pub(crate) async fn read_one<K: Syncable>(
    t: &TargetCluster,
    key: &SourceKey,
    namespace: &str,
) -> Result<Option<ObjectView>, SyncError> {
    let api: Api<K> = Api::namespaced(t.cluster.client.clone(), namespace);
    match api.get_opt(key.name()).await {
        Ok(found) => {
            if let Some(obj) = &found {
                t.copies.of(K::KIND).learn_type(obj);
            }
            Ok(found.as_ref().map(objects::view))
        }
        Err(source) => Err(SyncError::Get {
            cluster: t.cluster.context.clone(),
            kind: K::KIND,
            namespace: namespace.to_string(),
            name: key.name().to_string(),
            source,
        }),
    }
}
