//! Annotation values on a source object (untrusted: anyone who can edit a ConfigMap writes them)
//! → the sync selector grammar, `sync-contexts` items, and the planner that uses them.
//! Input: parts separated by NUL: `sync` value, `sync-contexts` value, then one line per
//! namespace with its labels as `k=v,k=v`. Without a NUL the whole input is used as both values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::{BTreeMap, BTreeSet};
use sync_daemon::plan::annotations::{self as ann, IntraSync};
use sync_daemon::plan::diff;
use sync_daemon::plan::source::classify;
use sync_daemon::plan::wanted::wanted;
use sync_daemon::plan::{Action, NamespaceView, ObjectView, Payload, Settings, Target};
use sync_daemon::plan::selector;

fn labels_of(line: &str) -> BTreeMap<String, String> {
    line.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A parsed selector must print back to a string that parses to the same selector (the string
/// appears in Events and logs, and `status` shows it), and must match the same label sets.
fn check_selector(text: &str, label_sets: &[BTreeMap<String, String>]) {
    let Ok(sel) = selector::parse(text) else {
        return;
    };
    let shown = sel.to_string();
    let again = selector::parse(&shown)
        .unwrap_or_else(|e| panic!("selector {text:?} prints as {shown:?}, which does not parse: {e}"));
    for labels in label_sets {
        assert_eq!(
            sel.matches(labels),
            again.matches(labels),
            "{text:?} and its rendering {shown:?} match {labels:?} differently"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parts: Vec<&str> = text.split('\0').collect();
    let (sync, contexts) = match parts.as_slice() {
        [one] => (Some(*one), Some(*one)),
        [s, c, ..] => (Some(*s), (!c.is_empty()).then_some(*c)),
        [] => (None, None),
    };
    let namespaces: Vec<NamespaceView> = parts
        .get(2)
        .map(|p| p.lines().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, line)| NamespaceView {
            name: format!("ns{i}"),
            labels: labels_of(line),
            terminating: false,
        })
        .collect();
    let label_sets: Vec<_> = namespaces.iter().map(|n| n.labels.clone()).collect();
    for t in [sync, contexts].into_iter().flatten() {
        check_selector(t, &label_sets);
    }

    let mut annotations = BTreeMap::new();
    if let Some(s) = sync {
        annotations.insert(ann::SYNC.to_string(), s.to_string());
    }
    if let Some(c) = contexts {
        annotations.insert(ann::SYNC_CONTEXTS.to_string(), c.to_string());
    }
    let (spec, errors) = ann::parse(&annotations);
    for e in &errors {
        let _ = (e.to_string(), e.category());
    }
    for t in &spec.contexts {
        assert!(!t.context.is_empty() && !t.context.contains(char::is_whitespace));
        if let Some(ns) = &t.namespace {
            assert!(ann::is_dns_label(ns), "namespace {ns:?} accepted");
        }
    }
    if let Some(IntraSync::Selector(sel)) = &spec.intra {
        let _ = sel.to_string();
    }

    let source = ObjectView {
        name: "cfg".into(),
        namespace: "src".into(),
        uid: Some("u-1".into()),
        resource_version: Some("7".into()),
        labels: BTreeMap::from([("app".into(), "x".into())]),
        annotations,
        payload: Payload::ConfigMap {
            data: BTreeMap::from([("k".into(), "v".into())]),
            binary_data: BTreeMap::new(),
            immutable: false,
        },
        our_labels: BTreeSet::new(),
        our_annotations: BTreeSet::new(),
        deleting: false,
    };
    let settings = Settings {
        cluster_name: "mgmt".into(),
        skipped_secret_types: BTreeSet::new(),
        adopt_existing: false,
        metadata: Default::default(),
    };
    let Ok(src) = classify(&source, &settings) else {
        return;
    };
    let mut targets = vec![Target::Local {
        namespaces: &namespaces,
    }];
    for t in &src.spec.contexts {
        targets.push(Target::Context {
            context: &t.context,
            namespace: None,
            aliases: &[],
        });
    }
    for target in &targets {
        let wanted = wanted(&src, target);
        if matches!(target, Target::Local { .. }) {
            assert!(!wanted.contains("src"), "a copy planned onto its own source");
        }
        for ns in &wanted {
            let want = diff::desired_copy(&src, ns, &settings);
            assert!(!want.annotations.contains_key(ann::SYNC));
            assert!(!want.annotations.contains_key(ann::SYNC_CONTEXTS));
            assert!(ann::is_owned_by(&want.labels, "cfg", "src", "mgmt"));
            // The copy as the daemon wrote it, read back: a resync must make no write.
            let mut written = want.clone();
            written.uid = Some("u-2".into());
            written.our_labels = want.labels.keys().cloned().collect();
            written.our_annotations = want.annotations.keys().cloned().collect();
            let action = diff::diff(want, Some(&written), &settings);
            assert!(
                matches!(action, Action::Noop { .. }),
                "unchanged copy in {ns:?} planned as {action:?}"
            );
        }
        let _ = diff::plan(Some(&src), target, &[], &BTreeMap::new(), &settings);
    }
});
