//! `a_throttling_follower_is_followed_not_failed` (issue 14 item 6): the daemon keeps no fixed
//! request rate; a follower's own flow control governs it. Here API Priority and Fairness on
//! the follower gives the daemon's user about three seats and rejects the rest with 429: the
//! daemon narrows its window, waits the Retry-After, sends the refused creates again, and every
//! copy is made exactly once.
use super::*;
use e2e::PLAIN_USER;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use kube::core::ObjectMeta;

const SOURCES: usize = 200;

/// The flowcontrol API this server serves: v1 (1.29+) or v1beta1 (1.20).
async fn flowcontrol_version(c: &kube::Client) -> &'static str {
    let v1 = c
        .list_api_group_resources("flowcontrol.apiserver.k8s.io/v1")
        .await;
    if v1.is_ok() { "v1" } else { "v1beta1" }
}

fn dynamic(c: &kube::Client, version: &str, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("flowcontrol.apiserver.k8s.io", version, kind);
    let plural = format!("{}s", kind.to_lowercase());
    Api::all_with(c.clone(), &ApiResource::from_gvk_with_plural(&gvk, &plural))
}

fn object(name: &str, data: serde_json::Value) -> DynamicObject {
    DynamicObject {
        types: None,
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data,
    }
}

/// A priority level of one share that rejects what it cannot seat, and a FlowSchema sending
/// the plain user's creates of ConfigMaps in `ns` to it.
async fn throttle(c: &kube::Client, name: &str, ns: &str) -> &'static str {
    let version = flowcontrol_version(c).await;
    let limited = match version {
        "v1" => json!({"nominalConcurrencyShares": 1, "lendablePercent": 0,
                       "borrowingLimitPercent": 0, "limitResponse": {"type": "Reject"}}),
        _ => json!({"assuredConcurrencyShares": 1, "limitResponse": {"type": "Reject"}}),
    };
    let pl = object(
        name,
        json!({"spec": {"type": "Limited", "limited": limited}}),
    );
    let pp = PostParams::default();
    let levels = dynamic(c, version, "PriorityLevelConfiguration");
    levels.create(&pp, &pl).await.unwrap();
    let fs = object(
        name,
        json!({"spec": {
            "priorityLevelConfiguration": {"name": name},
            "matchingPrecedence": 300,
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [{
                "subjects": [{"kind": "User", "user": {"name": PLAIN_USER}}],
                "resourceRules": [{"verbs": ["create"], "apiGroups": [""],
                                   "resources": ["configmaps"], "namespaces": [ns]}]
            }]
        }}),
    );
    let schemas = dynamic(c, version, "FlowSchema");
    schemas.create(&pp, &fs).await.unwrap();
    // In force once the API server's flow-control controller has looked at it.
    wait_for("the FlowSchema in force", SOON, || async {
        let fs = schemas.get(name).await.ok()?;
        let conditions = fs.data["status"]["conditions"].as_array()?.clone();
        (!conditions.is_empty()).then_some(())
    })
    .await;
    version
}

async fn unthrottle(c: &kube::Client, version: &str, name: &str) {
    let dp = DeleteParams::default();
    let _ = dynamic(c, version, "FlowSchema").delete(name, &dp).await;
    let _ = (dynamic(c, version, "PriorityLevelConfiguration"))
        .delete(name, &dp)
        .await;
}

/// The testbed kubeconfig with PROJECT reached as the plain user.
fn plain_kubeconfig(w: &World<'_>, tag: &str) -> String {
    let mut kc = kubeconfig::read(&w.tb.kubeconfig_path()).unwrap();
    let token = format!("{}-plain", w.tb.cluster(PROJECT).admin_token);
    let user = format!("{PROJECT}-plain");
    kc.auth_infos.push(kube::config::NamedAuthInfo {
        name: user.clone(),
        auth_info: Some(kube::config::AuthInfo {
            token: Some(token.into()),
            ..Default::default()
        }),
        other: Default::default(),
    });
    for c in &mut kc.contexts {
        if c.name == PROJECT
            && let Some(ctx) = c.context.as_mut()
        {
            ctx.user = Some(user.clone());
        }
    }
    let path = w.tb.dir().join(format!("{tag}.kubeconfig"));
    kubeconfig::write(&kc, &path).unwrap();
    path.display().to_string()
}

pub(crate) async fn run() {
    use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    let w = World::shared().await;
    let ns = unique_ns("kcs-apf");
    let name = ns.clone();
    w.ns_everywhere(&ns).await;
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": PLAIN_USER}]
    }))
    .unwrap();
    let bindings: Api<ClusterRoleBinding> = Api::all(w.project.clone());
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let version = throttle(&w.project, &name, &ns).await;
    let sources: Vec<ConfigMap> = (0..SOURCES)
        .map(|i| {
            let mut cm = configmap(
                &format!("s-{i:03}"),
                &[(SYNC_CONTEXTS, PROJECT)],
                &[],
                &[("k", "v")],
            );
            cm.metadata.namespace = Some(ns.clone());
            cm
        })
        .collect();
    create_all(&w.mgmt, sources, 8).await.unwrap();
    let mut mark = audit::Mark::now(&w.tb.audit_log(PROJECT));
    let kc = plain_kubeconfig(&w, &name);
    let d = w.daemon(
        "apf",
        &[
            "--kubeconfig-file",
            &kc,
            "--cluster-name",
            "mc-mgmt",
            "--config-source-namespace",
            &ns,
            "--workers",
            "32",
        ],
    );
    let copies: Api<ConfigMap> = Api::namespaced(w.project.clone(), &ns);
    wait_for(
        "every copy in the throttling follower",
        Duration::from_secs(120),
        || async {
            let n = copies.list(&Default::default()).await.ok()?.items.len();
            (n == SOURCES).then_some(())
        },
    )
    .await;
    let mut events = Vec::new();
    let creates = |events: &[audit::Event], code: u64| {
        (events.iter())
            .filter(|e| {
                e.user_agent.starts_with(audit::DAEMON_AGENT)
                    && e.verb == "create"
                    && e.namespace == ns
                    && e.code == Some(code)
            })
            .count()
    };
    wait_for("the creates in the audit log", SOON, || {
        events.extend(mark.take_events().unwrap());
        let done = creates(&events, 201) >= SOURCES;
        async move { done.then_some(()) }
    })
    .await;
    let refused = creates(&events, 429);
    let sample = format!(r#"kcs_reconcile_errors_total{{cluster="{PROJECT}",reason="throttled"}}"#);
    let passed_on = d.metric(&sample).await.unwrap_or(0.0);
    eprintln!(
        "creates: {} made, {refused} refused with 429, {passed_on} reconciles saw a 429",
        creates(&events, 201)
    );
    // Most refusals are absorbed by the layer (window + resend); few reach the queue.
    assert!(
        passed_on * 4.0 <= refused as f64,
        "{passed_on} of {refused} 429s reached the queue"
    );
    assert!(
        refused > 0,
        "the follower never throttled: the test proves nothing"
    );
    assert_eq!(creates(&events, 201), SOURCES, "each copy created once");
    drop(d);
    unthrottle(&w.project, version, &name).await;
    let _ = bindings.delete(&name, &DeleteParams::default()).await;
    w.cleanup(&[&ns]).await;
}
