//! Described EKS clusters → kube's `Kubeconfig` (the same shapes `aws eks update-kubeconfig` writes,
//! with kubeconfig-gen as the exec plugin), merging into an existing file, and YAML. Pure.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use kube::config::{
    AuthInfo, Cluster, Context, ExecConfig, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};

use crate::error::{Cause, Error, Result};

pub const EXEC_API_VERSION: &str = "client.authentication.k8s.io/v1beta1";

/// One cluster as DescribeCluster returned it, with the profile that reached it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterEntry {
    pub context: String,
    pub profile: String,
    pub name: String,
    pub arn: String,
    pub region: String,
    pub endpoint: String,
    pub ca_data: String,
}

impl ClusterEntry {
    /// The account field of the ARN (`arn:aws:eks:REGION:ACCOUNT:cluster/NAME`).
    pub fn account(&self) -> &str {
        self.arn.split(':').nth(4).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecStyle {
    /// `kubeconfig-gen token --cluster-name N --region R`
    Native,
    /// awscli's own entry: `aws --region R eks get-token --cluster-name N --output json`
    Awscli,
}

#[derive(Debug, Clone)]
pub struct ExecSettings {
    pub style: ExecStyle,
    /// The command for the native style (`--exec-command`).
    pub command: String,
    /// Set besides AWS_PROFILE: AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE when non-default.
    pub extra_env: Vec<(String, String)>,
}

/// Contexts of same-named clusters in different regions: each default context (the cluster's
/// name) whose name is found in more than one region becomes `NAME@REGION`; a context named
/// with `=CONTEXT` is kept. Same-named clusters in one region (other accounts) still collide.
pub fn name_by_region(entries: &mut [ClusterEntry]) {
    let mut regions: HashMap<String, BTreeSet<String>> = HashMap::new();
    for e in entries.iter().filter(|e| e.context == e.name) {
        regions
            .entry(e.name.clone())
            .or_default()
            .insert(e.region.clone());
    }
    for e in entries.iter_mut() {
        if e.context == e.name && regions.get(&e.name).is_some_and(|r| r.len() > 1) {
            e.context = format!("{}@{}", e.name, e.region);
        }
    }
}

/// Two clusters wanting one context name is an error naming both.
pub fn check_contexts(entries: &[ClusterEntry]) -> Result<()> {
    let mut seen: BTreeMap<&str, &ClusterEntry> = BTreeMap::new();
    for e in entries {
        if let Some(first) = seen.insert(&e.context, e) {
            return Err(Error::DuplicateContext {
                context: e.context.clone(),
                first: format!("{} (profile {})", first.arn, first.profile),
                second: format!("{} (profile {})", e.arn, e.profile),
            });
        }
    }
    Ok(())
}

/// `--current-context`, else the one context whose profile is the root of every chain
/// (the web-identity / management profile), else the only context. `complete`: nothing was
/// skipped; after a skip the only context left may be a follower's, which must not pass for the
/// management context.
pub fn choose_current(
    entries: &[ClusterEntry],
    roots: &HashMap<String, String>,
    flag: Option<&str>,
    existing: Option<&Kubeconfig>,
    complete: bool,
) -> Result<String> {
    if let Some(ctx) = flag {
        let known = entries.iter().any(|e| e.context == ctx)
            || existing.is_some_and(|k| k.contexts.iter().any(|c| c.name == ctx));
        return if known {
            Ok(ctx.to_string())
        } else {
            Err(Error::UnknownCurrentContext(ctx.to_string()))
        };
    }
    if let ([only], true) = (entries, complete) {
        return Ok(only.context.clone());
    }
    let root_profiles: BTreeSet<&str> = entries
        .iter()
        .filter_map(|e| roots.get(&e.profile).map(String::as_str))
        .collect();
    let ambiguous = |reason: String| Error::AmbiguousCurrentContext { reason };
    let root = match root_profiles.iter().collect::<Vec<_>>().as_slice() {
        [one] => **one,
        [] => return Err(ambiguous("no clusters".into())),
        many => {
            return Err(ambiguous(format!(
                "the chains have several roots: {}",
                many.iter().map(|s| **s).collect::<Vec<_>>().join(", ")
            )));
        }
    };
    let candidates: Vec<&ClusterEntry> = entries.iter().filter(|e| e.profile == root).collect();
    match candidates.as_slice() {
        [one] => Ok(one.context.clone()),
        [] => Err(Error::NoRootContext {
            root: root.to_string(),
        }),
        many => Err(ambiguous(format!(
            "the root profile {root} reaches several clusters: {}",
            many.iter()
                .map(|e| e.context.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn exec(entry: &ClusterEntry, settings: &ExecSettings) -> ExecConfig {
    let mut env = vec![HashMap::from([
        ("name".to_string(), "AWS_PROFILE".to_string()),
        ("value".to_string(), entry.profile.clone()),
    ])];
    let (command, args) = match settings.style {
        ExecStyle::Native => (
            settings.command.clone(),
            vec![
                "token",
                "--cluster-name",
                &entry.name,
                "--region",
                &entry.region,
            ],
        ),
        ExecStyle::Awscli => (
            "aws".to_string(),
            vec![
                "--region",
                &entry.region,
                "eks",
                "get-token",
                "--cluster-name",
                &entry.name,
                "--output",
                "json",
            ],
        ),
    };
    env.extend(settings.extra_env.iter().map(|(k, v)| {
        HashMap::from([
            ("name".to_string(), k.clone()),
            ("value".to_string(), v.clone()),
        ])
    }));
    ExecConfig {
        api_version: Some(EXEC_API_VERSION.to_string()),
        command: Some(command),
        args: Some(args.into_iter().map(str::to_string).collect()),
        env: Some(env),
        drop_env: None,
        install_hint: None,
        interactive_mode: None,
        provide_cluster_info: false,
        cluster: None,
        other: Default::default(),
    }
}

/// The generated entries, the current context's last in each list (`None`: no current context
/// was chosen; merging keeps the existing file's). Users are named by the ARN as
/// awscli does; when two profiles reach the same ARN, `ARN/profile` keeps them apart (aws-cli#4079).
pub fn build(
    entries: &[ClusterEntry],
    settings: &ExecSettings,
    current: Option<&str>,
) -> Kubeconfig {
    let mut ordered: Vec<&ClusterEntry> = entries.iter().collect();
    ordered.sort_by_key(|e| Some(e.context.as_str()) == current); // stable: others keep their order
    let mut per_arn: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for e in entries {
        per_arn.entry(&e.arn).or_default().insert(&e.profile);
    }
    let user_name = |e: &ClusterEntry| {
        if per_arn.get(e.arn.as_str()).is_some_and(|p| p.len() > 1) {
            format!("{}/{}", e.arn, e.profile)
        } else {
            e.arn.clone()
        }
    };
    let mut k = Kubeconfig {
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        current_context: current.map(str::to_string),
        ..Kubeconfig::default()
    };
    for e in ordered {
        let cluster = NamedCluster {
            name: e.arn.clone(),
            cluster: Some(Cluster {
                server: Some(e.endpoint.clone()),
                certificate_authority_data: Some(e.ca_data.clone()),
                ..Cluster::default()
            }),
            other: Default::default(),
        };
        if let Some(pos) = k.clusters.iter().position(|c| c.name == cluster.name) {
            k.clusters.remove(pos);
        }
        k.clusters.push(cluster);
        k.auth_infos.push(NamedAuthInfo {
            name: user_name(e),
            auth_info: Some(AuthInfo {
                exec: Some(exec(e, settings)),
                ..AuthInfo::default()
            }),
            other: Default::default(),
        });
        k.contexts.push(NamedContext {
            name: e.context.clone(),
            context: Some(Context {
                cluster: e.arn.clone(),
                user: Some(user_name(e)),
                namespace: None,
                extensions: None,
                other: Default::default(),
            }),
            other: Default::default(),
        });
    }
    k
}

fn upsert<T>(list: &mut Vec<T>, item: T, name: impl Fn(&T) -> &str) {
    match list.iter().position(|x| name(x) == name(&item)) {
        Some(i) => list[i] = item,
        None => list.push(item),
    }
}

fn move_last<T>(list: &mut Vec<T>, pred: impl Fn(&T) -> bool) {
    let (mut rest, last): (Vec<T>, Vec<T>) = list.drain(..).partition(|x| !pred(x));
    rest.extend(last);
    *list = rest;
}

/// Merges generated entries into an existing kubeconfig as awscli does: a same-named entry is
/// replaced in place, anything else is appended, foreign entries are kept. The current context's
/// entries then move to the end of each list.
pub fn merge(mut existing: Kubeconfig, generated: Kubeconfig) -> Kubeconfig {
    for c in generated.clusters {
        upsert(&mut existing.clusters, c, |c| &c.name);
    }
    for u in generated.auth_infos {
        upsert(&mut existing.auth_infos, u, |u| &u.name);
    }
    for c in generated.contexts {
        upsert(&mut existing.contexts, c, |c| &c.name);
    }
    existing.current_context = generated.current_context.or(existing.current_context);
    existing.api_version = existing.api_version.or(Some("v1".into()));
    existing.kind = existing.kind.or(Some("Config".into()));
    if let Some(cur) = existing
        .current_context
        .as_ref()
        .and_then(|cur| existing.contexts.iter().find(|c| &c.name == cur))
        .and_then(|c| c.context.clone())
    {
        let user = cur.user.clone().unwrap_or_default();
        move_last(&mut existing.clusters, |c| c.name == cur.cluster);
        move_last(&mut existing.auth_infos, |u| u.name == user);
        let name = existing.current_context.clone().unwrap_or_default();
        move_last(&mut existing.contexts, |c| c.name == name);
    }
    existing
}

/// The names of the entries `build` generated: what a later `--watch` round removes from a merged
/// file when its cluster is gone (entries the process did not generate itself are never removed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    pub clusters: BTreeSet<String>,
    pub users: BTreeSet<String>,
    pub contexts: BTreeSet<String>,
}

impl Names {
    pub fn of(k: &Kubeconfig) -> Names {
        Names {
            clusters: k.clusters.iter().map(|c| c.name.clone()).collect(),
            users: k.auth_infos.iter().map(|u| u.name.clone()).collect(),
            contexts: k.contexts.iter().map(|c| c.name.clone()).collect(),
        }
    }
}

/// Removes from EXISTING the entries generated BEFORE that are not generated NOW (a cluster that
/// went away), leaving every other entry as it is.
pub fn forget(existing: &mut Kubeconfig, before: &Names, now: &Names) {
    let gone = |set: &BTreeSet<String>, kept: &BTreeSet<String>, name: &str| {
        set.contains(name) && !kept.contains(name)
    };
    existing
        .clusters
        .retain(|c| !gone(&before.clusters, &now.clusters, &c.name));
    existing
        .auth_infos
        .retain(|u| !gone(&before.users, &now.users, &u.name));
    existing
        .contexts
        .retain(|c| !gone(&before.contexts, &now.contexts, &c.name));
    if let Some(cur) = &existing.current_context
        && gone(&before.contexts, &now.contexts, cur)
    {
        existing.current_context = None;
    }
}

/// The kubeconfig as YAML with every mapping's keys sorted, as awscli (PyYAML) writes them.
/// Byte-stable: kube's exec `env` entries are `HashMap`s, whose order changed from run to run
/// and made every regeneration a diff.
pub fn to_yaml(k: &Kubeconfig) -> Result<String> {
    let fail = |e: String| Error::Serialize {
        what: "kubeconfig",
        source: Cause(e),
    };
    let value = serde_json::to_value(k).map_err(|e| fail(e.to_string()))?;
    serde_saphyr::to_string(&sorted(value)).map_err(|e| fail(e.to_string()))
}

/// VALUE with the keys of every object in sorted order (whatever map serde_json was built with).
fn sorted(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let ordered: BTreeMap<String, Value> =
                map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(ordered.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

pub fn from_yaml(text: &str) -> std::result::Result<Kubeconfig, String> {
    if text.trim().is_empty() {
        return Ok(Kubeconfig::default());
    }
    Kubeconfig::from_yaml(text).map_err(|e| crate::error::chain(&e))
}

#[cfg(test)]
#[path = "kubeconfig_tests.rs"]
mod tests;
