//! The copies of a source (the objects carrying its origin labels) in a cluster, waiting until
//! they are exactly where they should be, and the Events the daemon writes about a source.
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use super::{Namespaced, ORIGIN_NAME, ORIGIN_NAMESPACE, SOON, api_err};
use crate::error::TestbedError;
use crate::wait_for;

/// Every object in the cluster carrying origin labels for `source_ns/name`, as namespace →
/// object (the complete set of copies of that source there).
pub async fn copies<K: Namespaced>(
    client: &Client,
    source_ns: &str,
    name: &str,
) -> Result<BTreeMap<String, K>, TestbedError> {
    let lp = ListParams::default().labels(&format!(
        "{ORIGIN_NAMESPACE}={source_ns},{ORIGIN_NAME}={name}"
    ));
    let list = Api::<K>::all(client.clone())
        .list(&lp)
        .await
        .map_err(api_err("list", format!("copies of {source_ns}/{name}")))?;
    Ok(list
        .items
        .into_iter()
        .map(|o| (o.namespace().unwrap_or_default(), o))
        .collect())
}

/// Waits until, in each listed cluster, the copies of `source_ns/name` sit in exactly the
/// given namespaces and `check` accepts each of them; returns the copies per cluster.
/// Test-only API: panics after `SOON`, or when a list fails.
pub async fn wait_copies<K, F>(
    what: &str,
    clients: &[(&str, &Client)],
    source_ns: &str,
    name: &str,
    want: &[(&str, &[&str])],
    check: F,
) -> BTreeMap<String, BTreeMap<String, K>>
where
    K: Namespaced,
    F: Fn(&K) -> bool,
{
    let check = &check;
    wait_for(what, SOON, || async move {
        let mut all = BTreeMap::new();
        for (cluster, client) in clients {
            let got: BTreeMap<String, K> = match copies(client, source_ns, name).await {
                Ok(got) => got,
                Err(e) => panic!("{}", crate::error_chain(&e)),
            };
            let want_ns: BTreeSet<String> = want
                .iter()
                .find(|(c, _)| c == cluster)
                .map(|(_, n)| n.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default();
            let have_ns: BTreeSet<String> = got.keys().cloned().collect();
            if have_ns != want_ns || !got.values().all(check) {
                return None;
            }
            all.insert(cluster.to_string(), got);
        }
        Some(all)
    })
    .await
}

/// The copies in `ns` of the sources of namespace `ns` (the bench's, load's and faults' layout):
/// name → the value of their key `v`.
pub async fn copy_values(
    client: &Client,
    ns: &str,
) -> Result<BTreeMap<String, String>, TestbedError> {
    let lp = ListParams::default().labels(&format!("{ORIGIN_NAMESPACE}={ns}"));
    let list = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .list(&lp)
        .await
        .map_err(api_err("list", format!("the copies in {ns}")))?;
    Ok(list
        .items
        .into_iter()
        .map(|c| {
            let v = c.data.and_then(|d| d.get("v").cloned()).unwrap_or_default();
            (c.metadata.name.unwrap_or_default(), v)
        })
        .collect())
}

/// Events (events.k8s.io/v1) about `name` in `ns` with this reason, of `type_` (Normal,
/// Warning) or of any type.
pub async fn events(
    client: &Client,
    ns: &str,
    name: &str,
    reason: &str,
    type_: Option<&str>,
) -> Result<Vec<Event>, TestbedError> {
    let list = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(api_err("list", format!("the Events in {ns}")))?;
    Ok(list
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.reason.as_deref() == Some(reason)
                && type_.is_none_or(|t| e.type_.as_deref() == Some(t))
        })
        .collect())
}

/// Waits for a Warning Event with this reason about `name` in `ns`. Test-only API: panics after
/// `SOON`, or when a list fails.
pub async fn wait_event(client: &Client, ns: &str, name: &str, reason: &str) -> Event {
    wait_for(&format!("{reason} event on {ns}/{name}"), SOON, || async {
        match events(client, ns, name, reason, Some("Warning")).await {
            Ok(found) => found.into_iter().next(),
            Err(e) => panic!("{}", crate::error_chain(&e)),
        }
    })
    .await
}
