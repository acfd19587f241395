//! The I/O shell around the pure planner: for one (target cluster, source key) it reads the
//! caches, asks `desired::plan` what to do, performs the writes, and reports problems as Events
//! on the source. One generic path serves ConfigMap and Secret.
use crate::clusters::Cluster;
use crate::copies::CopyCache;
use crate::desired::{self, Action, Kind, NamespaceView, NotSource, ObjectView, Settings, Target};
use crate::error::{SyncError, chain};
use crate::hooks::Hooks;
use crate::kinds::{self, Syncable};
use crate::queue::{Queue, SourceKey};
use crate::sources::SourceCache;
use crate::summary::{self, CopySummary};
use crate::writer::Writer;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::Api;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// After a write refused by its uid precondition: time for the copy watch to deliver the change.
const STALE_RETRY: Duration = Duration::from_millis(500);

/// The API server refused a write because the object by that name is not the one whose uid we
/// sent (409 "Precondition failed: UID in precondition" when gone, 422 "metadata.uid: field is
/// immutable" when replaced).
fn uid_mismatch(s: &kube::core::Status) -> bool {
    matches!(s.code, 409 | 422) && (s.message.contains("uid") || s.message.contains("UID"))
}

/// A missing target namespace is rechecked at this pace (it is not watched in followers).
const NAMESPACE_RETRY: Duration = Duration::from_secs(30);

/// Caches of the source cluster: the candidate sources and the namespaces.
#[derive(Clone)]
pub struct SourceStores {
    pub configmaps: Arc<SourceCache<ConfigMap>>,
    pub secrets: Arc<SourceCache<Secret>>,
    pub namespaces: Store<Namespace>,
    /// All three hold a full list.
    pub ready: Ready,
}

/// "These caches hold a full list", for any number of waiters. kube-runtime's
/// `Store::wait_until_ready` wakes only one of several concurrent waiters (it polls one
/// oneshot receiver from many tasks), so readiness is tracked with watch channels instead.
#[derive(Clone, Debug)]
pub struct Ready(pub Vec<tokio::sync::watch::Receiver<bool>>);

impl Ready {
    /// Waits until every cache is ready; `false` if a cache's watch task ended first.
    pub async fn wait(&self) -> bool {
        for rx in &self.0 {
            if rx.clone().wait_for(|r| *r).await.is_err() {
                return false;
            }
        }
        true
    }

    pub fn is_ready(&self) -> bool {
        self.0.iter().all(|rx| *rx.borrow())
    }
}

/// One target cluster: its clients, the cache of the copies we made there, its queue.
pub struct TargetCluster {
    pub cluster: Cluster,
    /// The source cluster itself (intra-cluster copies).
    pub local: bool,
    pub configmap_copies: Arc<CopyCache>,
    pub secret_copies: Arc<CopyCache>,
    pub queue: Arc<Queue>,
    /// Both copy caches hold a full list.
    pub ready: Ready,
}

/// Everything a worker needs; shared by all workers.
pub struct Context {
    pub settings: Settings,
    pub create_namespaces: bool,
    pub sources: SourceStores,
    /// Index 0 is the source cluster.
    pub targets: Vec<TargetCluster>,
    /// The source context name (a source naming it in sync-contexts gets an Event).
    pub source_context: String,
    /// Contexts that could not be built: (name, reason).
    pub broken_contexts: Vec<(String, String)>,
    pub recorder: Recorder,
    pub hooks: Arc<dyn Hooks>,
    pub writer: Writer,
    /// The problem set last published per (target index, key), so Events are not repeated on
    /// every resync.
    reported: Mutex<HashMap<(usize, SourceKey), BTreeSet<String>>>,
}

/// How a reconcile ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Target matches the plan (conflicts and bad annotations wait for a change).
    Done { converged: bool },
    /// Look again later (missing namespace, pending deletion).
    RetryAfter(Duration),
}

/// A problem to report on the source as a Warning Event.
struct Problem {
    reason: &'static str,
    note: String,
}

impl Context {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: Settings,
        create_namespaces: bool,
        sources: SourceStores,
        targets: Vec<TargetCluster>,
        source_context: String,
        broken_contexts: Vec<(String, String)>,
        recorder: Recorder,
        hooks: Arc<dyn Hooks>,
        writer: Writer,
    ) -> Self {
        Self {
            settings,
            create_namespaces,
            sources,
            targets,
            source_context,
            broken_contexts,
            recorder,
            hooks,
            writer,
            reported: Mutex::default(),
        }
    }

    /// Every candidate source's key, sorted: the part of a sweep all targets share.
    pub fn source_keys(&self) -> Arc<[SourceKey]> {
        let mut keys: Vec<SourceKey> = Vec::new();
        (self.sources.configmaps)
            .each_source(|id| keys.push(SourceKey::from_id(Kind::ConfigMap, id)));
        (self.sources.secrets).each_source(|id| keys.push(SourceKey::from_id(Kind::Secret, id)));
        keys.sort_unstable();
        keys.into()
    }

    /// Every key worth reconciling in target `idx`, sorted: each candidate source (`sources`,
    /// from [`Context::source_keys`]), plus the origin of each copy there that is not one (so
    /// orphans are found). Without orphans this is `sources` itself, not a copy of it.
    pub fn sweep_keys(&self, idx: usize, sources: &Arc<[SourceKey]>) -> Arc<[SourceKey]> {
        let Some(t) = self.targets.get(idx) else {
            return sources.clone();
        };
        let mut orphans = Vec::new();
        for (kind, cache) in [
            (Kind::ConfigMap, &t.configmap_copies),
            (Kind::Secret, &t.secret_copies),
        ] {
            cache.each_origin(|id| {
                if sources
                    .binary_search_by(|k| (k.kind, k.id()).cmp(&(kind, id)))
                    .is_err()
                {
                    orphans.push(SourceKey::from_id(kind, id));
                }
            });
        }
        if orphans.is_empty() {
            return sources.clone();
        }
        orphans.extend(sources.iter().cloned());
        orphans.sort_unstable();
        orphans.into()
    }

    pub async fn reconcile(&self, idx: usize, key: &SourceKey) -> Result<Outcome, SyncError> {
        match key.kind {
            Kind::ConfigMap => {
                let t = &self.targets[idx];
                self.reconcile_kind::<ConfigMap>(
                    idx,
                    key,
                    &self.sources.configmaps,
                    &t.configmap_copies,
                )
                .await
            }
            Kind::Secret => {
                let t = &self.targets[idx];
                self.reconcile_kind::<Secret>(idx, key, &self.sources.secrets, &t.secret_copies)
                    .await
            }
        }
    }

    async fn reconcile_kind<K: Syncable>(
        &self,
        idx: usize,
        key: &SourceKey,
        sources: &SourceCache<K>,
        copies: &CopyCache,
    ) -> Result<Outcome, SyncError> {
        let t = &self.targets[idx];
        let s = &self.settings;
        let src_obj = sources.get(key.namespace(), key.name());
        let src_view = src_obj.as_ref().map(kinds::view);
        let mut problems = Vec::new();
        let classified = src_view.as_ref().map(|v| desired::classify(v, s));
        let source = match &classified {
            Some(Ok(src)) => Some(src),
            Some(Err(NotSource::NameTooLong)) if t.local => {
                problems.push(Problem {
                    reason: "NameTooLong",
                    note: "source name is longer than 63 characters, so it cannot be an origin label value; not synced".into(),
                });
                None
            }
            _ => None,
        };
        if let (Some(src), true) = (source, t.local) {
            for e in &src.errors {
                problems.push(Problem {
                    reason: "MalformedAnnotation",
                    note: chain(e),
                });
            }
            problems.extend(self.context_problems(src));
        }
        let namespaces: Vec<NamespaceView>;
        let target = if t.local {
            namespaces = self
                .sources
                .namespaces
                .state()
                .iter()
                .map(|n| namespace_view(n))
                .collect();
            Target::Local {
                namespaces: &namespaces,
            }
        } else {
            Target::Context {
                context: &t.cluster.context,
                namespace: t.cluster.namespace.as_deref(),
            }
        };

        let cached = copies.copies_of(key.namespace(), key.name());
        let summaries: Vec<&CopySummary> = cached.iter().collect();

        let mut wanted = source
            .map(|src| desired::target_namespaces(src, &target))
            .unwrap_or_default();
        // Other contexts reaching the same cluster add their namespaces.
        for (context, namespace) in &t.cluster.aliases {
            let alias = Target::Context {
                context,
                namespace: namespace.as_deref(),
            };
            if let Some(src) = source {
                wanted.extend(desired::target_namespaces(src, &alias));
            }
        }
        // Read by name where the cache cannot decide: a wanted namespace with none of our copies
        // (an unmanaged object may be there: the cache only holds objects with our labels), or
        // a copy edited by hand.
        let mut read = BTreeMap::new();
        for ns in summary::needs_read(source, &wanted, &summaries, s) {
            let api: Api<K> = Api::namespaced(t.cluster.client.clone(), &ns);
            match api.get_opt(key.name()).await {
                Ok(found) => {
                    read.insert(ns, found.as_ref().map(kinds::view));
                }
                Err(source) => {
                    return Err(SyncError::Get {
                        cluster: t.cluster.context.clone(),
                        kind: K::KIND,
                        namespace: ns,
                        name: key.name().to_string(),
                        source,
                    });
                }
            }
        }

        let actions = summary::plan_copies(source, &wanted, &summaries, &read, s);
        let wrote = actions
            .iter()
            .any(|a| !matches!(a, Action::Noop { .. } | Action::Conflict { .. }));
        let created: Vec<String> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Create(d) => Some(d.namespace.clone()),
                _ => None,
            })
            .collect();
        let mut outcome = Outcome::Done { converged: true };
        let mut first_error = None;
        for action in actions {
            match self.execute::<K>(t, key, action, &mut problems).await {
                Ok(Outcome::Done { converged: true }) => {}
                Ok(o @ Outcome::Done { converged: false }) => {
                    if outcome == (Outcome::Done { converged: true }) {
                        outcome = o;
                    }
                }
                Ok(o @ Outcome::RetryAfter(_)) => outcome = o,
                Err(e) => {
                    // Keep going: one bad namespace must not block the others.
                    self.hooks.error(&t.cluster.context, e.category());
                    tracing::warn!(cluster = %t.cluster.context, source = %key, category = e.category(), error = %chain(&e), "write failed, will retry");
                    let outage = e.is_outage();
                    first_error.get_or_insert(e);
                    if outage {
                        // The cluster is down: the other namespaces would only fail the same way
                        // (a partition makes each attempt wait out the request timeout).
                        break;
                    }
                }
            }
        }
        if !problems.is_empty() && outcome == (Outcome::Done { converged: true }) {
            outcome = Outcome::Done { converged: false };
        }
        match src_obj.as_ref() {
            Some(obj) => self.report(idx, key, obj, problems).await,
            None => {
                let mut g = self.reported.lock().unwrap_or_else(|p| p.into_inner());
                g.remove(&(idx, key.clone()));
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => {
                let converged = outcome == (Outcome::Done { converged: true });
                let r = crate::hooks::Synced {
                    source_rv: source.and_then(|src| src.object.resource_version.as_deref()),
                    wrote,
                    created: if converged { &created } else { &[] },
                    wanted: wanted.len(),
                    converged,
                };
                self.hooks.synced(&t.cluster.context, key, &r);
                Ok(outcome)
            }
        }
    }

    /// Problems with `sync-contexts` names, reported once (by the source cluster's worker).
    fn context_problems(&self, src: &desired::Source<'_>) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for c in &src.spec.contexts {
            if !seen.insert(c.context.clone()) {
                continue;
            }
            let note = if c.context == self.source_context {
                format!(
                    "context {:?} is the source cluster and never a target",
                    c.context
                )
            } else if let Some((_, why)) =
                self.broken_contexts.iter().find(|(n, _)| n == &c.context)
            {
                format!("context {:?} cannot be used: {why}", c.context)
            } else if !self.targets.iter().any(|t| {
                !t.local
                    && (t.cluster.context == c.context
                        || t.cluster.aliases.iter().any(|(n, _)| n == &c.context))
            }) {
                format!("context {:?} is not in the kubeconfig file", c.context)
            } else {
                continue;
            };
            out.push(Problem {
                reason: "UnknownContext",
                note,
            });
        }
        out
    }

    async fn execute<K: Syncable>(
        &self,
        t: &TargetCluster,
        key: &SourceKey,
        action: Action,
        problems: &mut Vec<Problem>,
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
        let done = Ok(Outcome::Done { converged: true });
        match action {
            Action::Noop { .. } => done,
            Action::Conflict { namespace, reason } => {
                self.hooks.conflict(ctx, K::KIND);
                problems.push(Problem {
                    reason: "OriginConflict",
                    note: format!(
                        "{} {namespace}/{} in context {ctx} left untouched: {reason}",
                        K::KIND.as_str(),
                        key.name()
                    ),
                });
                Ok(Outcome::Done { converged: false })
            }
            Action::Delete { namespace, uid } => {
                let api: Api<K> = Api::namespaced(t.cluster.client.clone(), &namespace);
                let gone = self
                    .writer
                    .delete(&api, key.name(), uid.as_deref())
                    .await
                    .map_err(|e| write_err("delete", &namespace, e))?;
                self.hooks.write(ctx, K::KIND, "delete");
                tracing::info!(cluster = %ctx, source = %key, namespace = %namespace, dry_run = self.writer.dry_run, "copy deleted");
                if gone {
                    done
                } else {
                    Ok(Outcome::RetryAfter(Duration::from_secs(5)))
                }
            }
            Action::Create(desired) => self.create::<K>(t, key, &desired, problems).await,
            Action::Update {
                desired,
                uid,
                extra_keys,
            } => {
                let api: Api<K> = Api::namespaced(t.cluster.client.clone(), &desired.namespace);
                let mut obj: K = kinds::build(&desired);
                // A forced apply takes every field: the uid precondition keeps it on the very
                // object we observed (server-side apply never records uid as owned).
                obj.meta_mut().uid = uid.clone();
                match self.writer.apply(&api, &obj, true).await {
                    Err(kube::Error::Api(s)) if uid_mismatch(&s) => {
                        tracing::info!(cluster = %ctx, source = %key, namespace = %desired.namespace, "the copy was replaced since it was observed; looking again");
                        return Ok(Outcome::RetryAfter(STALE_RETRY));
                    }
                    r => r.map_err(|e| write_err("apply", &desired.namespace, e))?,
                }
                self.hooks.write(ctx, K::KIND, "update");
                if !extra_keys.is_empty() {
                    match self
                        .writer
                        .remove_keys(&api, key.name(), uid.as_deref(), &extra_keys)
                        .await
                    {
                        Err(kube::Error::Api(s)) if uid_mismatch(&s) => {
                            return Ok(Outcome::RetryAfter(STALE_RETRY));
                        }
                        r => r.map_err(|e| write_err("patch", &desired.namespace, e))?,
                    }
                    self.hooks.write(ctx, K::KIND, "remove_keys");
                }
                tracing::info!(cluster = %ctx, source = %key, namespace = %desired.namespace, dry_run = self.writer.dry_run, "copy updated");
                done
            }
            Action::Recreate { desired, uid } => {
                let api: Api<K> = Api::namespaced(t.cluster.client.clone(), &desired.namespace);
                let gone = self
                    .writer
                    .delete(&api, key.name(), uid.as_deref())
                    .await
                    .map_err(|e| write_err("delete", &desired.namespace, e))?;
                self.hooks.write(ctx, K::KIND, "recreate");
                if !gone {
                    return Ok(Outcome::RetryAfter(Duration::from_secs(2)));
                }
                tracing::info!(cluster = %ctx, source = %key, namespace = %desired.namespace, dry_run = self.writer.dry_run, "copy deleted for re-creation (immutable or type change)");
                self.create::<K>(t, key, &desired, problems).await
            }
        }
    }

    /// Creates a copy (non-forced apply: if an object appeared meanwhile, apply conflicts instead
    /// of taking it over). A missing namespace is reported, or created with --create-namespaces.
    async fn create<K: Syncable>(
        &self,
        t: &TargetCluster,
        key: &SourceKey,
        desired: &ObjectView,
        problems: &mut Vec<Problem>,
    ) -> Result<Outcome, SyncError> {
        let ctx = &t.cluster.context;
        let ns = &desired.namespace;
        let api: Api<K> = Api::namespaced(t.cluster.client.clone(), ns);
        let obj: K = kinds::build(desired);
        let mut created_ns = false;
        loop {
            match self.writer.apply(&api, &obj, false).await {
                Ok(()) => {
                    self.hooks.write(ctx, K::KIND, "create");
                    tracing::info!(cluster = %ctx, source = %key, namespace = %ns, dry_run = self.writer.dry_run, "copy created");
                    return Ok(Outcome::Done { converged: true });
                }
                Err(kube::Error::Api(s))
                    if s.code == 404 && !created_ns && self.create_namespaces =>
                {
                    self.writer
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
                    problems.push(Problem {
                        reason: "NamespaceMissing",
                        note: format!(
                            "namespace {ns} does not exist in context {ctx}; copy not created"
                        ),
                    });
                    self.hooks.error(ctx, "namespace_missing");
                    return Ok(Outcome::RetryAfter(NAMESPACE_RETRY));
                }
                Err(kube::Error::Api(s))
                    if s.code == 403 && s.message.contains("being terminated") =>
                {
                    // A Terminating namespace is skipped, not retried.
                    return Ok(Outcome::Done { converged: true });
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

    /// Publishes Warning Events for problems not yet reported for this (target, key).
    async fn report<K: Syncable>(
        &self,
        idx: usize,
        key: &SourceKey,
        obj: &K,
        problems: Vec<Problem>,
    ) {
        let notes: BTreeSet<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.reason, p.note))
            .collect();
        {
            let mut g = self.reported.lock().unwrap_or_else(|p| p.into_inner());
            let slot = (idx, key.clone());
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
        let cluster = &self.targets[idx].cluster.context;
        let reference = obj.object_ref(&());
        for p in problems {
            self.hooks.problem(cluster, p.reason);
            tracing::warn!(cluster = %cluster, source = %key, reason = p.reason, note = %p.note, "sync problem");
            if self.writer.dry_run {
                continue; // an Event is a write too
            }
            let ev = Event {
                type_: EventType::Warning,
                reason: p.reason.to_string(),
                note: Some(truncate(&p.note, 1000)),
                action: "Sync".into(),
                secondary: None,
            };
            if let Err(e) = self.recorder.publish(&ev, &reference).await {
                tracing::warn!(source = %key, error = %chain(&e), "cannot publish event");
            }
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn namespace_view(n: &Namespace) -> NamespaceView {
    NamespaceView {
        name: n.metadata.name.clone().unwrap_or_default(),
        labels: n.metadata.labels.clone().unwrap_or_default(),
        terminating: n.metadata.deletion_timestamp.is_some()
            || n.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating"),
    }
}
