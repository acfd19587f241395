//! Deadlines (issue 13, item 4): an endpoint that accepts TCP connections and never answers.
//! Every kind of call meets it — STS inside a chain, EKS, `token` — and each ends with exit 8,
//! naming the profile and the endpoint, well within a minute (also at the default timeout).
use std::net::{TcpListener, TcpStream};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::*;

/// Accepts every connection and holds it open without a byte in reply, until the test ends.
struct Silent {
    url: String,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Silent {
    fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = held.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                keep.lock().unwrap().push(conn);
            }
        });
        Silent { url, held }
    }
}

const CREDS: &str = "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = SECRETVALUEneverprinted\n\
[role]\nrole_arn = arn:aws:iam::222222222222:role/kubed-follower\nsource_profile = base\n";

/// Runs kubeconfig-gen against ENDPOINT with DIR/credentials (written once by the caller: the
/// children run at once and must not see it half rewritten).
fn spawn(dir: &Path, endpoint: &str, args: &[&str], extra: &[(&str, &str)]) -> Child {
    let mut env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "eu-central-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/nonexistent/config"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.push((
        "AWS_SHARED_CREDENTIALS_FILE".into(),
        dir.join("credentials").display().to_string(),
    ));
    clean(&binary(), dir, &env)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_silent_endpoint_is_exit_8_naming_profile_and_endpoint_in_time() {
    let silent = Silent::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let url = silent.url.as_str();
    // (label, args, extra env, wanted message, deadline for the whole run)
    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, String, u64);
    let cases: Vec<Case> = vec![
        (
            "STS inside the chain",
            vec![
                "generate",
                "--profile",
                "role",
                "--kubeconfig",
                "-",
                "--timeout",
                "2s",
            ],
            vec![],
            format!(
                "profile role: credentials (STS in eu-central-1) at {url} did not answer within 2s (--timeout)"
            ),
            15,
        ),
        (
            "EKS",
            vec![
                "generate",
                "--profile",
                "base",
                "--kubeconfig",
                "-",
                "--timeout",
                "2s",
            ],
            vec![],
            format!(
                "profile base: eks:ListClusters in eu-central-1 at {url} did not answer within 2s"
            ),
            15,
        ),
        (
            "token, --timeout before the subcommand",
            vec!["--timeout", "2s", "token", "--cluster-name", "c"],
            vec![("AWS_PROFILE", "role")],
            format!(
                "profile role: credentials (STS in eu-central-1) at {url} did not answer within 2s"
            ),
            15,
        ),
        (
            "token at the default timeout, as kubectl runs it",
            vec!["token", "--cluster-name", "c"],
            vec![("AWS_PROFILE", "role")],
            format!("at {url} did not answer within 30s"),
            50,
        ),
    ];
    std::fs::write(d.join("credentials"), CREDS).unwrap();
    let started = Instant::now();
    let children: Vec<Child> = cases
        .iter()
        .map(|(_, args, extra, _, _)| spawn(d, url, args, extra))
        .collect();
    let mut failed = Vec::new();
    for ((label, _, _, message, within), child) in cases.iter().zip(children) {
        let out = child.wait_with_output().unwrap();
        let took = started.elapsed();
        let stderr = text(&out.stderr);
        if out.status.code() != Some(8)
            || !stderr.contains(message.as_str())
            || stderr.contains("SECRETVALUE")
            || took > Duration::from_secs(*within)
        {
            failed.push(format!(
                "{label}: want exit 8 within {within}s and {message:?}; got {:?} after {took:?}: {stderr}",
                out.status.code()
            ));
        }
        assert!(out.stdout.is_empty(), "{label}: stdout must stay empty");
    }
    assert!(
        !silent.held.lock().unwrap().is_empty(),
        "no call reached the silent endpoint"
    );
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
