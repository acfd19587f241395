//! `generate`: profiles → (concurrently per profile) credentials → clusters → kubeconfig entries
//! → one write. The decisions live in `profiles` and `kubeconfig`, the file I/O in `output`.
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::join_all;

use crate::aws::{self, Files};
use crate::error::{Error, Result};
use crate::kubeconfig::{self, ClusterEntry, ExecSettings, ExecStyle};
use crate::outcome::{Collected, Fetched, collect};
use crate::profiles::{Chain, Profiles, resolve_region};
use crate::{env, output};

/// What `generate` is asked to do: the flags of `generate`, without clap (the app converts them),
/// the profile files already located.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--cluster PROFILE:CLUSTER[=CONTEXT]`, unparsed (the default profile comes from the env).
    pub clusters: Vec<String>,
    /// `--profile`: limits discovery.
    pub profiles: Vec<String>,
    pub region: Option<String>,
    /// `--regions`: discovery in each of these regions, for every profile.
    pub regions: Vec<String>,
    pub current_context: Option<String>,
    pub exec_command: String,
    pub exec_style: ExecStyle,
    /// `None`: $KUBECONFIG's first path, else ~/.kube/config; `-` is stdout.
    pub kubeconfig: Option<PathBuf>,
    pub replace: bool,
    pub keep_going: bool,
    pub files: Files,
    /// `--timeout`: the deadline of each AWS call.
    pub timeout: Duration,
}

/// `PROFILE:CLUSTER[=CONTEXT]`; without `PROFILE:` the profile is $AWS_PROFILE, else `default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterArg {
    pub profile: String,
    pub cluster: String,
    /// `@REGION`: this cluster's region, whatever the profile's.
    pub region: Option<String>,
    pub context: Option<String>,
}

pub fn parse_cluster_arg(s: &str, default_profile: &str) -> Result<ClusterArg> {
    let bad = || {
        Error::Usage(format!(
            "--cluster {s:?}: expected PROFILE:CLUSTER[@REGION][=CONTEXT]"
        ))
    };
    let (rest, context) = match s.split_once('=') {
        Some((r, c)) if !c.is_empty() => (r, Some(c.to_string())),
        Some(_) => return Err(bad()),
        None => (s, None),
    };
    let (profile, cluster) = match rest.split_once(':') {
        Some((p, c)) => (p.to_string(), c.to_string()),
        None => (default_profile.to_string(), rest.to_string()),
    };
    let (cluster, region) = match cluster.split_once('@') {
        Some((c, r)) if !r.is_empty() => (c.to_string(), Some(r.to_string())),
        Some(_) => return Err(bad()),
        None => (cluster, None),
    };
    if profile.is_empty() || cluster.is_empty() {
        return Err(bad());
    }
    Ok(ClusterArg {
        profile,
        cluster,
        region,
        context,
    })
}

/// Clusters of one region asked for by name, each with its context override.
type Wanted = Vec<(String, Option<String>)>;

/// A cluster asked for by name: name, `@REGION`, context override.
type Asked = (String, Option<String>, Option<String>);

/// What one profile needs: its chain and region, checked before any AWS call.
struct Plan {
    profile: String,
    region: String,
    chain: Chain,
    /// `None`: discover with ListClusters.
    clusters: Option<Wanted>,
}

/// PROFILE's plans, one per region: for the clusters asked for, one per region they name (the
/// profile's region when they name none); for discovery, one per `--regions` entry, else the
/// profile's region. The chain and its token files are checked once, before any AWS call.
fn plan_profile(
    profiles: &Profiles,
    profile: &str,
    regions: &Regions<'_>,
    clusters: Option<Vec<Asked>>,
) -> Result<Vec<Plan>> {
    let chain = profiles.chain(profile)?;
    aws::check_chain(&chain)?;
    let default = || {
        resolve_region(regions.flag, &env::var, || {
            profiles.configured_region(profile)
        })
        .ok_or_else(|| Error::NoRegion {
            profile: profile.to_string(),
        })
    };
    let mut by_region: Vec<(String, Option<Wanted>)> = Vec::new();
    match clusters {
        None if !regions.discover.is_empty() => {
            by_region.extend(regions.discover.iter().map(|r| (r.clone(), None)));
        }
        None => by_region.push((default()?, None)),
        Some(list) => {
            for (name, region, context) in list {
                let region = match region {
                    Some(r) => r,
                    None => default()?,
                };
                match by_region.iter_mut().find(|(r, _)| *r == region) {
                    Some((_, Some(w))) => w.push((name, context)),
                    _ => by_region.push((region, Some(vec![(name, context)]))),
                }
            }
        }
    }
    Ok(by_region
        .into_iter()
        .map(|(region, clusters)| Plan {
            profile: profile.to_string(),
            region,
            chain: chain.clone(),
            clusters,
        })
        .collect())
}

/// The region flags of `generate`.
struct Regions<'a> {
    /// `--region`: every profile's region.
    flag: Option<&'a str>,
    /// `--regions`: discover in each.
    discover: &'a [String],
}

/// A cluster as described once: (profile, region, name).
type Key = (String, String, String);

/// What `--watch` remembers from one round to the next (plain `generate`: one empty memory).
#[derive(Debug, Default)]
pub struct Memory {
    /// Clusters described in earlier rounds: not described again while ListClusters still lists
    /// them (`watch` empties it for a full re-describe).
    pub described: HashMap<Key, aws::Described>,
    /// The entries written last (before region naming): kept for a profile whose round failed.
    last: Vec<ClusterEntry>,
    /// Names of the entries generated last: removed from a merged file once they go away.
    written: Option<kubeconfig::Names>,
}

/// How a round writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plain `generate`: always write; `--keep-going` without the management context is exit 7
    /// after writing the rest.
    Once,
    /// `--watch`'s first round: as `Once`, but the file is left alone when its bytes would not change.
    WatchFirst,
    /// A later `--watch` round: a round that would lose the management context writes nothing.
    WatchLater,
}

/// What a round wrote.
#[derive(Debug)]
pub struct Written {
    /// The file's bytes changed (and it was written).
    pub changed: bool,
    /// The contexts generated this round.
    pub contexts: BTreeSet<String>,
    /// `--keep-going` wrote the rest, but not the management context (plain `generate`: exit 7).
    pub partial: Option<Error>,
}

async fn fetch_profile(
    files: &Files,
    plan: &Plan,
    timeout: Duration,
    known: &HashMap<Key, aws::Described>,
) -> Fetched {
    let (profile, region) = (plan.profile.as_str(), plan.region.as_str());
    let cfg = aws::profile_config(files, profile, region, timeout).await;
    let creds = match aws::credentials(files, &cfg, profile, timeout).await {
        Ok(c) => c,
        Err(e) => return Fetched::Profile(profile.to_string(), e),
    };
    let who = aws::Asker {
        files,
        profile,
        region,
        timeout,
    };
    let wanted = match &plan.clusters {
        Some(list) => list.clone(),
        None => match aws::list_clusters(&cfg, creds.clone(), &who).await {
            Ok(names) => names.into_iter().map(|n| (n, None)).collect(),
            Err(e) => return Fetched::Profile(profile.to_string(), e),
        },
    };
    let key = |name: &str| (profile.to_string(), region.to_string(), name.to_string());
    tracing::debug!(
        profile,
        region,
        clusters = wanted.len(),
        new = wanted
            .iter()
            .filter(|(n, _)| !known.contains_key(&key(n)))
            .count(),
        "describing the clusters not described before"
    );
    let described = join_all(wanted.into_iter().map(|(name, context)| {
        let (cfg, creds, who) = (&cfg, creds.clone(), &who);
        let cached = known.get(&key(&name)).cloned();
        async move {
            let d = match cached {
                Some(d) => d,
                None => aws::describe_cluster(cfg, creds, who, &name).await?,
            };
            Ok(ClusterEntry {
                context: context.unwrap_or_else(|| name.clone()),
                profile: profile.to_string(),
                name,
                arn: d.arn,
                region: region.to_string(),
                endpoint: d.endpoint,
                ca_data: d.ca_data,
            })
        }
    }))
    .await;
    Fetched::Clusters(described)
}

/// `generate`: plan every profile (no AWS call yet), fetch the clusters, assemble the kubeconfig,
/// write it, and print the summary; with `--keep-going` what succeeded is written anyway.
pub async fn generate(opts: Options) -> Result<()> {
    let written = round(&opts, &mut Memory::default(), Mode::Once).await?;
    match written.partial {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// One round of `generate`: the profiles read, planned and fetched (clusters in MEMORY are not
/// described again), the kubeconfig assembled and written as MODE says.
pub async fn round(opts: &Options, memory: &mut Memory, mode: Mode) -> Result<Written> {
    if !opts.clusters.is_empty() && !opts.profiles.is_empty() {
        return Err(Error::Usage(
            "--profile limits discovery; with --cluster name the profile in PROFILE:CLUSTER".into(),
        ));
    }
    let files = &opts.files;
    let profiles = files.read_profiles()?;
    let wanted = wanted(&profiles, &opts.profiles, &opts.clusters)?;
    if wanted.is_empty() {
        return Err(Error::Usage(format!(
            "no profile with credentials in {} or {}",
            files.config.display(),
            files.credentials.display()
        )));
    }
    let profile_count = wanted.len();
    let regions = Regions {
        flag: opts.region.as_deref(),
        discover: &opts.regions,
    };
    let (plans, plan_failures) = plan(&profiles, wanted, &regions);
    if !plan_failures.is_empty() && !opts.keep_going {
        // No AWS call yet: the other profiles count as asked for, none of their clusters as tried.
        return Err(collect(profile_count, plan_failures).error());
    }
    let known = &memory.described;
    let fetched = join_all(
        plans
            .iter()
            .map(|p| fetch_profile(files, p, opts.timeout, known)),
    );
    let fetched: Vec<Fetched> = plan_failures.into_iter().chain(fetched.await).collect();
    let failed: BTreeSet<String> = fetched
        .iter()
        .filter_map(|f| match f {
            Fetched::Profile(p, _) => Some(p.clone()),
            Fetched::Clusters(_) => None,
        })
        .collect();
    let mut collected = collect(profile_count, fetched);
    carry_over(&mut collected.entries, &memory.last, &failed);
    if !collected.failures.is_empty() && (!opts.keep_going || collected.entries.is_empty()) {
        return Err(collected.error());
    }
    if collected.entries.is_empty() {
        return Err(Error::Usage(
            "eks:ListClusters found no cluster for any profile; name them with --cluster".into(),
        ));
    }
    memory.described = collected
        .entries
        .iter()
        .map(|e| {
            let d = aws::Described {
                arn: e.arn.clone(),
                endpoint: e.endpoint.clone(),
                ca_data: e.ca_data.clone(),
            };
            ((e.profile.clone(), e.region.clone(), e.name.clone()), d)
        })
        .collect();
    let last = collected.entries.clone();
    let roots: HashMap<String, String> = plans
        .iter()
        .map(|p| (p.profile.clone(), p.chain.root().to_string()))
        .collect();
    kubeconfig::name_by_region(&mut collected.entries);
    if opts.keep_going {
        collected.skip_collisions(&roots);
    } else {
        kubeconfig::check_contexts(&collected.entries)?;
    }
    let (written, names) = write(collected, &roots, &target(opts, mode), memory)?;
    memory.last = last;
    memory.written = Some(names);
    Ok(written)
}

/// `--watch`: a profile whose round failed (STS throttled, a token file mid-rotation) keeps the
/// clusters it had in the last round instead of dropping them from the file for one interval; it
/// is still reported as skipped. A cluster is removed only when ListClusters stops listing it or
/// its profile leaves the files.
fn carry_over(entries: &mut Vec<ClusterEntry>, last: &[ClusterEntry], failed: &BTreeSet<String>) {
    let key = |e: &ClusterEntry| (e.profile.clone(), e.region.clone(), e.name.clone());
    let have: BTreeSet<Key> = entries.iter().map(key).collect();
    let kept: Vec<ClusterEntry> = last
        .iter()
        .filter(|e| failed.contains(&e.profile) && !have.contains(&key(e)))
        .cloned()
        .collect();
    entries.extend(kept);
}

fn target(opts: &Options, mode: Mode) -> Target {
    Target {
        path: output::path(opts.kubeconfig.clone()),
        replace: opts.replace,
        current_flag: opts.current_context.clone(),
        mode,
        settings: ExecSettings {
            style: opts.exec_style,
            command: opts.exec_command.clone(),
            extra_env: opts.files.exec_env(),
        },
    }
}

/// Where and how `generate` writes.
struct Target {
    path: PathBuf,
    replace: bool,
    current_flag: Option<String>,
    mode: Mode,
    settings: ExecSettings,
}

/// Chooses the current context, merges, writes, and reports. After `--keep-going` skipped
/// something, a management context that cannot be chosen (its cluster failed) is no reason to
/// withhold the rest: the rest is written under the existing current-context and the run ends
/// in `Partial` (exit 7). Nothing skipped: the rule's answer stands, as before. A later `--watch`
/// round writes nothing then: the file keeps its management context.
fn write(
    collected: Collected,
    roots: &HashMap<String, String>,
    target: &Target,
    memory: &Memory,
) -> Result<(Written, kubeconfig::Names)> {
    let path = &target.path;
    let entries = &collected.entries;
    // The names do not depend on the current context. What this process generated before and no
    // longer generates leaves the existing file before the current context is chosen from it.
    let names = kubeconfig::Names::of(&kubeconfig::build(entries, &target.settings, None));
    let mut existing = if output::is_stdout(path) || target.replace {
        None
    } else {
        output::read_existing(path)?
    };
    if let (Some(old), Some(before)) = (existing.as_mut(), &memory.written) {
        kubeconfig::forget(old, before, &names);
    }
    let complete = collected.failures.is_empty();
    let chosen = kubeconfig::choose_current(
        entries,
        roots,
        target.current_flag.as_deref(),
        existing.as_ref(),
        complete,
    );
    let (current, missed) = match chosen {
        Ok(c) => (Some(c), None),
        Err(e @ (Error::NoRootContext { .. } | Error::UnknownCurrentContext(_))) if !complete => {
            (None, Some(e))
        }
        Err(e) => return Err(e),
    };
    let report = (!complete).then(|| collected.skipped_report());
    let partial = missed.map(|reason| Error::Partial {
        failures: collected.failures,
        tally: collected.tally,
        reason: Box::new(reason),
    });
    if target.mode == Mode::WatchLater
        && let Some(e) = partial
    {
        return Err(e);
    }
    let generated = kubeconfig::build(entries, &target.settings, current.as_deref());
    let config = match existing {
        Some(old) => kubeconfig::merge(old, generated),
        None => generated,
    };
    let yaml = kubeconfig::to_yaml(&config)?;
    let changed = match target.mode {
        Mode::Once => output::write(path, &yaml).map(|()| true)?,
        Mode::WatchFirst | Mode::WatchLater => output::write_if_changed(path, &yaml)?,
    };
    // The first round's summary also when the file already held it (the init step wrote it).
    if changed || target.mode == Mode::WatchFirst {
        summary(entries, current.as_deref(), path, changed);
    }
    if let (None, Some(report)) = (&partial, report) {
        output::say(&report);
    }
    let written = Written {
        changed,
        contexts: names.contexts.clone(),
        partial,
    };
    Ok((written, names))
}

/// Profile → the clusters asked for by name (`None`: discover them), in first-mention order:
/// from `--cluster`, else the `--profile`s, else every profile that has credentials.
fn wanted(
    profiles: &Profiles,
    only: &[String],
    clusters: &[String],
) -> Result<Vec<(String, Option<Vec<Asked>>)>> {
    let default_profile = env::var("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let mut wanted: Vec<(String, Option<Vec<Asked>>)> = Vec::new();
    if clusters.is_empty() {
        let names: Vec<String> = if only.is_empty() {
            profiles
                .credential_profiles()
                .into_iter()
                .map(str::to_string)
                .collect()
        } else {
            only.to_vec()
        };
        wanted.extend(names.into_iter().map(|p| (p, None)));
    } else {
        for raw in clusters {
            let c = parse_cluster_arg(raw, &default_profile)?;
            let asked = (c.cluster, c.region, c.context);
            match wanted.iter_mut().find(|(p, _)| *p == c.profile) {
                Some((_, Some(list))) => list.push(asked),
                _ => wanted.push((c.profile, Some(vec![asked]))),
            }
        }
    }
    Ok(wanted)
}

/// A plan per profile, or why the profile cannot run, both in the profiles' order.
fn plan(
    profiles: &Profiles,
    wanted: Vec<(String, Option<Vec<Asked>>)>,
    regions: &Regions<'_>,
) -> (Vec<Plan>, Vec<Fetched>) {
    let mut plans = Vec::new();
    let mut failures = Vec::new();
    for (profile, clusters) in wanted {
        match plan_profile(profiles, &profile, regions, clusters) {
            Ok(p) => plans.extend(p),
            Err(e) => failures.push(Fetched::Profile(profile, e)),
        }
    }
    (plans, failures)
}

/// One line per context on stderr (stdout may be the kubeconfig itself).
fn summary(entries: &[ClusterEntry], current: Option<&str>, path: &Path, wrote: bool) {
    let mut err = std::io::stderr().lock();
    for e in entries {
        let _ = writeln!(
            err,
            "context {}: profile {}, account {}, region {}, endpoint {}",
            e.context,
            e.profile,
            e.account(),
            e.region,
            e.endpoint
        );
    }
    let done = if wrote { "wrote" } else { "unchanged:" };
    let _ = match current {
        Some(c) => writeln!(err, "current-context {c}; {done} {}", path.display()),
        None => writeln!(
            err,
            "current-context not chosen (the file keeps its own, if any); {done} {}",
            path.display()
        ),
    };
}

#[cfg(test)]
#[path = "generate_tests.rs"]
mod tests;
