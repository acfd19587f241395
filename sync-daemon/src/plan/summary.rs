//! What the daemon remembers of a copy it made, instead of the copy itself, and the planner that
//! works from it. Pure: no I/O.
//!
//! A follower holds one copy per (source, namespace); caching them whole costs their full size
//! (a 1 KiB ConfigMap is ~2 KiB in memory) times sources × namespaces × followers. A
//! [`CopySummary`] is small whatever the copy's size (the copy cache packs it further), and it is
//! made from the copy's metadata alone, so copies are watched without their payload (a 1 MiB
//! Secret in every follower costs its watch a 1 MiB read buffer otherwise).
//!
//! How the payload is known without reading it: every copy we write carries the origin
//! annotation, which names the source's uid and resourceVersion, and the copy's managedFields
//! say who set each field. When our field manager alone owns the payload fields, the payload is
//! exactly what we applied for that source version with the keys we own — any other writer that
//! changes, adds or shares a payload field takes ownership of it, and one that removes a key takes
//! it out of our set. Such a copy is *trusted*; its payload identity (the origin annotation and
//! our key set) equals the desired copy's exactly when the payload is the same. The copy is
//! *clean* when, besides, every label and annotation on it is ours. The planner decides without
//! the object for every trusted copy, and for clean ones whatever changed; only a copy edited by
//! hand (or, when its payload changed, an immutable copy, or a Secret whose type the cache has not
//! learned yet: the type is not in the metadata) is read (one GET) and planned in full.
use crate::plan::annotations::ORIGIN;
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
    /// The copy's resourceVersion as a number (0 when it is not one).
    pub rv: u64,
    pub deleting: bool,
    /// Every label, annotation and payload key present was applied by our field manager (and the
    /// payload is trusted), so applying the desired copy alone makes the object equal to it
    /// (server-side apply removes what we applied before and omit now).
    pub clean: bool,
    /// Our field manager set `immutable` (only ever to `true`).
    pub immutable: bool,
    /// The copy carries the retention mark (kept and released when unwanted after its source
    /// is gone).
    pub retain: bool,
    /// A Secret copy's type, once known: from our write or a read of it (the metadata a watch
    /// delivers does not carry it; a Secret's type never changes, so it is kept for the copy's
    /// uid). `None` for a ConfigMap, or when not known yet.
    pub secret_type: Option<String>,
    /// Labels and annotations.
    pub meta: Fingerprint,
    /// The payload's identity ([`payload_identity`]) when the payload is trusted; `None` when
    /// another manager owns a payload field (the copy must be read to know its payload).
    pub payload: Option<Fingerprint>,
}

/// A copy's metadata as [`summarize`] reads it.
#[derive(Debug, Clone, Copy)]
pub struct CopyMeta<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: Option<&'a str>,
    pub resource_version: Option<&'a str>,
    pub deleting: bool,
    pub labels: &'a BTreeMap<String, String>,
    pub annotations: &'a BTreeMap<String, String>,
}

/// Who owns a copy's fields, from its managedFields (`objects.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    /// Keys our field manager owns and no other manager shares.
    pub ours: OwnedKeys,
    /// Another manager owns a field outside `metadata` (a payload key, `type`, `immutable`):
    /// the payload may not be what we applied.
    pub foreign_payload: bool,
    /// Our field manager owns `immutable`.
    pub immutable: bool,
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

/// What identifies a trusted copy's payload: the origin annotation (source uid and
/// resourceVersion; the payload policy is part of the source) and the payload keys. Computed the
/// same way for the desired copy, whose annotation names the source as it is now.
pub fn payload_identity<'a>(
    origin: Option<&str>,
    keys: impl Iterator<Item = &'a String>,
) -> Fingerprint {
    let mut h = Sha256::new();
    put(&mut h, origin.unwrap_or_default().as_bytes());
    let keys: BTreeSet<&String> = keys.collect();
    h.update((keys.len() as u64).to_le_bytes());
    for k in keys {
        put(&mut h, k.as_bytes());
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

/// The payload identity of `desired` when the copy `obs`, read whole, has exactly its payload
/// and names the same source version: what the summary of a copy whose payload another manager
/// shares (a copy kubed made and we took over, say) may then carry until the copy changes, so
/// later passes decide without reading it again.
pub fn verified_identity(obs: &ObjectView, desired: &ObjectView) -> Option<Fingerprint> {
    let origin = desired.annotations.get(ORIGIN)?;
    (obs.annotations.get(ORIGIN) == Some(origin) && obs.payload == desired.payload)
        .then(|| payload_identity(Some(origin), payload_keys(&desired.payload)))
}

/// The summary of a live copy from its metadata and field ownership.
pub fn summarize(m: CopyMeta<'_>, own: &Ownership) -> CopySummary {
    let origin = m.annotations.get(ORIGIN).map(String::as_str);
    // Without our ownership of the origin annotation (managedFields wiped or never tracked),
    // nothing says what we applied.
    let trusted = !own.foreign_payload && own.ours.annotations.contains(ORIGIN);
    let clean = trusted
        && m.labels.keys().all(|k| own.ours.labels.contains(k))
        && m.annotations
            .keys()
            .all(|k| own.ours.annotations.contains(k));
    CopySummary {
        name: m.name.to_string(),
        namespace: m.namespace.to_string(),
        uid: m.uid.map(String::from),
        rv: (m.resource_version)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0),
        deleting: m.deleting,
        clean,
        immutable: own.immutable,
        retain: crate::plan::policy::copy_retained(m.annotations),
        secret_type: None,
        meta: meta_fingerprint(m.labels, m.annotations),
        payload: trusted.then(|| payload_identity(origin, own.ours.payload.iter())),
    }
}

/// [`diff`] against a summary; `None` when only the object itself can tell (a copy edited by
/// hand that differs from the desired one: which keys to remove depends on its content).
pub fn diff_summary(desired: ObjectView, obs: &CopySummary) -> Option<Action> {
    if obs.deleting {
        return Some(Action::Noop {
            namespace: desired.namespace,
        });
    }
    let have = obs.payload?;
    let origin = desired.annotations.get(ORIGIN).map(String::as_str);
    let payload_same = have == payload_identity(origin, payload_keys(&desired.payload));
    if !payload_same {
        // What changed may need a re-create: an immutable copy's payload (only the object says
        // whether it changed), or a Secret's type (the payload policy can change it).
        if obs.immutable {
            return None;
        }
        if let Payload::Secret { type_, .. } = &desired.payload {
            match obs.secret_type.as_deref() {
                None => return None,
                Some(t) if t != type_ => {
                    return Some(Action::Recreate {
                        uid: obs.uid.clone(),
                        desired,
                    });
                }
                Some(_) => {}
            }
        }
    }
    let meta_same = obs.meta == meta_fingerprint(&desired.labels, &desired.annotations);
    if payload_same && meta_same {
        return Some(Action::Noop {
            namespace: desired.namespace,
        });
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
