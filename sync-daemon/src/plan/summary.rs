//! What the daemon remembers of a copy it made, instead of the copy itself, and the planner that
//! works from it. Pure: no I/O.
//!
//! A follower holds one copy per (source, namespace); caching them whole costs their full size
//! (a 1 KiB ConfigMap is ~2 KiB in memory) times sources × namespaces × followers. A
//! [`CopySummary`] is small whatever the copy's size (the copy cache packs it further): two
//! fingerprints (metadata and payload) and the few facts [`diff`](crate::plan::diff::diff) branches
//! on. It decides without the
//! object whenever the copy is *clean* — every label, annotation and payload key on it is one our
//! field manager applied — which is always the case unless someone edited the copy by hand. Only
//! then is the object read (one GET) and planned in full.
use crate::plan::diff::{Action, desired_copy, diff, retained};
use crate::plan::kinds::{ObjectView, Payload};
use crate::plan::source::{Settings, Source};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// SHA-256 over a canonical encoding (length-prefixed fields, maps in key order), its first
/// 128 bits kept: a summary is compared with what we would write, and an accidental match of
/// 128 bits is not a risk worth 16 more bytes per copy.
pub type Fingerprint = [u8; 16];

fn finish(h: Sha256) -> Fingerprint {
    let mut f = [0; 16];
    f.copy_from_slice(&h.finalize()[..16]);
    f
}

/// A managed copy as the planner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySummary {
    /// The copy's own name (equal to the source's, unless someone hand-made a look-alike with our
    /// origin labels).
    pub name: String,
    pub namespace: String,
    pub uid: Option<String>,
    pub deleting: bool,
    /// Every label, annotation and payload key present was applied by our field manager, so
    /// applying the desired copy alone makes the object equal to it (server-side apply removes
    /// what we applied before and omit now).
    pub clean: bool,
    pub immutable: bool,
    /// The copy carries the retention mark (kept and released when unwanted after its source
    /// is gone).
    pub retain: bool,
    /// `Some` for Secrets.
    pub secret_type: Option<String>,
    /// Labels and annotations.
    pub meta: Fingerprint,
    pub payload: Fingerprint,
}

/// Keys our field manager alone applied (no other manager shares them), read from managedFields
/// by `kinds.rs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedKeys {
    pub labels: BTreeSet<String>,
    pub annotations: BTreeSet<String>,
    /// `data` and `binaryData` keys.
    pub payload: BTreeSet<String>,
}

impl OwnedKeys {
    /// These keys less those `others` also own.
    pub fn without(mut self, others: &OwnedKeys) -> OwnedKeys {
        self.labels.retain(|k| !others.labels.contains(k));
        self.annotations.retain(|k| !others.annotations.contains(k));
        self.payload.retain(|k| !others.payload.contains(k));
        self
    }
}

fn put(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

fn put_map<V: AsRef<[u8]>>(h: &mut Sha256, m: &BTreeMap<String, V>) {
    h.update((m.len() as u64).to_le_bytes());
    for (k, v) in m {
        put(h, k.as_bytes());
        put(h, v.as_ref());
    }
}

pub fn meta_fingerprint(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Fingerprint {
    let mut h = Sha256::new();
    put_map(&mut h, labels);
    put_map(&mut h, annotations);
    finish(h)
}

pub fn payload_fingerprint(p: &Payload) -> Fingerprint {
    let mut h = Sha256::new();
    match p {
        Payload::ConfigMap {
            data,
            binary_data,
            immutable,
        } => {
            put(&mut h, b"ConfigMap");
            put_map(&mut h, data);
            h.update((binary_data.len() as u64).to_le_bytes());
            for (k, v) in binary_data {
                put(&mut h, k.as_bytes());
                put(&mut h, &v.0);
            }
            h.update([u8::from(*immutable)]);
        }
        Payload::Secret {
            type_,
            data,
            immutable,
        } => {
            put(&mut h, b"Secret");
            put(&mut h, type_.as_bytes());
            h.update((data.len() as u64).to_le_bytes());
            for (k, v) in data {
                put(&mut h, k.as_bytes());
                put(&mut h, &v.0);
            }
            h.update([u8::from(*immutable)]);
        }
    }
    finish(h)
}

fn payload_keys(p: &Payload) -> impl Iterator<Item = &String> {
    let (a, b) = match p {
        Payload::ConfigMap {
            data, binary_data, ..
        } => (Some(data.keys()), Some(binary_data.keys())),
        Payload::Secret { data, .. } => (None, Some(data.keys())),
    };
    a.into_iter().flatten().chain(b.into_iter().flatten())
}

/// The summary of a live copy; `owned` are the keys our field manager applied.
pub fn summarize(obs: &ObjectView, owned: &OwnedKeys) -> CopySummary {
    let clean = obs.labels.keys().all(|k| owned.labels.contains(k))
        && obs
            .annotations
            .keys()
            .all(|k| owned.annotations.contains(k))
        && payload_keys(&obs.payload).all(|k| owned.payload.contains(k));
    let (immutable, secret_type) = match &obs.payload {
        Payload::ConfigMap { immutable, .. } => (*immutable, None),
        Payload::Secret {
            type_, immutable, ..
        } => (*immutable, Some(type_.clone())),
    };
    CopySummary {
        name: obs.name.clone(),
        namespace: obs.namespace.clone(),
        uid: obs.uid.clone(),
        deleting: obs.deleting,
        clean,
        immutable,
        retain: crate::plan::policy::copy_retained(&obs.annotations),
        secret_type,
        meta: meta_fingerprint(&obs.labels, &obs.annotations),
        payload: payload_fingerprint(&obs.payload),
    }
}

/// [`diff`] against a summary; `None` when only the object itself can tell (a copy edited by
/// hand that differs from the desired one: which keys to remove depends on its content).
pub fn diff_summary(desired: ObjectView, obs: &CopySummary) -> Option<Action> {
    let noop = |desired: ObjectView| Action::Noop {
        namespace: desired.namespace,
    };
    if obs.deleting {
        return Some(noop(desired));
    }
    let payload_same = obs.payload == payload_fingerprint(&desired.payload);
    let want_type = match &desired.payload {
        Payload::ConfigMap { .. } => None,
        Payload::Secret { type_, .. } => Some(type_.as_str()),
    };
    if obs.secret_type.as_deref() != want_type || (obs.immutable && !payload_same) {
        return Some(Action::Recreate {
            uid: obs.uid.clone(),
            desired,
        });
    }
    let meta_same = obs.meta == meta_fingerprint(&desired.labels, &desired.annotations);
    if payload_same && meta_same {
        return Some(noop(desired));
    }
    obs.clean.then(|| Action::Update {
        desired,
        uid: obs.uid.clone(),
        extra_keys: Vec::new(),
    })
}

/// What a wanted namespace without a managed copy in the cache costs before planning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Read it by name first (`status`: something unmanaged may be there, and a report must
    /// say so without writing).
    Read,
    /// Plan a create (the controller: the create is a POST, which the API server refuses with
    /// 409 when anything by that name is there; only then is it read and planned in full).
    Create,
}

/// Wanted namespaces whose object must be read before planning: those whose copy's summary
/// cannot decide, and (with [`Missing::Read`]) those with no managed copy in the cache.
pub fn needs_read(
    source: Option<&Source<'_>>,
    wanted: &BTreeSet<String>,
    copies: &[&CopySummary],
    s: &Settings,
    missing: Missing,
) -> BTreeSet<String> {
    let Some(src) = source else {
        return BTreeSet::new();
    };
    wanted
        .iter()
        .filter(|ns| match copies.iter().find(|c| &c.namespace == *ns) {
            None => missing == Missing::Read,
            Some(c) => diff_summary(desired_copy(src, ns, s), c).is_none(),
        })
        .cloned()
        .collect()
}

/// The actions for one source key in one target, from the copies' summaries and the objects
/// read by name (`read[ns]`: `None` = nothing there) for the namespaces [`needs_read`] named.
/// Equivalent to [`crate::plan::diff::plan_namespaces`] on the full objects.
pub fn plan_copies(
    source: Option<&Source<'_>>,
    wanted: &BTreeSet<String>,
    copies: &[&CopySummary],
    read: &BTreeMap<String, Option<ObjectView>>,
    s: &Settings,
) -> Vec<Action> {
    let mut actions = Vec::new();
    if let Some(src) = source {
        for ns in wanted {
            let desired = desired_copy(src, ns, s);
            let summary = copies.iter().find(|c| &c.namespace == ns);
            let action = match (read.get(ns), summary) {
                (Some(obj), _) => diff(desired, obj.as_ref(), s),
                (None, Some(c)) => match diff_summary(desired.clone(), c) {
                    Some(a) => a,
                    // Not read although undecidable (a caller bug): a forced apply is still
                    // safe on our own copy; keys added by hand stay until the next pass.
                    None => Action::Update {
                        desired,
                        uid: c.uid.clone(),
                        extra_keys: Vec::new(),
                    },
                },
                // Not read and not cached: creating is what the cache says; the create is a
                // POST, so an object that is there after all makes it fail (409), not merge.
                (None, None) => Action::Create(desired),
            };
            actions.push(action);
        }
    }
    for c in copies {
        if !wanted.contains(&c.namespace) && !c.deleting {
            let (namespace, uid) = (c.namespace.clone(), c.uid.clone());
            actions.push(match retained(source, c.retain) {
                true => Action::Release { namespace, uid },
                false => Action::Delete { namespace, uid },
            });
        }
    }
    actions
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "summary_tests.rs"]
pub(crate) mod tests;
