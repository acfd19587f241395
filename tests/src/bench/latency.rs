//! Propagation latency of one source update to N followers, the daemon's API requests per change
//! (and for an unannotated change), the steady state with nothing changing, and the latency
//! ceiling: the same change written by the harness straight into the N copies.
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use tokio::sync::mpsc;

use super::phases::{idle, idle_row, settle, steady_header, take};
use super::stats::{percentile, summary};
use super::{Args, BenchError, World};
use crate::daemon::Daemon;
use crate::k8s::{self, Seen, WatchTask};
use crate::unique_ns;

/// The report's tables, a row per follower count.
#[derive(Default)]
struct Tables {
    latency: String,
    cost: String,
    idle: String,
    ceiling: String,
}

/// One follower count's world: the source Api, the follower watches reporting every value of
/// the copies, and the daemon.
struct Run {
    ns: String,
    src: Api<ConfigMap>,
    rx: mpsc::UnboundedReceiver<Seen>,
    _watches: Vec<WatchTask>,
    daemon: Daemon,
}

/// Waits until every follower in `want` has shown `value`; returns the arrival instants.
async fn await_value(
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    n: usize,
    value: &str,
    deadline: Duration,
) -> Result<Vec<Instant>, BenchError> {
    let mut arrived: Vec<Option<Instant>> = vec![None; n];
    let end = tokio::time::Instant::now() + deadline;
    while arrived.iter().any(Option::is_none) {
        match tokio::time::timeout_at(end, rx.recv()).await {
            Ok(Some((idx, v, at))) if v == value && idx < n => {
                arrived[idx].get_or_insert(at);
            }
            Ok(Some(_)) => {}
            Ok(None) => return Err(BenchError::WatchesEnded),
            Err(_) => {
                return Err(BenchError::NotArrived {
                    value: value.to_string(),
                    missing: (0..n).filter(|i| arrived[*i].is_none()).collect(),
                    deadline,
                });
            }
        }
    }
    Ok(arrived.into_iter().flatten().collect())
}

async fn set_value(api: &Api<ConfigMap>, name: &str, value: &str) -> Result<Instant, BenchError> {
    let patch = serde_json::json!({ "data": { "v": value } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| BenchError::Kube {
            action: format!("update source {name}"),
            source,
        })?;
    Ok(Instant::now())
}

/// A source `lat` to the first `n` followers and an unannotated `plain` beside it, watches on
/// the followers' copies, and the daemon, once the first copy is everywhere and it is quiet.
async fn start(w: &World, n: usize) -> Result<Run, BenchError> {
    let ns = unique_ns(&format!("lat{n}"));
    w.namespace(&ns, n).await?;
    let followers = w.followers(n);
    let src: Api<ConfigMap> = Api::namespaced(w.clients[0].clone(), &ns);
    let lat = k8s::load_configmap(&ns, "lat", &followers, "init");
    k8s::create_all(&w.clients[0], vec![lat], 1).await?;
    let plain = k8s::load_configmap(&ns, "plain", &[], "init");
    k8s::create_all(&w.clients[0], vec![plain], 1).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watches: Vec<WatchTask> = (w.clients[1..=n].iter().enumerate())
        .map(|(i, c)| k8s::watch_value(c.clone(), &ns, "lat", i, tx.clone()))
        .collect();
    let mut daemon = w.daemon(n, &ns, &format!("lat{n}"))?;
    await_value(&mut rx, n, "init", Duration::from_secs(120)).await?;
    settle(
        w,
        &mut daemon,
        n,
        Duration::from_secs(2),
        Duration::from_secs(2),
    )
    .await?;
    eprintln!("bench: latency N={n}: initial copy in every follower");
    Ok(Run {
        ns,
        src,
        rx,
        _watches: watches,
        daemon,
    })
}

/// Milliseconds from each of `args.updates` source changes to its arrival in the last follower;
/// the runs' p50s and p99s and the sample count.
async fn daemon_runs(
    r: &mut Run,
    args: &Args,
    n: usize,
) -> Result<(Vec<f64>, Vec<f64>, usize), BenchError> {
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    let mut all = 0;
    for run in 0..args.runs {
        let mut samples = Vec::new();
        for u in 0..args.updates {
            let value = format!("r{run}u{u}");
            let sent = set_value(&r.src, "lat", &value).await?;
            let arrived = await_value(&mut r.rx, n, &value, Duration::from_secs(30)).await?;
            let last = arrived.iter().max().copied().unwrap_or(sent);
            let ms = if last >= sent {
                (last - sent).as_secs_f64() * 1000.0
            } else {
                -((sent - last).as_secs_f64() * 1000.0)
            };
            samples.push(ms);
            // Pacing: one change at a time, so each figure is one propagation.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        all += samples.len();
        p50s.push(percentile(&samples, 50.0).unwrap_or(f64::NAN));
        p99s.push(percentile(&samples, 99.0).unwrap_or(f64::NAN));
        eprintln!(
            "bench: latency N={n} run {run}: p50 {:.1} ms p99 {:.1} ms",
            p50s[run], p99s[run]
        );
    }
    Ok((p50s, p99s, all))
}

/// The latency row and the cost row for `n` followers.
async fn measure(
    w: &World,
    r: &mut Run,
    args: &Args,
    n: usize,
    t: &mut Tables,
) -> Result<(), BenchError> {
    let mut marks = w.audit_marks(n);
    let (p50s, p99s, all) = daemon_runs(r, args, n).await?;
    settle(
        w,
        &mut r.daemon,
        n,
        Duration::from_secs(1),
        Duration::from_secs(2),
    )
    .await?;
    let (s, f) = take(&mut marks)?;
    let updates = (args.runs * args.updates) as f64;
    writeln!(
        t.latency,
        "| {n} | {} | {} | {all} |",
        summary(&p50s, 1),
        summary(&p99s, 1)
    )?;
    // An unannotated ConfigMap changing in the source namespace: kubed LISTs for it.
    let mut marks = w.audit_marks(n);
    for i in 0..20 {
        set_value(&r.src, "plain", &format!("p{i}")).await?;
    }
    settle(
        w,
        &mut r.daemon,
        n,
        Duration::from_secs(2),
        Duration::from_secs(2),
    )
    .await?;
    let (ps, pf) = take(&mut marks)?;
    writeln!(
        t.cost,
        "| {n} | {:.2} | {:.2} | {} for 20 changes | followers: {}; source: {} |",
        f.resource_requests() as f64 / (updates * n as f64),
        s.resource_requests() as f64 / updates,
        ps.resource_requests() + pf.resource_requests(),
        f.describe(),
        if s.total() == 0 {
            "none".to_string()
        } else {
            s.describe()
        },
    )?;
    Ok(())
}

/// The ceiling: the same change written by the harness itself straight into the N copies at
/// once (server-side apply, as the daemon writes), daemon stopped.
async fn ceiling(
    w: &World,
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    ns: &str,
    args: &Args,
    n: usize,
) -> Result<String, BenchError> {
    let apis: Vec<Api<ConfigMap>> = w.clients[1..=n]
        .iter()
        .map(|c| Api::namespaced(c.clone(), ns))
        .collect();
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    for run in 0..args.runs {
        let mut samples = Vec::new();
        for u in 0..args.updates {
            let value = format!("direct-r{run}u{u}");
            let body = serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "name": "lat" }, "data": { "v": value }
            });
            let pp = PatchParams::apply("kubed-cross-sync").force();
            let sent = Instant::now();
            let patch = Patch::Apply(&body);
            let writes = apis.iter().map(|a| a.patch("lat", &pp, &patch));
            for r in futures::future::join_all(writes).await {
                r.map_err(|source| BenchError::Kube {
                    action: "direct write of the copy".to_string(),
                    source,
                })?;
            }
            let arrived = await_value(rx, n, &value, Duration::from_secs(30)).await?;
            let last = arrived.iter().max().copied().unwrap_or(sent);
            samples.push(last.saturating_duration_since(sent).as_secs_f64() * 1000.0);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        p50s.push(percentile(&samples, 50.0).unwrap_or(f64::NAN));
        p99s.push(percentile(&samples, 99.0).unwrap_or(f64::NAN));
        eprintln!(
            "bench: direct-write ceiling N={n} run {run}: p50 {:.1} ms p99 {:.1} ms",
            p50s[run], p99s[run]
        );
    }
    Ok(format!(
        "| {n} | {} | {} |\n",
        summary(&p50s, 1),
        summary(&p99s, 1)
    ))
}

/// (1) latency, (6) cost per change, (3) steady state for one source × N followers.
pub async fn latency(
    w: &World,
    args: &Args,
    measuring: bool,
    steady: bool,
) -> Result<String, BenchError> {
    let mut t = Tables {
        latency: String::from(
            "### Propagation latency: one source update → N followers\n\n\
             | N | p50 ms (median of runs, min–max) | p99 ms (median of runs, min–max) | samples |\n|---|---|---|---|\n",
        ),
        cost: String::from(
            "### Cost per change (daemon requests, audit logs)\n\n\
             | N | API requests per update per follower | per update on the source | unannotated change: daemon API requests | all requests seen (incl. /version probes) |\n|---|---|---|---|---|\n",
        ),
        ..Tables::default()
    };
    for &n in &args.latency_followers {
        let mut r = start(w, n).await?;
        if measuring {
            measure(w, &mut r, args, n, &mut t).await?;
        }
        if steady {
            let (s, f, window) = idle(w, &mut r.daemon, n, args.idle_secs).await?;
            t.idle += &idle_row(1, n, &s, &f, window);
        }
        let Run {
            ns, mut rx, daemon, ..
        } = r;
        daemon.stop(Duration::from_secs(5));
        if measuring {
            t.ceiling += &ceiling(w, &mut rx, &ns, args, n).await?;
        }
    }
    let mut out = String::new();
    if measuring {
        out += &format!(
            "{}\n### Latency ceiling: the harness writes the N copies itself, all at once (daemon stopped)\n\n\
             | N | p50 ms (median of runs, min–max) | p99 ms (median of runs, min–max) |\n|---|---|---|\n\
             {}\n{}\n",
            t.latency, t.ceiling, t.cost
        );
    }
    if steady {
        out += &steady_header(args);
        out += &t.idle;
        out += "\n";
    }
    Ok(out)
}
