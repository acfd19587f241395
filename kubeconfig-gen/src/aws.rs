//! The AWS I/O: reading the profile files, credentials through aws-config's profile provider (it
//! does the STS chaining; nothing here re-implements it), and eks:ListClusters / DescribeCluster.
use std::path::{Path, PathBuf};

use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_sdk_eks::error::ProvideErrorMetadata;

use std::time::Duration;

use crate::deadline::{self, is_timeout, timeout_config};
use crate::error::{Cause, Error, Result};
use crate::profiles::{Chain, FileKind, ProfileError, Profiles, Source};
use crate::sso;

/// Where the two INI files are, and whether each is the SDK default (then the exec entry needs no
/// variable for it).
#[derive(Debug, Clone)]
pub struct Files {
    pub config: PathBuf,
    pub credentials: PathBuf,
    pub config_is_default: bool,
    pub credentials_is_default: bool,
    /// Given by flag: then a missing file is an error instead of "empty".
    config_explicit: bool,
    credentials_explicit: bool,
}

fn absolute(p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
    }
}

impl Files {
    /// `--config-file` / `--credentials-file`, else AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE,
    /// else ~/.aws/config and ~/.aws/credentials.
    pub fn resolve(config_flag: Option<PathBuf>, credentials_flag: Option<PathBuf>) -> Files {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let default_config = home.join(".aws/config");
        let default_credentials = home.join(".aws/credentials");
        let config_explicit = config_flag.is_some();
        let credentials_explicit = credentials_flag.is_some();
        let config = absolute(
            config_flag
                .or_else(|| env("AWS_CONFIG_FILE"))
                .unwrap_or_else(|| default_config.clone()),
        );
        let credentials = absolute(
            credentials_flag
                .or_else(|| env("AWS_SHARED_CREDENTIALS_FILE"))
                .unwrap_or_else(|| default_credentials.clone()),
        );
        Files {
            config_is_default: config == default_config,
            credentials_is_default: credentials == default_credentials,
            config,
            credentials,
            config_explicit,
            credentials_explicit,
        }
    }

    /// Both files for aws-config; a file that does not exist counts as empty (aws-config would
    /// reject a missing explicit path, while the SDK defaults treat it as empty).
    pub fn env_config_files(&self) -> EnvConfigFiles {
        let add = |b: aws_runtime::env_config::file::Builder, kind, path: &Path| {
            if path.exists() {
                b.with_file(kind, path)
            } else {
                b.with_contents(kind, "")
            }
        };
        let b = EnvConfigFiles::builder();
        let b = add(b, EnvConfigFileKind::Config, &self.config);
        add(b, EnvConfigFileKind::Credentials, &self.credentials).build()
    }

    /// The variables an exec entry needs so the plugin reads the same files.
    pub fn exec_env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if !self.config_is_default {
            env.push(("AWS_CONFIG_FILE".into(), self.config.display().to_string()));
        }
        if !self.credentials_is_default {
            env.push((
                "AWS_SHARED_CREDENTIALS_FILE".into(),
                self.credentials.display().to_string(),
            ));
        }
        env
    }

    fn read_one(path: &Path, kind: FileKind, explicit: bool) -> Result<Option<String>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(None),
            Err(source) => Err(ProfileError::Read {
                kind,
                path: path.to_path_buf(),
                source,
            }
            .into()),
        }
    }

    /// PROFILE's `endpoint_url`, for messages only (read again, without the warnings: this runs
    /// on the failure path).
    pub fn endpoint_url(&self, profile: &str) -> Option<String> {
        let profiles = self.load().ok()?;
        Some(profiles.get(profile).ok()?.get("endpoint_url")?.to_string())
    }

    /// Both files parsed; a section ignored by the AWS rules is a warning.
    pub fn read_profiles(&self) -> Result<Profiles> {
        let profiles = self.load()?;
        for i in &profiles.ignored {
            tracing::warn!(file = %i.path.display(), section = %i.section, reason = i.reason, "ignored section");
        }
        Ok(profiles)
    }

    fn load(&self) -> Result<Profiles> {
        let config = Self::read_one(&self.config, FileKind::Config, self.config_explicit)?;
        let credentials = Self::read_one(
            &self.credentials,
            FileKind::Credentials,
            self.credentials_explicit,
        )?;
        let profiles = Profiles::parse(&[
            Source {
                kind: FileKind::Config,
                path: &self.config,
                text: config.as_deref(),
            },
            Source {
                kind: FileKind::Credentials,
                path: &self.credentials,
                text: credentials.as_deref(),
            },
        ])?;
        Ok(profiles)
    }
}

/// The first of [`chain_problems`]: `generate`, `token` and `update-kubeconfig` stop at it
/// before any AWS call.
pub fn check_chain(chain: &Chain) -> Result<()> {
    chain_problems(chain).into_iter().next().map_or(Ok(()), Err)
}

/// What aws-config would only find out mid-chain, or with a message that does not say what to do:
/// an unreadable web identity token file, an SSO profile that yields a token but no credentials,
/// and an SSO login that is missing or expired. `explain` lists them all beside the chain.
pub fn chain_problems(chain: &Chain) -> Vec<Error> {
    let mut problems = Vec::new();
    for (profile, path) in chain.token_files() {
        if let Err(source) = std::fs::File::open(path).and_then(|f| {
            if f.metadata()?.is_dir() {
                Err(std::io::Error::other("is a directory"))
            } else {
                Ok(())
            }
        }) {
            problems.push(
                ProfileError::TokenFile {
                    profile: profile.to_string(),
                    path: path.to_path_buf(),
                    source,
                }
                .into(),
            );
        }
    }
    problems.extend(sso::login_problem(chain));
    problems
}

/// A credentials failure of PROFILE that is its SSO login's, as the advice of a missing login.
fn sso_failure(
    files: &Files,
    profile: &str,
    err: &(dyn std::error::Error + 'static),
) -> Option<Error> {
    let chain = files.load().ok()?.chain(profile).ok()?;
    sso::login_failure(&chain, err)
}

/// An SDK config for one profile: region fixed, credentials from the profile chain only (never the
/// environment's keys, which would silently replace the profile). The chain's internal STS
/// clients read AWS_ENDPOINT_URL[_STS] themselves (aws-config's EnvServiceConfig falls back to
/// the global variable).
pub async fn profile_config(
    files: &Files,
    profile: &str,
    region: &str,
    timeout: Duration,
) -> SdkConfig {
    let provider_config = provider_config(region, timeout);
    let credentials = ProfileFileCredentialsProvider::builder()
        .configure(&provider_config)
        .profile_files(files.env_config_files())
        .profile_name(profile)
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .profile_files(files.env_config_files())
        .profile_name(profile)
        .region(Region::new(region.to_string()))
        .credentials_provider(credentials)
        .timeout_config(timeout_config(timeout))
        .load()
        .await
}

/// The provider configuration of the credential chains: the STS clients inside them (web
/// identity, each AssumeRole hop) get the same deadlines as every other call.
fn provider_config(region: &str, timeout: Duration) -> ProviderConfig {
    ProviderConfig::default()
        .with_region(Some(Region::new(region.to_string())))
        .with_timeout_config(timeout_config(timeout))
}

/// The default credential chain (environment keys first), for `token` without a profile.
pub async fn default_config(region: &str, timeout: Duration) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .timeout_config(timeout_config(timeout))
        .load()
        .await
}

/// A failed call as `Error::Timeout` when it timed out, else as OTHERWISE.
fn or_timeout(
    err: &(dyn std::error::Error + 'static),
    at: Call<'_>,
    otherwise: impl FnOnce(Cause) -> Error,
) -> Error {
    let cause = Cause(crate::sdk_error::describe(err));
    if !is_timeout(err) {
        return otherwise(cause);
    }
    Error::Timeout {
        profile: at.profile.to_string(),
        call: at.call,
        endpoint: deadline::endpoint(at.service, at.region, at.profile_endpoint.as_deref()),
        after: at.timeout,
        source: cause,
    }
}

/// Where a call went, for its timeout message.
pub struct Call<'a> {
    pub profile: &'a str,
    pub call: String,
    pub service: &'static str,
    pub region: &'a str,
    pub timeout: Duration,
    /// The profile's own `endpoint_url`, if any.
    pub profile_endpoint: Option<String>,
}

/// Credentials for `token`, straight from the providers: `ConfigLoader::load` also builds an HTTPS
/// client (reading the system's root certificates: most of a token's CPU time) that static
/// credentials never use. Chains that call STS still build their clients, lazily.
pub async fn token_credentials(
    files: &Files,
    profile: Option<&str>,
    region: &str,
    timeout: Duration,
) -> Result<Credentials> {
    match profile {
        Some(p) => {
            let provided = ProfileFileCredentialsProvider::builder()
                .configure(&provider_config(region, timeout))
                .profile_files(files.env_config_files())
                .profile_name(p)
                .build()
                .provide_credentials()
                .await;
            provided.map_err(|e| credentials_error(files, p, region, timeout, &e))
        }
        None => {
            let env = aws_config::environment::EnvironmentVariableCredentialsProvider::new();
            if let Ok(c) = env.provide_credentials().await {
                return Ok(c);
            }
            let cfg = default_config(region, timeout).await;
            credentials(files, &cfg, "(default chain)", timeout).await
        }
    }
}

/// A credentials failure of PROFILE: a timeout of one of the chain's STS calls, or anything else.
fn credentials_error(
    files: &Files,
    profile: &str,
    region: &str,
    timeout: Duration,
    err: &(dyn std::error::Error + 'static),
) -> Error {
    if !is_timeout(err)
        && let Some(e) = sso_failure(files, profile, err)
    {
        return e;
    }
    let at = Call {
        profile,
        call: format!("credentials (STS in {region})"),
        service: "sts",
        region,
        timeout,
        profile_endpoint: files.endpoint_url(profile),
    };
    or_timeout(err, at, |source| Error::Credentials {
        profile: profile.to_string(),
        source,
    })
}

/// The credentials of CFG's provider (PROFILE's chain).
pub async fn credentials(
    files: &Files,
    cfg: &SdkConfig,
    profile: &str,
    timeout: Duration,
) -> Result<Credentials> {
    let region = cfg.region().map(|r| r.to_string()).unwrap_or_default();
    let provider = cfg
        .credentials_provider()
        .ok_or_else(|| Error::Credentials {
            profile: profile.to_string(),
            source: Cause("no credentials provider".into()),
        })?;
    provider
        .provide_credentials()
        .await
        .map_err(|e| credentials_error(files, profile, &region, timeout, &e))
}

/// AssumeRole for `token --role-arn` (awscli's session name), through aws-config's provider.
pub async fn assume_role(
    cfg: &SdkConfig,
    base: Credentials,
    role_arn: &str,
    timeout: Duration,
) -> Result<Credentials> {
    let region = cfg.region().map(|r| r.to_string()).unwrap_or_default();
    let cfg = cfg
        .to_builder()
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(base))
        .build();
    let who = format!("(role {role_arn})");
    aws_config::sts::AssumeRoleProvider::builder(role_arn)
        .session_name("EKSGetTokenAuth")
        .configure(&cfg)
        .build()
        .await
        .provide_credentials()
        .await
        .map_err(|e| {
            let at = Call {
                profile: &who,
                call: format!("sts:AssumeRole in {region}"),
                service: "sts",
                region: &region,
                timeout,
                profile_endpoint: None,
            };
            or_timeout(&e, at, |source| Error::Credentials {
                profile: who.clone(),
                source,
            })
        })
}

fn eks(cfg: &SdkConfig, creds: Credentials) -> aws_sdk_eks::Client {
    let conf = aws_sdk_eks::config::Builder::from(cfg)
        .credentials_provider(creds)
        .build();
    aws_sdk_eks::Client::from_conf(conf)
}

/// Who asks EKS, for the messages of its calls.
pub struct Asker<'a> {
    pub files: &'a Files,
    pub profile: &'a str,
    pub region: &'a str,
    pub timeout: Duration,
}

impl Asker<'_> {
    fn call(&self, call: String) -> Call<'_> {
        Call {
            profile: self.profile,
            call,
            service: "eks",
            region: self.region,
            timeout: self.timeout,
            profile_endpoint: self.files.endpoint_url(self.profile),
        }
    }
}

pub async fn list_clusters(
    cfg: &SdkConfig,
    creds: Credentials,
    who: &Asker<'_>,
) -> Result<Vec<String>> {
    let (profile, region) = (who.profile, who.region);
    let client = eks(cfg, creds);
    let mut names = Vec::new();
    let mut pages = client.list_clusters().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            let at = who.call(format!("eks:ListClusters in {region}"));
            or_timeout(&e, at, |source| Error::ListClusters {
                profile: profile.to_string(),
                region: region.to_string(),
                source,
            })
        })?;
        names.extend(page.clusters.unwrap_or_default());
    }
    Ok(names)
}

#[derive(Debug, Clone)]
pub struct Described {
    pub arn: String,
    pub endpoint: String,
    pub ca_data: String,
}

pub async fn describe_cluster(
    cfg: &SdkConfig,
    creds: Credentials,
    who: &Asker<'_>,
    cluster: &str,
) -> Result<Described> {
    let (profile, region) = (who.profile, who.region);
    let out = eks(cfg, creds)
        .describe_cluster()
        .name(cluster)
        .send()
        .await
        .map_err(|e| {
            if e.code() == Some("ResourceNotFoundException") {
                return Error::ClusterNotFound {
                    profile: profile.to_string(),
                    cluster: cluster.to_string(),
                    region: region.to_string(),
                };
            }
            let at = who.call(format!("eks:DescribeCluster {cluster} in {region}"));
            or_timeout(&e, at, |source| Error::DescribeCluster {
                profile: profile.to_string(),
                cluster: cluster.to_string(),
                region: region.to_string(),
                source,
            })
        })?;
    let missing = |what: &str| Error::DescribeCluster {
        profile: profile.to_string(),
        cluster: cluster.to_string(),
        region: region.to_string(),
        source: Cause(format!("the response has no {what}")),
    };
    let c = out.cluster.ok_or_else(|| missing("cluster"))?;
    let status = c.status.as_ref().map(|s| s.as_str().to_string());
    if !matches!(status.as_deref(), Some("ACTIVE") | Some("UPDATING")) {
        return Err(Error::ClusterNotReady {
            profile: profile.to_string(),
            cluster: cluster.to_string(),
            status: status.unwrap_or_else(|| "of unknown status".into()),
        });
    }
    Ok(Described {
        arn: c.arn.ok_or_else(|| missing("arn"))?,
        endpoint: c.endpoint.ok_or_else(|| missing("endpoint"))?,
        ca_data: c
            .certificate_authority
            .and_then(|ca| ca.data)
            .ok_or_else(|| missing("certificateAuthority.data"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};

    /// An SDK failure reads as its Display chain: no `DispatchFailure(...)` Debug dump.
    #[test]
    fn sdk_causes_are_displayed_not_debugged() {
        let err: SdkError<std::io::Error, ()> = SdkError::dispatch_failure(ConnectorError::io(
            std::io::Error::other("connection refused").into(),
        ));
        let at = Call {
            profile: "p",
            call: "credentials (STS in r)".into(),
            service: "sts",
            region: "r",
            timeout: Duration::from_secs(1),
            profile_endpoint: None,
        };
        let mapped = or_timeout(&err, at, |source| Error::Credentials {
            profile: "p".into(),
            source,
        });
        let text = mapped.render();
        assert_eq!(
            text,
            "error: profile p: cannot get AWS credentials: dispatch failure: io error: connection refused"
        );
        for debug in ["DispatchFailure", "ConnectorError", "{", "kind:"] {
            assert!(!text.contains(debug), "{text}");
        }
    }
}
