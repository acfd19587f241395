//! Laptop credentials (issue 13, item 6): SSO through a fake portal (moto has none) with the
//! token cache `aws sso login` writes, credential_process, credential_source Environment and
//! EcsContainer (EKS Pod Identity, through a fake agent), and the errors: a missing, expired or
//! refused SSO login (exit 4, the `aws sso login` to run), mfa_serial (exit 3), and `explain`'s
//! validation (a missing sso-session or sso_region is an error; a missing token file a problem).
use super::cases::{SECRET, run_case};
use super::sso_portal::{Portal, assume_role};
use super::*;

const SSO_TOKEN: &str = "aoaSSOACCESSTOKENneverprinted";
const LEGACY_TOKEN: &str = "aoaLEGACYTOKENneverprinted";

/// The laptop's config file: an sso-session profile into mc-project's account, a legacy SSO
/// profile into mc-project2's, and profiles around them. `{dir}` is the test's directory.
const CONFIG: &str = "[profile dev]\nsso_session = corp\nsso_account_id = 222222222222\nsso_role_name = kubed-follower\nregion = eu-central-1\n\
[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = eu-central-1\n\
[profile legacy]\nsso_start_url = https://legacy.awsapps.com/start\nsso_region = eu-central-1\nsso_account_id = 333333333333\nsso_role_name = kubed-follower\n\
[profile dev-admin]\nrole_arn = arn:aws:iam::333333333333:role/kubed-follower\nsource_profile = dev\nrole_session_name = dev-admin\n";

/// `HOME/.aws/sso/cache/<sha1 of KEY>.json`: the SDK's rule, computed apart from kubeconfig-gen.
fn cache_file(home: &Path, key: &str) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", "printf %s \"$1\" | sha1sum", "sh", key])
        .output()
        .unwrap();
    let sha1 = text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(sha1.len(), 40, "sha1sum: {}", text(&out.stderr));
    home.join(format!(".aws/sso/cache/{sha1}.json"))
}

/// Writes the cached token of the session (or of the start URL) as `aws sso login` does, with
/// `expiresAt` OFFSET seconds from now.
fn write_token(home: &Path, session: Option<&str>, start_url: &str, token: &str, offset: i64) {
    let path = cache_file(home, session.unwrap_or(start_url));
    let expires = time::OffsetDateTime::now_utc() + time::Duration::seconds(offset);
    let expires = expires
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let doc = json!({"startUrl": start_url, "region": "eu-central-1", "accessToken": token, "expiresAt": expires});
    std::fs::write(path, doc.to_string()).unwrap();
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn no_secret_or_debug(label: &str, out: &str) {
    for bad in [
        SSO_TOKEN,
        LEGACY_TOKEN,
        SECRET,
        "Error {",
        "DispatchFailure",
        "ServiceError(",
    ] {
        assert!(!out.contains(bad), "{label}: {bad:?} in {out}");
    }
}

/// kubectl through the kubeconfig's exec entries, with ENV (the portal's endpoint, HOME).
async fn kubectl_lists_namespaces(
    home: &Path,
    kubeconfig: &Path,
    context: &str,
    env: &[(String, String)],
) {
    let listed = wait_for(
        &format!("kubectl lists namespaces in {context}"),
        Duration::from_secs(30),
        || async {
            let out = clean(&kubectl(), home, env)
                .args([
                    "--kubeconfig",
                    kubeconfig.to_str().unwrap(),
                    "--context",
                    context,
                ])
                .args(["get", "namespaces", "-o", "name"])
                .output()
                .unwrap();
            out.status.success().then(|| text(&out.stdout))
        },
    )
    .await;
    assert!(listed.contains("namespace/kube-system"), "{listed}");
}

/// The environment of `run_case` plus the portal, for kubectl's exec plugin.
fn plugin_env(dir: &Path, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = aws_env()
        .into_iter()
        .filter(|(k, _)| k != "AWS_SHARED_CREDENTIALS_FILE" && k != "AWS_CONFIG_FILE")
        .collect();
    env.push((
        "AWS_SHARED_CREDENTIALS_FILE".into(),
        dir.join("credentials").display().to_string(),
    ));
    env.push((
        "AWS_CONFIG_FILE".into(),
        dir.join("config").display().to_string(),
    ));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// A valid `aws sso login` (session and legacy): generate reaches each account through the
/// portal, the exec entries' tokens work in kubectl, and the portal saw the documented request.
#[tokio::test]
async fn sso_login_generate_and_kubectl() {
    let portal = Portal::start(&[SSO_TOKEN, LEGACY_TOKEN], None);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_token(
        d,
        Some("corp"),
        "https://corp.awsapps.com/start",
        SSO_TOKEN,
        3600,
    );
    write_token(
        d,
        None,
        "https://legacy.awsapps.com/start",
        LEGACY_TOKEN,
        3600,
    );
    let sso = leak(portal.url.clone());
    let path = d.join("kubeconfig");
    let out = run_case(
        d,
        "",
        CONFIG,
        &args(&[
            "generate",
            "--cluster",
            "dev:mc-project-k8s",
            "--cluster",
            "legacy:mc-project2-k8s",
            "--cluster",
            "dev-admin:mc-project2-k8s=admin2",
            "--kubeconfig",
            path.to_str().unwrap(),
            "--current-context",
            "mc-project-k8s",
            "--exec-command",
            binary().to_str().unwrap(),
        ]),
        &[("AWS_ENDPOINT_URL_SSO", sso)],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    no_secret_or_debug("generate", &stderr);
    assert!(
        stderr.contains("context mc-project-k8s: profile dev, account 222222222222"),
        "{stderr}"
    );
    // legacy, and dev-admin (a role on top of dev's SSO credentials), reach the other account.
    for want in [
        "context mc-project2-k8s: profile legacy, account 333333333333",
        "context admin2: profile dev-admin, account 333333333333",
    ] {
        assert!(stderr.contains(want), "{want}: {stderr}");
    }
    let yaml = std::fs::read_to_string(&path).unwrap();
    no_secret_or_debug("kubeconfig", &yaml);
    let seen = portal.seen();
    assert!(seen.iter().all(|s| s.token_known), "{seen:?}");
    for (role, account) in [
        ("kubed-follower", "222222222222"),
        ("kubed-follower", "333333333333"),
    ] {
        assert!(
            seen.iter().any(|s| s.method == "GET"
                && s.path == "/federation/credentials"
                && s.query.get("role_name").map(String::as_str) == Some(role)
                && s.query.get("account_id").map(String::as_str) == Some(account)),
            "{seen:?}"
        );
    }

    allow_list_namespaces("mc-project-k8s").await;
    allow_list_namespaces("mc-project2-k8s").await;
    let env = plugin_env(d, &[("AWS_ENDPOINT_URL_SSO", sso)]);
    let kc = Kubeconfig::read_from(&path).unwrap();
    let contexts: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(contexts, ["mc-project2-k8s", "admin2", "mc-project-k8s"]);
    for context in contexts {
        kubectl_lists_namespaces(d, &path, context, &env).await;
    }
    let before = portal.seen().len();
    kubectl_lists_namespaces(d, &path, "mc-project-k8s", &env).await;
    assert!(
        portal.seen().len() > before,
        "the exec plugin asked the portal"
    );

    // The exec plugin at trace level: neither the SSO access token nor the keys it bought.
    let mut trace_env = env.clone();
    trace_env.extend([
        ("AWS_PROFILE".to_string(), "dev".to_string()),
        ("KUBECONFIG_GEN_LOG".to_string(), "trace".to_string()),
    ]);
    let out = clean(&binary(), d, &trace_env)
        .args(["token", "--cluster-name", "mc-project-k8s"])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("TRACE"), "trace logging is on");
    no_secret_or_debug("token at trace", &stderr);
    let secrets = portal.secrets();
    assert!(!secrets.is_empty());
    for secret in secrets {
        assert!(
            !stderr.contains(&secret),
            "a key the portal handed out is in the trace log"
        );
    }

    // `explain` shows the SSO hop and the cache file it reads.
    let out = run_case(d, "", CONFIG, &args(&["explain", "--profile", "dev"]), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hop = &doc["profiles"][0]["chain"][0];
    assert_eq!(hop["kind"], "sso", "{doc}");
    assert_eq!(hop["sso_session"], "corp");
    assert_eq!(hop["start_url"], "https://corp.awsapps.com/start");
    assert_eq!(hop["account_id"], "222222222222");
    assert_eq!(
        hop["token_cache"].as_str(),
        cache_file(d, "corp").to_str(),
        "{hop}"
    );
    assert!(doc["profiles"][0].get("problems").is_none(), "{doc}");
}

/// No login, an expired one, one the portal refuses: exit 4 naming the profile and the login to
/// run, from generate and from the exec plugin, before or instead of any Debug dump.
#[test]
fn sso_login_missing_expired_or_refused() {
    let portal = Portal::start(&[SSO_TOKEN], None);
    let sso = leak(portal.url.clone());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let corp = cache_file(d, "corp").display().to_string();
    let legacy = cache_file(d, "https://legacy.awsapps.com/start")
        .display()
        .to_string();
    let generate = |p: &str| args(&["generate", "--profile", p, "--kubeconfig", "-"]);
    let token = args(&["token", "--cluster-name", "mc-project-k8s"]);
    let check = |label: &str, a: &[String], env: &[(&str, &str)], want: &str| {
        let mut env = env.to_vec();
        env.push(("AWS_ENDPOINT_URL_SSO", sso));
        let out = run_case(d, "", CONFIG, a, &env);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{label}: {stderr}");
        assert!(stderr.contains(want), "{label}: want {want:?} in {stderr}");
        no_secret_or_debug(label, &stderr);
    };

    // Missing: nothing cached.
    check(
        "generate, no login",
        &generate("dev"),
        &[],
        &format!(
            "error: profile dev: not logged in to SSO (sso-session corp): no cached token {corp}; run `aws sso login --profile dev`"
        ),
    );
    check(
        "a role on top, no login",
        &generate("dev-admin"),
        &[],
        &format!(
            "error: profile dev-admin: not logged in to SSO (profile dev, sso-session corp): no cached token {corp}; run `aws sso login --profile dev`"
        ),
    );
    check(
        "legacy, no login",
        &generate("legacy"),
        &[],
        &format!(
            "error: profile legacy: not logged in to SSO (sso_start_url https://legacy.awsapps.com/start): no cached token {legacy}; run `aws sso login --profile legacy`"
        ),
    );
    check(
        "token, no login",
        &token,
        &[("AWS_PROFILE", "dev")],
        "profile dev: not logged in to SSO (sso-session corp)",
    );
    assert!(portal.seen().is_empty(), "no call without a login");

    // Expired an hour ago (no refresh token: `aws sso login` is the only way).
    write_token(
        d,
        Some("corp"),
        "https://corp.awsapps.com/start",
        SSO_TOKEN,
        -3600,
    );
    write_token(
        d,
        None,
        "https://legacy.awsapps.com/start",
        LEGACY_TOKEN,
        -3600,
    );
    check(
        "generate, expired",
        &generate("dev"),
        &[],
        "error: profile dev: the SSO login (sso-session corp) expired at ",
    );
    check(
        "legacy, expired (the SDK would send it anyway)",
        &generate("legacy"),
        &[],
        "run `aws sso login --profile legacy`",
    );
    check(
        "token, expired",
        &token,
        &[("AWS_PROFILE", "dev")],
        &format!("(cached token {corp}); run `aws sso login --profile dev`"),
    );
    assert!(portal.seen().is_empty(), "no call with an expired login");

    // Valid by its date, but the portal does not know it (logged out elsewhere): the SDK's
    // UnauthorizedException, mapped to the same advice.
    write_token(
        d,
        None,
        "https://legacy.awsapps.com/start",
        LEGACY_TOKEN,
        3600,
    );
    check(
        "generate, refused",
        &generate("legacy"),
        &[],
        "error: profile legacy: the SSO portal refused the cached token (sso_start_url https://legacy.awsapps.com/start) (logged out, revoked or expired); run `aws sso login --profile legacy`",
    );
    assert!(portal.seen().iter().all(|s| !s.token_known));
    assert!(!portal.seen().is_empty());

    // --keep-going: the SSO profile is one skipped line, the other profiles are written.
    let out = run_case(
        d,
        "",
        CONFIG,
        &args(&[
            "generate",
            "--profile",
            "dev",
            "--profile",
            "legacy",
            "--keep-going",
            "--kubeconfig",
            "-",
        ]),
        &[("AWS_ENDPOINT_URL_SSO", sso)],
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("  - profile dev: the SSO login (sso-session corp) expired at "),
        "{stderr}"
    );
    no_secret_or_debug("keep-going", &stderr);
}

/// credential_process: its keys sign the calls and the token; a failing process is exit 4 with
/// its stderr; a role on top of it works.
#[tokio::test]
async fn credential_process_generate_and_kubectl() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keys = assume_role(
        "arn:aws:iam::222222222222:role/kubed-follower",
        "credential-process",
    );
    let script = d.join("creds.sh");
    let doc = json!({
        "Version": 1,
        "AccessKeyId": keys.access_key_id,
        "SecretAccessKey": keys.secret_access_key,
        "SessionToken": keys.session_token,
        "Expiration": keys.expiration,
    });
    std::fs::write(&script, format!("#!/bin/sh\ncat <<'EOF'\n{doc}\nEOF\n")).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    let failing = d.join("fail.sh");
    std::fs::write(
        &failing,
        "#!/bin/sh\necho 'no credentials for you' >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&failing, std::fs::Permissions::from_mode(0o700)).unwrap();
    let config = format!(
        "[profile proc]\ncredential_process = {} --user me\nregion = eu-central-1\n\
         [profile proc-role]\nrole_arn = arn:aws:iam::333333333333:role/kubed-follower\nsource_profile = proc\n\
         [profile broken]\ncredential_process = {}\n",
        script.display(),
        failing.display()
    );
    let path = d.join("kubeconfig");
    let out = run_case(
        d,
        "",
        &config,
        &args(&[
            "generate",
            "--profile",
            "proc",
            "--profile",
            "proc-role",
            "--kubeconfig",
            path.to_str().unwrap(),
            "--current-context",
            "mc-project-k8s",
            "--exec-command",
            binary().to_str().unwrap(),
        ]),
        &[],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("context mc-project-k8s: profile proc, account 222222222222"),
        "{stderr}"
    );
    assert!(
        stderr.contains("context mc-project2-k8s: profile proc-role, account 333333333333"),
        "{stderr}"
    );
    allow_list_namespaces("mc-project-k8s").await;
    allow_list_namespaces("mc-project2-k8s").await;
    let env = plugin_env(d, &[]);
    kubectl_lists_namespaces(d, &path, "mc-project-k8s", &env).await;
    kubectl_lists_namespaces(d, &path, "mc-project2-k8s", &env).await;

    let out = run_case(
        d,
        "",
        &config,
        &args(&["generate", "--profile", "broken", "--kubeconfig", "-"]),
        &[],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("profile broken: cannot get AWS credentials"),
        "{stderr}"
    );
    assert!(stderr.contains("no credentials for you"), "{stderr}");
    no_secret_or_debug("broken process", &stderr);
    assert!(!stderr.contains(&keys.session_token));
}

/// credential_source: Environment (keys in the environment assume the role) and EcsContainer,
/// which is EKS Pod Identity: AWS_CONTAINER_CREDENTIALS_FULL_URI + the token file. The README's
/// Pod Identity install (a root profile of `credential_source = EcsContainer` alone, followers
/// chained from it) is generated and used through the exec plugin.
#[tokio::test]
async fn credential_source_environment_and_pod_identity() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = "[profile from-env]\nrole_arn = arn:aws:iam::222222222222:role/kubed-follower\ncredential_source = Environment\nrole_session_name = from-env\n\
                  [profile mc-project2]\nrole_arn = arn:aws:iam::333333333333:role/kubed-follower\nsource_profile = mc-mgmt\nrole_session_name = mc-project2\n\
                  [profile mc-mgmt]\ncredential_source = EcsContainer\n\
                  [profile mc-project]\nrole_arn = arn:aws:iam::222222222222:role/kubed-follower\nsource_profile = mc-mgmt\nrole_session_name = mc-project\n";
    let base = assume_role("arn:aws:iam::111111111111:role/kubed-master", "laptop");
    let out = run_case(
        d,
        "",
        config,
        &args(&["generate", "--profile", "from-env", "--kubeconfig", "-"]),
        &[
            ("AWS_ACCESS_KEY_ID", leak(base.access_key_id.clone())),
            (
                "AWS_SECRET_ACCESS_KEY",
                leak(base.secret_access_key.clone()),
            ),
            ("AWS_SESSION_TOKEN", leak(base.session_token.clone())),
        ],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("context mc-project-k8s: profile from-env, account 222222222222"),
        "{stderr}"
    );

    let agent_token = "pod-identity-agent-token";
    let agent = Portal::start(
        &[],
        Some((agent_token, "arn:aws:iam::111111111111:role/kubed-master")),
    );
    let token_file = d.join("eks-pod-identity-token");
    std::fs::write(&token_file, agent_token).unwrap();
    let uri = leak(format!("{}/v1/credentials", agent.url));
    let file = leak(token_file.display().to_string());
    let agent_env = [
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", file),
    ];
    let path = d.join("kubeconfig");
    let out = run_case(
        d,
        "",
        config,
        &args(&[
            "generate",
            "--cluster",
            "mc-mgmt:mc-mgmt-k8s",
            "--cluster",
            "mc-project:mc-project-k8s",
            "--cluster",
            "mc-project2:mc-project2-k8s",
            "--kubeconfig",
            path.to_str().unwrap(),
            "--exec-command",
            binary().to_str().unwrap(),
        ]),
        &agent_env,
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for want in [
        "context mc-mgmt-k8s: profile mc-mgmt, account 111111111111",
        "context mc-project-k8s: profile mc-project, account 222222222222",
        "context mc-project2-k8s: profile mc-project2, account 333333333333",
        "current-context mc-mgmt-k8s",
    ] {
        assert!(stderr.contains(want), "{want}: {stderr}");
    }
    let env = plugin_env(d, &agent_env);
    for (context, _, _) in CLUSTERS {
        allow_list_namespaces(context).await;
        kubectl_lists_namespaces(d, &path, context, &env).await;
    }
    let seen = agent.seen();
    assert!(
        !seen.is_empty()
            && seen
                .iter()
                .all(|s| s.token_known && s.path == "/v1/credentials"),
        "{seen:?}"
    );
}

/// mfa_serial is a configuration error; explain validates like the SDKs and shows a chain with
/// its problems.
#[test]
fn mfa_serial_and_explain_validation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = "[profile mfa]\nrole_arn = arn:aws:iam::222222222222:role/kubed-follower\nsource_profile = base\nmfa_serial = arn:aws:iam::111111111111:mfa/me\n\
                  [profile base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = SECRETVALUEneverprinted\n\
                  [profile no-session]\nsso_session = gone\nsso_account_id = 1\nsso_role_name = r\n\
                  [profile no-region]\nsso_session = half\nsso_account_id = 1\nsso_role_name = r\n\
                  [sso-session half]\nsso_start_url = https://half.awsapps.com/start\n\
                  [profile no-token]\nrole_arn = arn:aws:iam::222222222222:role/kubed-follower\nsource_profile = web\n\
                  [profile web]\nrole_arn = arn:aws:iam::111111111111:role/kubed-master\nweb_identity_token_file = {dir}/missing-token\n";
    let config = config.replace("{dir}", &d.display().to_string());
    let out = run_case(
        d,
        "",
        &config,
        &args(&["generate", "--profile", "mfa", "--kubeconfig", "-"]),
        &[],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("error: profile mfa: mfa_serial is set, but MFA is not supported"),
        "{stderr}"
    );
    no_secret_or_debug("mfa", &stderr);

    let cases: [(&str, i32, &str); 3] = [
        (
            "mfa",
            3,
            "profile mfa: mfa_serial is set, but MFA is not supported",
        ),
        (
            "no-session",
            3,
            "sso-session named `gone` (referenced by profile `no-session`) was not found",
        ),
        (
            "no-region",
            3,
            "profile no-region: invalid SSO configuration: `sso_region` is missing from [sso-session half]",
        ),
    ];
    for (profile, code, want) in cases {
        let out = run_case(
            d,
            "",
            &config,
            &args(&["explain", "--profile", profile]),
            &[],
        );
        assert_eq!(
            out.status.code(),
            Some(code),
            "{profile}: {}",
            text(&out.stderr)
        );
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            doc["profiles"][0]["error"].as_str().unwrap().contains(want),
            "{doc}"
        );
        assert!(text(&out.stderr).contains(want));
    }
    // A missing token file: the chain is shown, the problem beside it and on stderr; exit 0.
    let out = run_case(
        d,
        "",
        &config,
        &args(&["explain", "--profile", "no-token"]),
        &[],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &doc["profiles"][0];
    assert_eq!(p["chain"][0]["kind"], "web_identity", "{doc}");
    assert_eq!(p["chain"][1]["kind"], "assume_role", "{doc}");
    let problem = format!(
        "profile web: web identity token file {}/missing-token cannot be read",
        d.display()
    );
    assert!(
        p["problems"][0].as_str().unwrap().starts_with(&problem),
        "{doc}"
    );
    assert!(stderr.contains(&format!("warning: {problem}")), "{stderr}");
    // generate stops at that problem, as before (exit 3).
    let out = run_case(
        d,
        "",
        &config,
        &args(&["generate", "--profile", "no-token", "--kubeconfig", "-"]),
        &[],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
}
