//! The fleet bench's world: which contexts reach which cluster (several contexts per apiserver
//! when there are more followers than clusters, each alias with a namespace of its own), the
//! kubeconfig whose every user is the exec plugin `kubeconfig-gen token` (STS in moto, behind the
//! counting proxy, then the testbed's EKS-style webhook and aws-auth), and the RBAC that lets the
//! mapped groups write (cluster-admin: the bench measures cost, item 8's test measures RBAC).
use std::path::Path;

use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, Patch, PatchParams};
use kube::config::NamedAuthInfo;
use serde_json::json;

use super::{BenchError, World};
use crate::error::TestbedError;
use crate::{REGION, aws, kubeconfig};

/// The groups the testbed's aws-auth maps kubed-master and kubed-follower to.
const GROUPS: [&str; 2] = ["kubed-cross-sync:master", "kubed-cross-sync:follower"];

/// A follower context: its name, the index of its cluster in `World::names`, and which alias
/// of that cluster it is (0: the cluster's own context, copies in the source namespace;
/// k > 0: context `<cluster>-a<k>` with namespace `<ns>-a<k>`).
#[derive(Clone, Debug)]
pub struct Ctx {
    pub name: String,
    pub cluster: usize,
    pub alias: usize,
}

impl Ctx {
    /// The namespace its copies land in, for sources of `ns`.
    pub fn target_ns(&self, ns: &str) -> String {
        alias_ns(ns, self.alias)
    }
}

pub fn alias_ns(ns: &str, alias: usize) -> String {
    if alias == 0 {
        ns.to_string()
    } else {
        format!("{ns}-a{alias}")
    }
}

/// `n` follower contexts spread round-robin over the first `clusters` follower clusters.
pub fn contexts(names: &[String], n: usize, clusters: usize) -> Vec<Ctx> {
    let clusters = clusters.clamp(1, names.len().saturating_sub(1).max(1));
    (0..n)
        .map(|i| {
            let cluster = i % clusters + 1;
            let alias = i / clusters;
            let base = &names[cluster];
            Ctx {
                name: if alias == 0 {
                    base.clone()
                } else {
                    format!("{base}-a{alias}")
                },
                cluster,
                alias,
            }
        })
        .collect()
}

/// The distinct clusters `ctxs` reach (indexes into `World::names`), in order.
pub fn clusters_of(ctxs: &[Ctx]) -> Vec<usize> {
    let mut v: Vec<usize> = ctxs.iter().map(|c| c.cluster).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Binds the groups aws-auth maps our roles to, to cluster-admin, in every cluster.
pub async fn grant(w: &World) -> Result<(), BenchError> {
    let crb: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "bench-kubed-cross-sync"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": GROUPS.iter().map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g})).collect::<Vec<_>>(),
    }))
    .map_err(|e| encode("the bench ClusterRoleBinding", e))?;
    for (c, name) in w.clients.iter().zip(&w.names) {
        Api::<ClusterRoleBinding>::all(c.clone())
            .patch(
                "bench-kubed-cross-sync",
                &PatchParams::apply("bench").force(),
                &Patch::Apply(&crb),
            )
            .await
            .map_err(|source| BenchError::Kube {
                action: format!("bind the kubed-cross-sync groups in {name}"),
                source,
            })?;
    }
    Ok(())
}

fn encode(what: &'static str, e: serde_json::Error) -> BenchError {
    BenchError::Harness(TestbedError::Encode {
        what,
        source: Box::new(e),
    })
}

/// The exec user of a context that reaches EKS cluster `cluster`: what `kubeconfig-gen
/// generate` writes (`token --cluster-name C --region R`, `AWS_PROFILE` = the cluster's profile).
fn exec_user(
    user: &str,
    cluster: &str,
    kubeconfig_gen: &Path,
) -> Result<NamedAuthInfo, BenchError> {
    serde_json::from_value(json!({
        "name": user,
        "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": kubeconfig_gen,
            "args": ["token", "--cluster-name", cluster, "--region", REGION],
            "env": [{"name": "AWS_PROFILE", "value": aws::profile_name(cluster)}],
        }},
    }))
    .map_err(|e| encode("an exec user", e))
}

/// Writes the daemon's kubeconfig: the source and `ctxs`, every user an exec plugin.
pub fn write_kubeconfig(
    w: &World,
    ctxs: &[Ctx],
    ns: &str,
    kubeconfig_gen: &Path,
    out: &Path,
) -> Result<(), BenchError> {
    let own: Vec<String> = clusters_of(ctxs)
        .into_iter()
        .map(|i| w.names[i].clone())
        .collect();
    let admin = kubeconfig::read(&w.tb.kubeconfig_path())?;
    let mut kc = kubeconfig::subset(&admin, &w.names[0], &own);
    let mut users = Vec::new();
    for ctx in &mut kc.contexts {
        let Some(c) = ctx.context.as_mut() else {
            continue;
        };
        let user = format!("exec-{}", ctx.name);
        users.push(exec_user(&user, &ctx.name, kubeconfig_gen)?);
        c.user = Some(user);
    }
    kc.auth_infos = users;
    for ctx in ctxs.iter().filter(|c| c.alias > 0) {
        kubeconfig::add_alias(
            &mut kc,
            &w.names[ctx.cluster],
            &ctx.name,
            Some(&ctx.target_ns(ns)),
        )?;
    }
    kubeconfig::write(&kc, out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_fill_clusters_first_then_alias() {
        let names: Vec<String> = ["src", "f1", "f2", "f3"].map(String::from).to_vec();
        let one = contexts(&names, 1, 3);
        assert_eq!(one[0].name, "f1");
        let seven = contexts(&names, 7, 3);
        let got: Vec<&str> = seven.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(got, ["f1", "f2", "f3", "f1-a1", "f2-a1", "f3-a1", "f1-a2"]);
        assert_eq!(clusters_of(&seven), [1, 2, 3]);
        assert_eq!(seven[6].target_ns("ns"), "ns-a2");
        assert_eq!(seven[0].target_ns("ns"), "ns");
    }
}
