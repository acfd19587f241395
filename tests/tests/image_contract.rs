//! The image's contract, tested without a container engine (none on this machine): the product
//! binaries start and answer in the conditions the Dockerfile and manifests/mgmt give them — an
//! empty environment (distroless sets nothing but PATH), no HOME, a read-only working directory
//! (readOnlyRootFilesystem) and uid/gid 1000 (USER 1000:1000) — with no shell, no awscli, no Python.
//!
//! Binaries: target/release/ when `make release` has built both (what the image ships), else the
//! ones built beside this test. As root, each runs through `setpriv --reuid 1000 --regid 1000
//! --clear-groups` (util-linux); without setpriv the uid part is skipped with a printed reason.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const UID: u32 = 1000;

fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap(); // target/<profile>/deps/<test>
    let release = profile_dir.parent().unwrap().join("release");
    if ["kubeconfig-gen", "sync-daemon"]
        .iter()
        .all(|b| release.join(b).is_file())
    {
        release
    } else {
        eprintln!(
            "NOTE: no release build (make release): testing {}",
            profile_dir.display()
        );
        profile_dir.to_path_buf()
    }
}

/// How to become uid 1000: `Some(prefix)` to put before the command, `None` to run as is.
fn as_uid_1000() -> Option<Vec<String>> {
    let euid = std::fs::metadata("/proc/self").unwrap().uid();
    if euid != 0 {
        eprintln!("NOTE: not root (uid {euid}): running as this uid, not {UID}");
        return None;
    }
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).is_file());
    match setpriv {
        Some(p) => Some(vec![
            p.to_string(),
            format!("--reuid={UID}"),
            format!("--regid={UID}"),
            "--clear-groups".to_string(),
            "--".to_string(),
        ]),
        None => {
            eprintln!(
                "SKIPPED (uid part): running as root and setpriv (util-linux) is not installed"
            );
            None
        }
    }
}

/// A working directory that uid 1000 can read but not write, holding a seed-shaped profiles INI.
fn read_only_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    // The IRSA token that EKS would mount (explain checks that the file can be read).
    let token = dir.path().join("token");
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::write(
        dir.path().join("credentials"),
        format!(
            "[mc-mgmt]\nrole_arn = arn:aws:iam::111111111111:role/kubed-master\n\
             web_identity_token_file = {}\n\
             [mc-project]\nrole_arn = arn:aws:iam::222222222222:role/kubed-follower\n\
             source_profile = mc-mgmt\nrole_session_name = mc-project\n",
            token.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        dir.path().join("credentials"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    dir
}

struct Sandbox {
    prefix: Option<Vec<String>>,
    cwd: tempfile::TempDir,
}

impl Sandbox {
    fn run(&self, program: &Path, args: &[&str]) -> Output {
        let mut argv: Vec<String> = self.prefix.clone().unwrap_or_default();
        argv.push(program.display().to_string());
        argv.extend(args.iter().map(|a| a.to_string()));
        Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear() // no HOME, no PATH, no AWS_*, no KUBECONFIG
            .current_dir(self.cwd.path())
            .output()
            .unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn binaries_serve_with_an_empty_environment_no_home_a_read_only_cwd_and_uid_1000() {
    let bins = bin_dir();
    let sb = Sandbox {
        prefix: as_uid_1000(),
        cwd: read_only_dir(),
    };
    if sb.prefix.is_some() {
        // The sandbox is what it claims: the uid really cannot write the working directory...
        let touch = sb.run(Path::new("/usr/bin/touch"), &["probe"]);
        assert!(
            !touch.status.success(),
            "uid {UID} could write the read-only working directory"
        );
        // ... and really is uid 1000 with no supplementary groups.
        for flag in ["-u", "-g", "-G"] {
            let id = sb.run(Path::new("/usr/bin/id"), &[flag]);
            assert_eq!(text(&id.stdout).trim(), UID.to_string(), "id {flag}");
        }
    }

    let cases: &[(&str, &[&str], &str)] = &[
        ("kubeconfig-gen", &["--help"], "generate"),
        ("kubeconfig-gen", &["--version"], "kubeconfig-gen "),
        ("kubeconfig-gen", &["generate", "--help"], "--kubeconfig"),
        // explain reads the profiles (no AWS call) and prints the chain as JSON on stdout
        (
            "kubeconfig-gen",
            &["explain", "--credentials-file", "credentials"],
            "web_identity",
        ),
        ("sync-daemon", &["--help"], "run"),
        ("sync-daemon", &["--version"], "sync-daemon "),
        ("sync-daemon", &["run", "--help"], "--kubeconfig-file"),
    ];
    for (bin, args, expect) in cases {
        let out = sb.run(&bins.join(bin), args);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success(),
            "{bin} {args:?} exited {:?}: {stderr}",
            out.status.code()
        );
        assert!(
            stdout.contains(expect),
            "{bin} {args:?}: stdout lacks {expect:?}: {stdout}"
        );
        assert!(
            !stderr.contains("panicked"),
            "{bin} {args:?} panicked: {stderr}"
        );
    }
    let explain = sb.run(
        &bins.join("kubeconfig-gen"),
        &["explain", "--credentials-file", "credentials"],
    );
    let json: serde_json::Value =
        serde_json::from_slice(&explain.stdout).expect("explain prints JSON");
    let names: Vec<&str> = json["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["mc-mgmt", "mc-project"]);

    // Started with nothing to talk to, sync-daemon fails with a clear error and a non-zero exit,
    // never a panic (no kubeconfig file, not in a cluster).
    let out = sb.run(
        &bins.join("sync-daemon"),
        &["once", "--cluster-name", "mc-mgmt"],
    );
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "sync-daemon once without a cluster succeeded"
    );
    assert!(
        !stderr.contains("panicked"),
        "sync-daemon panicked: {stderr}"
    );
    assert!(
        !stderr.trim().is_empty(),
        "sync-daemon said nothing on stderr"
    );

    // Nothing was written anywhere it could not write (the directory is unchanged).
    let mut entries: Vec<_> = std::fs::read_dir(sb.cwd.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    entries.sort();
    assert_eq!(entries, ["credentials", "token"]);
    std::fs::set_permissions(sb.cwd.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The daemon as the pod runs it: empty environment, no HOME, read-only cwd, uid 1000, a kubeconfig
/// that embeds everything it needs (as kubeconfig-gen writes it) — it starts, reaches both clusters
/// of the shared testbed and serves /livez and /readyz.
#[test]
fn sync_daemon_serves_probes_in_the_image_conditions() {
    use base64::Engine as _;
    let tb = e2e::Testbed::shared();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let (src, fol) = (tb.cluster("mc-mgmt-k8s"), tb.cluster("mc-project-k8s"));
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: mgmt\nclusters:\n\
         - name: mgmt\n  cluster: {{server: '{}', certificate-authority-data: {}}}\n\
         - name: project\n  cluster: {{server: '{}', certificate-authority-data: {}}}\n\
         users:\n- name: mgmt\n  user: {{token: {}}}\n- name: project\n  user: {{token: {}}}\n\
         contexts:\n- name: mgmt\n  context: {{cluster: mgmt, user: mgmt}}\n\
         - name: mc-project-k8s\n  context: {{cluster: project, user: project}}\n",
        src.server,
        b64(&src.ca_pem),
        fol.server,
        b64(&fol.ca_pem),
        src.admin_token,
        fol.admin_token,
    );
    let cwd = read_only_dir();
    std::fs::set_permissions(cwd.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let kc = cwd.path().join("kubeconfig");
    std::fs::write(&kc, kubeconfig).unwrap();
    std::fs::set_permissions(&kc, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(cwd.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let sb = Sandbox {
        prefix: as_uid_1000(),
        cwd,
    };
    let port = e2e::procs::free_port().unwrap();
    let mut argv: Vec<String> = sb.prefix.clone().unwrap_or_default();
    argv.push(bin_dir().join("sync-daemon").display().to_string());
    argv.extend(
        [
            "run",
            "--kubeconfig-file=kubeconfig",
            "--cluster-name=mc-mgmt",
            "--config-source-namespace=image-contract",
            &format!("--metrics-addr=127.0.0.1:{port}"),
        ]
        .map(String::from),
    );
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .current_dir(sb.cwd.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let get = |path: &str| -> Option<u16> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        buf.split_whitespace().nth(1)?.parse().ok()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut last = (None, None);
    while std::time::Instant::now() < deadline {
        last = (get("/livez"), get("/readyz"));
        if last == (Some(200), Some(200)) || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let exited = child.try_wait().unwrap();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(exited, None, "sync-daemon exited early: {stderr}");
    assert_eq!(
        last,
        (Some(200), Some(200)),
        "/livez, /readyz never both 200 within 60 s: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    std::fs::set_permissions(sb.cwd.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A binary that cannot start its async runtime (here: no file descriptor left for it) exits
/// with its documented code and says why, instead of panicking — kubeconfig-gen 1, sync-daemon
/// 2 — and each `--help` lists its exit codes.
#[test]
fn a_runtime_that_cannot_start_exits_with_the_documented_code() {
    let prlimit = ["/usr/bin/prlimit", "/bin/prlimit"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("prlimit (util-linux) is installed");
    let cases: [(&str, &[&str], i32); 2] = [
        (
            "kubeconfig-gen",
            &["explain", "--credentials-file", "/dev/null"],
            1,
        ),
        (
            "sync-daemon",
            &[
                "status",
                "--kubeconfig-file",
                "/dev/null",
                "--cluster-name",
                "x",
            ],
            2,
        ),
    ];
    for (bin, args, code) in cases {
        let path = bin_dir().join(bin);
        // Four descriptors: stdin, stdout, stderr and one for the loader; none for the runtime.
        let out = Command::new(prlimit)
            .arg("--nofile=4:4")
            .arg(&path)
            .args(args)
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{bin}: {stderr}");
        assert!(
            stderr.contains("cannot start the async runtime"),
            "{bin}: {stderr}"
        );
        let help = Command::new(&path).arg("--help").output().unwrap();
        let help = text(&help.stdout);
        assert!(
            help.contains("Exit codes:") && help.contains(&format!("{code} ")),
            "{bin} --help: {help}"
        );
    }
}

/// The allocator setting the tests and benchmarks give the daemon is the one the image sets.
#[test]
fn the_image_sets_the_allocator_tunables_the_tests_run_with() {
    let dockerfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    let (name, value) = e2e::daemon::IMAGE_TUNABLES;
    let line = format!("ENV {name}={value}");
    assert!(
        text.lines().any(|l| l.trim() == line),
        "{} lacks `{line}`",
        dockerfile.display()
    );
}
