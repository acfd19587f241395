//! Table tests of our own policies: parsing, key selection, the metadata filter, and what the
//! planner makes of them (wanted namespaces, the desired copy, release instead of delete) in
//! both planners.
use super::*;
use crate::plan::annotations::{self as ann, AnnotationError, IntraSync};
use crate::plan::diff::tests::{desired_of, map, settings};
use crate::plan::diff::{Action, plan_namespaces};
use crate::plan::kinds::{NamespaceView, ObjectView};
use crate::plan::source::classify;
use crate::plan::summary::plan_copies;
use crate::plan::summary::tests::{applied, summary_of};
use crate::plan::wanted::{Target, wanted};
use k8s_openapi::ByteString;

fn source(annotations: &[(&str, &str)]) -> ObjectView {
    ObjectView {
        name: "cert".into(),
        namespace: "prod".into(),
        uid: Some("src-uid".into()),
        resource_version: Some("3".into()),
        labels: map(&[("team", "a")]),
        annotations: map(annotations),
        payload: Payload::Secret {
            type_: "kubernetes.io/tls".into(),
            data: [("tls.crt", "C"), ("tls.key", "K"), ("ca.crt", "A")]
                .iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
            immutable: false,
        },
        our_labels: BTreeSet::new(),
        our_annotations: BTreeSet::new(),
        deleting: false,
    }
}

fn secret_keys(p: &Payload) -> (String, Vec<String>) {
    match p {
        Payload::Secret { type_, data, .. } => (type_.clone(), data.keys().cloned().collect()),
        Payload::ConfigMap { .. } => panic!("not a Secret"),
    }
}

#[test]
fn policy_annotations_parse_and_fail_safe() {
    let (p, e) = parse(&map(&[
        (KEYS, " ca.crt, tls.crt ,"),
        (EXCLUDE_NAMESPACES, "a,b"),
        (ON_DELETE, "retain"),
    ]));
    assert!(e.is_empty(), "{e:?}");
    assert_eq!(
        p.keys,
        Some(BTreeSet::from(["ca.crt".into(), "tls.crt".into()]))
    );
    assert_eq!(p.exclude, BTreeSet::from(["a".into(), "b".into()]));
    assert_eq!(p.on_delete, OnDelete::Retain);
    assert_eq!(
        p.describe(),
        "keys=ca.crt,tls.crt;exclude=a,b;on-delete=retain"
    );
    assert_eq!(Policy::default().describe(), "-");

    // A bad key copies fewer keys, never more; no key at all copies none.
    let (p, e) = parse(&map(&[(KEYS, "ca.crt,bad key")]));
    assert_eq!(p.keys, Some(BTreeSet::from(["ca.crt".into()])));
    assert_eq!(e, vec![PolicyError::BadKey("bad key".into())]);
    let (p, e) = parse(&map(&[(KEYS, " , ")]));
    assert_eq!(p.keys, Some(BTreeSet::new()));
    assert_eq!(e, vec![PolicyError::NoKeys]);
    // An unknown on-delete value keeps the copies.
    let (p, e) = parse(&map(&[(ON_DELETE, "retian")]));
    assert_eq!(p.on_delete, OnDelete::Retain);
    assert_eq!(e, vec![PolicyError::BadOnDelete("retian".into())]);
    assert!(copy_retained(&map(&[(ON_DELETE, "retian")])));
    assert!(!copy_retained(&map(&[(ON_DELETE, "delete")])));
    assert!(!copy_retained(&map(&[])));
    let (_, e) = parse(&map(&[(EXCLUDE_NAMESPACES, "ok,Not_A_Namespace")]));
    assert_eq!(e, vec![PolicyError::BadNamespace("Not_A_Namespace".into())]);
    // Reported on the source like kubed's keys, with their own category.
    let (spec, errors) = ann::parse(&map(&[(ann::SYNC, ""), (ON_DELETE, "x")]));
    assert_eq!(spec.policy.on_delete, OnDelete::Retain);
    assert!(matches!(errors[..], [AnnotationError::Policy(_)]));
    assert_eq!(errors[0].category(), "bad_policy");
}

#[test]
fn chosen_keys_and_the_secret_type() {
    let src = source(&[]);
    let pick = |keys: &[&str]| Policy {
        keys: Some(keys.iter().map(|k| k.to_string()).collect()),
        ..Default::default()
    };
    // Both TLS halves: still a TLS Secret.
    assert_eq!(
        secret_keys(&pick(&["tls.crt", "tls.key"]).payload(&src.payload)),
        (
            "kubernetes.io/tls".into(),
            vec!["tls.crt".into(), "tls.key".into()]
        )
    );
    // The CA alone: Opaque, since the tls type requires both halves.
    assert_eq!(
        secret_keys(&pick(&["ca.crt", "absent"]).payload(&src.payload)),
        ("Opaque".into(), vec!["ca.crt".into()])
    );
    assert_eq!(Policy::default().payload(&src.payload), src.payload);
    for (type_, keys, complete) in [
        (
            "kubernetes.io/dockerconfigjson",
            &[".dockerconfigjson"][..],
            true,
        ),
        ("kubernetes.io/dockerconfigjson", &[][..], false),
        ("kubernetes.io/ssh-auth", &["ssh-publickey"][..], false),
        ("kubernetes.io/basic-auth", &["password"][..], true),
        ("kubernetes.io/basic-auth", &["other"][..], false),
        ("example.com/custom", &[][..], true),
    ] {
        let data: BTreeMap<String, ()> = keys.iter().map(|k| (k.to_string(), ())).collect();
        assert_eq!(type_complete(type_, &data), complete, "{type_} {keys:?}");
    }
    // ConfigMaps: data and binaryData alike.
    let cm = Payload::ConfigMap {
        data: map(&[("a", "1"), ("b", "2")]),
        binary_data: [("bin".to_string(), ByteString(vec![0, 1]))].into(),
        immutable: true,
    };
    assert_eq!(
        pick(&["b", "bin"]).payload(&cm),
        Payload::ConfigMap {
            data: map(&[("b", "2")]),
            binary_data: [("bin".to_string(), ByteString(vec![0, 1]))].into(),
            immutable: true,
        }
    );
}

#[test]
fn the_metadata_filter() {
    for p in DEFAULT_STRIP {
        assert!(Pattern::parse(p).is_ok(), "{p}");
    }
    let f = MetadataFilter::default();
    for (key, value, stripped) in [
        (
            "argocd.argoproj.io/tracking-id",
            "app:/Secret:prod/cert",
            true,
        ),
        ("argocd.argoproj.io/instance", "app", true),
        ("app.kubernetes.io/instance", "app", true),
        ("kustomize.toolkit.fluxcd.io/name", "apps", true),
        ("helm.toolkit.fluxcd.io/namespace", "flux", true),
        ("toolkit.fluxcd.io/name", "x", false),
        ("meta.helm.sh/release-name", "r", true),
        ("app.kubernetes.io/managed-by", "Helm", true),
        ("app.kubernetes.io/managed-by", "kustomize", false),
        ("app.kubernetes.io/name", "web", false),
        ("team", "a", false),
    ] {
        assert_eq!(f.strips(key, value), stripped, "{key}={value}");
    }
    let f = MetadataFilter::new(
        &["example.com/".into(), "owner=me".into()],
        &[
            "app.kubernetes.io/instance".into(),
            "*.toolkit.fluxcd.io/".into(),
        ],
    )
    .unwrap();
    assert!(f.strips("example.com/x", ""));
    assert!(f.strips("owner", "me"));
    assert!(!f.strips("owner", "you"));
    assert!(!f.strips("app.kubernetes.io/instance", "app"));
    assert!(!f.strips("kustomize.toolkit.fluxcd.io/name", "apps"));
    assert!(f.strips("argocd.argoproj.io/tracking-id", "t"));
    for bad in ["", "a b", "*.x", "*.x/y/", "a*b", "=v"] {
        assert!(MetadataFilter::new(&[bad.into()], &[]).is_err(), "{bad:?}");
    }
}

#[test]
fn the_desired_copy_follows_the_policy() {
    let mut src = source(&[
        (ann::SYNC_CONTEXTS, "f1"),
        (KEYS, "ca.crt"),
        (EXCLUDE_NAMESPACES, "x"),
        (ON_DELETE, "retain"),
        ("argocd.argoproj.io/tracking-id", "t"),
        ("meta.helm.sh/release-name", "r"),
        ("note", "kept"),
    ]);
    src.labels
        .insert("app.kubernetes.io/managed-by".into(), "Helm".into());
    src.labels
        .insert("kustomize.toolkit.fluxcd.io/name".into(), "apps".into());
    let c = desired_of(&src, "prod", &settings());
    assert_eq!(
        c.annotations.keys().map(String::as_str).collect::<Vec<_>>(),
        vec![ON_DELETE, ann::ORIGIN, "note"]
    );
    assert_eq!(c.annotations[ON_DELETE], "retain");
    assert_eq!(
        c.labels.keys().map(String::as_str).collect::<Vec<_>>(),
        vec![
            ann::ORIGIN_CLUSTER,
            ann::ORIGIN_NAME,
            ann::ORIGIN_NAMESPACE,
            "team"
        ]
    );
    assert_eq!(
        secret_keys(&c.payload),
        ("Opaque".into(), vec!["ca.crt".into()])
    );
    // --keep-metadata brings a stripped key back.
    let mut s = settings();
    s.metadata = MetadataFilter::new(&[], &["meta.helm.sh/".into()]).unwrap();
    assert!(
        desired_of(&src, "prod", &s)
            .annotations
            .contains_key("meta.helm.sh/release-name")
    );
}

fn ns(name: &str) -> NamespaceView {
    NamespaceView {
        name: name.into(),
        labels: map(&[("kubernetes.io/metadata.name", name)]),
        terminating: false,
    }
}

#[test]
fn excluded_and_system_namespaces() {
    let s = settings();
    let namespaces: Vec<NamespaceView> = [
        "prod",
        "a",
        "b",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "default",
    ]
    .into_iter()
    .map(ns)
    .collect();
    let target = Target::Local {
        namespaces: &namespaces,
    };
    let want = |annotations: &[(&str, &str)]| {
        let o = source(annotations);
        let src = classify(&o, &s).unwrap();
        wanted(&src, &target).into_iter().collect::<Vec<_>>()
    };
    assert_eq!(want(&[(ann::SYNC, "")]), vec!["a", "b", "default"]);
    assert_eq!(
        want(&[(ann::SYNC, ""), (EXCLUDE_NAMESPACES, "b,default")]),
        vec!["a"]
    );
    // A selector may pick a system namespace; exclusion still wins.
    let sel = "kubernetes.io/metadata.name in (kube-system,a)";
    assert_eq!(want(&[(ann::SYNC, sel)]), vec!["a", "kube-system"]);
    assert_eq!(
        want(&[(ann::SYNC, sel), (EXCLUDE_NAMESPACES, "kube-system")]),
        vec!["a"]
    );
    // Named contexts are explicit: exclusion is for selectors only.
    let ctx = Target::Context {
        context: "f1",
        namespace: None,
        aliases: &[],
        namespaces: &[],
    };
    let o = source(&[(ann::SYNC_CONTEXTS, "f1/b"), (EXCLUDE_NAMESPACES, "b")]);
    let src = classify(&o, &s).unwrap();
    assert_eq!(wanted(&src, &ctx), BTreeSet::from(["b".to_string()]));
}

#[test]
fn follower_namespaces_by_selector() {
    let s = settings();
    let team = |name: &str, t: &str| {
        let mut n = ns(name);
        n.labels.insert("team".into(), t.into());
        n
    };
    let mut gone = team("gone", "x");
    gone.terminating = true;
    let namespaces = vec![
        team("x1", "x"),
        team("x2", "x"),
        team("y1", "y"),
        ns("kube-system"),
        ns("default"),
        gone,
    ];
    let want = |annotations: &[(&str, &str)], aliases: &[(String, Option<String>)]| {
        let o = source(annotations);
        let src = classify(&o, &s).unwrap();
        let target = Target::Context {
            context: "f1",
            namespace: Some("dflt"),
            aliases,
            namespaces: &namespaces,
        };
        wanted(&src, &target).into_iter().collect::<Vec<_>>()
    };
    let by = |sel: &'static str| [(ann::SYNC_CONTEXTS, "f1"), (FOLLOWER_NAMESPACES, sel)];
    assert_eq!(want(&by("team=x"), &[]), vec!["x1", "x2"]);
    // `""`: every namespace but the system ones; exclusion applies.
    let mut all = by("").to_vec();
    all.push((EXCLUDE_NAMESPACES, "x2"));
    assert_eq!(want(&all, &[]), vec!["default", "x1", "y1"]);
    // An explicit `ctx/ns` item stays explicit; an alias of the same cluster picks likewise.
    let explicit = [
        (ann::SYNC_CONTEXTS, "f1/other,f2"),
        (FOLLOWER_NAMESPACES, "team=y"),
    ];
    let alias = [("f2".to_string(), None)];
    assert_eq!(want(&explicit, &alias), vec!["other", "y1"]);
    // Without the annotation: the context's namespace, as before.
    assert_eq!(want(&[(ann::SYNC_CONTEXTS, "f1")], &[]), vec!["dflt"]);
    // A bad selector picks nothing (and is reported).
    assert!(want(&by("team in (x"), &[]).is_empty());
    let (p, e) = parse(&map(&[(FOLLOWER_NAMESPACES, "team in (x")]));
    assert_eq!(p.follower_namespaces, Some(IntraSync::Nothing));
    assert!(matches!(e[..], [PolicyError::BadFollowerSelector(_)]));
    assert_eq!(p.describe(), "follower-namespaces=(invalid)");
}

#[test]
fn unwanted_copies_are_released_or_deleted_alike_in_both_planners() {
    let s = settings();
    let retaining = source(&[(ann::SYNC_CONTEXTS, "f1"), (ON_DELETE, "retain")]);
    let deleting = source(&[(ann::SYNC_CONTEXTS, "f1")]);
    let (kept_copy, owned) = applied(&retaining, "old");
    let (plain_copy, _) = applied(&deleting, "old");
    let nothing = BTreeMap::new();
    let wanted_none = BTreeSet::new();
    // (source now, the copy there, released?)
    for (name, now, copy, release) in [
        (
            "retaining source stops naming it",
            Some(&retaining),
            &kept_copy,
            true,
        ),
        ("retain switched off", Some(&deleting), &kept_copy, false),
        ("retain switched on", Some(&retaining), &plain_copy, true),
        ("source gone, copy marked", None, &kept_copy, true),
        ("source gone, copy unmarked", None, &plain_copy, false),
    ] {
        let src = now.map(|o| classify(o, &s).unwrap());
        let full = plan_namespaces(src.as_ref(), &wanted_none, &[copy], &nothing, &s);
        let summary = summary_of(copy, &owned);
        let quick = plan_copies(
            src.as_ref(),
            &wanted_none,
            &[&summary],
            &BTreeMap::new(),
            &s,
        );
        assert_eq!(full, quick, "{name}");
        let expect = match release {
            true => Action::Release {
                namespace: "old".into(),
                uid: Some("copy-old".into()),
            },
            false => Action::Delete {
                namespace: "old".into(),
                uid: Some("copy-old".into()),
            },
        };
        assert_eq!(full, vec![expect], "{name}");
    }
}

/// `--follower-namespaces` and `--no-intra-cluster`: wanted namespaces outside a cluster's scope
/// are neither planned nor read there, and are reported on the source (once per target).
#[test]
fn namespaces_outside_a_scope_are_reported_not_planned() {
    use crate::plan::decide::KeyPlan;
    use crate::plan::scope::{INTRA_CLUSTER_OFF, NOT_ALLOWED, Scope};
    use crate::plan::source::Contexts;
    let scoped = |list: &[&str]| Scope::Namespaces(list.iter().map(|n| n.to_string()).collect());
    let mut s = settings();
    s.follower_scope = scoped(&["team-a", "team-b"]);
    s.local_scope = scoped(&[]);
    let followers = ["f1".to_string()];
    let contexts = Contexts {
        source: "mgmt",
        broken: &[],
        followers: &followers,
    };
    let o = source(&[
        (ann::SYNC, ""),
        (ann::SYNC_CONTEXTS, "f1/team-a,f1/kube-system,f1"),
    ]);
    let namespaces = [ns("prod"), ns("team-a"), ns("other")];
    let follower = Target::Context {
        context: "f1",
        namespace: None,
        aliases: &[],
        namespaces: &namespaces,
    };
    let plan = KeyPlan::new(Some(&o), &follower, &s, &contexts);
    assert_eq!(plan.wanted, BTreeSet::from(["team-a".to_string()]));
    let reasons: Vec<&str> = plan.problems.iter().map(|p| p.reason).collect();
    assert_eq!(reasons, [NOT_ALLOWED]);
    assert!(
        plan.problems[0].note.contains("kube-system, prod"),
        "{:?}",
        plan.problems
    );
    assert!(
        plan.to_read(&[], &s, crate::plan::summary::Missing::Read)
            .iter()
            .all(|n| n == "team-a")
    );
    // Intra-cluster: nothing is planned, the sync annotation is reported.
    let local = Target::Local {
        namespaces: &namespaces,
    };
    let plan = KeyPlan::new(Some(&o), &local, &s, &contexts);
    assert!(plan.wanted.is_empty());
    assert!(plan.problems.iter().any(|p| p.reason == INTRA_CLUSTER_OFF));
    // ... even with no namespace known (they are not watched then).
    let unwatched = Target::Local { namespaces: &[] };
    let plan = KeyPlan::new(Some(&o), &unwatched, &s, &contexts);
    assert!(plan.problems.iter().any(|p| p.reason == INTRA_CLUSTER_OFF));
    let no_sync = source(&[(ann::SYNC_CONTEXTS, "f1/team-a")]);
    let plan = KeyPlan::new(Some(&no_sync), &unwatched, &s, &contexts);
    assert!(plan.problems.is_empty(), "{:?}", plan.problems);
    // The default scopes change nothing.
    let plan = KeyPlan::new(Some(&o), &follower, &settings(), &contexts);
    assert_eq!(plan.wanted.len(), 3);
    assert!(plan.problems.is_empty());
}
