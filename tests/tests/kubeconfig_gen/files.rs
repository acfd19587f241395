//! Files and streams (issue 13, item 7): a symlinked kubeconfig, byte-stable output, logs without
//! colour or session tokens, the chain-depth limit and a linear `explain`, closed pipes.
use std::os::unix::fs::MetadataExt;
use std::process::Stdio;
use std::time::Instant;

use base64::Engine;

use super::*;

const KEYS: &str =
    "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = SECRETVALUEneverprinted\n";

/// kubeconfig-gen in a clean environment with only static keys in DIR/credentials (no AWS call
/// needed by `explain`; `token` signs locally with them).
fn offline(dir: &Path, credentials: &str) -> Command {
    std::fs::write(dir.join("credentials"), credentials).unwrap();
    let env = [
        (
            "AWS_SHARED_CREDENTIALS_FILE".to_string(),
            dir.join("credentials").display().to_string(),
        ),
        ("AWS_CONFIG_FILE".into(), "/nonexistent/config".into()),
        ("AWS_REGION".into(), "eu-central-1".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ];
    clean(&binary(), dir, &env)
}

#[test]
fn writes_through_a_symlinked_kubeconfig_and_twice_is_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("dotfiles")).unwrap();
    let target = d.join("dotfiles/kubeconfig");
    std::fs::write(&target, "apiVersion: v1\nkind: Config\n").unwrap();
    std::os::unix::fs::symlink("dotfiles/kubeconfig", d.join("config")).unwrap();
    // Held open across the runs: replaced by rename, the old file is unlinked (0 links) and
    // keeps its old bytes; rewritten in place, it would still be linked. (Comparing inode
    // numbers is no test: a freed inode number is handed out again.)
    let held = std::fs::File::open(&target).unwrap();
    let link = d.join("config");
    let args = [
        "--kubeconfig",
        link.to_str().unwrap(),
        "--cluster",
        "mc-project:mc-project-k8s",
        "--cluster",
        "mc-mgmt:mc-mgmt-k8s",
    ];
    let mut texts = Vec::new();
    // Five runs: the exec env (AWS_PROFILE and both file variables) came out in random order.
    for run in 0..5 {
        let out = generate(d, &args);
        assert!(out.status.success(), "run {run}: {}", text(&out.stderr));
        let meta = std::fs::symlink_metadata(&link).unwrap();
        assert!(
            meta.file_type().is_symlink(),
            "run {run}: the link was replaced"
        );
        texts.push(std::fs::read(&target).unwrap());
    }
    assert_eq!(
        held.metadata().unwrap().nlink(),
        0,
        "the target is replaced by rename, not rewritten in place"
    );
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o600
    );
    for (run, t) in texts.iter().enumerate() {
        assert_eq!(t, &texts[0], "run {run} differs from run 0");
    }
    let kc = Kubeconfig::read_from(&target).unwrap();
    assert_eq!(kc.contexts.len(), 2);
    assert_eq!(kc.current_context.as_deref(), Some("mc-mgmt-k8s"));
    let env = kc.auth_infos[0].auth_info.as_ref().unwrap().exec.as_ref();
    assert_eq!(
        env.unwrap().env.as_ref().unwrap().len(),
        3,
        "three env entries"
    );
    let leftovers = std::fs::read_dir(d.join("dotfiles")).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary file left behind");
}

/// The `X-Amz-Security-Token` of the presigned URL inside an ExecCredential.
fn session_token(exec_credential: &[u8]) -> String {
    let cred: Value = serde_json::from_slice(exec_credential).unwrap();
    let token = cred["status"]["token"].as_str().unwrap();
    let b64 = token.strip_prefix("k8s-aws-v1.").unwrap();
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .unwrap();
    let url = String::from_utf8(url).unwrap();
    let (_, rest) = url.split_once("X-Amz-Security-Token=").unwrap();
    let raw = rest.split('&').next().unwrap();
    // botocore's percent-encoding of the query value: decode the few escapes it uses.
    let mut out = String::new();
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex: String = [bytes.next().unwrap(), bytes.next().unwrap()]
                .iter()
                .map(|&c| c as char)
                .collect();
            out.push(u8::from_str_radix(&hex, 16).unwrap() as char);
        } else {
            out.push(b as char);
        }
    }
    out
}

#[test]
fn trace_logs_carry_no_colour_and_no_session_token() {
    let home = tempfile::tempdir().unwrap();
    let mut env = aws_env();
    env.push(("AWS_PROFILE".into(), "mc-project".into()));
    env.push(("RUST_LOG".into(), "trace".into()));
    let token = clean(&binary(), home.path(), &env)
        .args(["token", "--cluster-name", "mc-project-k8s"])
        .output()
        .unwrap();
    assert!(token.status.success(), "{}", text(&token.stderr));
    let secret = session_token(&token.stdout);
    assert!(secret.len() > 40, "a session token: {secret}");
    let listed = clean(&binary(), home.path(), &env)
        .args(["generate", "--profile", "mc-project", "--kubeconfig", "-"])
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    for (what, out) in [("token", &token), ("generate", &listed)] {
        let log = text(&out.stderr);
        assert!(
            log.lines().count() > 20,
            "{what}: trace logging is on: {log}"
        );
        assert!(
            !log.contains('\u{1b}'),
            "{what}: ANSI escape in a piped log"
        );
        for leak in [secret.as_str(), "<SessionToken>", "<SecretAccessKey>"] {
            assert!(!log.contains(leak), "{what}: {leak:?} in the trace log");
        }
    }
}

#[test]
fn a_chain_deeper_than_32_hops_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut creds = String::from(KEYS.replace("[base]", "[p0]").as_str());
    for i in 1..40 {
        creds.push_str(&format!(
            "[p{i}]\nrole_arn = arn:aws:iam::222222222222:role/kubed-follower\nsource_profile = p{}\n",
            i - 1
        ));
    }
    for (profile, code, message) in [
        (
            "p33",
            3,
            "profile p33: the chain follows more than 32 source_profile references (stopped at p0)",
        ),
        ("p39", 3, "profile p39: the chain follows more than 32"),
    ] {
        let out = offline(d, &creds)
            .args(["generate", "--profile", profile, "--kubeconfig", "-"])
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{profile}: {stderr}");
        assert!(stderr.contains(message), "{profile}: {stderr}");
    }
}

#[test]
fn explain_of_3000_profiles_is_fast_and_small() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut creds = String::from("[p0]\naws_access_key_id = k\naws_secret_access_key = s\n");
    for i in 1..3000 {
        creds.push_str(&format!(
            "[p{i}]\nrole_arn = arn:aws:iam::1:role/r{i}\nsource_profile = p{}\n",
            i - 1
        ));
    }
    std::fs::write(d.join("credentials"), &creds).unwrap();
    // 256 MiB of data (heap and anonymous mappings): it needs ~25; the quadratic walk took GBs.
    let started = Instant::now();
    let out = Command::new("prlimit")
        .arg("--data=268435456")
        .arg("--")
        .arg(binary())
        .arg("explain")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", d)
        .env("AWS_SHARED_CREDENTIALS_FILE", d.join("credentials"))
        .env("AWS_CONFIG_FILE", "/nonexistent/config")
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        text(&out.stderr)
    );
    assert!(took < Duration::from_secs(10), "explain took {took:?}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let profiles = doc["profiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 3000);
    let resolved = profiles.iter().filter(|p| p.get("chain").is_some()).count();
    assert_eq!(resolved, 33, "p0..p32 resolve, deeper ones are errors");
}

/// Runs CMD with stdout (and stderr, if CLOSE_STDERR) connected to a pipe whose reading end is
/// already closed: every write fails with EPIPE, deterministically.
fn with_closed_pipe(mut cmd: Command, close_stderr: bool) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    cmd.stdout(Stdio::from(writer));
    if close_stderr {
        let (r, w) = std::io::pipe().unwrap();
        drop(r);
        cmd.stderr(Stdio::from(w));
        let status = cmd.status().unwrap();
        return (status.code(), String::new());
    }
    let out = cmd.stderr(Stdio::piped()).output().unwrap();
    (out.status.code(), text(&out.stderr))
}

#[test]
fn a_closed_pipe_is_exit_6_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let explain = || {
        let mut c = offline(d, KEYS);
        c.arg("explain");
        c
    };
    let token = || {
        let mut c = offline(d, KEYS);
        c.args(["token", "--cluster-name", "c", "--profile", "base"]);
        c
    };
    for (label, cmd) in [("explain", explain()), ("token", token())] {
        let (code, stderr) = with_closed_pipe(cmd, false);
        assert_eq!(code, Some(6), "{label}: {stderr}");
        assert!(
            stderr.contains("error: cannot write stdout: Broken pipe"),
            "{label}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{label}: {stderr}");
    }
    // stderr closed too (`2>&-`-like, where the error message itself cannot be written).
    for (label, cmd) in [("explain", explain()), ("token", token())] {
        let (code, _) = with_closed_pipe(cmd, true);
        assert_eq!(code, Some(6), "{label} with stderr closed: no panic (101)");
    }
    // The shells' shape, `explain | head -1`: exit 0 or 6 by the race, never a panic.
    let mut creds = String::from(KEYS);
    for i in 0..2000 {
        creds.push_str(&format!(
            "[s{i}]\naws_access_key_id = k\naws_secret_access_key = s\n"
        ));
    }
    std::fs::write(d.join("credentials"), creds).unwrap();
    let script = format!(
        "set -o pipefail; AWS_SHARED_CREDENTIALS_FILE={} {} explain | head -1",
        d.join("credentials").display(),
        binary().display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert_eq!(text(&out.stdout), "{\n");
    assert!(
        matches!(out.status.code(), Some(0) | Some(6)),
        "{:?}: {}",
        out.status,
        text(&out.stderr)
    );
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );
}
