//! `update-kubeconfig`: `aws eks update-kubeconfig` for one cluster — DescribeCluster, entries
//! named as awscli names them, merged into the kubeconfig with current-context set — with
//! kubeconfig-gen as the exec plugin, so the image needs no awscli.
use std::path::PathBuf;
use std::time::Duration;

use kube::config::Kubeconfig;

use crate::error::Result;
use crate::kubeconfig::{self, ClusterEntry, ExecSettings, ExecStyle};
use crate::{aws, credential, env, output};

/// What `update-kubeconfig` is asked for, without clap.
#[derive(Debug, Clone)]
pub struct Request {
    pub cluster: String,
    /// Context name (default: the user name).
    pub alias: Option<String>,
    /// User name (default: the cluster ARN).
    pub user_alias: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    /// Only the exec entry's (`token --role-arn`), as in awscli.
    pub role_arn: Option<String>,
    pub kubeconfig: Option<PathBuf>,
    pub dry_run: bool,
    pub exec_command: String,
    pub files: aws::Files,
    pub timeout: Duration,
}

/// Describe the cluster, shape its entries, merge them and write (or print with `--dry-run`),
/// then say what changed, on stdout as awscli does.
pub async fn run(req: Request) -> Result<()> {
    let profile = req.profile.clone().or_else(|| env::var("AWS_PROFILE"));
    let region = credential::region(&req.files, profile.as_deref(), req.region.as_deref())?;
    let who_name = profile.clone().unwrap_or_else(|| "(default chain)".into());
    let cfg = match &profile {
        Some(p) => aws::profile_config(&req.files, p, &region, req.timeout).await,
        None => aws::default_config(&region, req.timeout).await,
    };
    let creds = aws::credentials(&req.files, &cfg, &who_name, req.timeout).await?;
    let who = aws::Asker {
        files: &req.files,
        profile: &who_name,
        region: &region,
        timeout: req.timeout,
    };
    let d = aws::describe_cluster(&cfg, creds, &who, &req.cluster).await?;
    let user = req.user_alias.clone().unwrap_or_else(|| d.arn.clone());
    let context = req.alias.clone().unwrap_or_else(|| user.clone());
    let entry = ClusterEntry {
        context: context.clone(),
        profile: profile.clone().unwrap_or_default(),
        name: req.cluster.clone(),
        arn: d.arn,
        region,
        endpoint: d.endpoint,
        ca_data: d.ca_data,
    };
    let settings = ExecSettings {
        style: ExecStyle::Native,
        command: req.exec_command.clone(),
        extra_env: req.files.exec_env(),
    };
    let mut generated = kubeconfig::build(&[entry], &settings, Some(&context));
    shape(
        &mut generated,
        &user,
        profile.is_some(),
        req.role_arn.as_deref(),
    );
    let path = output::path(req.kubeconfig.clone());
    let existing = output::read_existing(&path)?;
    let updated = existing
        .as_ref()
        .is_some_and(|k| k.contexts.iter().any(|c| c.name == context));
    let merged = match existing {
        Some(old) => kubeconfig::merge(old, generated),
        None => generated,
    };
    let yaml = kubeconfig::to_yaml(&merged)?;
    if req.dry_run {
        return output::print(&yaml);
    }
    output::write(&path, &yaml)?;
    let said = if updated {
        format!("Updated context {context} in {}\n", path.display())
    } else {
        format!("Added new context {context} to {}\n", path.display())
    };
    output::print(&said)
}

/// awscli's shape of the one generated entry: the user named USER (`--user-alias`, else the
/// ARN), `AWS_PROFILE` only when a profile is in effect, `--role-arn` appended to the exec args.
fn shape(k: &mut Kubeconfig, user: &str, with_profile: bool, role_arn: Option<&str>) {
    for u in &mut k.auth_infos {
        u.name = user.to_string();
        let Some(exec) = u.auth_info.as_mut().and_then(|a| a.exec.as_mut()) else {
            continue;
        };
        if let (false, Some(env)) = (with_profile, exec.env.as_mut()) {
            env.retain(|e| e.get("name").map(String::as_str) != Some("AWS_PROFILE"));
        }
        if let (Some(arn), Some(args)) = (role_arn, exec.args.as_mut()) {
            args.extend(["--role-arn".to_string(), arn.to_string()]);
        }
    }
    for c in &mut k.contexts {
        if let Some(ctx) = c.context.as_mut() {
            ctx.user = Some(user.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one() -> Kubeconfig {
        let entry = ClusterEntry {
            context: "ctx".into(),
            profile: "p".into(),
            name: "c".into(),
            arn: "arn:aws:eks:eu-central-1:1:cluster/c".into(),
            region: "eu-central-1".into(),
            endpoint: "https://e".into(),
            ca_data: "ca".into(),
        };
        let settings = ExecSettings {
            style: ExecStyle::Native,
            command: "kubeconfig-gen".into(),
            extra_env: vec![],
        };
        kubeconfig::build(&[entry], &settings, Some("ctx"))
    }

    fn exec(k: &Kubeconfig) -> &kube::config::ExecConfig {
        k.auth_infos[0]
            .auth_info
            .as_ref()
            .and_then(|a| a.exec.as_ref())
            .unwrap()
    }

    #[test]
    fn shaped_as_awscli() {
        let mut k = one();
        shape(&mut k, "me", false, Some("arn:aws:iam::1:role/r"));
        assert_eq!(k.auth_infos[0].name, "me");
        assert_eq!(
            k.contexts[0].context.as_ref().unwrap().user.as_deref(),
            Some("me")
        );
        assert!(
            exec(&k).env.as_ref().unwrap().is_empty(),
            "no profile in effect"
        );
        let args = exec(&k).args.clone().unwrap();
        assert_eq!(
            args[args.len() - 2..],
            ["--role-arn", "arn:aws:iam::1:role/r"]
        );
        let mut k = one();
        shape(&mut k, "arn:aws:eks:eu-central-1:1:cluster/c", true, None);
        assert_eq!(exec(&k).env.as_ref().unwrap()[0]["value"], "p");
        assert!(
            !exec(&k)
                .args
                .as_ref()
                .unwrap()
                .contains(&"--role-arn".into())
        );
    }
}
