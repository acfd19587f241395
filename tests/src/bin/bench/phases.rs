//! The measurements: propagation latency + cost per change + steady state, initial-sync
//! throughput against a direct-write ceiling, and RSS by sources × followers.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use tokio::sync::mpsc;

use crate::audit::{Counts, Mark};
use crate::daemon::{AGENT, Daemon};
use crate::load::{self, CopyCount};
use crate::stats::{median, percentile, summary};
use crate::{Args, World};
use e2e::unique_ns;

/// Waits until every follower in `want` has shown `value`; returns the arrival instants.
async fn await_value(
    rx: &mut mpsc::UnboundedReceiver<load::Seen>,
    n: usize,
    value: &str,
    deadline: Duration,
) -> Result<Vec<Instant>> {
    let mut arrived: Vec<Option<Instant>> = vec![None; n];
    let end = tokio::time::Instant::now() + deadline;
    while arrived.iter().any(Option::is_none) {
        match tokio::time::timeout_at(end, rx.recv()).await {
            Ok(Some((idx, v, at))) if v == value && idx < n => {
                arrived[idx].get_or_insert(at);
            }
            Ok(Some(_)) => {}
            Ok(None) => bail!("the follower watches ended"),
            Err(_) => {
                let missing: Vec<usize> = (0..n).filter(|i| arrived[*i].is_none()).collect();
                bail!("value {value:?} did not reach followers {missing:?} within {deadline:?}");
            }
        }
    }
    Ok(arrived.into_iter().flatten().collect())
}

async fn set_value(api: &Api<ConfigMap>, name: &str, value: &str) -> Result<Instant> {
    let patch = serde_json::json!({ "data": { "v": value } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("update source {name}"))?;
    Ok(Instant::now())
}

/// Counts since the marks: (source cluster, all followers together).
fn take(marks: &mut [Mark]) -> Result<(Counts, Counts)> {
    let mut followers = Counts::default();
    let mut source = Counts::default();
    for (i, m) in marks.iter_mut().enumerate() {
        let c = m.take(AGENT)?;
        if i == 0 {
            source = c;
        } else {
            followers.add(&c);
        }
    }
    Ok((source, followers))
}

/// Waits until the daemon has made no request for `quiet` (audit logs), at least `min` after now.
async fn settle(w: &World, d: &mut Daemon, n: usize, min: Duration, quiet: Duration) -> Result<()> {
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
            bail!("the daemon never went quiet");
        }
    }
}

fn per_hour(c: &Counts, window: Duration) -> f64 {
    c.total() as f64 * 3600.0 / window.as_secs_f64()
}

async fn idle(
    w: &World,
    d: &mut Daemon,
    n: usize,
    secs: u64,
) -> Result<(Counts, Counts, Duration)> {
    let mut marks = w.audit_marks(n);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        d.check_alive()?;
    }
    let (s, f) = take(&mut marks)?;
    Ok((s, f, start.elapsed()))
}

/// (1) latency, (6) cost per change, (3) steady state for one source × N followers.
pub async fn latency(w: &World, args: &Args, measure: bool, steady: bool) -> Result<String> {
    let mut table = String::from(
        "### Propagation latency: one source update → N followers\n\n\
         | N | p50 ms (median of runs, min–max) | p99 ms (median of runs, min–max) | samples |\n|---|---|---|---|\n",
    );
    let mut cost = String::from(
        "### Cost per change (daemon requests, audit logs)\n\n\
         | N | API requests per update per follower | per update on the source | unannotated change: daemon API requests | all requests seen (incl. /version probes) |\n|---|---|---|---|---|\n",
    );
    let mut idle_rows = String::new();
    let mut ceiling_rows = String::new();
    for &n in &args.latency_followers {
        let ns = unique_ns(&format!("lat{n}"));
        w.namespace(&ns, n).await?;
        let followers = w.followers(n);
        let src: Api<ConfigMap> = Api::namespaced(w.clients[0].clone(), &ns);
        load::create_all(
            &w.clients[0],
            vec![load::config_map(&ns, "lat", &followers, "init")],
            1,
        )
        .await?;
        load::create_all(
            &w.clients[0],
            vec![load::config_map(&ns, "plain", &[], "init")],
            1,
        )
        .await?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _watches: Vec<load::WatchTask> = (w.clients[1..=n].iter().enumerate())
            .map(|(i, c)| load::watch_value(c.clone(), &ns, "lat", i, tx.clone()))
            .collect();
        let mut d = w.daemon(n, &ns, &format!("lat{n}"))?;
        await_value(&mut rx, n, "init", Duration::from_secs(120)).await?;
        settle(w, &mut d, n, Duration::from_secs(2), Duration::from_secs(2)).await?;
        eprintln!("bench: latency N={n}: initial copy in every follower");
        if measure {
            let mut p50s = Vec::new();
            let mut p99s = Vec::new();
            let mut all = 0;
            let mut marks = w.audit_marks(n);
            for run in 0..args.runs {
                let mut samples = Vec::new();
                for u in 0..args.updates {
                    let value = format!("r{run}u{u}");
                    let sent = set_value(&src, "lat", &value).await?;
                    let arrived = await_value(&mut rx, n, &value, Duration::from_secs(30)).await?;
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
            settle(w, &mut d, n, Duration::from_secs(1), Duration::from_secs(2)).await?;
            let (s, f) = take(&mut marks)?;
            let updates = (args.runs * args.updates) as f64;
            writeln!(
                table,
                "| {n} | {} | {} | {all} |",
                summary(&p50s, 1),
                summary(&p99s, 1)
            )?;
            // An unannotated ConfigMap changing in the source namespace: kubed LISTs for it.
            let mut marks = w.audit_marks(n);
            for i in 0..20 {
                set_value(&src, "plain", &format!("p{i}")).await?;
            }
            settle(w, &mut d, n, Duration::from_secs(2), Duration::from_secs(2)).await?;
            let (ps, pf) = take(&mut marks)?;
            writeln!(
                cost,
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
        }
        if steady {
            let (s, f, window) = idle(w, &mut d, n, args.idle_secs).await?;
            let mut all = s.clone();
            all.add(&f);
            writeln!(
                idle_rows,
                "| 1 | {n} | {:.0} | {} | {} | {:.0} s |",
                per_hour(&all, window),
                all.writes(),
                if all.total() == 0 {
                    "none".to_string()
                } else {
                    all.describe()
                },
                window.as_secs_f64()
            )?;
        }
        d.stop(Duration::from_secs(5));
        if measure {
            // The ceiling: the same change written by the harness itself straight into the N
            // copies at once (server-side apply, as the daemon writes), daemon stopped.
            let apis: Vec<Api<ConfigMap>> = w.clients[1..=n]
                .iter()
                .map(|c| Api::namespaced(c.clone(), &ns))
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
                        r.context("direct write of the copy")?;
                    }
                    let arrived = await_value(&mut rx, n, &value, Duration::from_secs(30)).await?;
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
            writeln!(
                ceiling_rows,
                "| {n} | {} | {} |",
                summary(&p50s, 1),
                summary(&p99s, 1)
            )?;
        }
    }
    let mut out = String::new();
    if measure {
        out += &format!(
            "{table}\n### Latency ceiling: the harness writes the N copies itself, all at once (daemon stopped)\n\n\
             | N | p50 ms (median of runs, min–max) | p99 ms (median of runs, min–max) |\n|---|---|---|\n\
             {ceiling_rows}\n{cost}\n"
        );
    }
    if steady {
        out += &steady_header(args);
        out += &idle_rows;
        out += "\n";
    }
    Ok(out)
}

fn steady_header(args: &Args) -> String {
    format!(
        "### Steady state: requests per hour with nothing changing (resync {})\n\n\
         | sources | followers | requests/hour | writes | what | window |\n|---|---|---|---|---|---|\n",
        args.resync
    )
}

/// Waits until every follower counter reaches `want`.
async fn all_copies(
    d: &mut Daemon,
    counts: &[CopyCount],
    want: usize,
    deadline: Duration,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        if counts.iter().all(|c| c.get() >= want) {
            return Ok(d.started.elapsed());
        }
        d.check_alive()?;
        if start.elapsed() > deadline {
            let got: Vec<usize> = counts.iter().map(CopyCount::get).collect();
            bail!("copies after {deadline:?}: {got:?} (want {want} each)");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sources(ns: &str, n: usize, followers: &[String]) -> Vec<ConfigMap> {
    (0..n)
        .map(|i| load::config_map(ns, &format!("src-{i:05}"), followers, &format!("v{i}")))
        .collect()
}

/// Direct creates of `n` plain ConfigMaps into each of `followers`, in parallel across followers.
async fn ceiling(w: &World, followers: usize, n: usize, concurrency: usize) -> Result<Duration> {
    let ns = unique_ns("ceil");
    w.namespace(&ns, followers).await?;
    let start = Instant::now();
    let jobs = w.clients[1..=followers].iter().map(|c| {
        let objs = sources(&ns, n, &[]);
        load::create_all(c, objs, concurrency)
    });
    futures::future::try_join_all(jobs).await?;
    Ok(start.elapsed())
}

/// (2) initial sync of `sources` × F followers from a cold start, vs direct writes.
pub async fn throughput(w: &World, args: &Args, steady: bool) -> Result<String> {
    let f = args.throughput_followers;
    let total = args.sources * f;
    let (mut daemon_s, mut ceil1_s, mut ceil_c_s) = (Vec::new(), Vec::new(), Vec::new());
    let mut idle_row = String::new();
    for run in 0..args.runs {
        let ns = unique_ns("thr");
        w.namespace(&ns, f).await?;
        let followers = w.followers(f);
        load::create_all(&w.clients[0], sources(&ns, args.sources, &followers), 16).await?;
        let counts: Vec<CopyCount> = w.clients[1..=f]
            .iter()
            .map(|c| CopyCount::start(c.clone(), &ns, &ns))
            .collect();
        let mut d = w.daemon(f, &ns, &format!("thr{run}"))?;
        let took = all_copies(&mut d, &counts, args.sources, Duration::from_secs(1800)).await?;
        daemon_s.push(took.as_secs_f64());
        eprintln!("bench: throughput run {run}: {total} copies in {took:?}");
        if steady && run == 0 {
            settle(w, &mut d, f, Duration::from_secs(2), Duration::from_secs(3)).await?;
            let (s, fl, window) = idle(w, &mut d, f, args.idle_secs).await?;
            let mut all = s.clone();
            all.add(&fl);
            idle_row = format!(
                "| {} | {f} | {:.0} | {} | {} | {:.0} s |\n",
                args.sources,
                per_hour(&all, window),
                all.writes(),
                if all.total() == 0 {
                    "none".to_string()
                } else {
                    all.describe()
                },
                window.as_secs_f64()
            );
        }
        d.stop(Duration::from_secs(5));
        let c1 = ceiling(w, f, args.sources, 1).await?;
        let cc = ceiling(w, f, args.sources, args.ceiling_concurrency).await?;
        eprintln!(
            "bench: ceiling run {run}: {c1:?} sequential, {cc:?} with {} in flight",
            args.ceiling_concurrency
        );
        ceil1_s.push(c1.as_secs_f64());
        ceil_c_s.push(cc.as_secs_f64());
    }
    let rate = |s: &[f64]| s.iter().map(|t| total as f64 / t).collect::<Vec<_>>();
    let (dm, c1m, ccm) = (
        median(&daemon_s).unwrap_or(f64::NAN),
        median(&ceil1_s).unwrap_or(f64::NAN),
        median(&ceil_c_s).unwrap_or(f64::NAN),
    );
    let mut out = format!(
        "### Initial sync: {} sources × {f} followers = {total} copies, cold start\n\n\
         | what | seconds (median, min–max) | objects/s (median) | ratio daemon/ceiling |\n|---|---|---|---|\n",
        args.sources
    );
    writeln!(
        out,
        "| sync-daemon (process start → last copy seen) | {} | {:.0} | — |",
        summary(&daemon_s, 2),
        median(&rate(&daemon_s)).unwrap_or(f64::NAN)
    )?;
    writeln!(
        out,
        "| direct creates, 1 in flight per follower | {} | {:.0} | {:.2} |",
        summary(&ceil1_s, 2),
        median(&rate(&ceil1_s)).unwrap_or(f64::NAN),
        c1m / dm
    )?;
    writeln!(
        out,
        "| direct creates, {} in flight per follower | {} | {:.0} | {:.2} |",
        args.ceiling_concurrency,
        summary(&ceil_c_s, 2),
        median(&rate(&ceil_c_s)).unwrap_or(f64::NAN),
        ccm / dm
    )?;
    if steady && !idle_row.is_empty() {
        out += "\n";
        out += &steady_header(args);
        out += &idle_row;
    }
    out += "\n";
    Ok(out)
}

/// (4) RSS after convergence by sources × followers, and an idle daemon with no sources.
pub async fn memory(w: &World, args: &Args) -> Result<String> {
    let mut rows: BTreeMap<(usize, usize), (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let max_f = args.mem_followers.iter().copied().max().unwrap_or(1);
    let mut configs = vec![(0usize, max_f)];
    for &s in &args.mem_sources {
        for &f in &args.mem_followers {
            configs.push((s, f));
        }
    }
    for (s, f) in configs {
        let ns = unique_ns(&format!("mem{s}x{f}"));
        w.namespace(&ns, f).await?;
        let followers = w.followers(f);
        load::create_all(&w.clients[0], sources(&ns, s, &followers), 16).await?;
        let counts: Vec<CopyCount> = w.clients[1..=f]
            .iter()
            .map(|c| CopyCount::start(c.clone(), &ns, &ns))
            .collect();
        for run in 0..args.runs {
            let mut d = w.daemon(f, &ns, &format!("mem{s}x{f}-{run}"))?;
            all_copies(&mut d, &counts, s, Duration::from_secs(3600)).await?;
            settle(w, &mut d, f, Duration::from_secs(5), Duration::from_secs(3)).await?;
            let (rss, hwm) = d.memory_kib().context("read the daemon's /proc status")?;
            eprintln!(
                "bench: memory {s} sources × {f} followers run {run}: RSS {rss} KiB, peak {hwm} KiB"
            );
            let e = rows.entry((s, f)).or_default();
            e.0.push(rss as f64 / 1024.0);
            e.1.push(hwm as f64 / 1024.0);
            d.stop(Duration::from_secs(5));
        }
    }
    let mut out = String::from(
        "### Memory: sync-daemon RSS after convergence (1 KiB ConfigMaps)\n\n\
         | sources | followers | copies | RSS MiB (median, min–max) | peak RSS (VmHWM) MiB |\n|---|---|---|---|---|\n",
    );
    for ((s, f), (rss, hwm)) in &rows {
        writeln!(
            out,
            "| {s} | {f} | {} | {} | {} |",
            s * f,
            summary(rss, 1),
            summary(hwm, 1)
        )?;
    }
    out += "\n";
    Ok(out)
}
