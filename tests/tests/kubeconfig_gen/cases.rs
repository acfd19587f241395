//! Bad input → exit code + message, and `explain` against what `generate` really did.
use super::*;

/// The testbed's seed-shaped INI with the web identity token file placeholder.
pub(super) const SEED: &str = "[mc-mgmt]\nrole_arn = arn:aws:iam::111111111111:role/kubed-master\nweb_identity_token_file = {token}\n\
[mc-project]\nrole_arn = arn:aws:iam::222222222222:role/kubed-follower\nsource_profile = mc-mgmt\nrole_session_name = mc-project\n\
[mc-project2]\nrole_arn = arn:aws:iam::333333333333:role/kubed-follower\nsource_profile = mc-mgmt\nrole_session_name = mc-project2\n";
pub(super) const SECRET: &str = "SECRETVALUEneverprinted";

struct Case {
    name: &'static str,
    credentials: &'static str,
    config: &'static str,
    args: &'static [&'static str],
    /// `("X", "")` removes X from the environment.
    env: &'static [(&'static str, &'static str)],
    code: i32,
    message: &'static str,
}

const fn case(
    name: &'static str,
    credentials: &'static str,
    args: &'static [&'static str],
    code: i32,
    message: &'static str,
) -> Case {
    Case {
        name,
        credentials,
        config: "",
        args,
        env: &[],
        code,
        message,
    }
}

const GEN_A: &[&str] = &["generate", "--profile", "a", "--kubeconfig", "-"];

fn cases() -> Vec<Case> {
    vec![
        case(
            "loop of one",
            "[a]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = a\n",
            GEN_A,
            3,
            "profile formed an infinite loop: a -> a",
        ),
        case(
            "loop of two",
            "[a]\nrole_arn = r:a\nsource_profile = b\n[b]\nrole_arn = r:b\nsource_profile = a\n",
            GEN_A,
            3,
            "infinite loop: a -> b -> a",
        ),
        case(
            "loop of three",
            "[a]\nrole_arn = r:a\nsource_profile = b\n[b]\nrole_arn = r:b\nsource_profile = c\n[c]\nrole_arn = r:c\nsource_profile = a\n",
            GEN_A,
            3,
            "infinite loop: a -> b -> c -> a",
        ),
        case(
            "missing source_profile",
            "[a]\nrole_arn = r:a\nsource_profile = nope\n",
            GEN_A,
            3,
            "could not find source profile nope referenced from a",
        ),
        case(
            "token file missing",
            "[a]\nrole_arn = arn:aws:iam::1:role/a\nweb_identity_token_file = {dir}/missing\n",
            GEN_A,
            3,
            "profile a: web identity token file {dir}/missing cannot be read",
        ),
        case(
            "token file unreadable (a directory)",
            "[a]\nrole_arn = arn:aws:iam::1:role/a\nweb_identity_token_file = {dir}\n",
            GEN_A,
            3,
            "profile a: web identity token file {dir} cannot be read",
        ),
        case(
            "unterminated section",
            "[a\nx = 1\n",
            GEN_A,
            3,
            "AWS credentials file {dir}/credentials is not valid INI",
        ),
        case(
            "colon instead of equals",
            "[a]\nrole_arn: r\n",
            GEN_A,
            3,
            "line 2: expected an '=' sign defining a property",
        ),
        case(
            "property before any section",
            "role_arn = r\n[a]\n",
            GEN_A,
            3,
            "a property appears before any [section]",
        ),
        Case {
            env: &[("AWS_REGION", ""), ("AWS_DEFAULT_REGION", "")],
            ..case(
                "no region",
                SEED,
                &["generate", "--profile", "mc-mgmt"],
                3,
                "profile mc-mgmt: no region",
            )
        },
        case(
            "role_arn without a source",
            "[a]\nrole_arn = r:a\n",
            GEN_A,
            3,
            "must contain `source_profile` or `credential_source`",
        ),
        case(
            "source_profile and credential_source",
            "[a]\nrole_arn = r:a\nsource_profile = b\ncredential_source = Environment\n[b]\naws_access_key_id = k\naws_secret_access_key = s\n",
            GEN_A,
            3,
            "both source_profile and credential_source",
        ),
        case(
            "half a key pair",
            "[a]\naws_access_key_id = AKID\n",
            GEN_A,
            3,
            "profile a: profile missing aws_secret_access_key",
        ),
        case(
            "web identity without role_arn",
            "[a]\nweb_identity_token_file = {token}\n",
            GEN_A,
            3,
            "`role_arn` was missing",
        ),
        case(
            "unknown profile",
            SEED,
            &["generate", "--profile", "nope"],
            3,
            "profile nope not found",
        ),
        case(
            "prefixed section in the credentials file",
            "[profile a]\naws_access_key_id = k\naws_secret_access_key = s\n",
            GEN_A,
            3,
            "section [profile a] in credentials file {dir}/credentials is ignored: the credentials file takes a bare [NAME]",
        ),
        Case {
            config: "[a]\nregion = eu-central-1\n",
            ..case(
                "bare section in the config file",
                "",
                GEN_A,
                3,
                "section [a] in config file {dir}/config is ignored: the config file takes [profile NAME]",
            )
        },
        case(
            "--config-file that does not exist",
            SEED,
            &["generate", "--config-file", "{dir}/nope"],
            3,
            "cannot read AWS config file {dir}/nope",
        ),
        case(
            "unknown credential_source",
            "[a]\nrole_arn = r:a\ncredential_source = Laptop\n",
            GEN_A,
            3,
            "credential_source Laptop is not one of",
        ),
        case(
            "duplicate contexts",
            SEED,
            &[
                "generate",
                "--kubeconfig",
                "-",
                "--cluster",
                "mc-mgmt:mc-mgmt-k8s=x",
                "--cluster",
                "mc-project:mc-project-k8s=x",
            ],
            2,
            "context x wanted by both arn:aws:eks:eu-central-1:111111111111:cluster/mc-mgmt-k8s (profile mc-mgmt) and arn:aws:eks:eu-central-1:222222222222:cluster/mc-project-k8s (profile mc-project)",
        ),
        case(
            "unknown cluster",
            SEED,
            &["generate", "--kubeconfig", "-", "--cluster", "mc-mgmt:nope"],
            5,
            "profile mc-mgmt: cluster nope not found in eu-central-1",
        ),
        case(
            "cluster of another account",
            SEED,
            &[
                "generate",
                "--kubeconfig",
                "-",
                "--cluster",
                "mc-project:mc-mgmt-k8s",
            ],
            5,
            "profile mc-project: cluster mc-mgmt-k8s not found",
        ),
        Case {
            env: &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9")],
            ..case(
                "unreachable STS endpoint",
                SEED,
                &["generate", "--profile", "mc-project"],
                4,
                "profile mc-project: cannot get AWS credentials",
            )
        },
        Case {
            env: &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9")],
            ..case(
                "unreachable EKS endpoint",
                "[s]\naws_access_key_id = AKIDS\naws_secret_access_key = SECRETVALUEneverprinted\n",
                &["generate", "--profile", "s"],
                5,
                "profile s: eks:ListClusters in eu-central-1 failed",
            )
        },
        case(
            "malformed --cluster",
            SEED,
            &["generate", "--cluster", "mc-mgmt:"],
            2,
            "--cluster \"mc-mgmt:\": expected PROFILE:CLUSTER[@REGION][=CONTEXT]",
        ),
        case(
            "--profile with --cluster",
            SEED,
            &[
                "generate",
                "--profile",
                "mc-mgmt",
                "--cluster",
                "mc-mgmt:mc-mgmt-k8s",
            ],
            2,
            "--profile limits discovery",
        ),
        case(
            "unknown --current-context",
            SEED,
            &["generate", "--kubeconfig", "-", "--current-context", "nope"],
            2,
            "--current-context nope: no generated or existing context",
        ),
        case(
            "ambiguous current context",
            SEED,
            &[
                "generate",
                "--kubeconfig",
                "-",
                "--cluster",
                "mc-mgmt:mc-mgmt-k8s=a",
                "--cluster",
                "mc-mgmt:mc-mgmt-k8s=b",
            ],
            2,
            "(the root profile mc-mgmt reaches several clusters: a, b); pass --current-context",
        ),
        case(
            "unknown flag",
            SEED,
            &["generate", "--frobnicate"],
            2,
            "unexpected argument '--frobnicate'",
        ),
        case(
            "token --output yaml",
            SEED,
            &["token", "--cluster-name", "c", "--output", "yaml"],
            2,
            "invalid value 'yaml'",
        ),
        Case {
            env: &[
                ("AWS_PROFILE", "mc-mgmt"),
                ("AWS_REGION", ""),
                ("AWS_DEFAULT_REGION", ""),
            ],
            ..case(
                "token without a region",
                SEED,
                &["token", "--cluster-name", "c"],
                3,
                "profile mc-mgmt: no region",
            )
        },
        Case {
            env: &[("AWS_PROFILE", "nope")],
            ..case(
                "token with an unknown AWS_PROFILE",
                SEED,
                &["token", "--cluster-name", "c"],
                3,
                "profile nope not found",
            )
        },
        case(
            "output under a regular file",
            SEED,
            &["generate", "--kubeconfig", "{dir}/credentials/config"],
            6,
            "cannot write kubeconfig {dir}/credentials/config",
        ),
        // Reading, not writing, is what fails: the message says so and names the cause.
        case(
            "existing kubeconfig is a directory",
            SEED,
            &[
                "generate",
                "--cluster",
                "mc-mgmt:mc-mgmt-k8s",
                "--kubeconfig",
                "{dir}",
            ],
            6,
            "existing kubeconfig {dir} cannot be read: Is a directory",
        ),
        case(
            "existing kubeconfig is not YAML",
            SEED,
            &["generate", "--kubeconfig", "{dir}/credentials"],
            6,
            "existing kubeconfig {dir}/credentials cannot be parsed",
        ),
        case(
            "explain of a looping profile",
            "[a]\nrole_arn = r:a\nsource_profile = a\n",
            &["explain", "--profile", "a"],
            3,
            "infinite loop: a -> a",
        ),
        // The management cluster was written: a skipped cluster is a warning, exit 0.
        case(
            "--keep-going past a missing cluster",
            SEED,
            &[
                "generate",
                "--keep-going",
                "--kubeconfig",
                "{dir}/kg.yaml",
                "--cluster",
                "mc-mgmt:mc-mgmt-k8s",
                "--cluster",
                "mc-mgmt:nope",
            ],
            0,
            "warning: 1 of 2 clusters failed and skipped (--keep-going; the rest was written)\n  - profile mc-mgmt: cluster nope not found",
        ),
        // Failures are counted per profile or per cluster, against totals in the same unit
        // (this once said "2 of 1 failed": the failures against the profiles that did plan).
        case(
            "two broken profiles",
            "[a]\nrole_arn = r:a\nsource_profile = a\n[b]\nrole_arn = r:b\nsource_profile = b\n",
            &[
                "generate",
                "--profile",
                "a",
                "--profile",
                "b",
                "--kubeconfig",
                "-",
            ],
            3,
            "2 of 2 profiles failed, nothing written\n  - profile formed an infinite loop: a -> a\n  - profile formed an infinite loop: b -> b",
        ),
        // A profile that fails as a whole and a cluster that fails: each in its own unit (this
        // once said "2 of 3 failed", a profile and a cluster against a profile and two clusters).
        Case {
            config: "[profile broken]\nrole_arn = r:x\nsource_profile = broken\n",
            ..case(
                "--keep-going past a broken profile and a missing cluster",
                SEED,
                &[
                    "generate",
                    "--keep-going",
                    "--kubeconfig",
                    "{dir}/kg.yaml",
                    "--cluster",
                    "mc-mgmt:mc-mgmt-k8s",
                    "--cluster",
                    "mc-mgmt:nope",
                    "--cluster",
                    "broken:x",
                ],
                0,
                "1 of 2 profiles and 1 of 2 clusters failed and skipped (--keep-going; the rest was written)",
            )
        },
    ]
}

/// Runs kubeconfig-gen with the testbed's AWS environment, the case's files in DIR.
pub(super) fn run_case(
    dir: &Path,
    credentials: &str,
    config: &str,
    args: &[String],
    env: &[(&str, &str)],
) -> Output {
    std::fs::write(dir.join("credentials"), credentials).unwrap();
    std::fs::write(dir.join("config"), config).unwrap();
    let mut vars: Vec<(String, String)> = aws_env()
        .into_iter()
        .filter(|(k, _)| !env.iter().any(|(e, _)| e == k))
        .collect();
    vars.retain(|(k, _)| k != "AWS_SHARED_CREDENTIALS_FILE" && k != "AWS_CONFIG_FILE");
    vars.push((
        "AWS_SHARED_CREDENTIALS_FILE".into(),
        dir.join("credentials").display().to_string(),
    ));
    vars.push((
        "AWS_CONFIG_FILE".into(),
        dir.join("config").display().to_string(),
    ));
    vars.extend(
        env.iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    clean(&binary(), dir, &vars).args(args).output().unwrap()
}

pub(super) fn fill(s: &str, dir: &Path) -> String {
    s.replace("{dir}", &dir.display().to_string()).replace(
        "{token}",
        &world_dir()
            .join("aws/web-identity-token")
            .display()
            .to_string(),
    )
}

#[test]
fn bad_input_exit_codes_and_messages() {
    let all = cases();
    assert!(all.len() >= 25, "only {} cases", all.len());
    let mut failed = Vec::new();
    for c in &all {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let args: Vec<String> = c.args.iter().map(|a| fill(a, d)).collect();
        let out = run_case(d, &fill(c.credentials, d), &fill(c.config, d), &args, c.env);
        let stderr = text(&out.stderr);
        let message = fill(c.message, d);
        if out.status.code() != Some(c.code)
            || !stderr.contains(&message)
            || stderr.contains(SECRET)
        {
            failed.push(format!(
                "{}: want exit {} and {message:?}; got {:?}: {stderr}",
                c.name,
                c.code,
                out.status.code()
            ));
        }
        if c.args.contains(&"--keep-going") && out.status.code() == Some(c.code) {
            let kept = Kubeconfig::read_from(d.join("kg.yaml")).unwrap();
            assert_eq!(kept.contexts.len(), 1, "--keep-going writes what succeeded");
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        all.len(),
        failed.join("\n")
    );
}

/// STS that denies: a private moto with authentication on (INITIAL_NO_AUTH_ACTION_COUNT=0), where
/// the profile's static keys are unknown.
#[test]
fn sts_denied_is_exit_4() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let venv =
        std::env::var_os("KCS_VENV").unwrap_or_else(|| "/var/cache/kubed-cross-sync/venv".into());
    let mut moto = Command::new(PathBuf::from(venv).join("bin/moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "moto did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let creds = "[base]\naws_access_key_id = AKIDUNKNOWN\naws_secret_access_key = SECRETVALUEneverprinted\n\
                 [role]\nrole_arn = arn:aws:iam::222222222222:role/kubed-follower\nsource_profile = base\n";
    let args: Vec<String> = ["generate", "--profile", "role", "--kubeconfig", "-"]
        .map(String::from)
        .to_vec();
    let leaked: &'static str = Box::leak(endpoint.into_boxed_str());
    let out = run_case(
        dir.path(),
        creds,
        "",
        &args,
        &[("AWS_ENDPOINT_URL", leaked)],
    );
    let _ = moto.kill();
    let _ = moto.wait();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("profile role: cannot get AWS credentials"),
        "{stderr}"
    );
    assert!(
        stderr.contains("InvalidClientTokenId") || stderr.contains("security token"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET));
}

/// `explain` says which chain each profile resolves to; `generate --profile P` must have reached
/// exactly the account of that chain's last role (or failed with explain's error).
#[test]
fn explain_agrees_with_generate() {
    let config_form = "[profile mc-mgmt]\nregion = eu-central-1\nrole_arn = arn:aws:iam::111111111111:role/kubed-master\nweb_identity_token_file = {token}\n\
[profile mc-project]\nrole_arn = arn:aws:iam::222222222222:role/kubed-follower\nsource_profile = mc-mgmt\n";
    let three_hops = "[mc-mgmt]\nrole_arn = arn:aws:iam::111111111111:role/kubed-master\nweb_identity_token_file = {token}\n\
[hop]\nrole_arn = arn:aws:iam::222222222222:role/kubed-follower\nsource_profile = mc-mgmt\n\
[mc-project2]\nrole_arn = arn:aws:iam::333333333333:role/kubed-follower\nsource_profile = hop\n";
    let wrong_style = "[mc-mgmt]\nrole_arn = arn:aws:iam::111111111111:role/kubed-master\nweb_identity_token_file = {token}\n\
[profile mc-project]\nrole_arn = arn:aws:iam::222222222222:role/kubed-follower\nsource_profile = mc-mgmt\n\
[broken]\nrole_arn = arn:aws:iam::333333333333:role/kubed-follower\nsource_profile = mc-projekt\n";
    let table: [(&str, &str, &str); 4] = [
        ("seed credentials", SEED, ""),
        ("config-file form", "", config_form),
        ("three hops", three_hops, ""),
        ("wrong section style and a typo", wrong_style, ""),
    ];
    for (label, creds, config) in table {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (creds, config) = (fill(creds, d), fill(config, d));
        let explain = run_case(d, &creds, &config, &["explain".to_string()], &[]);
        assert!(
            explain.status.success(),
            "{label}: {}",
            text(&explain.stderr)
        );
        let doc: Value = serde_json::from_slice(&explain.stdout).unwrap();
        for p in doc["profiles"].as_array().unwrap() {
            let name = p["name"].as_str().unwrap();
            let args: Vec<String> = ["generate", "--profile", name, "--kubeconfig", "-"]
                .map(String::from)
                .to_vec();
            let out = run_case(d, &creds, &config, &args, &[]);
            let stderr = text(&out.stderr);
            if let Some(err) = p["error"].as_str() {
                assert_eq!(
                    out.status.code(),
                    Some(3),
                    "{label}/{name}: explain said {err:?}; generate: {stderr}"
                );
                assert!(
                    stderr.contains(err),
                    "{label}/{name}: {err:?} not in {stderr}"
                );
                continue;
            }
            let chain = p["chain"].as_array().unwrap();
            assert_eq!(chain[0]["kind"], "web_identity", "{label}/{name}");
            let last_role = chain.last().unwrap()["role_arn"].as_str().unwrap();
            let account = last_role.split(':').nth(4).unwrap();
            assert!(out.status.success(), "{label}/{name}: {stderr}");
            assert!(
                stderr.contains(&format!("profile {name}, account {account}")),
                "{label}/{name}: explain's chain ends in {account}; generate: {stderr}"
            );
            assert_eq!(p["region"], "eu-central-1", "{label}/{name}");
        }
    }
}
