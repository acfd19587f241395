//! The write step of a reconcile: each planned [`Action`] becomes at most a few API calls through
//! the [`Writer`](crate::controller::writer::Writer) (dry-run included), and its outcome is folded
//! into the reconcile's. Conflicts and missing namespaces become problems on the source.
use crate::controller::context::{Context, TargetCluster};
use crate::controller::errors::SyncError;
use crate::plan::diff;
use crate::plan::objects::{self, Syncable};
use crate::plan::summary;
use crate::plan::{Action, ObjectView, Outcome, Problem, SourceKey};
use kube::api::Api;
use std::time::Duration;

/// After a write refused by its uid precondition: time for the copy watch to deliver the change.
const STALE_RETRY: Duration = Duration::from_millis(500);

/// A missing target namespace is rechecked at this pace (it is not watched in followers).
const NAMESPACE_RETRY: Duration = Duration::from_secs(30);

/// The API server refused a write because the object by that name is not the one whose uid we
/// sent (409 "Precondition failed: UID in precondition" when gone, 422 "metadata.uid: field is
/// immutable" when replaced).
fn uid_mismatch(s: &kube::core::Status) -> bool {
    matches!(s.code, 409 | 422) && (s.message.contains("uid") || s.message.contains("UID"))
}

/// What the write step did.
pub(crate) struct Written {
    pub outcome: Outcome,
    /// The first failed write (the others were still tried, unless the cluster is down).
    pub error: Option<SyncError>,
    /// At least one create/update/recreate/delete was planned.
    pub wrote: bool,
    /// Namespaces where a copy is created (the first sync there).
    pub created: Vec<String>,
    /// The plan's problems and those the writes found (reported on the source).
    pub problems: Vec<Problem>,
    /// Namespaces where a look-alike is in the way (planned, or found by a refused create), and
    /// why.
    pub conflicts: Vec<(String, String)>,
}

impl Context {
    pub(crate) async fn write_all<K: Syncable>(
        &self,
        t: &TargetCluster,
        key: &SourceKey,
        actions: Vec<Action>,
        problems: Vec<Problem>,
    ) -> Written {
        let mut w = Written {
            outcome: Outcome::CONVERGED,
            error: None,
            wrote: actions.iter().any(Action::writes),
            created: (actions.iter())
                .filter_map(|a| match a {
                    Action::Create(d) => Some(d.namespace.clone()),
                    _ => None,
                })
                .collect(),
            problems,
            conflicts: Vec::new(),
        };
        for action in actions {
            match self.execute::<K>(t, key, action, &mut w).await {
                Ok(o) => w.outcome = w.outcome.and(o),
                Err(e) => {
                    // Keep going: one bad namespace must not block the others.
                    self.hooks.error(&t.cluster.context, e.category());
                    if e.is_refusal() {
                        // Reported on the source (a Warning Event, once per distinct text).
                        w.problems.push(Problem {
                            reason: "WriteRefused",
                            note: crate::chain(&e),
                            context: None,
                        });
                    }
                    tracing::warn!(cluster = %t.cluster.context, source = %key, category = e.category(), error = %crate::chain(&e), "write failed, will retry");
                    let outage = e.is_outage();
                    w.error.get_or_insert(e);
                    if outage {
                        // The cluster is down: the other namespaces would only fail the same way
                        // (a partition makes each attempt wait out the request timeout).
                        break;
                    }
                }
            }
        }
        w
    }

    async fn execute<K: Syncable>(
        &self,
        t: &TargetCluster,
        key: &SourceKey,
        action: Action,
        w: &mut Written,
    ) -> Result<Outcome, SyncError> {
        let ctx = &t.cluster.context;
        let write_err = |op: &'static str, ns: &str, source: kube::Error| SyncError::Write {
            op,
            cluster: ctx.clone(),
            kind: K::KIND,
            namespace: ns.to_string(),
            name: key.name().to_string(),
            source,
        };
        match action {
            Action::Noop { .. } => Ok(Outcome::CONVERGED),
            Action::Conflict { namespace, reason } => {
                self.hooks.conflict(ctx, K::KIND);
                w.conflicts.push((namespace.clone(), reason.clone()));
                w.problems.push(Problem {
                    reason: "OriginConflict",
                    note: format!(
                        "{} {namespace}/{} in context {ctx} left untouched: {reason}",
                        K::KIND.as_str(),
                        key.name()
                    ),
                    context: None,
                });
                Ok(Outcome::Done { converged: false })
            }
            Action::Delete { namespace, uid } => {
                let api: Api<K> = Api::namespaced(t.cluster.client.clone(), &namespace);
                let gone = (self.writer.delete(&api, key.name(), uid.as_deref()).await)
                    .map_err(|e| write_err("delete", &namespace, e))?;
                self.hooks.write(ctx, K::KIND, "delete");
                if gone && !self.writer.dry_run {
                    t.copies.of(K::KIND).record_deleted(&namespace, key.name());
                }
                tracing::info!(cluster = %ctx, source = %key, namespace = %namespace, dry_run = self.writer.dry_run, "copy deleted");
                Ok(match gone {
                    true => Outcome::CONVERGED,
                    false => Outcome::RetryAfter(Duration::from_secs(5)),
                })
            }
            Action::Release { namespace, uid } => {
                let api: Api<K> = Api::namespaced(t.cluster.client.clone(), &namespace);
                match self.writer.release(&api, key.name(), uid.as_deref()).await {
                    Err(kube::Error::Api(s)) if uid_mismatch(&s) || s.code == 409 => {
                        return Ok(Outcome::RetryAfter(STALE_RETRY));
                    }
                    r => r.map_err(|e| write_err("release", &namespace, e))?,
                }
                self.hooks.write(ctx, K::KIND, "release");
                tracing::info!(cluster = %ctx, source = %key, namespace = %namespace, dry_run = self.writer.dry_run, "copy released (on-delete: retain): kept, no longer managed");
                Ok(Outcome::CONVERGED)
            }
            Action::Create(desired) => {
                match t.copies.lookouts.in_the_way(key, &desired.namespace) {
                    // Still there (it is watched): no create to be refused.
                    Some(reason) => {
                        let namespace = desired.namespace;
                        let conflict = Action::Conflict { namespace, reason };
                        Box::pin(self.execute::<K>(t, key, conflict, w)).await
                    }
                    None => self.create::<K>(t, key, &desired, w).await,
                }
            }
            Action::TakeOver { desired, uid, from } => {
                tracing::info!(cluster = %ctx, source = %key, namespace = %desired.namespace, previous = %from, dry_run = self.writer.dry_run, "taking over a copy made under a previous cluster name");
                self.update::<K>(t, key, &desired, uid, &[]).await
            }
            Action::Update {
                desired,
                uid,
                extra_keys,
            } => self.update::<K>(t, key, &desired, uid, &extra_keys).await,
            Action::Recreate { desired, uid } => {
                let api: Api<K> = Api::namespaced(t.cluster.client.clone(), &desired.namespace);
                let gone = (self.writer.delete(&api, key.name(), uid.as_deref()).await)
                    .map_err(|e| write_err("delete", &desired.namespace, e))?;
                self.hooks.write(ctx, K::KIND, "recreate");
                if !gone {
                    return Ok(Outcome::RetryAfter(Duration::from_secs(2)));
                }
                tracing::info!(cluster = %ctx, source = %key, namespace = %desired.namespace, dry_run = self.writer.dry_run, "copy deleted for re-creation (immutable or type change)");
                self.create::<K>(t, key, &desired, w).await
            }
        }
    }

    /// A forced apply of the desired copy over ours, then the removal of data keys someone else
    /// added. Both carry the observed copy's uid as a precondition.
    async fn update<K: Syncable>(
        &self,
        t: &TargetCluster,
        key: &SourceKey,
        desired: &ObjectView,
        uid: Option<String>,
        extra_keys: &[(&'static str, String)],
    ) -> Result<Outcome, SyncError> {
        let ctx = &t.cluster.context;
        let ns = &desired.namespace;
        let write_err = |op: &'static str, source: kube::Error| SyncError::Write {
            op,
            cluster: ctx.clone(),
            kind: K::KIND,
            namespace: ns.clone(),
            name: key.name().to_string(),
            source,
        };
        let api: Api<K> = Api::namespaced(t.cluster.client.clone(), ns);
        let mut obj: K = objects::build(desired);
        // A forced apply takes every field: the uid precondition keeps it on the very object we
        // observed (server-side apply never records uid as owned).
        obj.meta_mut().uid = uid.clone();
        let stored = match self.writer.apply(&api, &obj, true).await {
            Err(kube::Error::Api(s)) if uid_mismatch(&s) => {
                tracing::info!(cluster = %ctx, source = %key, namespace = %ns, "the copy was replaced since it was observed; looking again");
                return Ok(Outcome::RetryAfter(STALE_RETRY));
            }
            r => r.map_err(|e| write_err("apply", e))?,
        };
        self.hooks.write(ctx, K::KIND, "update");
        let mut remove = extra_keys.to_vec();
        if let Some(stored) = stored {
            record(t, &stored, desired);
            // A copy made by POST: what only that POST owned and the source dropped since.
            for k in objects::post_leftovers(&stored, desired) {
                if !remove.contains(&k) {
                    remove.push(k);
                }
            }
        }
        if !remove.is_empty() {
            let removed = (self.writer)
                .remove_keys(&api, key.name(), uid.as_deref(), &remove)
                .await;
            match removed {
                Err(kube::Error::Api(s)) if uid_mismatch(&s) => {
                    return Ok(Outcome::RetryAfter(STALE_RETRY));
                }
                r => {
                    if let Some(stored) = r.map_err(|e| write_err("patch", e))? {
                        record(t, &stored, desired);
                    }
                }
            }
            self.hooks.write(ctx, K::KIND, "remove_keys");
        }
        tracing::info!(cluster = %ctx, source = %key, namespace = %ns, dry_run = self.writer.dry_run, "copy updated");
        Ok(Outcome::CONVERGED)
    }

    /// Creates a copy by POST. If something by that name is there after all (409), it is read
    /// and planned in full (ours: updated; unmanaged or foreign: a conflict). A missing namespace
    /// is reported, or created with --create-namespaces.
    async fn create<K: Syncable>(
        &self,
        t: &TargetCluster,
        key: &SourceKey,
        desired: &ObjectView,
        w: &mut Written,
    ) -> Result<Outcome, SyncError> {
        let ctx = &t.cluster.context;
        let ns = &desired.namespace;
        let api: Api<K> = Api::namespaced(t.cluster.client.clone(), ns);
        let obj: K = objects::build(desired);
        let mut created_ns = false;
        loop {
            match self.writer.create(&api, &obj).await {
                Ok(stored) => {
                    if let Some(stored) = stored {
                        record(t, &stored, desired);
                    }
                    self.hooks.write(ctx, K::KIND, "create");
                    tracing::info!(cluster = %ctx, source = %key, namespace = %ns, dry_run = self.writer.dry_run, "copy created");
                    return Ok(Outcome::CONVERGED);
                }
                Err(kube::Error::Api(s))
                    if s.code == 404 && !created_ns && self.create_namespaces =>
                {
                    (self.writer)
                        .create_namespace(&Api::all(t.cluster.client.clone()), ns)
                        .await
                        .map_err(|source| SyncError::CreateNamespace {
                            cluster: ctx.clone(),
                            namespace: ns.clone(),
                            source,
                        })?;
                    self.hooks.write(ctx, K::KIND, "create_namespace");
                    created_ns = true;
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    w.problems.push(Problem {
                        reason: "NamespaceMissing",
                        note: format!(
                            "namespace {ns} does not exist in context {ctx}; copy not created"
                        ),
                        context: None,
                    });
                    self.hooks.error(ctx, "namespace_missing");
                    return Ok(Outcome::RetryAfter(NAMESPACE_RETRY));
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    return self.replan::<K>(t, key, desired, w).await;
                }
                Err(kube::Error::Api(s))
                    if s.code == 403 && s.message.contains("being terminated") =>
                {
                    // A Terminating namespace is skipped, not retried.
                    return Ok(Outcome::CONVERGED);
                }
                Err(e) => {
                    return Err(SyncError::Write {
                        op: "create",
                        cluster: ctx.clone(),
                        kind: K::KIND,
                        namespace: ns.clone(),
                        name: key.name().to_string(),
                        source: e,
                    });
                }
            }
        }
    }

    /// After a create refused with 409: reads what is there and plans it as the full planner
    /// would (the conflict rules), then does that instead. Nothing there any more (deleted
    /// meanwhile): looked at again shortly.
    async fn replan<K: Syncable>(
        &self,
        t: &TargetCluster,
        key: &SourceKey,
        desired: &ObjectView,
        w: &mut Written,
    ) -> Result<Outcome, SyncError> {
        let ctx = &t.cluster.context;
        let ns = &desired.namespace;
        let found = crate::controller::reconcile::read_one::<K>(t, key, ns).await?;
        let Some(found) = found else {
            return Ok(Outcome::RetryAfter(STALE_RETRY));
        };
        tracing::debug!(cluster = %ctx, source = %key, namespace = %ns, "create found an object by that name; planning it in full");
        match diff::diff(desired.clone(), Some(&found), &self.settings) {
            // Only a create is not planned again (the object is there): no loop.
            Action::Create(_) => Ok(Outcome::RetryAfter(STALE_RETRY)),
            action => Box::pin(self.execute::<K>(t, key, action, w)).await,
        }
    }
}

/// Puts a copy we just wrote in the cache. When another manager shares its payload fields (the
/// summary cannot trust it), the stored object itself is compared with what we wrote: equal, its
/// summary carries the payload's identity until the copy changes.
fn record<K: Syncable>(t: &TargetCluster, stored: &K, desired: &ObjectView) {
    let copies = t.copies.of(K::KIND);
    if !copies.record(stored)
        && let Some(id) = summary::verified_identity(&objects::view(stored), desired)
    {
        let m = stored.meta();
        let (ns, name) = (m.namespace.as_deref(), m.name.as_deref());
        copies.verify(
            ns.unwrap_or_default(),
            name.unwrap_or_default(),
            m.resource_version.as_deref(),
            id,
        );
    }
}
