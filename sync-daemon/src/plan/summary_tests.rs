//! The summary planner agrees with the full planner (`diff::diff`) wherever it decides, and
//! decides for every clean copy.
use super::*;
use crate::plan::annotations as ann;
use crate::plan::diff::plan_namespaces;
use crate::plan::diff::tests::{desired_of, map, settings};
use crate::plan::source::classify;
use crate::plan::wanted::{Target, wanted};
use k8s_openapi::ByteString;

fn source(data: &[(&str, &str)]) -> ObjectView {
    ObjectView {
        name: "app".into(),
        namespace: "prod".into(),
        uid: Some("src-uid".into()),
        resource_version: Some("7".into()),
        labels: map(&[("team", "a")]),
        annotations: map(&[(ann::SYNC_CONTEXTS, "f1"), ("note", "x")]),
        payload: Payload::ConfigMap {
            data: map(data),
            binary_data: BTreeMap::new(),
            immutable: false,
        },
        our_labels: BTreeSet::new(),
        our_annotations: BTreeSet::new(),
        deleting: false,
    }
}

/// Our copy of `src` in `ns` exactly as applied, and the keys our manager owns on it.
pub(crate) fn applied(src: &ObjectView, ns: &str) -> (ObjectView, OwnedKeys) {
    let mut c = desired_of(src, ns, &settings());
    c.uid = Some(format!("copy-{ns}"));
    c.our_labels = c.labels.keys().cloned().collect();
    c.our_annotations = c.annotations.keys().cloned().collect();
    let owned = OwnedKeys {
        labels: c.our_labels.clone(),
        annotations: c.our_annotations.clone(),
        payload: payload_keys(&c.payload).cloned().collect(),
    };
    (c, owned)
}

/// The summary of `obs` when `owned` are the keys our field manager applied: managedFields list
/// only the keys present, and a present payload key that is not ours is another manager's.
pub(crate) fn summary_of(obs: &ObjectView, owned: &OwnedKeys) -> CopySummary {
    let present: BTreeSet<String> = payload_keys(&obs.payload).cloned().collect();
    let own = Ownership {
        ours: OwnedKeys {
            payload: owned.payload.intersection(&present).cloned().collect(),
            ..owned.clone()
        },
        foreign_payload: !present.is_subset(&owned.payload),
        immutable: obs.payload.immutable(),
    };
    let meta = CopyMeta {
        name: &obs.name,
        namespace: &obs.namespace,
        uid: obs.uid.as_deref(),
        resource_version: obs.resource_version.as_deref(),
        deleting: obs.deleting,
        labels: &obs.labels,
        annotations: &obs.annotations,
    };
    CopySummary {
        // Known: the copy was written (or read) by us.
        secret_type: obs.payload.secret_type().map(String::from),
        ..summarize(meta, &own)
    }
}

fn full(src: &ObjectView, ns: &str, obs: &ObjectView) -> Action {
    diff(desired_of(src, ns, &settings()), Some(obs), &settings())
}

fn quick(src: &ObjectView, ns: &str, obs: &ObjectView, owned: &OwnedKeys) -> Option<Action> {
    diff_summary(desired_of(src, ns, &settings()), &summary_of(obs, owned))
}

/// `Update` compared without `extra_keys`: on a clean copy server-side apply removes the keys we
/// applied before and omit now, so the summary planner never needs to name them.
fn same_ignoring_extra_keys(a: &Action, b: &Action) -> bool {
    match (a, b) {
        (
            Action::Update {
                desired: x,
                uid: ux,
                ..
            },
            Action::Update {
                desired: y,
                uid: uy,
                ..
            },
        ) => x == y && ux == uy && ux.is_some(),
        _ => a == b,
    }
}

#[test]
fn clean_copies_are_decided_without_the_object() {
    let old = source(&[("v", "1"), ("gone", "z")]);
    let cases: Vec<(&str, ObjectView)> = vec![
        ("unchanged", old.clone()),
        ("value changed", source(&[("v", "2"), ("gone", "z")])),
        ("key dropped", source(&[("v", "1")])),
        ("label changed", {
            let mut s = old.clone();
            s.labels.insert("team".into(), "b".into());
            s
        }),
        ("annotation dropped", {
            let mut s = old.clone();
            s.annotations.remove("note");
            s
        }),
        ("made immutable", {
            let mut s = old.clone();
            if let Payload::ConfigMap { immutable, .. } = &mut s.payload {
                *immutable = true;
            }
            s
        }),
    ];
    let (copy, owned) = applied(&old, "team");
    for (what, mut now) in cases {
        // Every change of the source is a new resourceVersion.
        if what != "unchanged" {
            now.resource_version = Some("8".into());
        }
        let q = quick(&now, "team", &copy, &owned).unwrap_or_else(|| panic!("{what}: undecided"));
        let f = full(&now, "team", &copy);
        assert!(same_ignoring_extra_keys(&q, &f), "{what}: {q:?} vs {f:?}");
    }
}

#[test]
fn immutable_and_type_changes_are_read_and_recreated() {
    let src = source(&[("v", "1")]);
    let (mut copy, owned) = applied(&src, "team");
    if let Payload::ConfigMap { immutable, .. } = &mut copy.payload {
        *immutable = true;
    }
    let mut changed = source(&[("v", "2")]);
    changed.resource_version = Some("8".into());
    // The payload changed on an immutable copy: only the object says whether it differs.
    assert_eq!(quick(&changed, "team", &copy, &owned), None);
    assert!(matches!(
        full(&changed, "team", &copy),
        Action::Recreate { .. }
    ));
    // Unchanged: decided without it.
    assert!(matches!(
        quick(&src, "team", &copy, &owned),
        Some(Action::Noop { .. })
    ));
    let mut secret = src.clone();
    secret.payload = Payload::Secret {
        type_: "Opaque".into(),
        data: BTreeMap::from([("k".to_string(), ByteString(b"s".to_vec()))]),
        immutable: false,
    };
    let (scopy, sowned) = applied(&secret, "team");
    // Another type (the payload policy, or a new source): recreated.
    let mut tls = secret.clone();
    tls.resource_version = Some("9".into());
    if let Payload::Secret { type_, .. } = &mut tls.payload {
        *type_ = "kubernetes.io/tls".into();
    }
    let q = quick(&tls, "team", &scopy, &sowned).unwrap();
    assert_eq!(q, full(&tls, "team", &scopy));
    assert!(matches!(q, Action::Recreate { .. }));
    // The type not known yet (the watch carries metadata only): read.
    let unknown = CopySummary {
        secret_type: None,
        ..summary_of(&scopy, &sowned)
    };
    assert_eq!(
        diff_summary(desired_of(&tls, "team", &settings()), &unknown),
        None
    );
    // The same source with new data: an update, decided without the object.
    let mut renewed = secret.clone();
    renewed.resource_version = Some("9".into());
    if let Payload::Secret { data, .. } = &mut renewed.payload {
        data.insert("k".into(), ByteString(b"t".to_vec()));
    }
    let q = quick(&renewed, "team", &scopy, &sowned).unwrap();
    assert!(same_ignoring_extra_keys(
        &q,
        &full(&renewed, "team", &scopy)
    ));
    assert!(matches!(q, Action::Update { .. }));
}

#[test]
fn hand_edits_need_the_object_unless_equal() {
    let src = source(&[("v", "1")]);
    let (copy, owned) = applied(&src, "team");
    // A label added by hand: not ours, so the copy is not clean.
    let mut edited = copy.clone();
    edited.labels.insert("hand".into(), "made".into());
    assert_eq!(quick(&src, "team", &edited, &owned), None);
    // A data key added by hand.
    let mut added = copy.clone();
    if let Payload::ConfigMap { data, .. } = &mut added.payload {
        data.insert("extra".into(), "x".into());
    }
    assert_eq!(quick(&src, "team", &added, &owned), None);
    assert!(matches!(
        full(&src, "team", &added),
        Action::Update { ref extra_keys, .. } if extra_keys == &vec![("data", "extra".to_string())]
    ));
    // A value of ours changed by hand (ownership moves to the editor): the fingerprint differs
    // and the key is no longer ours alone.
    let mut drifted = copy.clone();
    if let Payload::ConfigMap { data, .. } = &mut drifted.payload {
        data.insert("v".into(), "hand".into());
    }
    let mut not_ours = owned.clone();
    not_ours.payload.remove("v");
    assert_eq!(quick(&src, "team", &drifted, &not_ours), None);
    // A key of ours deleted by hand: still clean, and an apply puts it back.
    let mut deleted = copy.clone();
    if let Payload::ConfigMap { data, .. } = &mut deleted.payload {
        data.clear();
    }
    let q = quick(&src, "team", &deleted, &owned).unwrap();
    assert!(same_ignoring_extra_keys(&q, &full(&src, "team", &deleted)));
    // Equal content decides Noop even when not clean.
    let mut shared = owned.clone();
    shared.labels.clear();
    assert!(matches!(
        quick(&src, "team", &copy, &shared),
        Some(Action::Noop { .. })
    ));
}

#[test]
fn fingerprints_separate_what_diff_separates() {
    let keys = |v: &[&str]| v.iter().map(|k| k.to_string()).collect::<Vec<_>>();
    let id = |o: &str, k: &[&str]| payload_identity(Some(o), keys(k).iter());
    // Moving a character between the annotation and a key, or between keys, must not collide.
    assert_ne!(id("{\"a\":1}", &["v"]), id("{\"a\":1}v", &[]));
    assert_ne!(id("o", &["ab"]), id("o", &["a", "b"]));
    assert_eq!(
        id("o", &["a", "b"]),
        id("o", &["b", "a"]),
        "a set, not a list"
    );
    assert_ne!(
        meta_fingerprint(&map(&[("a", "b")]), &BTreeMap::new()),
        meta_fingerprint(&BTreeMap::new(), &map(&[("a", "b")]))
    );
}

/// A copy whose payload another manager shares (kubed's copy, taken over): read once, and if it
/// has the desired payload, its verified identity decides later passes without the object.
#[test]
fn a_verified_shared_copy_is_decided_until_it_changes() {
    let src = source(&[("v", "1")]);
    let (copy, owned) = applied(&src, "team");
    let mut shared = owned.clone();
    shared.payload.clear(); // kubed's Update entry still owns `v`
    let untrusted = summary_of(&copy, &shared);
    assert_eq!(untrusted.payload, None);
    assert_eq!(quick(&src, "team", &copy, &shared), None, "read it");
    let desired = desired_of(&src, "team", &settings());
    let id = verified_identity(&copy, &desired).expect("same payload, same source version");
    let verified = CopySummary {
        payload: Some(id),
        ..untrusted
    };
    assert!(matches!(
        diff_summary(desired, &verified),
        Some(Action::Noop { .. })
    ));
    // A new source version is not decided for a copy that is not clean: read again.
    let mut changed = source(&[("v", "2")]);
    changed.resource_version = Some("8".into());
    assert_eq!(
        diff_summary(desired_of(&changed, "team", &settings()), &verified),
        None
    );
    // Another payload, or a copy of another source version, proves nothing.
    let mut edited = copy.clone();
    if let Payload::ConfigMap { data, .. } = &mut edited.payload {
        data.insert("v".into(), "hand".into());
    }
    let desired = desired_of(&src, "team", &settings());
    assert_eq!(verified_identity(&edited, &desired), None);
    assert_eq!(
        verified_identity(&copy, &desired_of(&changed, "team", &settings())),
        None
    );
}

/// A copy whose managedFields no longer say our manager applied the origin annotation (wiped,
/// or never tracked) is not trusted: read, whatever it looks like.
#[test]
fn untracked_copies_are_read() {
    let src = source(&[("v", "1")]);
    let (copy, owned) = applied(&src, "team");
    let none = OwnedKeys::default();
    assert_eq!(quick(&src, "team", &copy, &none), None);
    let mut no_origin = owned.clone();
    no_origin.annotations.remove(ann::ORIGIN);
    assert_eq!(quick(&src, "team", &copy, &no_origin), None);
}

#[test]
fn plan_copies_matches_the_full_planner() {
    let s = settings();
    let mut src = source(&[("v", "2")]);
    src.resource_version = Some("8".into());
    src.annotations
        .insert(ann::SYNC_CONTEXTS.into(), "f1/team,f1/other".into());
    let classified = classify(&src, &s).expect("source");
    let target = Target::Context {
        context: "f1",
        namespace: None,
        aliases: &[],
        namespaces: &[],
    };
    let wanted = wanted(&classified, &target);
    let old = source(&[("v", "1")]);
    let (in_team, team_owned) = applied(&old, "team");
    let (stale, stale_owned) = applied(&old, "stale");
    let summaries = [
        summary_of(&in_team, &team_owned),
        summary_of(&stale, &stale_owned),
    ];
    let refs: Vec<&CopySummary> = summaries.iter().collect();
    let to_read = needs_read(Some(&classified), &wanted, &refs, &s, Missing::Read);
    assert_eq!(to_read, BTreeSet::from(["other".to_string()]));
    let read = BTreeMap::from([("other".to_string(), None)]);
    let quick = plan_copies(Some(&classified), &wanted, &refs, &read, &s);
    let full = plan_namespaces(
        Some(&classified),
        &wanted,
        &[&in_team, &stale],
        &BTreeMap::new(),
        &s,
    );
    assert_eq!(quick.len(), full.len());
    for (q, f) in quick.iter().zip(&full) {
        assert!(same_ignoring_extra_keys(q, f), "{q:?} vs {f:?}");
    }
    // Source gone: every copy is deleted, nothing is read.
    assert!(needs_read(None, &wanted, &refs, &s, Missing::Read).is_empty());
    // The controller creates without reading: only the undecidable copies would be read.
    assert!(needs_read(Some(&classified), &wanted, &refs, &s, Missing::Create).is_empty());
    let created = plan_copies(Some(&classified), &wanted, &refs, &BTreeMap::new(), &s);
    assert!(
        created
            .iter()
            .any(|a| matches!(a, Action::Create(d) if d.namespace == "other"))
    );
    let gone = plan_copies(None, &BTreeSet::new(), &refs, &BTreeMap::new(), &s);
    assert_eq!(gone.len(), 2);
    assert!(gone.iter().all(|a| matches!(a, Action::Delete { .. })));
}
