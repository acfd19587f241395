//! (4) The daemon's RSS after convergence by sources × followers: right after making the copies
//! (a cold start) and after restarts over existing copies, read 3 s after the daemon went quiet
//! and again `--mem-late-secs` later (an allocator that returns freed pages on a timer shows
//! there). With `--mem-cold`, every run makes its copies afresh in a namespace of its own.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::phases::{all_copies, settle, sources};
use super::stats::summary;
use super::{Args, BenchError, World};
use crate::k8s::{self, CopyCount};
use crate::unique_ns;

/// MiB readings of the runs of one configuration and kind (cold or restart).
#[derive(Default)]
struct Readings {
    rss: Vec<f64>,
    late: Vec<f64>,
    peak: Vec<f64>,
}

/// A namespace with `s` sources for `f` followers, and a copy counter per follower.
async fn prepare(w: &World, s: usize, f: usize) -> Result<(String, Vec<CopyCount>), BenchError> {
    let ns = unique_ns(&format!("mem{s}x{f}"));
    w.namespace(&ns, f).await?;
    k8s::create_all(&w.clients[0], sources(&ns, s, &w.followers(f)), 16).await?;
    let counts = w.clients[1..=f]
        .iter()
        .map(|c| CopyCount::start(c.clone(), &ns, &ns))
        .collect();
    Ok((ns, counts))
}

/// One daemon start over `ns`: waits for every copy, then reads its memory.
async fn measure(
    w: &World,
    args: &Args,
    (s, f): (usize, usize),
    ns: &str,
    counts: &[CopyCount],
    tag: &str,
    into: &mut Readings,
) -> Result<(), BenchError> {
    let mut d = w.daemon(f, ns, tag)?;
    all_copies(&mut d, counts, s, Duration::from_secs(3600)).await?;
    settle(w, &mut d, f, Duration::from_secs(5), Duration::from_secs(3)).await?;
    let (rss, hwm) = d.memory_kib().ok_or(BenchError::NoMemoryFigures)?;
    eprintln!("bench: memory {tag}: quiet, pid {}, RSS {rss} KiB", d.pid());
    tokio::time::sleep(Duration::from_secs(args.mem_late_secs)).await;
    let (late, _) = d.memory_kib().ok_or(BenchError::NoMemoryFigures)?;
    eprintln!(
        "bench: memory {s} sources × {f} followers {tag}: RSS {rss} KiB, {late} KiB {} s later, peak {hwm} KiB",
        args.mem_late_secs
    );
    into.rss.push(rss as f64 / 1024.0);
    into.late.push(late as f64 / 1024.0);
    into.peak.push(hwm as f64 / 1024.0);
    d.stop(Duration::from_secs(5));
    Ok(())
}

pub async fn memory(w: &World, args: &Args) -> Result<String, BenchError> {
    // (sources, followers, cold?) -> readings
    let mut rows: BTreeMap<(usize, usize, bool), Readings> = BTreeMap::new();
    let max_f = args.mem_followers.iter().copied().max().unwrap_or(1);
    let mut configs = vec![(0usize, max_f)];
    for &s in &args.mem_sources {
        for &f in &args.mem_followers {
            configs.push((s, f));
        }
    }
    for (s, f) in configs {
        let (mut ns, mut counts) = prepare(w, s, f).await?;
        for run in 0..args.runs {
            let cold = run == 0 || (args.mem_cold && s > 0);
            if run > 0 && cold {
                (ns, counts) = prepare(w, s, f).await?;
            }
            let tag = format!("mem{s}x{f}-{run}");
            let into = rows.entry((s, f, cold)).or_default();
            measure(w, args, (s, f), &ns, &counts, &tag, into).await?;
        }
        if args.mem_cold && s > 0 {
            for run in 0..args.runs.min(2) {
                let tag = format!("mem{s}x{f}-restart{run}");
                let into = rows.entry((s, f, false)).or_default();
                measure(w, args, (s, f), &ns, &counts, &tag, into).await?;
            }
        }
    }
    table(args, &rows)
}

fn table(
    args: &Args,
    rows: &BTreeMap<(usize, usize, bool), Readings>,
) -> Result<String, BenchError> {
    let mut out = format!(
        "### Memory: sync-daemon RSS after convergence (1 KiB ConfigMaps)\n\n\
         | sources | followers | copies | start | runs | RSS MiB 3 s after quiet (median, min–max) | RSS MiB {} s later | peak RSS (VmHWM) MiB |\n|---|---|---|---|---|---|---|---|\n",
        args.mem_late_secs + 3
    );
    for ((s, f, cold), r) in rows {
        writeln!(
            out,
            "| {s} | {f} | {} | {} | {} | {} | {} | {} |",
            s * f,
            if *cold {
                "makes the copies"
            } else {
                "restart over them"
            },
            r.rss.len(),
            summary(&r.rss, 1),
            summary(&r.late, 1),
            summary(&r.peak, 1)
        )?;
    }
    out += "\n";
    Ok(out)
}
