//! `a_new_copy_is_one_post_and_nothing_unmanaged_is_merged_into` (issue 14 item 6): a copy is
//! created with one POST and no read; an unmanaged object by the same name makes the POST fail
//! (409), is read once and left exactly as it was (OriginConflict); what only the POST owned is
//! still removed when the source drops it, with one extra write then and none otherwise.
use super::*;
use std::collections::BTreeMap;

const FRESH: usize = 5;

/// The daemon's requests for ConfigMaps in `ns`, per name, as "verb code" strings in order
/// (the look-alike's watch, a list and watch by name, left out).
fn requests(events: &[audit::Event], ns: &str) -> BTreeMap<String, Vec<String>> {
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in events.iter().filter(|e| {
        e.user_agent.starts_with(audit::DAEMON_AGENT)
            && e.resource.as_deref() == Some("configmaps")
            && e.namespace == ns
            && !e.name.is_empty()
            && !["list", "watch"].contains(&e.verb.as_str())
    }) {
        let code = e.code.unwrap_or_default();
        by_name
            .entry(e.name.clone())
            .or_default()
            .push(format!("{} {code}", e.verb));
    }
    by_name
}

/// Reads `mark` until `done` holds for what it has gathered and no new request of the daemon
/// has come for `quiet` (audit lines land shortly after the response; a second write would land
/// within that window).
async fn gather(
    mark: &mut audit::Mark,
    ns: &str,
    what: &str,
    quiet: Duration,
    done: impl Fn(&BTreeMap<String, Vec<String>>) -> bool,
) -> BTreeMap<String, Vec<String>> {
    let mut events = Vec::new();
    let end = std::time::Instant::now() + SOON;
    let mut last_new = std::time::Instant::now();
    loop {
        let new = mark.take_events().unwrap();
        if !requests(&new, ns).is_empty() {
            last_new = std::time::Instant::now();
        }
        events.extend(new);
        let seen = requests(&events, ns);
        if done(&seen) && last_new.elapsed() >= quiet {
            return seen;
        }
        assert!(std::time::Instant::now() < end, "{what}: {seen:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) async fn run() {
    let w = World::shared().await;
    let ns = unique_ns("kcs-post");
    w.ns_everywhere(&ns).await;
    let theirs = create(
        &w.project,
        &ns,
        &configmap("taken", &[], &[("app", "theirs")], &[("mine", "x")]),
    )
    .await
    .unwrap();
    let labels = [("team", "a"), ("gone", "yes")];
    for i in 0..FRESH {
        let cm = configmap(
            &format!("fresh-{i}"),
            &[(SYNC_CONTEXTS, PROJECT)],
            &labels,
            &[("k", "1"), ("drop", "x")],
        );
        create(&w.mgmt, &ns, &cm).await.unwrap();
    }
    let taken = configmap("taken", &[(SYNC_CONTEXTS, PROJECT)], &labels, &[("k", "1")]);
    create(&w.mgmt, &ns, &taken).await.unwrap();
    let mut mark = audit::Mark::now(&w.tb.audit_log(PROJECT));
    let _d = w.mgmt_daemon("post", &ns, &[]);
    let in_project: &[(&str, &[&str])] = &[(PROJECT, &[ns.as_str()])];
    for i in 0..FRESH {
        let name = format!("fresh-{i}");
        wait_copies::<ConfigMap, _>("copy", &w.all(), &ns, &name, in_project, |_| true).await;
    }
    wait_event(&w.mgmt, &ns, "taken", "OriginConflict").await;

    // One request per new copy: the POST. The look-alike: a refused POST and one read.
    let seen = gather(
        &mut mark,
        &ns,
        "the daemon's first requests",
        Duration::ZERO,
        |r| {
            (0..FRESH).all(|i| r.contains_key(&format!("fresh-{i}")))
                && r.get("taken").is_some_and(|v| v.len() >= 2)
        },
    )
    .await;
    for i in 0..FRESH {
        assert_eq!(seen[&format!("fresh-{i}")], ["create 201"], "fresh-{i}");
    }
    assert_eq!(seen["taken"], ["create 409", "get 200"], "the look-alike");
    let now = get::<ConfigMap>(&w.project, &ns, "taken")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        now.resource_version(),
        theirs.resource_version(),
        "untouched"
    );
    assert_eq!(now.labels(), theirs.labels());
    assert_eq!(now.data, theirs.data);
    let managers: Vec<String> = (now.metadata.managed_fields.iter().flatten())
        .filter_map(|e| e.manager.clone())
        .collect();
    assert!(
        !managers.iter().any(|m| m == "kubed-cross-sync"),
        "{managers:?}"
    );

    // The source drops a label and a key the POST set: both go (apply + one removal patch).
    merge::<ConfigMap>(
        &w.mgmt,
        &ns,
        "fresh-0",
        json!({"metadata": {"labels": {"gone": null}}, "data": {"drop": null, "k": "2"}}),
    )
    .await
    .unwrap();
    wait_copies::<ConfigMap, _>(
        "dropped fields gone",
        &w.all(),
        &ns,
        "fresh-0",
        in_project,
        |c| {
            let data = c.data.clone().unwrap_or_default();
            data.get("k").map(String::as_str) == Some("2")
                && !data.contains_key("drop")
                && !c.labels().contains_key("gone")
                && c.labels().get("team").map(String::as_str) == Some("a")
        },
    )
    .await;
    let first = gather(&mut mark, &ns, "the first update", Duration::ZERO, |r| {
        r.get("fresh-0").is_some_and(|v| v.len() >= 2)
    })
    .await;
    assert_eq!(
        first["fresh-0"],
        ["patch 200", "patch 200"],
        "apply + removal"
    );
    // A later update removes nothing: one write.
    merge::<ConfigMap>(&w.mgmt, &ns, "fresh-0", json!({"data": {"k": "3"}}))
        .await
        .unwrap();
    wait_copies::<ConfigMap, _>("k=3", &w.all(), &ns, "fresh-0", in_project, |c| {
        c.data.as_ref().and_then(|d| d.get("k")).map(String::as_str) == Some("3")
    })
    .await;
    let quiet = Duration::from_secs(2);
    let later = gather(&mut mark, &ns, "the second update", quiet, |r| {
        r.contains_key("fresh-0")
    })
    .await;
    assert_eq!(later["fresh-0"], ["patch 200"], "one write");
    // The look-alike is watched: a second pass over it (the start-up sweep) sends nothing.
    let others: Vec<&String> = later.keys().filter(|n| *n != "fresh-0").collect();
    assert!(
        others.is_empty(),
        "nothing else written or read: {later:#?}"
    );
    let all = seen.get("taken").map_or(0, Vec::len) + first.get("taken").map_or(0, Vec::len);
    assert_eq!(all, 2, "one create refused, one read: {seen:#?} {first:#?}");
    w.cleanup(&[&ns]).await;
}
