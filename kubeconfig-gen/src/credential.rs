//! The kubectl exec credential plugin (`token`, and awscli's `eks get-token` shape): profile and
//! region, credentials through the chain, then the pure presign of `token` and the ExecCredential.
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::profiles::resolve_region;
use crate::{aws, env, token};

/// What `token` is asked for, without clap.
#[derive(Debug, Clone)]
pub struct Request {
    /// The cluster the token is bound to (signed as x-k8s-aws-id).
    pub cluster: String,
    /// `--region` of `token`, else the top-level `--region` of awscli's argument shape.
    pub region: Option<String>,
    pub profile: Option<String>,
    pub role_arn: Option<String>,
    pub files: aws::Files,
    /// `--timeout`: the deadline of each AWS call.
    pub timeout: std::time::Duration,
}

/// `token`: credentials through the profile chain (the only network calls), then a local presign.
pub async fn run(req: Request) -> Result<()> {
    let (api_version, notice) = token::api_version(env::var("KUBERNETES_EXEC_INFO").as_deref());
    if let Some(notice) = notice {
        crate::output::say(&notice);
    }
    let profile = req.profile.or_else(|| env::var("AWS_PROFILE"));
    let region = region(&req.files, profile.as_deref(), req.region.as_deref())?;
    let mut creds =
        aws::token_credentials(&req.files, profile.as_deref(), &region, req.timeout).await?;
    if let Some(role) = &req.role_arn {
        let cfg = aws::default_config(&region, req.timeout).await;
        creds = aws::assume_role(&cfg, creds, role, req.timeout).await?;
    }
    let now = SystemTime::now();
    let url = token::presigned_url(&creds, &region, &req.cluster, now)?;
    let text = token::exec_credential(
        &api_version,
        token::expiration(now, creds.expiry()),
        &token::token_from_url(&url),
    )?;
    crate::output::print(&text)
}

/// The region to sign for. A named profile is checked first (its chain and token files), so a
/// broken profile is exit 3 before any network call; the default chain takes the `default`
/// profile's region, where the files can be read at all.
pub(crate) fn region(
    files: &aws::Files,
    profile: Option<&str>,
    flag: Option<&str>,
) -> Result<String> {
    match profile {
        Some(p) => {
            let profiles = files.read_profiles()?;
            let chain = profiles.chain(p)?;
            aws::check_chain(&chain)?;
            resolve_region(flag, &env::var, || profiles.configured_region(p)).ok_or_else(|| {
                Error::NoRegion {
                    profile: p.to_string(),
                }
            })
        }
        None => resolve_region(flag, &env::var, || {
            files.read_profiles().ok()?.configured_region("default")
        })
        .ok_or_else(|| Error::NoRegion {
            profile: "(default chain)".into(),
        }),
    }
}
