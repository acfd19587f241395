//! Table-driven tests of the pure planner (kept apart so diff.rs stays readable).
use super::*;
use crate::plan::annotations as ann;
use crate::plan::kinds::{NamespaceView, Payload};
use crate::plan::source::{NotSource, classify};
use crate::plan::wanted::{Target, wanted};
use k8s_openapi::ByteString;

pub(crate) fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(crate) fn settings() -> Settings {
    Settings {
        previous_cluster_names: Vec::new(),
        cluster_name: "mc-mgmt".into(),
        skipped_secret_types: ["kubernetes.io/service-account-token", "helm.sh/release.v1"]
            .map(String::from)
            .into(),
        adopt_existing: false,
        metadata: Default::default(),
        follower_scope: Default::default(),
        local_scope: Default::default(),
    }
}

/// [`desired_copy`] of an object taken as a source whatever its annotations.
pub(crate) fn desired_of(src: &ObjectView, ns: &str, s: &Settings) -> ObjectView {
    let (spec, errors) = ann::parse(&src.annotations);
    let source = Source {
        object: src,
        spec,
        errors,
    };
    desired_copy(&source, ns, s)
}

fn cm(ns: &str, name: &str, ann: &[(&str, &str)], data: &[(&str, &str)]) -> ObjectView {
    ObjectView {
        name: name.into(),
        namespace: ns.into(),
        uid: Some("uid-1".into()),
        resource_version: Some("10".into()),
        labels: map(&[("app", "demo")]),
        annotations: map(ann),
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

fn secret(type_: &str) -> ObjectView {
    let mut o = cm("prod", "tls", &[(ann::SYNC_CONTEXTS, "b")], &[]);
    o.payload = Payload::Secret {
        type_: type_.into(),
        data: [("tls.crt".to_string(), ByteString(b"x".to_vec()))].into(),
        immutable: false,
    };
    o
}

fn ns(name: &str, labels: &[(&str, &str)]) -> NamespaceView {
    NamespaceView {
        name: name.into(),
        labels: map(labels),
        terminating: false,
    }
}

/// A managed copy of `src` in `ns`, as the server would return it after our apply.
fn copy_of(src: &ObjectView, ns: &str) -> ObjectView {
    let mut c = desired_of(src, ns, &settings());
    c.uid = Some(format!("copy-{ns}"));
    c.our_labels = c.labels.keys().cloned().collect();
    c.our_annotations = c.annotations.keys().cloned().collect();
    c
}

#[test]
fn classify_sources() {
    let s = settings();
    let plain = cm("prod", "a", &[], &[]);
    assert_eq!(classify(&plain, &s).err(), Some(NotSource::NoSyncKeys));
    let mut own = cm("prod", "a", &[(ann::SYNC, "")], &[]);
    own.labels
        .insert(ann::ORIGIN_CLUSTER.into(), "mc-mgmt".into());
    assert_eq!(classify(&own, &s).err(), Some(NotSource::OwnCopy));
    // A copy made by another cluster, annotated locally: a source (the seed's fan-out).
    let mut foreign = own.clone();
    foreign
        .labels
        .insert(ann::ORIGIN_CLUSTER.into(), "mc-other".into());
    assert!(classify(&foreign, &s).is_ok());
    let sa = secret("kubernetes.io/service-account-token");
    assert!(matches!(
        classify(&sa, &s),
        Err(NotSource::SkippedSecretType(_))
    ));
    let mut include = s.clone();
    include.skipped_secret_types.clear();
    assert!(classify(&sa, &include).is_ok());
    let long = cm("prod", &"x".repeat(64), &[(ann::SYNC, "")], &[]);
    assert_eq!(classify(&long, &s).err(), Some(NotSource::NameTooLong));
    let mut gone = cm("prod", "a", &[(ann::SYNC, "")], &[]);
    gone.deleting = true;
    assert_eq!(classify(&gone, &s).err(), Some(NotSource::Deleting));
    let bad = cm("prod", "a", &[(ann::SYNC, "a in (")], &[]);
    let src = classify(&bad, &s).expect("still a source");
    assert_eq!(src.errors.len(), 1);
    assert_eq!(src.spec.intra, None);
}

#[test]
fn local_targets() {
    let s = settings();
    let nss = [
        ns("prod", &[("env", "prod")]),
        ns("a", &[("env", "prod")]),
        ns("b", &[("env", "dev")]),
        ns("c", &[]),
        NamespaceView {
            terminating: true,
            ..ns("d", &[("env", "prod")])
        },
    ];
    let table: &[(&str, &[&str])] = &[
        ("", &["a", "b", "c"]),
        ("true", &["a", "b", "c"]),
        ("env=prod", &["a"]),
        ("env", &["a", "b"]),
        ("!env", &["c"]),
        ("env notin (prod)", &["b", "c"]),
        ("env in (prod,dev)", &["a", "b"]),
    ];
    for (sel, want) in table {
        let o = cm("prod", "x", &[(ann::SYNC, sel)], &[]);
        let src = classify(&o, &s).expect("source");
        let got = wanted(&src, &Target::Local { namespaces: &nss });
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "{sel}");
    }
    // contexts only: no local copies
    let o = cm("prod", "x", &[(ann::SYNC_CONTEXTS, "b")], &[]);
    let src = classify(&o, &s).expect("source");
    assert!(wanted(&src, &Target::Local { namespaces: &nss }).is_empty());
}

#[test]
fn context_targets() {
    let s = settings();
    let o = cm(
        "prod",
        "x",
        &[(ann::SYNC_CONTEXTS, "b, c/one,c/two, d")],
        &[],
    );
    let src = classify(&o, &s).expect("source");
    let table: &[(&str, Option<&str>, &[&str])] = &[
        ("b", None, &["prod"]),
        ("b", Some("ctxns"), &["ctxns"]),
        ("c", Some("ctxns"), &["one", "two"]),
        ("d", None, &["prod"]),
        ("e", None, &[]),
    ];
    for (ctx, ctx_ns, want) in table {
        let got = wanted(
            &src,
            &Target::Context {
                context: ctx,
                namespace: *ctx_ns,
                aliases: &[],
                namespaces: &[],
            },
        );
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "{ctx}");
    }
}

#[test]
fn copy_contents() {
    let s = settings();
    let mut o = cm(
        "prod",
        "demo",
        &[
            (ann::SYNC, ""),
            (ann::SYNC_CONTEXTS, "b"),
            (ann::LAST_APPLIED, "{}"),
            ("team", "x"),
        ],
        &[("k", "v")],
    );
    o.labels.insert(ann::ORIGIN_CLUSTER.into(), "other".into()); // a fan-out source
    let c = desired_of(&o, "dev", &s);
    assert_eq!(c.namespace, "dev");
    assert_eq!(c.name, "demo");
    assert_eq!(c.payload, o.payload);
    assert_eq!(c.uid, None);
    assert_eq!(c.resource_version, None);
    assert_eq!(
        c.labels,
        map(&[
            ("app", "demo"),
            (ann::ORIGIN_CLUSTER, "mc-mgmt"),
            (ann::ORIGIN_NAME, "demo"),
            (ann::ORIGIN_NAMESPACE, "prod"),
        ])
    );
    assert_eq!(
        c.annotations.keys().collect::<Vec<_>>(),
        vec![ann::ORIGIN, "team"]
    );
    assert!(c.annotations[ann::ORIGIN].contains(r#""uid":"uid-1""#));
}

#[test]
fn diff_cases() {
    let s = settings();
    let src = cm("prod", "demo", &[(ann::SYNC, "")], &[("k", "v")]);
    let want = || desired_of(&src, "dev", &s);
    let same = copy_of(&src, "dev");

    // (name, observed, expected action discriminant)
    let mut target_only = same.clone();
    target_only.annotations.insert(ann::SYNC.into(), "".into()); // follower-local fan-out annotation
    target_only.labels.insert("local".into(), "yes".into());

    let mut edited = same.clone();
    edited.payload = Payload::ConfigMap {
        data: map(&[("k", "hand"), ("extra", "x")]),
        binary_data: BTreeMap::new(),
        immutable: false,
    };

    let mut label_dropped_at_source = same.clone();
    label_dropped_at_source
        .labels
        .insert("old".into(), "1".into());
    label_dropped_at_source.our_labels.insert("old".into());

    let mut immutable = edited.clone();
    immutable.payload = Payload::ConfigMap {
        data: map(&[("k", "old")]),
        binary_data: BTreeMap::new(),
        immutable: true,
    };
    let mut immutable_same = same.clone();
    immutable_same.payload = src.payload.clone();

    let mut unmanaged = cm("dev", "demo", &[], &[("k", "mine")]);
    unmanaged.labels.clear();
    let mut foreign = same.clone();
    foreign
        .labels
        .insert(ann::ORIGIN_CLUSTER.into(), "mc-other".into());

    let table: Vec<(&str, Option<ObjectView>, &str)> = vec![
        ("absent", None, "create"),
        ("identical", Some(same.clone()), "noop"),
        ("target-only keys kept", Some(target_only), "noop"),
        ("hand edit", Some(edited.clone()), "update"),
        (
            "label dropped at source",
            Some(label_dropped_at_source),
            "update",
        ),
        ("immutable + changed", Some(immutable), "recreate"),
        ("immutable + same", Some(immutable_same), "noop"),
        ("unmanaged", Some(unmanaged.clone()), "conflict"),
        ("other cluster's copy", Some(foreign.clone()), "conflict"),
    ];
    for (name, obs, want_kind) in table {
        let got = diff(want(), obs.as_ref(), &s);
        let kind = match &got {
            Action::Create(_) => "create",
            Action::Update { .. } => "update",
            Action::Recreate { .. } => "recreate",
            Action::Delete { .. } => "delete",
            Action::Release { .. } => "release",
            Action::Conflict { .. } => "conflict",
            Action::Noop { .. } => "noop",
            Action::TakeOver { .. } => "take over",
        };
        assert_eq!(kind, want_kind, "{name}: {got:?}");
    }
    match diff(want(), Some(&edited), &s) {
        Action::Update { extra_keys, .. } => {
            assert_eq!(extra_keys, vec![("data", "extra".to_string())])
        }
        other => panic!("{other:?}"),
    }
    let adopt = Settings {
        adopt_existing: true,
        ..s.clone()
    };
    assert!(matches!(
        diff(want(), Some(&unmanaged), &adopt),
        Action::Update { .. }
    ));
    // A copy made under a previous cluster name, of this very source: taken over; of another
    // source (other origin name), or by a cluster not named: still a conflict.
    let migrating = Settings {
        previous_cluster_names: vec!["unicorn".into(), "mc-other".into()],
        ..s.clone()
    };
    match diff(want(), Some(&foreign), &migrating) {
        Action::TakeOver { from, uid, .. } => {
            assert_eq!(from, "mc-other");
            assert_eq!(uid, foreign.uid);
        }
        other => panic!("{other:?}"),
    }
    let mut other_source = foreign.clone();
    other_source
        .labels
        .insert(ann::ORIGIN_NAME.into(), "not-demo".into());
    assert!(matches!(
        diff(want(), Some(&other_source), &migrating),
        Action::Conflict { .. }
    ));
    let only_unicorn = Settings {
        previous_cluster_names: vec!["unicorn".into()],
        ..s.clone()
    };
    assert!(matches!(
        diff(want(), Some(&foreign), &only_unicorn),
        Action::Conflict { .. }
    ));
    assert!(matches!(
        diff(want(), Some(&unmanaged), &migrating),
        Action::Conflict { .. }
    ));
}

#[test]
fn secret_type_change_recreates() {
    let s = settings();
    let src = secret("kubernetes.io/tls");
    let mut old = copy_of(&src, "prod");
    old.payload = Payload::Secret {
        type_: "Opaque".into(),
        data: BTreeMap::new(),
        immutable: false,
    };
    assert!(matches!(
        diff(desired_of(&src, "prod", &s), Some(&old), &s),
        Action::Recreate { .. }
    ));
}

#[test]
fn plan_creates_updates_and_deletes() {
    let s = settings();
    let nss = [
        ns("prod", &[]),
        ns("a", &[("x", "1")]),
        ns("b", &[]),
        ns("c", &[("x", "1")]),
    ];
    let src_obj = cm("prod", "demo", &[(ann::SYNC, "x=1")], &[("k", "v")]);
    let src = classify(&src_obj, &s).expect("source");
    let in_a = copy_of(&src_obj, "a");
    let in_b = copy_of(&src_obj, "b"); // namespace b no longer matches
    let others = BTreeMap::new();
    let actions = plan(
        Some(&src),
        &Target::Local { namespaces: &nss },
        &[&in_a, &in_b],
        &others,
        &s,
    );
    assert_eq!(actions.len(), 3, "{actions:#?}");
    assert!(matches!(&actions[0], Action::Noop { namespace } if namespace == "a"));
    assert!(matches!(&actions[1], Action::Create(c) if c.namespace == "c"));
    assert!(
        matches!(&actions[2], Action::Delete { namespace, uid } if namespace == "b" && uid.as_deref() == Some("copy-b"))
    );
    // Source gone: every managed copy goes, nothing else is touched.
    let gone = plan(
        None,
        &Target::Local { namespaces: &nss },
        &[&in_a],
        &others,
        &s,
    );
    assert_eq!(
        gone,
        vec![Action::Delete {
            namespace: "a".into(),
            uid: Some("copy-a".into())
        }]
    );
    // An unmanaged object found by name is a conflict, never a write.
    let unmanaged = BTreeMap::from([("c".to_string(), cm("c", "demo", &[], &[]))]);
    let mut un = unmanaged["c"].clone();
    un.labels.clear();
    let others = BTreeMap::from([("c".to_string(), un)]);
    let actions = plan(
        Some(&src),
        &Target::Local { namespaces: &nss },
        &[&in_a],
        &others,
        &s,
    );
    assert!(matches!(&actions[1], Action::Conflict { namespace, .. } if namespace == "c"));
}

#[test]
fn plan_over_a_union_of_namespaces() {
    // One follower reached by two contexts: copies wanted by either are kept, not orphaned.
    let s = settings();
    let src_obj = cm(
        "prod",
        "demo",
        &[(ann::SYNC_CONTEXTS, "b,c")],
        &[("k", "v")],
    );
    let src = classify(&src_obj, &s).expect("source");
    let aliases = [("c".to_string(), Some("two".to_string()))];
    let target = Target::Context {
        context: "b",
        namespace: Some("one"),
        aliases: &aliases,
        namespaces: &[],
    };
    let wanted = wanted(&src, &target);
    assert_eq!(wanted, BTreeSet::from(["one".into(), "two".into()]));
    assert_eq!(
        crate::plan::wanted::wanted_through(&src, &target, "two"),
        Some("c")
    );
    assert_eq!(
        crate::plan::wanted::wanted_through(&src, &target, "one"),
        Some("b")
    );
    assert_eq!(
        crate::plan::wanted::wanted_through(&src, &target, "x"),
        None
    );
    let in_one = copy_of(&src_obj, "one");
    let in_two = copy_of(&src_obj, "two");
    let actions = plan_namespaces(
        Some(&src),
        &wanted,
        &[&in_one, &in_two],
        &BTreeMap::new(),
        &s,
    );
    assert!(
        actions.iter().all(|a| matches!(a, Action::Noop { .. })),
        "{actions:?}"
    );
}
