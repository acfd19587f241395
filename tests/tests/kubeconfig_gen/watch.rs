//! `generate --watch` (issue 13, item 3), the sidecar: clusters created and deleted in moto come
//! and go within about two intervals and are logged; an unchanged world leaves the file's inode
//! and mtime alone and describes no cluster again; a failing round keeps the file and the
//! process; SIGTERM / SIGINT end it with 0 within 5 s, also in the middle of an AWS call.
//! The process talks to moto through `Moto` (moto_proxy.rs), a proxy of these tests that notes
//! every request and can refuse or hold connections, so the shared moto itself is never stopped.
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::cases::{SEED, fill};
use super::moto_proxy::{Mode, Moto, described, listed};
use super::*;
use rustix::process::{Pid, Signal, kill_process};

pub(super) const INTERVAL: Duration = Duration::from_secs(10);
/// "Within about two intervals": two, plus the slack of a round's own calls.
const TWO_ROUNDS: Duration = Duration::from_secs(25);

/// `kubeconfig-gen generate --watch` with its stderr collected line by line.
pub(super) struct Watcher {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Watcher {
    /// Runs in DIR (DIR/credentials, DIR/config, writing DIR/kubeconfig) against ENDPOINT.
    pub(super) fn start(dir: &Path, endpoint: &str, args: &[&str]) -> Watcher {
        let mut env: Vec<(String, String)> = aws_env()
            .into_iter()
            .filter(|(k, _)| {
                ![
                    "AWS_SHARED_CREDENTIALS_FILE",
                    "AWS_CONFIG_FILE",
                    "AWS_ENDPOINT_URL",
                ]
                .contains(&k.as_str())
            })
            .collect();
        for (k, v) in [
            ("AWS_SHARED_CREDENTIALS_FILE", dir.join("credentials")),
            ("AWS_CONFIG_FILE", dir.join("config")),
        ] {
            env.push((k.into(), v.display().to_string()));
        }
        env.push(("AWS_ENDPOINT_URL".into(), endpoint.into()));
        env.push(("KUBECONFIG_GEN_LOG".into(), "info".into()));
        env.push(("NO_COLOR".into(), "1".into()));
        let mut cmd = clean(&binary(), dir, &env);
        cmd.arg("generate")
            .arg(format!("--exec-command={}", binary().display()));
        if !args.iter().any(|a| a.starts_with("--kubeconfig")) {
            cmd.arg(format!("--kubeconfig={}", dir.join("kubeconfig").display()));
        }
        let mut child = cmd
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (stderr, sink) = (child.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Watcher { child, log }
    }

    pub(super) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log from byte FROM on satisfies DONE.
    pub(super) async fn wait_log(
        &self,
        what: &str,
        within: Duration,
        from: usize,
        done: impl Fn(&str) -> bool,
    ) {
        wait_for(what, within, || async {
            let log = self.log();
            done(&log[from.min(log.len())..]).then_some(())
        })
        .await;
    }

    pub(super) fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn signal(&self, sig: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap()).unwrap();
        kill_process(pid, sig).unwrap();
    }

    /// The exit status, if the process ends within LIMIT.
    fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The CPU time PID has spent so far, in ns (`/proc/PID/schedstat`'s first field).
fn cpu_ns(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap();
    stat.split_whitespace().next().unwrap().parse().unwrap()
}

/// The file's identity and modification time: what a rewrite, even of the same bytes, changes.
fn stamp(path: &Path) -> (u64, i64, i64) {
    let m = std::fs::metadata(path).unwrap();
    (m.ino(), m.mtime(), m.mtime_nsec())
}

pub(super) fn contexts_of(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = Kubeconfig::read_from(path)
        .unwrap()
        .contexts
        .into_iter()
        .map(|c| c.name)
        .collect();
    names.sort_unstable();
    names
}

/// No temporary file of the atomic write is left in DIR.
fn no_leftovers(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".kubeconfig-gen")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// An account of this run only (moto lets the chain assume a role in any account): its clusters
/// are seen by no other test, and a reused testbed holds none of them yet.
pub(super) fn fresh_account() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "7{:011}",
        (nanos / 1000 + u128::from(std::process::id())) % 100_000_000_000
    )
}

/// `aws eks ARGS` as PROFILE of DIR/credentials, straight to moto.
pub(super) fn aws_eks(dir: &Path, profile: &str, args: &[&str]) {
    let mut env = aws_env();
    env.retain(|(k, _)| k != "AWS_SHARED_CREDENTIALS_FILE");
    env.push((
        "AWS_SHARED_CREDENTIALS_FILE".into(),
        dir.join("credentials").display().to_string(),
    ));
    env.push(("AWS_PROFILE".into(), profile.into()));
    let out = clean(&aws_cli(), dir, &env)
        .arg("eks")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aws eks {args:?}: {}",
        text(&out.stderr)
    );
}

fn create_cluster(dir: &Path, profile: &str, name: &str, account: &str) {
    let role = format!("arn:aws:iam::{account}:role/eks");
    aws_eks(
        dir,
        profile,
        &[
            "create-cluster",
            "--name",
            name,
            "--role-arn",
            &role,
            "--resources-vpc-config",
            "subnetIds=subnet-12345678",
        ],
    );
}

const POD_FLAGS: &[&str] = &[
    "--watch",
    "--interval=10s",
    "--replace",
    "--current-context=mc-mgmt-k8s",
];

#[tokio::test]
async fn watch_follows_clusters_and_leaves_an_unchanged_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let account = fresh_account();
    let watched = format!(
        "[watched]\nrole_arn = arn:aws:iam::{account}:role/kubed-follower\nsource_profile = mc-mgmt\nrole_session_name = watched\n"
    );
    std::fs::write(d.join("credentials"), fill(&format!("{SEED}{watched}"), d)).unwrap();
    std::fs::write(d.join("config"), "").unwrap();
    create_cluster(d, "watched", "watch-stays-k8s", &account);
    let moto = Moto::start();
    let mut args = POD_FLAGS.to_vec();
    args.push("--keep-going");
    let mut w = Watcher::start(d, &moto.url, &args);
    let path = d.join("kubeconfig");
    w.wait_log("round 1", Duration::from_secs(60), 0, |l| {
        l.contains("watch: round 1 done")
    })
    .await;
    let base = [
        "mc-mgmt-k8s",
        "mc-project-k8s",
        "mc-project2-k8s",
        "watch-stays-k8s",
    ];
    assert_eq!(contexts_of(&path), base, "{}", w.log());
    let first = described(&moto.requests());
    assert_eq!(
        first.len(),
        4,
        "round 1 describes each cluster once: {first:?}"
    );

    // (b, e) Three rounds of an unchanged world: the file untouched, no DescribeCluster.
    let (before, bytes, mark, from) = (
        stamp(&path),
        std::fs::read(&path).unwrap(),
        moto.requests().len(),
        w.log().len(),
    );
    let cpu = cpu_ns(w.child.id());
    w.wait_log(
        "three unchanged rounds",
        3 * INTERVAL + TWO_ROUNDS,
        from,
        |l| l.matches(" unchanged").count() >= 3,
    )
    .await;
    assert_eq!(stamp(&path), before, "inode or mtime changed: {}", w.log());
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let steady = &moto.requests()[mark..];
    assert!(described(steady).is_empty(), "re-described: {steady:?}");
    assert!(
        listed(steady) >= 3 * 4,
        "ListClusters each round per profile: {steady:?}"
    );
    // The steady cost, for BENCHMARKS.md (`-- --nocapture`): what a round asks AWS, its CPU time.
    let rounds = w.log()[from..].matches(" unchanged").count() as u64;
    let per_round = (cpu_ns(w.child.id()) - cpu) / rounds / 1000;
    let mut kinds = std::collections::BTreeMap::<&str, u64>::new();
    for r in steady {
        let kind = match r.split_once(" Action=") {
            Some((_, action)) => action,
            None if described(std::slice::from_ref(r)).is_empty() => "ListClusters",
            None => "DescribeCluster",
        };
        *kinds.entry(kind).or_default() += 1;
    }
    eprintln!(
        "steady cost, 4 profiles, {rounds} rounds: {per_round} µs CPU and per round {:?}; {}",
        kinds
            .iter()
            .map(|(k, n)| (k, n / rounds))
            .collect::<Vec<_>>(),
        std::fs::read_to_string(format!("/proc/{}/status", w.child.id()))
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    created_then_deleted(&w, &moto, d, &account, &base).await;

    // A profile broken mid-run (--keep-going): skipped and logged each round, its cluster kept.
    let (before, from) = (stamp(&path), w.log().len());
    let typo = watched.replace("source_profile = mc-mgmt", "source_profile = mc-mgmtt");
    std::fs::write(d.join("credentials"), fill(&format!("{SEED}{typo}"), d)).unwrap();
    w.wait_log("the broken profile skipped", TWO_ROUNDS, from, |l| {
        l.contains("could not find source profile mc-mgmtt referenced from watched")
    })
    .await;
    assert_eq!(contexts_of(&path), base, "{}", w.log());
    assert_eq!(stamp(&path), before, "the file was rewritten: {}", w.log());
    assert!(w.running());

    // (c) SIGTERM between rounds.
    w.signal(Signal::TERM);
    let status = w.exit_within(Duration::from_secs(5));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", w.log());
    no_leftovers(d);
    let log = w.log();
    assert!(
        !log.contains(SECRET_MARKERS[0]) && !log.contains(SECRET_MARKERS[1]),
        "{log}"
    );
}

/// What must never be logged: the STS session token field and the web identity token (a JWT).
const SECRET_MARKERS: [&str; 2] = ["SessionToken", "eyJ"];

/// (a) A cluster created in moto comes within about two intervals, described once, and is
/// logged as added; deleted, it goes and is logged as removed.
async fn created_then_deleted(w: &Watcher, moto: &Moto, d: &Path, account: &str, base: &[&str]) {
    let path = d.join("kubeconfig");
    let (mark, from) = (moto.requests().len(), w.log().len());
    create_cluster(d, "watched", "watch-new-k8s", account);
    wait_for("watch-new-k8s in the file", TWO_ROUNDS, || async {
        contexts_of(&path)
            .contains(&"watch-new-k8s".to_string())
            .then_some(())
    })
    .await;
    w.wait_log("the added context logged", INTERVAL, from, |l| {
        l.contains("watch: added context watch-new-k8s")
    })
    .await;
    assert_eq!(described(&moto.requests()[mark..]), ["watch-new-k8s"]);
    assert_eq!(
        Kubeconfig::read_from(&path)
            .unwrap()
            .current_context
            .as_deref(),
        Some("mc-mgmt-k8s")
    );

    // ... and a deleted one goes.
    let from = w.log().len();
    aws_eks(d, "watched", &["delete-cluster", "--name", "watch-new-k8s"]);
    wait_for("watch-new-k8s gone from the file", TWO_ROUNDS, || async {
        (contexts_of(&path) == base).then_some(())
    })
    .await;
    w.wait_log("the removed context logged", INTERVAL, from, |l| {
        l.contains("watch: removed context watch-new-k8s")
    })
    .await;
}

#[tokio::test]
async fn a_failing_round_keeps_the_file_and_sigterm_cancels_a_call() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("credentials"), fill(SEED, d)).unwrap();
    std::fs::write(d.join("config"), "").unwrap();
    let moto = Moto::start();
    let mut args = POD_FLAGS.to_vec();
    args.push("--timeout=20s");
    let mut w = Watcher::start(d, &moto.url, &args);
    let path = d.join("kubeconfig");
    w.wait_log("round 1", Duration::from_secs(60), 0, |l| {
        l.contains("watch: round 1 done")
    })
    .await;
    let (before, bytes) = (stamp(&path), std::fs::read(&path).unwrap());

    // (d) AWS unreachable: the round fails, is logged, and the file and the process stay.
    let from = w.log().len();
    moto.set(Mode::Refuse);
    w.wait_log("a failed round", 2 * TWO_ROUNDS, from, |l| {
        l.contains("failed; the last written file stays")
    })
    .await;
    assert!(w.running(), "{}", w.log());
    assert_eq!(stamp(&path), before);
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    no_leftovers(d);

    // Back again: the next round finds the same world and leaves the file alone.
    let from = w.log().len();
    moto.set(Mode::Forward);
    w.wait_log("a good round again", TWO_ROUNDS, from, |l| {
        l.contains(" unchanged")
    })
    .await;
    assert_eq!(stamp(&path), before);

    // (c) SIGTERM while a round waits on an endpoint that never answers: exit 0 within 5 s,
    // long before the 20 s --timeout of the call.
    moto.set(Mode::Hold);
    wait_for(
        "a round calling the silent endpoint",
        TWO_ROUNDS,
        || async { (moto.held() > 0).then_some(()) },
    )
    .await;
    let asked = Instant::now();
    w.signal(Signal::TERM);
    let status = w.exit_within(Duration::from_secs(5));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", w.log());
    assert!(asked.elapsed() < Duration::from_secs(5));
    assert!(w.log().contains("watch: SIGTERM: stopping"), "{}", w.log());
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    no_leftovers(d);
}

#[tokio::test]
async fn the_first_round_fails_as_generate_does_and_sigint_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("credentials"), fill(SEED, d)).unwrap();
    std::fs::write(d.join("config"), "").unwrap();
    let endpoint = aws_env()
        .into_iter()
        .find(|(k, _)| k == "AWS_ENDPOINT_URL")
        .map(|(_, v)| v)
        .unwrap();
    // (args, exit code, message): the init container's contract, and the flags' own checks.
    let cases: [(&[&str], i32, &str); 4] = [
        (
            &["--watch", "--cluster", "mc-mgmt:no-such-cluster"],
            5,
            "cluster no-such-cluster not found",
        ),
        (&["--interval=30s"], 2, "--watch"),
        (&["--watch", "--interval=5s"], 2, "at least 10s"),
        (
            &["--watch", "--kubeconfig=-"],
            2,
            "cannot watch into stdout",
        ),
    ];
    for (args, code, message) in cases {
        let mut w = Watcher::start(d, &endpoint, args);
        let status = w.exit_within(Duration::from_secs(30));
        let log = w.log();
        assert_eq!(status.and_then(|s| s.code()), Some(code), "{args:?}: {log}");
        assert!(log.contains(message), "{args:?}: {log}");
    }
    assert!(!d.join("kubeconfig").exists());

    // SIGINT (Ctrl-C) in the middle of the first round's first call.
    let moto = Moto::start();
    moto.set(Mode::Hold);
    let mut w = Watcher::start(d, &moto.url, POD_FLAGS);
    wait_for(
        "the first round calling",
        Duration::from_secs(30),
        || async { (moto.held() > 0).then_some(()) },
    )
    .await;
    w.signal(Signal::INT);
    let status = w.exit_within(Duration::from_secs(5));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", w.log());
    assert!(!d.join("kubeconfig").exists());
}

/// A later round that would lose the management context writes nothing: the management cluster
/// deleted, the file keeps it and its current-context, with `--replace` (the pod's flags) and when
/// merging into the file, and the process keeps running.
#[tokio::test]
async fn a_round_without_the_management_cluster_writes_nothing() {
    let root = fresh_account();
    let follower = format!("8{}", &root[1..]);
    let creds = format!(
        "[root]\nrole_arn = arn:aws:iam::{root}:role/kubed-master\nweb_identity_token_file = {{token}}\n\
         [follower]\nrole_arn = arn:aws:iam::{follower}:role/kubed-follower\nsource_profile = root\nrole_session_name = follower\n"
    );
    let endpoint = aws_env()
        .into_iter()
        .find(|(k, _)| k == "AWS_ENDPOINT_URL")
        .map(|(_, v)| v)
        .unwrap();
    let (replace, merge) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut watchers = Vec::new();
    for (dir, extra) in [(replace.path(), Some("--replace")), (merge.path(), None)] {
        std::fs::write(dir.join("credentials"), fill(&creds, dir)).unwrap();
        std::fs::write(dir.join("config"), "").unwrap();
        if watchers.is_empty() {
            create_cluster(dir, "root", "root-k8s", &root);
            create_cluster(dir, "follower", "f-k8s", &follower);
        }
        let mut args = vec![
            "--watch",
            "--interval=10s",
            "--keep-going",
            "--current-context=root-k8s",
        ];
        args.extend(extra);
        let w = Watcher::start(dir, &endpoint, &args);
        watchers.push((dir, w));
    }
    let mut kept = Vec::new();
    for (dir, w) in &watchers {
        w.wait_log("round 1", Duration::from_secs(60), 0, |l| {
            l.contains("watch: round 1 done")
        })
        .await;
        let path = dir.join("kubeconfig");
        assert_eq!(contexts_of(&path), ["f-k8s", "root-k8s"], "{}", w.log());
        kept.push((stamp(&path), std::fs::read(&path).unwrap(), w.log().len()));
    }
    aws_eks(
        replace.path(),
        "root",
        &["delete-cluster", "--name", "root-k8s"],
    );
    for ((dir, w), (before, bytes, from)) in watchers.iter_mut().zip(kept) {
        w.wait_log("a round without root-k8s", TWO_ROUNDS, from, |l| {
            l.contains("failed; the last written file stays")
        })
        .await;
        let path = dir.join("kubeconfig");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{}", w.log());
        assert_eq!(stamp(&path), before);
        assert!(
            !w.log()[from..].contains("watch: removed context"),
            "{}",
            w.log()
        );
        assert!(w.running(), "{}", w.log());
        w.signal(Signal::TERM);
        let status = w.exit_within(Duration::from_secs(5));
        assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", w.log());
    }
}
