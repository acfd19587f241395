//! The command line: clap's definitions of every flag, and nothing that runs.
//! `app` parses with them and hands each command its own options.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::kubeconfig::ExecStyle;

const EXIT_CODES: &str = "Exit codes: 0 ok · 1 cannot start (no async runtime: out of file \
descriptors or threads) · 2 usage (bad flags, duplicate or ambiguous contexts) · \
3 profile/config (unreadable or malformed INI, unknown or missing source_profile, loop, chain \
deeper than 32 hops, missing token file, no region, invalid SSO settings, mfa_serial on an assumed \
role, login_session) · 4 AWS credentials/STS (also: no SSO login, an expired or refused one — the \
message names the `aws sso login` to run — and a failing credential_process) · 5 EKS (cluster not \
found, access denied) · \
6 kubeconfig/output (cannot read, parse or write the kubeconfig; cannot write stdout, also a closed \
pipe) · 7 partial (--keep-going wrote what succeeded, but not the management context) · 8 timeout \
(an AWS endpoint did not answer within --timeout). With --watch these are the first round's; \
later rounds never end the process, and SIGTERM/SIGINT end it with 0";

/// Generates a multi-context kubeconfig for EKS clusters reached through AWS profile chains,
/// and is its own kubectl exec credential plugin (`token`).
#[derive(Debug, Parser)]
#[command(name = "kubeconfig-gen", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Region, before or after the subcommand (default: AWS_REGION, AWS_DEFAULT_REGION, then the
    /// profile's region). generate: every profile's; token and update-kubeconfig: the cluster's.
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// Deadline of each AWS call (STS, EKS, each hop of a credential chain), before or after the
    /// subcommand: `30s`, `500ms`, `2m`. The TCP connect gets at most 10 s of it. A call that
    /// misses it fails with exit 8, naming the profile and the endpoint.
    #[arg(long, global = true, value_name = "DURATION", default_value = "30s",
          value_parser = crate::deadline::parse_duration)]
    pub timeout: std::time::Duration,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Find EKS clusters through AWS profiles and write one kubeconfig context per cluster.
    Generate(GenerateArgs),
    /// Print an ExecCredential with an EKS token (the kubectl exec plugin; `aws eks get-token`'s output).
    Token(TokenArgs),
    /// Print each profile's credential chain as JSON, without calling AWS: static keys, role
    /// chains, web identity, credential_source (Environment, Ec2InstanceMetadata, EcsContainer =
    /// EKS Pod Identity), credential_process and SSO (sso_session or legacy sso_start_url), checked
    /// as the AWS SDKs check them. What would stop a valid chain at run time (an unreadable token
    /// file, no or an expired SSO login) is listed as `problems` beside it.
    Explain(ExplainArgs),
    /// `aws eks update-kubeconfig`'s shape for one cluster, with kubeconfig-gen as the exec plugin.
    UpdateKubeconfig(UpdateArgs),
    /// awscli's argument shape, so an awscli-style kubeconfig can switch its command only.
    #[command(hide = true)]
    Eks {
        #[command(subcommand)]
        command: EksCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum EksCommand {
    /// Same as `kubeconfig-gen token`.
    GetToken(TokenArgs),
}

#[derive(Debug, Clone, Args)]
pub struct FileArgs {
    /// AWS config file (default: $AWS_CONFIG_FILE, else ~/.aws/config).
    #[arg(long, value_name = "PATH")]
    pub config_file: Option<PathBuf>,
    /// AWS credentials file (default: $AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials).
    #[arg(long, value_name = "PATH")]
    pub credentials_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// A cluster to include, reached through PROFILE (repeatable). Without it, every cluster that
    /// eks:ListClusters shows each credential profile is included. PROFILE defaults to $AWS_PROFILE,
    /// else `default`; REGION defaults as --region does, CONTEXT to the cluster name.
    #[arg(long = "cluster", value_name = "PROFILE:CLUSTER[@REGION][=CONTEXT]")]
    pub clusters: Vec<String>,
    /// Limit discovery to these profiles (repeatable).
    #[arg(long = "profile", value_name = "PROFILE")]
    pub profiles: Vec<String>,
    /// Discover in each of these regions, for every profile (comma-separated or repeated; wins
    /// over AWS_REGION). Same-named clusters of two regions get contexts NAME@REGION.
    #[arg(
        long,
        value_name = "R1,R2",
        value_delimiter = ',',
        conflicts_with = "region"
    )]
    pub regions: Vec<String>,
    /// The current context (default: the context of the profile at the root of the chains).
    #[arg(long, value_name = "CONTEXT")]
    pub current_context: Option<String>,
    /// Command of the exec entries.
    #[arg(long, value_name = "PATH", default_value = "kubeconfig-gen")]
    pub exec_command: String,
    /// `native`: `kubeconfig-gen token ...`; `awscli`: `aws --region R eks get-token ...`.
    #[arg(long, value_enum, default_value = "native")]
    pub exec_style: ExecStyle,
    /// Output file, or `-` for stdout (default: the first path in $KUBECONFIG, else ~/.kube/config).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Write only the generated entries instead of merging into the existing file.
    #[arg(long)]
    pub replace: bool,
    /// Skip each profile or cluster that fails (configuration, credentials, AWS, a context wanted
    /// twice), one line each on stderr, and write the rest: exit 0 when the management context
    /// was written (the root profile's cluster, or the --current-context one), else 7.
    #[arg(long)]
    pub keep_going: bool,
    /// Keep running (a sidecar): re-read the profiles and re-discover every --interval, rewrite the
    /// file (atomically) only when its content changes, and log each context added or removed. The
    /// first round fails as plain `generate` does; a later failing round is logged and the last
    /// written file stays. SIGTERM or SIGINT: exit 0 within 5 s, even mid-call.
    #[arg(long)]
    pub watch: bool,
    /// Time between the starts of two --watch rounds: `30s`, `5m`, `1h30m` (at least 10s;
    /// default 1m).
    #[arg(long, value_name = "DURATION", requires = "watch",
          value_parser = crate::watch::parse_interval)]
    pub interval: Option<std::time::Duration>,
    #[command(flatten)]
    pub files: FileArgs,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The EKS cluster name the token is bound to (signed as x-k8s-aws-id).
    #[arg(long, alias = "cluster-id", value_name = "NAME")]
    pub cluster_name: String,
    /// Profile whose credentials sign the token (default: $AWS_PROFILE, else the default chain).
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<String>,
    /// Assume this role (session EKSGetTokenAuth) and sign with its credentials.
    #[arg(long, alias = "role", value_name = "ARN")]
    pub role_arn: Option<String>,
    /// Accepted for awscli compatibility; only `json`.
    #[arg(long, value_parser = ["json"], default_value = "json")]
    pub output: String,
    #[command(flatten)]
    pub files: FileArgs,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The EKS cluster (DescribeCluster must find it ACTIVE or UPDATING).
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Context name (default: the user name).
    #[arg(long, value_name = "CONTEXT")]
    pub alias: Option<String>,
    /// User name (default: the cluster ARN).
    #[arg(long, value_name = "USER")]
    pub user_alias: Option<String>,
    /// Profile whose credentials describe the cluster and sign its tokens (default: $AWS_PROFILE,
    /// else the default chain); written as the entry's AWS_PROFILE.
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<String>,
    /// Role the exec entry's token assumes (`token --role-arn`); as in awscli it does not change
    /// the DescribeCluster call.
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,
    /// Kubeconfig to merge into (default: the first path in $KUBECONFIG, else ~/.kube/config).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Print the merged kubeconfig on stdout instead of writing it.
    #[arg(long)]
    pub dry_run: bool,
    /// Command of the exec entry.
    #[arg(long, value_name = "PATH", default_value = "kubeconfig-gen")]
    pub exec_command: String,
    #[command(flatten)]
    pub files: FileArgs,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Only these profiles (repeatable; default: every profile).
    #[arg(long = "profile", value_name = "PROFILE")]
    pub profiles: Vec<String>,
    #[command(flatten)]
    pub files: FileArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn awscli_argument_shape_parses() {
        let cli = Cli::try_parse_from([
            "kubeconfig-gen",
            "--region",
            "eu-central-1",
            "eks",
            "get-token",
            "--cluster-name",
            "c",
            "--output",
            "json",
            "--role",
            "arn:aws:iam::1:role/r",
        ])
        .unwrap();
        assert_eq!(cli.region.as_deref(), Some("eu-central-1"));
        let Command::Eks {
            command: EksCommand::GetToken(args),
        } = cli.command
        else {
            panic!("not eks get-token");
        };
        assert_eq!(args.cluster_name, "c");
        assert_eq!(args.role_arn.as_deref(), Some("arn:aws:iam::1:role/r"));
        assert!(
            Cli::try_parse_from([
                "kubeconfig-gen",
                "token",
                "--cluster-name",
                "c",
                "--output",
                "yaml"
            ])
            .is_err()
        );
    }
}

#[cfg(test)]
mod global_tests {
    use super::*;

    /// `--region` and `--timeout` before or after the subcommand (before `generate` it was
    /// silently ignored).
    #[test]
    fn global_flags_before_or_after_the_subcommand() {
        for argv in [
            &[
                "kubeconfig-gen",
                "--region",
                "r1",
                "--timeout",
                "5s",
                "generate",
            ][..],
            &[
                "kubeconfig-gen",
                "generate",
                "--region",
                "r1",
                "--timeout",
                "5s",
            ][..],
            &[
                "kubeconfig-gen",
                "--region",
                "r1",
                "update-kubeconfig",
                "--name",
                "c",
                "--timeout",
                "5s",
            ][..],
            &[
                "kubeconfig-gen",
                "token",
                "--cluster-name",
                "c",
                "--region",
                "r1",
                "--timeout",
                "5s",
            ][..],
        ] {
            let cli = Cli::try_parse_from(argv).unwrap();
            assert_eq!(cli.region.as_deref(), Some("r1"), "{argv:?}");
            assert_eq!(cli.timeout, std::time::Duration::from_secs(5), "{argv:?}");
        }
        assert!(
            Cli::try_parse_from([
                "kubeconfig-gen",
                "generate",
                "--region",
                "a",
                "--regions",
                "b"
            ])
            .is_err()
        );
    }

    #[test]
    fn interval_needs_watch_and_ten_seconds() {
        let generate = |args: &[&str]| {
            let argv = ["kubeconfig-gen", "generate"].iter().chain(args);
            Cli::try_parse_from(argv).map(|cli| match cli.command {
                Command::Generate(g) => (g.watch, g.interval),
                _ => panic!("not generate"),
            })
        };
        let secs = std::time::Duration::from_secs;
        assert_eq!(generate(&["--watch"]).unwrap(), (true, None));
        assert_eq!(
            generate(&["--watch", "--interval", "1h30m"]).unwrap(),
            (true, Some(secs(5400)))
        );
        assert_eq!(
            generate(&["--interval=10s", "--watch"]).unwrap(),
            (true, Some(secs(10)))
        );
        assert_eq!(generate(&[]).unwrap(), (false, None));
        for bad in [
            &["--interval", "30s"][..],
            &["--watch", "--interval", "9s"],
            &["--watch", "--interval", "500ms"],
            &["--watch", "--interval", "0s"],
            &["--watch", "--interval", "soon"],
        ] {
            let err = generate(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }
}
