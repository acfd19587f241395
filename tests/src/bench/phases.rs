//! The measurements besides latency: initial-sync throughput against a direct-write ceiling, RSS
//! by sources × followers, and what they and the latency phase share (audit-log counts, waiting
//! for the daemon to go quiet, the idle window, the steady-state table).
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;

use super::stats::{median, summary};
use super::{Args, BenchError, World};
use crate::audit::{Counts, DAEMON_AGENT, Mark};
use crate::daemon::Daemon;
use crate::k8s::{self, CopyCount, WatchTask};
use crate::unique_ns;

/// Counts since the marks: (source cluster, all followers together).
pub(super) fn take(marks: &mut [Mark]) -> Result<(Counts, Counts), BenchError> {
    let mut followers = Counts::default();
    let mut source = Counts::default();
    for (i, m) in marks.iter_mut().enumerate() {
        let c = m.take(DAEMON_AGENT).map_err(BenchError::Audit)?;
        if i == 0 {
            source = c;
        } else {
            followers.add(&c);
        }
    }
    Ok((source, followers))
}

/// Waits until the daemon has made no request for `quiet` (audit logs), at least `min` after now.
pub(super) async fn settle(
    w: &World,
    d: &mut Daemon,
    n: usize,
    min: Duration,
    quiet: Duration,
) -> Result<(), BenchError> {
    let mut marks = w.audit_marks(n);
    let start = Instant::now();
    let mut last_activity = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        d.check_alive()?;
        let (s, f) = take(&mut marks)?;
        if s.total() + f.total() > 0 {
            last_activity = Instant::now();
        }
        if start.elapsed() >= min && last_activity.elapsed() >= quiet {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(600) {
            return Err(BenchError::NeverQuiet);
        }
    }
}

/// The daemon's requests during `secs` of nothing changing: (source, followers, window).
pub(super) async fn idle(
    w: &World,
    d: &mut Daemon,
    n: usize,
    secs: u64,
) -> Result<(Counts, Counts, Duration), BenchError> {
    let mut marks = w.audit_marks(n);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        d.check_alive()?;
    }
    let (s, f) = take(&mut marks)?;
    Ok((s, f, start.elapsed()))
}

pub(super) fn steady_header(args: &Args) -> String {
    format!(
        "### Steady state: requests per hour with nothing changing (resync {})\n\n\
         | sources | followers | requests/hour | writes | what | window |\n|---|---|---|---|---|---|\n",
        args.resync
    )
}

/// One row of the steady-state table: the requests of an idle window, per hour.
pub(super) fn idle_row(
    sources: usize,
    followers: usize,
    source: &Counts,
    others: &Counts,
    window: Duration,
) -> String {
    let mut all = source.clone();
    all.add(others);
    format!(
        "| {sources} | {followers} | {:.0} | {} | {} | {:.0} s |\n",
        all.total() as f64 * 3600.0 / window.as_secs_f64(),
        all.writes(),
        if all.total() == 0 {
            "none".to_string()
        } else {
            all.describe()
        },
        window.as_secs_f64()
    )
}

/// Waits until every follower counter reaches `want`; returns the time since the daemon started.
pub(super) async fn all_copies(
    d: &mut Daemon,
    counts: &[CopyCount],
    want: usize,
    deadline: Duration,
) -> Result<Duration, BenchError> {
    let start = Instant::now();
    loop {
        if counts.iter().all(|c| c.get() >= want) {
            return Ok(d.started().elapsed());
        }
        d.check_alive()?;
        if start.elapsed() > deadline {
            let got: Vec<usize> = counts.iter().map(CopyCount::get).collect();
            return Err(BenchError::CopiesMissing {
                deadline,
                got,
                want,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the daemon's creates of ConfigMaps in `ns` answered 2xx reach `want` in every
/// follower's audit log (`marks`: one per follower, set before the daemon started); returns the time
/// since the daemon started. The initial sync is timed by what the API servers acknowledged, as
/// the ceiling is, and without a watch of the harness's own: a watch of full objects beside the
/// daemon's metadata-only one would cost each API server a second encoding of every new copy that
/// the ceiling does not pay.
async fn all_created(
    d: &mut Daemon,
    marks: &mut [Mark],
    ns: &str,
    want: usize,
    deadline: Duration,
) -> Result<Duration, BenchError> {
    let start = Instant::now();
    let mut got = vec![0usize; marks.len()];
    loop {
        for (m, n) in marks.iter_mut().zip(got.iter_mut()) {
            let events = m.take_events().map_err(BenchError::Audit)?;
            *n += (events.iter())
                .filter(|e| {
                    e.verb == "create"
                        && e.resource.as_deref() == Some("configmaps")
                        && e.namespace == ns
                        && e.user_agent.starts_with(DAEMON_AGENT)
                        && e.code.is_some_and(|c| (200..300).contains(&c))
                })
                .count();
        }
        if got.iter().all(|n| *n >= want) {
            return Ok(d.started().elapsed());
        }
        d.check_alive()?;
        if start.elapsed() > deadline {
            return Err(BenchError::CopiesMissing {
                deadline,
                got,
                want,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(super) fn sources(ns: &str, n: usize, followers: &[String]) -> Vec<ConfigMap> {
    (0..n)
        .map(|i| k8s::load_configmap(ns, &format!("src-{i:05}"), followers, &format!("v{i}")))
        .collect()
}

/// What the daemon writes for `src`: the same object with the origin labels and annotation of a
/// copy (a made-up uid and resourceVersion of the same length as real ones), so a direct create
/// costs each API server what the daemon's create of that copy costs it.
fn shaped_as_copy(mut src: ConfigMap) -> ConfigMap {
    let m = &mut src.metadata;
    let (ns, name) = (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    );
    m.labels = Some(
        [
            (k8s::ORIGIN_CLUSTER, "bench-source"),
            (k8s::ORIGIN_NAMESPACE, ns.as_str()),
            (k8s::ORIGIN_NAME, name.as_str()),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into(),
    );
    let origin = format!(
        r#"{{"kind":"ConfigMap","namespace":"{ns}","name":"{name}","uid":"00000000-0000-4000-8000-000000000000","apiVersion":"v1","resourceVersion":"1234567"}}"#
    );
    m.annotations = Some([(k8s::ORIGIN.to_string(), origin)].into());
    src
}

/// Direct creates of `n` ConfigMaps shaped as the daemon's copies into each of `followers`, in
/// parallel across followers. With `watched`, a metadata-only watch of those copies (the
/// daemon's own watch: cluster-wide, by the origin labels) is open in every follower meanwhile,
/// so the API servers pay what a controller that watches its copies pays.
async fn ceiling(
    w: &World,
    followers: usize,
    n: usize,
    concurrency: usize,
    ns: &str,
    watched: bool,
) -> Result<Duration, BenchError> {
    w.namespace(ns, followers).await?;
    let watches = match watched {
        true => copy_watches(&w.clients[1..=followers], ns).await?,
        false => Vec::new(),
    };
    let start = Instant::now();
    let jobs = w.clients[1..=followers].iter().map(|c| {
        let objs = sources(ns, n, &[])
            .into_iter()
            .map(shaped_as_copy)
            .collect();
        k8s::create_all(c, objs, concurrency)
    });
    futures::future::try_join_all(jobs).await?;
    let took = start.elapsed();
    drop(watches);
    Ok(took)
}

/// One metadata-only watch per client of the copies in `ns` (by the labels the daemon watches
/// its copies by), each consumed by a task that stops when dropped; returns once every watch has
/// finished its list.
async fn copy_watches(clients: &[kube::Client], ns: &str) -> Result<Vec<WatchTask>, BenchError> {
    use futures::StreamExt;
    use kube::runtime::WatchStreamExt;
    use kube::runtime::watcher::{self, watcher};
    let selector = format!(
        "{}=bench-source,{}={ns}",
        k8s::ORIGIN_CLUSTER,
        k8s::ORIGIN_NAMESPACE
    );
    let mut tasks = Vec::new();
    let mut listed = Vec::new();
    for c in clients {
        let api = kube::Api::<kube::core::PartialObjectMeta<ConfigMap>>::all(c.clone());
        let cfg = watcher::Config::default().labels(&selector);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        listed.push(rx);
        tasks.push(WatchTask::spawn(async move {
            let mut tx = Some(tx);
            let mut events = std::pin::pin!(watcher(api, cfg).default_backoff());
            while let Some(e) = events.next().await {
                if matches!(e, Ok(watcher::Event::InitDone))
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(());
                }
            }
        }));
    }
    for rx in listed {
        tokio::time::timeout(Duration::from_secs(60), rx)
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(BenchError::WatchesEnded)?;
    }
    Ok(tasks)
}

/// The seconds of one throughput run: the daemon's initial sync, then both ceilings; with
/// `steady`, the steady-state row of the converged daemon too.
struct ThroughputRun {
    daemon: f64,
    /// The daemon's follower requests per copy made, and the Events it wrote on the source.
    per_copy: f64,
    events: f64,
    ceiling_1: f64,
    ceiling_c: f64,
    /// `ceiling_c` with a metadata-only watch of the copies open in every follower.
    ceiling_w: f64,
    idle_row: Option<String>,
}

async fn throughput_run(
    w: &World,
    args: &Args,
    run: usize,
    steady: bool,
) -> Result<ThroughputRun, BenchError> {
    let f = args.throughput_followers;
    let ns = unique_ns("thr");
    w.namespace(&ns, f).await?;
    let followers = w.followers(f);
    k8s::create_all(&w.clients[0], sources(&ns, args.sources, &followers), 16).await?;
    let mut marks = w.audit_marks(f);
    let mut created = w.audit_marks(f).split_off(1);
    let mut d = w.daemon(f, &ns, &format!("thr{run}"))?;
    let deadline = Duration::from_secs(1800);
    let took = all_created(&mut d, &mut created, &ns, args.sources, deadline).await?;
    eprintln!(
        "bench: throughput run {run}: {} copies in {took:?}",
        args.sources * f
    );
    settle(w, &mut d, f, Duration::from_secs(2), Duration::from_secs(2)).await?;
    let (source, followers) = take(&mut marks)?;
    let of = |c: &Counts, verbs: &[&str], resource: &str| -> u64 {
        (c.0.iter())
            .filter(|((v, r), _)| r == resource && verbs.contains(&v.as_str()))
            .map(|(_, n)| n)
            .sum()
    };
    let object_requests = of(
        &followers,
        &["create", "get", "patch", "update"],
        "configmaps",
    );
    let per_copy = object_requests as f64 / (args.sources * f) as f64;
    let events = of(&source, &["create", "patch"], "events") as f64;
    eprintln!(
        "bench: throughput run {run}: follower requests {} ({per_copy:.2} per copy); source {}",
        followers.describe(),
        source.describe()
    );
    let mut idle_row = None;
    if steady {
        settle(w, &mut d, f, Duration::from_secs(2), Duration::from_secs(3)).await?;
        let (s, fl, window) = idle(w, &mut d, f, args.idle_secs).await?;
        idle_row = Some(self::idle_row(args.sources, f, &s, &fl, window));
    }
    d.stop(Duration::from_secs(5));
    let (ns1, ns_c, ns_w) = (unique_ns("ceil"), unique_ns("ceil"), unique_ns("ceil"));
    let c1 = ceiling(w, f, args.sources, 1, &ns1, false).await?;
    let cc = ceiling(w, f, args.sources, args.ceiling_concurrency, &ns_c, false).await?;
    let cw = ceiling(w, f, args.sources, args.ceiling_concurrency, &ns_w, true).await?;
    w.remove_namespaces(&[ns, ns1, ns_c, ns_w]).await?;
    eprintln!(
        "bench: ceiling run {run}: {c1:?} sequential, {cc:?} with {} in flight, {cw:?} so and watched",
        args.ceiling_concurrency
    );
    Ok(ThroughputRun {
        daemon: took.as_secs_f64(),
        per_copy,
        events,
        ceiling_1: c1.as_secs_f64(),
        ceiling_c: cc.as_secs_f64(),
        ceiling_w: cw.as_secs_f64(),
        idle_row,
    })
}

/// One figure of every run.
type Column = fn(&ThroughputRun) -> f64;

/// (2) initial sync of `sources` × F followers from a cold start, vs direct writes.
pub async fn throughput(w: &World, args: &Args, steady: bool) -> Result<String, BenchError> {
    let f = args.throughput_followers;
    let total = args.sources * f;
    let mut runs = Vec::new();
    for run in 0..args.runs {
        runs.push(throughput_run(w, args, run, steady && run == 0).await?);
    }
    let col = |g: Column| runs.iter().map(g).collect::<Vec<_>>();
    let (daemon_s, per_copy, events) = (col(|r| r.daemon), col(|r| r.per_copy), col(|r| r.events));
    let idle_row = (runs.iter().find_map(|r| r.idle_row.clone())).unwrap_or_default();
    let rate = |s: &[f64]| s.iter().map(|t| total as f64 / t).collect::<Vec<_>>();
    let dm = median(&daemon_s).unwrap_or(f64::NAN);
    let mut out = format!(
        "### Initial sync: {} sources × {f} followers = {total} copies, cold start\n\n\
         | what | seconds (median, min–max) | objects/s (median) | the daemon's rate as a fraction of this: of the medians (paired per run) |\n|---|---|---|---|\n",
        args.sources
    );
    writeln!(
        out,
        "| sync-daemon (process start → last create acknowledged) | {} | {:.0} | — |",
        summary(&daemon_s, 2),
        median(&rate(&daemon_s)).unwrap_or(f64::NAN)
    )?;
    let c = args.ceiling_concurrency;
    let ceilings: [(String, Column); 3] = [
        (
            "direct creates of the same copies, 1 in flight per follower".into(),
            |r| r.ceiling_1,
        ),
        (
            format!("direct creates of the same copies, {c} in flight per follower"),
            |r| r.ceiling_c,
        ),
        (
            format!(
                "the same, {c} in flight, with the daemon's metadata-only watch of the copies open"
            ),
            |r| r.ceiling_w,
        ),
    ];
    for (what, g) in ceilings {
        let secs = col(g);
        let paired: Vec<String> = (runs.iter())
            .map(|r| format!("{:.2}", g(r) / r.daemon))
            .collect();
        writeln!(
            out,
            "| {what} | {} | {:.0} | {:.2} ({}) |",
            summary(&secs, 2),
            median(&rate(&secs)).unwrap_or(f64::NAN),
            median(&secs).unwrap_or(f64::NAN) / dm,
            paired.join(", ")
        )?;
    }
    writeln!(
        out,
        "\nDaemon's ConfigMap requests per copy made (create/get/patch/update): {}; Event writes on the \
         source during the initial sync (create + patch): {}.",
        summary(&per_copy, 2),
        summary(&events, 0)
    )?;
    if steady && !idle_row.is_empty() {
        out += "\n";
        out += &steady_header(args);
        out += &idle_row;
    }
    out += "\n";
    Ok(out)
}
