//! `generate` and `explain`: profiles → (concurrently per profile) credentials → clusters →
//! kubeconfig entries → one atomic write. The decisions live in `profiles` and `kubeconfig`.
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use futures::future::join_all;
use serde_json::json;

use crate::aws::{self, Files};
use crate::cli::{ExplainArgs, GenerateArgs};
use crate::error::{Error, Result};
use crate::kubeconfig::{self, ClusterEntry, ExecSettings};
use crate::profiles::{Chain, Profiles};

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

/// `PROFILE:CLUSTER[=CONTEXT]`; without `PROFILE:` the profile is $AWS_PROFILE, else `default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterArg {
    pub profile: String,
    pub cluster: String,
    pub context: Option<String>,
}

pub fn parse_cluster_arg(s: &str, default_profile: &str) -> Result<ClusterArg> {
    let bad = || {
        Error::Usage(format!(
            "--cluster {s:?}: expected PROFILE:CLUSTER[=CONTEXT]"
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
    if profile.is_empty() || cluster.is_empty() {
        return Err(bad());
    }
    Ok(ClusterArg {
        profile,
        cluster,
        context,
    })
}

/// Clusters asked for by name, each with its context override.
type Wanted = Vec<(String, Option<String>)>;

/// What one profile needs: its chain and region, checked before any AWS call.
struct Plan {
    profile: String,
    region: String,
    chain: Chain,
    /// `None`: discover with ListClusters.
    clusters: Option<Wanted>,
}

fn plan_profile(
    profiles: &Profiles,
    profile: &str,
    region_flag: Option<&str>,
    clusters: Option<Wanted>,
) -> Result<Plan> {
    let chain = profiles.chain(profile)?;
    aws::check_token_files(&chain)?;
    let region = region_flag
        .map(str::to_string)
        .or_else(|| profiles.region(profile, &env))
        .ok_or_else(|| Error::NoRegion {
            profile: profile.to_string(),
        })?;
    Ok(Plan {
        profile: profile.to_string(),
        region,
        chain,
        clusters,
    })
}

async fn run_plan(files: &Files, plan: &Plan) -> Vec<Result<ClusterEntry>> {
    let (profile, region) = (plan.profile.as_str(), plan.region.as_str());
    let cfg = aws::profile_config(files, profile, region).await;
    let creds = match aws::credentials(&cfg, profile).await {
        Ok(c) => c,
        Err(e) => return vec![Err(e)],
    };
    let wanted = match &plan.clusters {
        Some(list) => list.clone(),
        None => match aws::list_clusters(&cfg, creds.clone(), profile, region).await {
            Ok(names) => names.into_iter().map(|n| (n, None)).collect(),
            Err(e) => return vec![Err(e)],
        },
    };
    tracing::debug!(
        profile,
        region,
        clusters = wanted.len(),
        "describing clusters"
    );
    join_all(wanted.into_iter().map(|(name, context)| {
        let (cfg, creds) = (&cfg, creds.clone());
        async move {
            let d = aws::describe_cluster(cfg, creds, profile, region, &name).await?;
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
    .await
}

fn output_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| {
        env("KUBECONFIG")
            .and_then(|k| std::env::split_paths(&k).find(|p| !p.as_os_str().is_empty()))
    })
    .unwrap_or_else(|| PathBuf::from(env("HOME").unwrap_or_default()).join(".kube/config"))
}

/// Temp file in the same directory, mode 0600, fsync, rename: readers see the old or the new file.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let fail = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(fail)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".kubeconfig-gen.")
        .tempfile_in(&dir)
        .map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o600))
            .map_err(fail)?;
    }
    tmp.write_all(text.as_bytes()).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

pub async fn generate(args: GenerateArgs) -> Result<()> {
    if !args.clusters.is_empty() && !args.profiles.is_empty() {
        return Err(Error::Usage(
            "--profile limits discovery; with --cluster name the profile in PROFILE:CLUSTER".into(),
        ));
    }
    let files = Files::resolve(args.files.config_file, args.files.credentials_file);
    let profiles = files.read_profiles()?;
    let default_profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());

    // Profile → clusters wanted (None = discover), in first-mention order.
    let mut wanted: Vec<(String, Option<Wanted>)> = Vec::new();
    if args.clusters.is_empty() {
        let names: Vec<String> = if args.profiles.is_empty() {
            profiles
                .credential_profiles()
                .into_iter()
                .map(str::to_string)
                .collect()
        } else {
            args.profiles.clone()
        };
        wanted.extend(names.into_iter().map(|p| (p, None)));
    } else {
        for raw in &args.clusters {
            let c = parse_cluster_arg(raw, &default_profile)?;
            match wanted.iter_mut().find(|(p, _)| *p == c.profile) {
                Some((_, Some(list))) => list.push((c.cluster, c.context)),
                _ => wanted.push((c.profile, Some(vec![(c.cluster, c.context)]))),
            }
        }
    }
    if wanted.is_empty() {
        return Err(Error::Usage(format!(
            "no profile with credentials in {} or {}",
            files.config.display(),
            files.credentials.display()
        )));
    }

    let mut failures: Vec<Error> = Vec::new();
    let mut plans = Vec::new();
    for (profile, clusters) in wanted {
        match plan_profile(&profiles, &profile, args.region.as_deref(), clusters) {
            Ok(plan) => plans.push(plan),
            Err(e) => failures.push(e),
        }
    }
    if !failures.is_empty() && !args.keep_going {
        return Err(one_or_several(failures, plans.len(), false));
    }
    let results = join_all(plans.iter().map(|p| run_plan(&files, p))).await;
    let mut entries = Vec::new();
    for r in results.into_iter().flatten() {
        match r {
            Ok(e) => entries.push(e),
            Err(e) => failures.push(e),
        }
    }
    let total = entries.len() + failures.len();
    if !failures.is_empty() && (!args.keep_going || entries.is_empty()) {
        return Err(one_or_several(failures, total, false));
    }
    if entries.is_empty() {
        return Err(Error::Usage(
            "eks:ListClusters found no cluster for any profile; name them with --cluster".into(),
        ));
    }
    kubeconfig::check_contexts(&entries)?;
    let roots: HashMap<String, String> = plans
        .iter()
        .map(|p| (p.profile.clone(), p.chain.root().to_string()))
        .collect();

    let path = output_path(args.kubeconfig);
    let to_stdout = path.as_os_str() == "-";
    let existing = if to_stdout || args.replace {
        None
    } else {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                Some(
                    kubeconfig::from_yaml(&text).map_err(|e| Error::ExistingKubeconfig {
                        path: path.clone(),
                        source: crate::error::Cause(e),
                    })?,
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(Error::Write { path, source }),
        }
    };
    let current = kubeconfig::choose_current(
        &entries,
        &roots,
        args.current_context.as_deref(),
        existing.as_ref(),
    )?;
    let settings = ExecSettings {
        style: args.exec_style,
        command: args.exec_command,
        extra_env: files.exec_env(),
    };
    let generated = kubeconfig::build(&entries, &settings, &current);
    let config = match existing {
        Some(old) => kubeconfig::merge(old, generated),
        None => generated,
    };
    let yaml = kubeconfig::to_yaml(&config)?;
    if to_stdout {
        let mut out = std::io::stdout().lock();
        out.write_all(yaml.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|source| Error::Write {
                path: path.clone(),
                source,
            })?;
    } else {
        write_atomically(&path, &yaml)?;
    }
    summary(&entries, &current, &path);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(one_or_several(failures, total, true))
    }
}

fn one_or_several(mut failures: Vec<Error>, total: usize, kept_going: bool) -> Error {
    if failures.len() == 1 && !kept_going {
        failures.remove(0)
    } else {
        Error::Several {
            failures,
            total: total.max(1),
            kept_going,
        }
    }
}

/// One line per context on stderr (stdout may be the kubeconfig itself).
fn summary(entries: &[ClusterEntry], current: &str, path: &Path) {
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
    let _ = writeln!(err, "current-context {current}; wrote {}", path.display());
}

/// `explain`: JSON chains; exit 3 when a profile named with --profile cannot resolve.
pub fn explain(args: ExplainArgs) -> Result<()> {
    let files = Files::resolve(args.files.config_file, args.files.credentials_file);
    let profiles = files.read_profiles()?;
    let names: Vec<String> = if args.profiles.is_empty() {
        profiles.profiles.keys().cloned().collect()
    } else {
        args.profiles.clone()
    };
    let mut first_error = None;
    let mut out = Vec::new();
    for name in &names {
        let resolved = profiles.chain(name).map_err(Error::from).and_then(|c| {
            aws::check_token_files(&c)?;
            Ok(c)
        });
        let region = profiles.region(name, &env);
        out.push(match resolved {
            Ok(chain) => {
                json!({"name": name, "region": region, "root": chain.root(), "chain": chain.hops})
            }
            Err(e) => {
                let msg = crate::error::chain(&e);
                if !args.profiles.is_empty() && first_error.is_none() {
                    first_error = Some(e);
                }
                json!({"name": name, "region": region, "error": msg})
            }
        });
    }
    let ignored: Vec<BTreeMap<&str, String>> = profiles
        .ignored
        .iter()
        .map(|i| {
            BTreeMap::from([
                ("file", i.path.display().to_string()),
                ("section", i.section.clone()),
                ("reason", i.reason.to_string()),
            ])
        })
        .collect();
    let doc = json!({
        "config_file": files.config,
        "credentials_file": files.credentials,
        "profiles": out,
        "ignored_sections": ignored,
    });
    let text = serde_json::to_string_pretty(&doc).map_err(|e| Error::Serialize {
        what: "explain output",
        source: crate::error::Cause(e.to_string()),
    })?;
    println!("{text}");
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_args() {
        let ok = |p: &str, c: &str, x: Option<&str>| ClusterArg {
            profile: p.into(),
            cluster: c.into(),
            context: x.map(str::to_string),
        };
        let cases = [
            (
                "mc-mgmt:mc-mgmt-k8s",
                Some(ok("mc-mgmt", "mc-mgmt-k8s", None)),
            ),
            ("p:c=ctx", Some(ok("p", "c", Some("ctx")))),
            ("c", Some(ok("envp", "c", None))),
            ("c=ctx", Some(ok("envp", "c", Some("ctx")))),
            (":c", None),
            ("p:", None),
            ("p:c=", None),
            ("", None),
        ];
        for (raw, want) in cases {
            let got = parse_cluster_arg(raw, "envp").ok();
            assert_eq!(got, want, "{raw:?}");
        }
    }

    #[test]
    fn atomic_write_creates_dirs_and_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/config");
        write_atomically(&path, "x: 1\n").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x: 1\n");
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1);
    }
}
