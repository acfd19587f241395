//! `a_conflict_clears_as_soon_as_the_look_alike_goes`: an unmanaged object holding a copy's name is
//! left alone (OriginConflict) and watched; once it is deleted, the copy is made within seconds, not
//! at the next full sweep (here an hour away).
use super::*;

pub(crate) async fn run() {
    let w = World::shared().await;
    let ns = unique_ns("kcs-lookalike");
    w.ns_everywhere(&ns).await;
    // Look-alikes: a ConfigMap in project, a Secret in project2, neither ours.
    create(
        &w.project,
        &ns,
        &configmap("cfg", &[], &[], &[("k", "theirs")]),
    )
    .await
    .unwrap();
    let theirs = secret("cert", "Opaque", &[], &[("k", b"theirs")]);
    create(&w.project2, &ns, &theirs).await.unwrap();
    let _d = w.mgmt_daemon("lookalike", &ns, &["--resync-period", "1h"]);
    let both = format!("{PROJECT},{PROJECT2}");
    create(
        &w.mgmt,
        &ns,
        &configmap("cfg", &[(SYNC_CONTEXTS, &both)], &[], &[("k", "ours")]),
    )
    .await
    .unwrap();
    let ours = secret(
        "cert",
        "Opaque",
        &[(SYNC_CONTEXTS, &both)],
        &[("k", b"ours")],
    );
    create(&w.mgmt, &ns, &ours).await.unwrap();
    for name in ["cfg", "cert"] {
        wait_event(&w.mgmt, &ns, name, "OriginConflict").await;
    }
    // Where nothing is in the way, the copies are there.
    let in_project2: &[(&str, &[&str])] = &[(PROJECT2, &[ns.as_str()])];
    let in_project: &[(&str, &[&str])] = &[(PROJECT, &[ns.as_str()])];
    wait_copies::<ConfigMap, _>("cfg where free", &w.all(), &ns, "cfg", in_project2, |_| {
        true
    })
    .await;
    wait_copies::<Secret, _>("cert where free", &w.all(), &ns, "cert", in_project, |_| {
        true
    })
    .await;
    // The look-alikes go: the copies follow within seconds.
    delete::<ConfigMap>(&w.project, &ns, "cfg").await.unwrap();
    delete::<Secret>(&w.project2, &ns, "cert").await.unwrap();
    let started = std::time::Instant::now();
    let everywhere: &[(&str, &[&str])] = &[(PROJECT, &[ns.as_str()]), (PROJECT2, &[ns.as_str()])];
    wait_copies::<ConfigMap, _>("cfg once free", &w.all(), &ns, "cfg", everywhere, |c| {
        c.data.as_ref().and_then(|d| d.get("k")).map(String::as_str) == Some("ours")
    })
    .await;
    wait_copies::<Secret, _>("cert once free", &w.all(), &ns, "cert", everywhere, |_| {
        true
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "copies made {:?} after the look-alikes went",
        started.elapsed()
    );
    w.cleanup(&[&ns]).await;
}
