//! The expired-resourceVersion fault: compacting a cluster's etcd past the daemon's RVs (and
//! restarting its apiserver), and what shows the daemon met it: 410s in its log, re-lists in
//! the audit log.
use super::*;

/// How many times the daemon logged that a watch `what` on `cluster` ended with 410 Expired.
pub(crate) fn expired_watches(log: &std::path::Path, cluster: &str, what: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("too old resource version"))
        .filter(|l| l.contains(cluster) && l.contains(&format!("\"{what}\"")))
        .count()
}

/// Compacts `cluster`'s etcd past `old_rv` and restarts its apiserver, so nothing can serve a
/// watch from an RV before the compaction any more. The restart is part of the fault: measured
/// on 1.20, after a compaction alone the apiserver's watch cache still served a watch from a
/// compacted RV out of its window (events 203..206 after compacting at 206); a fresh cache
/// starts at the current revision and answers an older RV with 410 "too old resource version",
/// as after a real apiserver restart or a failover to another apiserver.
pub(crate) async fn expire_rvs(case: &Case, cluster: &str, old_rv: &str) {
    case.tb.fault(cluster, Fault::CompactEtcd).await.unwrap();
    // The compaction took effect: a list at exactly the old RV is 410 Expired.
    let direct = case.tb.client(cluster, ClientOpts::direct()).await;
    let at_old = ListParams {
        resource_version: Some(old_rv.to_string()),
        version_match: Some(VersionMatch::Exact),
        ..Default::default()
    };
    match Api::<ConfigMap>::namespaced(direct, &case.ns)
        .list(&at_old)
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 410, "list at a compacted RV: {s:?}"),
        other => panic!("{cluster}: a list at compacted RV {old_rv} answered {other:?}"),
    }
    case.tb.fault(cluster, Fault::Stop).await.unwrap();
    case.tb.fault(cluster, Fault::Start).await.unwrap();
}

/// The current list RV of the test namespace's ConfigMaps in `client`'s cluster.
pub(crate) async fn list_rv(client: &kube::Client, ns: &str) -> String {
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .list(&ListParams::default().limit(1))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap()
}

/// Lists of ConfigMaps the daemon made since `mark` (after the start-up sync, only a watch
/// that had to start over lists; the periodic resync reads the caches).
pub(crate) fn daemon_lists(mark: &mut audit::Mark) -> u64 {
    let c = mark.take(DAEMON_AGENT).unwrap();
    c.0.get(&("list".to_string(), "configmaps".to_string()))
        .copied()
        .unwrap_or(0)
}
