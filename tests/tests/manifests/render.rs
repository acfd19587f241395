//! `manifests_render_and_agree_with_each_other_and_the_iam_policies` step by step: the pod's
//! wiring (the init step writes the kubeconfig the daemon reads), the settings and profiles the
//! example overlay gives the base, its hardening and availability, the IRSA identity and the RBAC
//! groups.
use super::*;

pub(crate) fn run() {
    let mgmt = docs(&render("mgmt/example"));
    let base = docs(&render("mgmt/base"));
    let follower = docs(&render("follower"));
    let create_ns = docs(&render("follower/create-namespaces"));
    let plain = docs(&render("mgmt/example-plain-sidecar"));
    let d = Deployed::of(&mgmt);
    init_writes_what_the_daemon_reads(&d);
    watch_sidecar(&d);
    plain_sidecar_differs_in_nothing_else(&mgmt, &plain);
    the_example_sets_what_the_base_leaves_open(&base, &mgmt);
    profiles_are_the_seeds(&mgmt, &d);
    hardening(&mgmt, &d);
    selectors_stay_and_replicas_spread(&mgmt, &d);
    metrics_reach_prometheus(&mgmt, &d);
    identities(&mgmt, &d);
    groups_bound(&mgmt, &follower, &create_ns);
}

/// The pod: the init step writes the kubeconfig that the daemon reads, from the profiles it mounts.
/// (The args as the kubelet runs them: the settings' `$(KCS_...)` expanded.)
fn init_writes_what_the_daemon_reads(d: &Deployed) {
    let (init, main) = (d.init, d.main);
    let (init_args, main_args) = (d.args(init), d.args(main));
    assert_eq!(strs(&init["command"]), ["kubeconfig-gen"]);
    assert_eq!(init_args[0], "generate");
    assert_eq!(strs(&main["command"]), ["sync-daemon"]);
    assert_eq!(main_args[0], "run");
    let kubeconfig = flag(&init_args, "--kubeconfig").unwrap();
    assert_eq!(
        flag(&main_args, "--kubeconfig-file").as_ref(),
        Some(&kubeconfig)
    );
    assert_eq!(
        Path::new(&kubeconfig).parent().unwrap(),
        Path::new(&mount_path(init, "kubeconfig"))
    );
    assert_eq!(
        Path::new(&kubeconfig).parent().unwrap(),
        Path::new(&mount_path(main, "kubeconfig"))
    );
    let creds = flag(&init_args, "--credentials-file").unwrap();
    for c in [init, main] {
        assert_eq!(
            Path::new(&creds).parent().unwrap(),
            Path::new(&mount_path(c, "aws-profiles"))
        );
        let env = d.env(c);
        // the exec entries of the kubeconfig run `kubeconfig-gen token` with the container's env
        assert_eq!(env["AWS_SHARED_CREDENTIALS_FILE"], creds, "{}", c["name"]);
        assert!(env.contains_key("AWS_REGION"), "{}", c["name"]);
    }
    // The daemon's source is the context that kubeconfig-gen makes current, and the seed's flags stay.
    assert_eq!(
        flag(&init_args, "--current-context"),
        flag(&main_args, "--source-context")
    );
    assert_eq!(
        flag(&main_args, "--cluster-name").as_deref(),
        Some("mc-mgmt")
    );
    assert_eq!(
        flag(&main_args, "--config-source-namespace").as_deref(),
        Some("prod")
    );
    assert!(main_args.iter().any(|a| a == "--leader-elect"));
    assert_eq!(
        flag(&strs(&main["args"]), "--lease-namespace").as_deref(),
        Some("$(POD_NAMESPACE)")
    );
    assert_eq!(flag(&main_args, "--lease-namespace"), Some(d.ns.clone()));
    // Nothing is left for the kubelet to expand that the container's env lacks.
    for a in init_args.iter().chain(&main_args) {
        assert!(!a.contains("$("), "{a}");
    }
}

/// ../base leaves every value of one install open (a `<...>` placeholder); the example overlay sets
/// each setting of the base (only the region, which the seed does not tell, stays a placeholder),
/// replaces the profiles and names the image's repository, and changes nothing else of the base (its
/// ServiceAccount and NetworkPolicy patches restate the base's values, as places to edit).
fn the_example_sets_what_the_base_leaves_open(base: &[Value], example: &[Value]) {
    let settings = |docs: &[Value]| {
        find(docs, "ConfigMap", "kubed-cross-sync-settings")["data"]
            .as_object()
            .unwrap()
            .clone()
    };
    let (open, set) = (settings(base), settings(example));
    assert_eq!(
        open.keys().collect::<Vec<_>>(),
        set.keys().collect::<Vec<_>>(),
        "the example sets every setting of the base, and no other"
    );
    for (k, v) in &open {
        assert!(v.as_str().unwrap().starts_with('<'), "base {k}={v}");
        let v = set[k].as_str().unwrap();
        assert!(k == "AWS_REGION" || !v.contains('<'), "example {k}={v}");
    }
    let image = |docs: &[Value]| {
        Deployed::of(docs).main["image"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(image(base), "kubed-cross-sync:0.1.0");
    assert_eq!(image(example), "<REGISTRY>/kubed-cross-sync:0.1.0");
    // Everything else is the base's, but for the image and the generated names (hash suffixes).
    let rest = |docs: &[Value]| -> Vec<String> {
        let mut out: Vec<String> = docs
            .iter()
            .filter(|o| o["kind"] != "ConfigMap")
            .map(|o| without_hashes(&serde_json::to_string(o).unwrap()).replace("<REGISTRY>/", ""))
            .collect();
        out.sort();
        out
    };
    assert_eq!(rest(base), rest(example));
}

/// Generated ConfigMap names without their hash suffix (`kubed-cross-sync-settings-HASH`).
fn without_hashes(text: &str) -> String {
    let mut out = text.to_string();
    for name in [
        "kubed-cross-sync-settings-",
        "kubed-cross-sync-aws-profiles-",
    ] {
        let mut done = String::new();
        let mut rest = out.as_str();
        while let Some(i) = rest.find(name) {
            done.push_str(&rest[..i + name.len()]);
            rest = &rest[i + name.len()..];
            let n = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .count();
            done.push_str("HASH");
            rest = &rest[n..];
        }
        done.push_str(rest);
        out = done;
    }
    out
}

/// The kubeconfig-watch sidecar: the init step's own call plus `--watch --interval`, with the same
/// image, environment, mounts and hardening, as a native sidecar (an initContainer with
/// `restartPolicy: Always`, after the init step, which it must not precede: the daemon needs the
/// file before it starts).
fn watch_sidecar(d: &Deployed) {
    let init = d.pod["initContainers"].as_array().unwrap();
    let names: Vec<&str> = init.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["kubeconfig-gen", "kubeconfig-watch"]);
    let (one_shot, watch) = (d.init, d.watch);
    assert_eq!(watch["restartPolicy"], "Always");
    assert!(one_shot["restartPolicy"].is_null());
    let (init_args, watch_args) = (strs(&one_shot["args"]), strs(&watch["args"]));
    assert_eq!(
        watch_args[..init_args.len()],
        init_args[..],
        "the init step's call"
    );
    let extra = &watch_args[init_args.len()..];
    assert_eq!(extra[0], "--watch", "{extra:?}");
    let interval = flag(extra, "--interval").expect("--interval");
    assert!(
        ["s", "m", "h"].iter().any(|u| interval.ends_with(u)),
        "{interval}"
    );
    assert_eq!(extra.len(), 2, "{extra:?}");
    assert!(init_args.iter().any(|a| a == "--keep-going"));
    for key in ["image", "command", "env", "volumeMounts", "securityContext"] {
        assert_eq!(watch[key], one_shot[key], "kubeconfig-watch {key}");
    }
    for k in ["requests", "limits"] {
        assert!(watch["resources"][k]["memory"].is_string(), "{k}");
    }
}

/// manifests/mgmt/example-plain-sidecar: the same objects, kubeconfig-watch a plain container beside
/// the daemon (no restartPolicy) instead of a native sidecar, the two checkov skips of probes, and
/// no unhealthyPodEvictionPolicy in the PodDisruptionBudget (Kubernetes 1.27+).
fn plain_sidecar_differs_in_nothing_else(mgmt: &[Value], plain: &[Value]) {
    let is_deploy = |d: &&Value| d["kind"] == "Deployment";
    let others = |docs: &[Value]| -> Vec<Value> {
        let mut out: Vec<Value> = docs.iter().filter(|d| !is_deploy(d)).cloned().collect();
        for pdb in out
            .iter_mut()
            .filter(|d| d["kind"] == "PodDisruptionBudget")
        {
            pdb["spec"]
                .as_object_mut()
                .unwrap()
                .remove("unhealthyPodEvictionPolicy");
        }
        out
    };
    assert_eq!(others(plain), others(mgmt));
    let pdb = |docs: &[Value]| find(docs, "PodDisruptionBudget", "kubed-cross-sync").clone();
    assert!(pdb(plain)["spec"]["unhealthyPodEvictionPolicy"].is_null());
    assert_eq!(
        pdb(mgmt)["spec"]["unhealthyPodEvictionPolicy"],
        "AlwaysAllow"
    );
    let native = mgmt.iter().find(is_deploy).unwrap();
    let mut moved_back = plain.iter().find(is_deploy).unwrap().clone();
    let spec = &mut moved_back["spec"]["template"]["spec"];
    let containers = spec["containers"].as_array_mut().unwrap();
    assert_eq!(containers.len(), 2);
    let mut watch = containers.pop().unwrap();
    assert_eq!(watch["name"], "kubeconfig-watch");
    assert!(watch["restartPolicy"].is_null());
    watch["restartPolicy"] = json!("Always");
    spec["initContainers"].as_array_mut().unwrap().push(watch);
    let annotations = moved_back["metadata"]["annotations"]
        .as_object_mut()
        .unwrap();
    for skip in ["checkov.io/skip4", "checkov.io/skip5"] {
        assert!(annotations.remove(skip).is_some(), "{skip}");
    }
    assert_eq!(&moved_back, native);
}

/// The profiles ConfigMap the pod mounts is the seed's INI: web identity root, followers chained.
fn profiles_are_the_seeds(mgmt: &[Value], d: &Deployed) {
    let creds = flag(&strs(&d.init["args"]), "--credentials-file").unwrap();
    let cm = d.profiles_configmap(mgmt);
    let key = Path::new(&creds).file_name().unwrap().to_str().unwrap();
    let profiles = ini(cm["data"][key]
        .as_str()
        .expect("the profiles ConfigMap has the credentials key"));
    assert_eq!(profiles["mc-mgmt"]["web_identity_token_file"], IRSA_TOKEN);
    assert!(profiles["mc-mgmt"]["role_arn"].ends_with(":role/kubed-master"));
    for p in ["mc-project", "mc-project2"] {
        assert_eq!(profiles[p]["source_profile"], "mc-mgmt");
        assert_eq!(profiles[p]["role_session_name"], p);
        assert!(profiles[p]["role_arn"].ends_with(":role/kubed-follower"));
    }
}

fn hardening(mgmt: &[Value], d: &Deployed) {
    let (pod, init, main) = (d.pod, d.init, d.main);
    let main_args = strs(&main["args"]);
    // Hardening, as the issue lists it.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 1000);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    for c in [init, main, d.watch] {
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{}", c["name"]);
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{}", c["name"]);
        assert_eq!(strs(&sc["capabilities"]["drop"]), ["ALL"], "{}", c["name"]);
        for k in ["requests", "limits"] {
            assert!(c["resources"][k]["memory"].is_string(), "{} {k}", c["name"]);
        }
    }
    assert_eq!(main["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(main["readinessProbe"]["httpGet"]["path"], "/readyz");
    let port = main["ports"][0]["containerPort"].as_u64().unwrap();
    assert_eq!(
        flag(&main_args, "--metrics-addr"),
        Some(format!("0.0.0.0:{port}"))
    );
    let svc = find(mgmt, "Service", "kubed-cross-sync-metrics");
    assert_eq!(
        svc["spec"]["ports"][0]["targetPort"],
        main["ports"][0]["name"]
    );
}

/// The selectors are the three labels earlier installs selected (kustomize `commonLabels` put them
/// there; a Deployment's selector cannot change), written out in the objects, and the Service, the
/// PodDisruptionBudget, the NetworkPolicy and the anti-affinity select the same pods. The two
/// replicas: one may be disrupted at a time; they prefer other nodes and zones.
fn selectors_stay_and_replicas_spread(mgmt: &[Value], d: &Deployed) {
    let want = json!({
        "app.kubernetes.io/name": "kubed-cross-sync",
        "app.kubernetes.io/part-of": "kubed-cross-sync",
        "app.kubernetes.io/component": "sync-daemon",
    });
    let deploy = find(mgmt, "Deployment", "kubed-cross-sync");
    assert_eq!(deploy["spec"]["selector"]["matchLabels"], want);
    for (k, v) in want.as_object().unwrap() {
        assert_eq!(
            &deploy["spec"]["template"]["metadata"]["labels"][k], v,
            "{k}"
        );
    }
    assert_eq!(
        find(mgmt, "Service", "kubed-cross-sync-metrics")["spec"]["selector"],
        want
    );
    let pdb = find(mgmt, "PodDisruptionBudget", "kubed-cross-sync");
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(pdb["spec"]["selector"]["matchLabels"], want);
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(deploy["spec"]["replicas"], 2);
    let np = find(mgmt, "NetworkPolicy", "kubed-cross-sync");
    assert_eq!(np["spec"]["podSelector"]["matchLabels"], want);
    let anti = &d.pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        [0]["podAffinityTerm"];
    assert_eq!(anti["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(anti["labelSelector"]["matchLabels"], want);
    let spread = &d.pod["topologySpreadConstraints"][0];
    assert_eq!(spread["topologyKey"], "topology.kubernetes.io/zone");
    assert_eq!(spread["whenUnsatisfiable"], "ScheduleAnyway");
    assert_eq!(spread["labelSelector"]["matchLabels"], want);
}

/// /metrics reaches Prometheus: the NetworkPolicy admits the admin port from the `monitoring`
/// namespace only, and the optional ServiceMonitor (manifests/mgmt/components/servicemonitor, not
/// rendered here: `make lint` renders it over the example) selects the Service and its port.
fn metrics_reach_prometheus(mgmt: &[Value], d: &Deployed) {
    let port = &d.main["ports"][0];
    let np = find(mgmt, "NetworkPolicy", "kubed-cross-sync");
    let ingress = np["spec"]["ingress"].as_array().unwrap();
    assert_eq!(ingress.len(), 1);
    assert_eq!(ingress[0]["ports"][0]["port"], port["containerPort"]);
    assert_eq!(
        ingress[0]["from"],
        json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}])
    );
    let svc = find(mgmt, "Service", "kubed-cross-sync-metrics");
    let sm: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(
            repo().join("manifests/mgmt/components/servicemonitor/servicemonitor.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(sm["metadata"]["namespace"], svc["metadata"]["namespace"]);
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&svc["metadata"]["labels"][k], v, "the Service's label {k}");
    }
    assert_eq!(
        sm["spec"]["endpoints"][0]["port"],
        svc["spec"]["ports"][0]["name"]
    );
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
}

fn identities(mgmt: &[Value], d: &Deployed) {
    let (pod, ns) = (d.pod, &d.ns);
    // Identities: the IRSA subject of the trust policy is this ServiceAccount; RBAC binds the groups
    // that the aws-auth entries (and access entries) give the two roles.
    let sa = find(mgmt, "ServiceAccount", "kubed-cross-sync");
    assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"]);
    assert!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
            .as_str()
            .unwrap()
            .ends_with(":role/kubed-master")
    );
    let trust = read_json("manifests/iam/mgmt-trust-policy.json");
    let cond = &trust["Statement"][0]["Condition"]["StringEquals"];
    let sub = cond
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.ends_with(":sub"))
        .unwrap()
        .1;
    assert_eq!(
        sub.as_str().unwrap(),
        format!(
            "system:serviceaccount:{ns}:{}",
            sa["metadata"]["name"].as_str().unwrap()
        )
    );
    let tf = std::fs::read_to_string(repo().join("manifests/iam/terraform/mgmt/main.tf")).unwrap();
    assert!(
        tf.contains(&format!("default     = \"{ns}\"")),
        "the Terraform's default namespace is {ns}"
    );
    let follower_trust = read_json("manifests/iam/follower-trust-policy.json");
    assert!(
        follower_trust["Statement"][0]["Principal"]["AWS"]
            .as_str()
            .unwrap()
            .ends_with(":role/kubed-master")
    );
}

/// The aws-auth entries (and access entries) give the two roles the groups RBAC binds; nothing
/// is bound to system:masters or cluster-admin; only --create-namespaces adds namespaces create.
fn groups_bound(mgmt: &[Value], follower: &[Value], create_ns: &[Value]) {
    for (dir, group, docs) in [
        ("mgmt", MASTER_GROUP, mgmt),
        ("follower", FOLLOWER_GROUP, follower),
    ] {
        let mapping: Vec<Value> = serde_saphyr::from_str(
            &std::fs::read_to_string(
                repo().join(format!("manifests/{dir}/aws-auth-mapRoles.example.yaml")),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(strs(&mapping[0]["groups"]), [group]);
        let entry = read_json(&format!("manifests/{dir}/access-entry.example.json"));
        assert_eq!(strs(&entry["kubernetesGroups"]), [group]);
        assert_eq!(entry["username"], mapping[0]["username"]);
        let bound: Vec<&Value> = docs
            .iter()
            .filter(|d| d["kind"] == "ClusterRoleBinding")
            .flat_map(|d| d["subjects"].as_array().unwrap())
            .filter(|s| s["kind"] == "Group")
            .collect();
        assert!(
            bound.iter().all(|s| s["name"] == group),
            "{dir} binds only {group}"
        );
        assert!(!bound.is_empty());
    }
    // Nothing is bound to system:masters or cluster-admin anywhere.
    for d in mgmt.iter().chain(follower).chain(create_ns) {
        assert_ne!(d["roleRef"]["name"], "cluster-admin");
        let subjects = d["subjects"].as_array().cloned().unwrap_or_default();
        assert!(subjects.iter().all(|s| s["name"] != "system:masters"));
    }
    // --create-namespaces is the only thing that adds namespaces create.
    let creates = |docs: &[Value]| {
        docs.iter()
            .filter(|d| d["kind"] == "ClusterRole")
            .flat_map(|d| d["rules"].as_array().unwrap().clone())
            .any(|r| {
                strs(&r["resources"]).contains(&"namespaces".to_string())
                    && strs(&r["verbs"]).contains(&"create".to_string())
            })
    };
    assert!(!creates(follower) && !creates(mgmt));
    assert!(creates(create_ns));
}
