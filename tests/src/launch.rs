//! Bringing a whole testbed up (clusters in parallel, the AWS world beside them) and down
//! (every recorded process, by pid), shared by the Rust API and the `testbed` command.
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::try_join_all;
use serde_json::json;

use crate::assets::Assets;
use crate::cluster::{self, Prepared};
use crate::error::TestbedError;
use crate::procs::{self, ProcRecord, create_dir, spawn, stop_all, write_file};
use crate::state::{KubeconfigEntry, State, render_kubeconfig};
use crate::{ClusterInfo, Testbed, TestbedOptions, aws};

/// How long `down` waits after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

fn check_names(opts: &TestbedOptions) -> Result<(), TestbedError> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, c) in opts.clusters.iter().enumerate() {
        // Re-validate: names become directory names and AWS profile names.
        let parsed = crate::ClusterSpec::parse(&format!("{}@{}", c.name, c.account), i)?;
        if !seen.insert(parsed.name) {
            return Err(TestbedError::BadClusterSpec(format!(
                "{} (given twice)",
                c.name
            )));
        }
    }
    if opts.clusters.is_empty() {
        return Err(TestbedError::BadClusterSpec(String::new()));
    }
    Ok(())
}

fn choose_dir(opts: &TestbedOptions) -> Result<(PathBuf, bool), TestbedError> {
    match &opts.dir {
        Some(d) => {
            create_dir(d)?;
            let abs = std::path::absolute(d).map_err(|e| TestbedError::io("resolve", d, e))?;
            Ok((abs, false))
        }
        None => {
            let tmp = tempfile::Builder::new()
                .prefix("kcs-testbed-")
                .tempdir()
                .map_err(|e| {
                    TestbedError::io("create a temporary directory in", std::env::temp_dir(), e)
                })?;
            Ok((tmp.keep(), !opts.keep_dir))
        }
    }
}

fn update(state: &Mutex<State>, f: impl FnOnce(&mut State)) -> Result<(), TestbedError> {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut s);
    s.save()
}

fn spawn_reaper(assets: &Assets, dir: &Path, remove_dir: bool) -> Result<ProcRecord, TestbedError> {
    let me = std::process::id();
    let mut argv = vec![
        assets.testbed.display().to_string(),
        "reap".into(),
        format!("--parent-pid={me}"),
        format!("--parent-start={}", procs::start_time(me).unwrap_or(0)),
        format!("--dir={}", dir.display()),
    ];
    if remove_dir {
        argv.push("--remove-dir".into());
    }
    spawn("reaper", &argv, &dir.join("reaper.log"))
}

fn write_kubeconfig(dir: &Path, prepared: &[Prepared]) -> Result<(), TestbedError> {
    let entries: Vec<KubeconfigEntry<'_>> = prepared
        .iter()
        .map(|p| KubeconfigEntry {
            name: &p.state.name,
            server: &p.state.server,
            ca_pem: &p.ca_pem,
            token: &p.admin_token,
        })
        .collect();
    let text = render_kubeconfig(&entries)?;
    write_file(&dir.join("kubeconfig"), text.as_bytes(), 0o600)
}

pub(crate) async fn launch(
    opts: TestbedOptions,
    with_reaper: bool,
) -> Result<Testbed, TestbedError> {
    let started = Instant::now();
    check_names(&opts)?;
    let assets = Assets::find_in(opts.assets.clone())?;
    // From here on, an error drops `tb`, which stops whatever was started.
    let mut tb = new_testbed(&opts, &assets, with_reaper)?;
    let dir = tb.dir.clone();
    let mut prepared = Vec::new();
    for (i, spec) in opts.clusters.iter().enumerate() {
        prepared.push(cluster::prepare(&dir, spec, i, &assets, opts.aws)?);
    }
    update(&tb.state, |s| {
        s.clusters = prepared.iter().map(|p| p.state.clone()).collect()
    })?;
    start_proxies(&assets, &tb, &mut prepared).await?;
    write_kubeconfig(&dir, &prepared)?;
    let aws_world = if opts.aws {
        Some(start_aws_world(&dir, &tb, &prepared)?)
    } else {
        None
    };

    let clusters = try_join_all(prepared.iter().map(|p| cluster::start(p, &tb.state)));
    let aws_ready = async {
        match &aws_world {
            Some((plan, rec)) => aws::wait_ready(plan, rec).await,
            None => Ok(()),
        }
    };
    tokio::try_join!(clusters, aws_ready)?;

    if let Some((plan, _)) = &aws_world {
        try_join_all(
            prepared
                .iter()
                .enumerate()
                .map(|(i, p)| aws::apply_aws_auth(&p.state, i == 0)),
        )
        .await?;
        let states: Vec<_> = prepared.iter().map(|p| p.state.clone()).collect();
        aws::write_profiles(&dir, plan, &states)?;
    }

    tb.clusters = prepared.into_iter().map(cluster_info).collect();
    tracing::info!(
        dir = %dir.display(),
        version = %assets.version,
        clusters = tb.clusters.len(),
        aws = opts.aws,
        seconds = started.elapsed().as_secs_f64(),
        "testbed up"
    );
    Ok(tb)
}

/// The testbed's directory and first state.json (refused while another testbed runs there), and
/// its reaper when `with_reaper`; no cluster yet.
fn new_testbed(
    opts: &TestbedOptions,
    assets: &Assets,
    with_reaper: bool,
) -> Result<Testbed, TestbedError> {
    let (dir, remove_dir) = choose_dir(opts)?;
    if let Ok(old) = State::load(&dir)
        && old.any_running()
    {
        return Err(TestbedError::AlreadyRunning(dir));
    }
    let state = State {
        dir: dir.clone(),
        version: assets.version.text.clone(),
        assets: Some(assets.dir.clone()),
        aws: opts.aws,
        ..State::default()
    };
    state.save()?;
    let tb = Testbed {
        dir: dir.clone(),
        remove_dir,
        detached: false,
        clusters: Vec::new(),
        has_controller_manager: assets.controller_manager.is_some(),
        version: assets.version.clone(),
        assets_dir: assets.dir.clone(),
        state: Mutex::new(state),
    };
    if with_reaper {
        let rec = spawn_reaper(assets, &dir, remove_dir)?;
        update(&tb.state, |s| s.reaper = Some(rec))?;
    }
    if assets.controller_manager.is_none() {
        tracing::warn!(
            "no kube-controller-manager: namespaces will stay Terminating, no garbage collection"
        );
    }
    Ok(tb)
}

/// Starts every cluster's proxy in parallel, recording each one that started (even when another
/// failed) so that dropping the testbed stops it.
async fn start_proxies(
    assets: &Assets,
    tb: &Testbed,
    prepared: &mut [Prepared],
) -> Result<(), TestbedError> {
    let results = futures::future::join_all(
        prepared
            .iter_mut()
            .map(|p| cluster::start_proxy(&assets.testbed, p)),
    )
    .await;
    let mut failed = None;
    update(&tb.state, |s| {
        for (p, result) in prepared.iter_mut().zip(results) {
            match result {
                Ok(rec) => {
                    p.state.processes.insert("proxy".into(), rec);
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        s.clusters = prepared.iter().map(|p| p.state.clone()).collect();
    })?;
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Starts awsworld.py for `prepared` (it is ready once `aws::wait_ready` says so).
fn start_aws_world(
    dir: &Path,
    tb: &Testbed,
    prepared: &[Prepared],
) -> Result<(aws::AwsPlan, ProcRecord), TestbedError> {
    let plan = aws::prepare(dir)?;
    let pairs: Vec<_> = prepared
        .iter()
        .map(|p| (p.state.clone(), p.admin_token.clone()))
        .collect();
    let rec = aws::start(dir, &plan, &pairs)?;
    update(&tb.state, |s| {
        s.awsworld = Some(aws::state(&plan, Some(rec.clone())))
    })?;
    Ok((plan, rec))
}

fn cluster_info(p: Prepared) -> ClusterInfo {
    ClusterInfo {
        name: p.state.name,
        account: p.state.account,
        server: p.state.server,
        direct_server: p.state.direct_server,
        ca_file: p.state.ca_file,
        ca_pem: p.ca_pem,
        admin_token: p.admin_token,
        arn: p.state.arn,
    }
}

/// Stops every process recorded in `state` (SIGTERM, SIGKILL after a grace period), except
/// the calling process itself (the reaper reads a state that lists it).
pub(crate) fn teardown(state: &State) -> Result<(), TestbedError> {
    let me = std::process::id();
    let all = state.processes();
    let procs: Vec<&ProcRecord> = all
        .iter()
        .map(|(_, p)| *p)
        .filter(|p| p.pid != me)
        .collect();
    let left = stop_all(&procs, GRACE);
    if left.is_empty() {
        Ok(())
    } else {
        Err(TestbedError::Leftover(left))
    }
}

/// `testbed down`: stops everything DIR/state.json lists.
pub fn down(dir: &Path) -> Result<(), TestbedError> {
    let state = State::load(dir)?;
    teardown(&state)
}

/// `testbed status`: per process, whether it runs and its RSS; per cluster, the total.
pub fn status(dir: &Path) -> Result<serde_json::Value, TestbedError> {
    let state = State::load(dir)?;
    let clusters: Vec<_> = state
        .clusters
        .iter()
        .map(|c| {
            let rss = cluster::rss(c);
            let total: u64 = rss.iter().map(|(_, k)| k).sum();
            let procs: serde_json::Map<_, _> = c
                .processes
                .iter()
                .map(|(role, p)| {
                    let kib = procs::rss_kib(p.pid).filter(|_| p.is_running());
                    (
                        role.clone(),
                        json!({"pid": p.pid, "running": p.is_running(), "rss_kib": kib}),
                    )
                })
                .collect();
            json!({"name": c.name, "server": c.server, "processes": procs, "rss_mib": total / 1024})
        })
        .collect();
    let awsworld = state
        .awsworld
        .as_ref()
        .and_then(|a| a.process.as_ref())
        .map(
            |p| json!({"pid": p.pid, "running": p.is_running(), "rss_kib": procs::rss_kib(p.pid)}),
        );
    Ok(
        json!({"dir": state.dir, "version": state.version, "clusters": clusters, "awsworld": awsworld}),
    )
}
