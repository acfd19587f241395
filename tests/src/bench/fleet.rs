//! The fleet bench (issue 14 item 9): the daemon with N follower contexts, every one of them (and
//! the source) authenticated by the exec plugin `kubeconfig-gen token` through STS (moto behind a
//! counting proxy) and the EKS-style webhook. Per N: first-sync time; RSS, threads, established
//! TCP connections, exec-plugin processes, token runs and STS calls, and the daemon's requests in
//! an idle window; then one 1 MiB Secret fanned out to every context, with the peak RSS of that
//! fan-out (VmHWM reset just before it). Medians over runs; marginal cost per follower between N.
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use super::fleet_setup::{Ctx, alias_ns, clusters_of, contexts, grant, write_kubeconfig};
use super::phases::{all_copies, idle, settle};
use super::procstat::{Sampler, peak_kib, reset_peak};
use super::stats::{median, summary};
use super::sts::StsProxy;
use super::{Args, BenchError, World};
use crate::daemon::Daemon;
use crate::k8s::{self, CopyCount, SYNC_CONTEXTS};
use crate::{bins, unique_ns};

/// The exec plugin's command name, as /proc shows it.
const PLUGIN: &str = "kubeconfig-gen";
const FANOUT: &str = "fanout-blob";
/// Renewal margin of the daemon (clusters/reauth.rs): min(60 s, lifetime / 4) before expiry.
fn renew_after(lifetime: f64) -> f64 {
    lifetime - (lifetime / 4.0).min(60.0)
}

/// The figures of one run at one N.
#[derive(Default, Clone)]
struct Run {
    first_sync: f64,
    start_plugins_peak: f64,
    start_token_runs: f64,
    rss: f64,
    threads: f64,
    tcp: f64,
    idle_plugin_runs: f64,
    idle_web: f64,
    idle_assume: f64,
    idle_secs: f64,
    requests_h: f64,
    fan_before: f64,
    fan_peak: f64,
    fan_after: f64,
    fan_secs: f64,
}

/// Everything one N's runs share.
struct Fleet<'a> {
    w: &'a World,
    args: &'a Args,
    sts: StsProxy,
    kubeconfig_gen: PathBuf,
}

pub async fn fleet(w: &World, args: &Args) -> Result<String, BenchError> {
    let moto =
        w.tb.aws_env()
            .into_iter()
            .find(|(k, _)| k == "AWS_ENDPOINT_URL")
            .map(|(_, v)| v)
            .ok_or(BenchError::NoAws)?;
    grant(w).await?;
    let f = Fleet {
        w,
        args,
        sts: StsProxy::start(&moto)?,
        kubeconfig_gen: bins::product(bins::KUBECONFIG_GEN)?,
    };
    let mut per_n: Vec<(usize, usize, Vec<Run>)> = Vec::new();
    for &n in &args.fleet_followers {
        let ctxs = contexts(&w.names, n, args.fleet_clusters);
        let mut runs = Vec::new();
        for run in 0..args.runs {
            let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            eprintln!(
                "bench: fleet N={n} run {run}, load {}",
                load.split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            runs.push(f.run(&ctxs, run).await?);
        }
        per_n.push((n, clusters_of(&ctxs).len(), runs));
    }
    report(args, &per_n)
}

impl Fleet<'_> {
    async fn run(&self, ctxs: &[Ctx], run: usize) -> Result<Run, BenchError> {
        let (w, args) = (self.w, self.args);
        let own = clusters_of(ctxs);
        let last = own.iter().copied().max().unwrap_or(1);
        let ns = unique_ns("fleet");
        let aliases = ctxs.iter().map(|c| c.alias).max().unwrap_or(0);
        k8s::ensure_ns(&w.clients[0], &ns, &[]).await?;
        for &c in &own {
            for a in 0..=aliases {
                k8s::ensure_ns(&w.clients[c], &alias_ns(&ns, a), &[]).await?;
            }
        }
        let names: Vec<String> = ctxs.iter().map(|c| c.name.clone()).collect();
        let sources = (0..args.fleet_sources)
            .map(|i| k8s::load_configmap(&ns, &format!("src-{i:04}"), &names, &format!("v{i}")))
            .collect();
        k8s::create_all(&w.clients[0], sources, 16).await?;
        let counts: Vec<CopyCount> = ctxs
            .iter()
            .map(|c| CopyCount::start(w.clients[c.cluster].clone(), &c.target_ns(&ns), &ns))
            .collect();
        let kc = w
            .work
            .join(format!("kubeconfig-fleet-{}-{run}", ctxs.len()));
        write_kubeconfig(w, ctxs, &ns, &self.kubeconfig_gen, &kc)?;
        let mut env = w.tb.aws_env();
        env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
        env.push(("AWS_ENDPOINT_URL".into(), self.sts.url.clone()));
        let lifetime = args.token_lifetime.to_string();
        env.push(("KUBECONFIG_GEN_TEST_TOKEN_LIFETIME".into(), lifetime));
        let sts0 = self.sts.calls();
        let mut d = Daemon::scoped(&kc, &ns, &w.resync)
            .envs(env)
            .log(w.work.join(format!("daemon-fleet{}-{run}.log", ctxs.len())))
            .spawn()?;
        let sampler = Sampler::start(d.pid(), PLUGIN, Duration::from_millis(50));
        let took = all_copies(
            &mut d,
            &counts,
            args.fleet_sources,
            Duration::from_secs(900),
        );
        let mut r = Run {
            first_sync: took.await?.as_secs_f64(),
            ..Run::default()
        };
        settle(
            w,
            &mut d,
            last,
            Duration::from_secs(2),
            Duration::from_secs(3),
        )
        .await?;
        let start = sampler.take();
        r.start_plugins_peak = start.samples.iter().map(|s| s.plugins).max().unwrap_or(0) as f64;
        let sts1 = self.sts.calls();
        r.start_token_runs = (sts1.0 - sts0.0) as f64;
        let (s, fl, window) = idle(w, &mut d, last, args.fleet_idle_secs).await?;
        let quiet = sampler.take();
        let sts2 = self.sts.calls();
        let med = |f: fn(&super::procstat::Sample) -> u64| {
            median(
                &quiet
                    .samples
                    .iter()
                    .map(|x| f(x) as f64)
                    .collect::<Vec<_>>(),
            )
            .unwrap_or(f64::NAN)
        };
        r.rss = med(|x| x.rss_kib) / 1024.0;
        r.threads = med(|x| x.threads);
        r.tcp = med(|x| x.tcp);
        r.idle_plugin_runs = quiet.plugin_pids.len() as f64;
        r.idle_web = (sts2.0 - sts1.0) as f64;
        r.idle_assume = (sts2.1 - sts1.1) as f64;
        r.idle_secs = window.as_secs_f64();
        r.requests_h = (s.total() + fl.total()) as f64 * 3600.0 / r.idle_secs;
        self.fanout(&mut d, ctxs, &ns, last, &mut r).await?;
        drop(sampler);
        d.stop(Duration::from_secs(5));
        eprintln!(
            "bench: fleet N={} run {run}: first sync {:.2} s, RSS {:.1} MiB, {} threads, {} TCP, \
             fan-out peak {:.1} MiB over {:.1}",
            ctxs.len(),
            r.first_sync,
            r.rss,
            r.threads,
            r.tcp,
            r.fan_peak,
            r.fan_before
        );
        for &c in &own {
            for a in 0..=aliases {
                k8s::delete_ns(&w.clients[c], &alias_ns(&ns, a)).await;
            }
        }
        k8s::delete_ns(&w.clients[0], &ns).await;
        Ok(r)
    }

    /// One Secret of `--fanout-kib` to every context; the peak RSS from just before its create
    /// until every copy exists and the daemon is quiet.
    async fn fanout(
        &self,
        d: &mut Daemon,
        ctxs: &[Ctx],
        ns: &str,
        last: usize,
        r: &mut Run,
    ) -> Result<(), BenchError> {
        let w = self.w;
        let pid = d.pid();
        if !reset_peak(pid) {
            return Err(BenchError::NoMemoryFigures);
        }
        r.fan_before = d.memory_kib().ok_or(BenchError::NoMemoryFigures)?.0 as f64 / 1024.0;
        let blob: Vec<u8> = (0..self.args.fanout_kib * 1024)
            .map(|i| (i % 251) as u8)
            .collect();
        let names: Vec<String> = ctxs.iter().map(|c| c.name.clone()).collect();
        let contexts = names.join(",");
        let secret = k8s::secret(
            FANOUT,
            "Opaque",
            &[(SYNC_CONTEXTS, &contexts)],
            &[("blob", &blob)],
        );
        drop(blob);
        let started = Instant::now();
        k8s::create(&w.clients[0], ns, &secret).await?;
        drop(secret);
        let apis: Vec<Api<Secret>> = ctxs
            .iter()
            .map(|c| Api::namespaced(w.clients[c.cluster].clone(), &c.target_ns(ns)))
            .collect();
        loop {
            let mut missing = Vec::new();
            for (i, api) in apis.iter().enumerate() {
                if !matches!(api.get_metadata_opt(FANOUT).await, Ok(Some(_))) {
                    missing.push(i);
                }
            }
            if missing.is_empty() {
                break;
            }
            d.check_alive()?;
            if started.elapsed() > Duration::from_secs(300) {
                return Err(BenchError::NotArrived {
                    value: FANOUT.into(),
                    missing,
                    deadline: Duration::from_secs(300),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        r.fan_secs = started.elapsed().as_secs_f64();
        settle(w, d, last, Duration::from_secs(2), Duration::from_secs(3)).await?;
        r.fan_peak = peak_kib(pid).ok_or(BenchError::NoMemoryFigures)? as f64 / 1024.0;
        r.fan_after = d.memory_kib().ok_or(BenchError::NoMemoryFigures)?.0 as f64 / 1024.0;
        Ok(())
    }
}

fn col(runs: &[Run], f: fn(&Run) -> f64) -> Vec<f64> {
    runs.iter().map(f).collect()
}

fn med(runs: &[Run], f: fn(&Run) -> f64) -> f64 {
    median(&col(runs, f)).unwrap_or(f64::NAN)
}

/// STS calls per hour from the idle window, and extrapolated to the real 14-minute lifetime
/// by the renewal interval (same calls per renewal).
fn sts_per_hour(args: &Args, r: &Run) -> (f64, f64) {
    let calls = r.idle_web + r.idle_assume;
    let measured = calls * 3600.0 / r.idle_secs;
    let test = renew_after(args.token_lifetime as f64);
    let real = renew_after(14.0 * 60.0);
    (measured, measured * test / real)
}

fn who(n: usize, clusters: usize) -> String {
    if n == clusters {
        format!("{n} ({clusters} clusters)")
    } else {
        format!("{n} contexts on {clusters} clusters")
    }
}

fn report(args: &Args, per_n: &[(usize, usize, Vec<Run>)]) -> Result<String, BenchError> {
    let mut out = format!(
        "### Fleet: N follower contexts, every one (and the source) through `kubeconfig-gen token` → STS → webhook\n\n\
         {} sources (1 KiB ConfigMaps) to every context; token lifetime {} s (test-only \
         KUBECONFIG_GEN_TEST_TOKEN_LIFETIME); idle window {} s; medians of {} runs (min–max).\n\n\
         | followers | first sync s | RSS MiB | threads | TCP conns | exec plugins at once (start, peak) | token runs at start | token runs in idle window | STS calls/h (measured) | STS calls/h at 14 min (extrapolated) | daemon requests/h |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
        args.fleet_sources, args.token_lifetime, args.fleet_idle_secs, args.runs
    );
    for (n, c, runs) in per_n {
        let sts: Vec<(f64, f64)> = runs.iter().map(|r| sts_per_hour(args, r)).collect();
        let measured: Vec<f64> = sts.iter().map(|s| s.0).collect();
        let real: Vec<f64> = sts.iter().map(|s| s.1).collect();
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            who(*n, *c),
            summary(&col(runs, |r| r.first_sync), 2),
            summary(&col(runs, |r| r.rss), 1),
            summary(&col(runs, |r| r.threads), 0),
            summary(&col(runs, |r| r.tcp), 0),
            summary(&col(runs, |r| r.start_plugins_peak), 0),
            summary(&col(runs, |r| r.start_token_runs), 0),
            summary(&col(runs, |r| r.idle_plugin_runs), 0),
            summary(&measured, 0),
            summary(&real, 0),
            summary(&col(runs, |r| r.requests_h), 0),
        )?;
    }
    write!(
        out,
        "\n#### {} KiB Secret fanned out to every context (VmHWM reset just before the create)\n\n\
         | followers | RSS before MiB | peak during fan-out MiB | peak − before MiB | RSS after MiB | all copies after s |\n|---|---|---|---|---|---|\n",
        args.fanout_kib
    )?;
    for (n, c, runs) in per_n {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            who(*n, *c),
            summary(&col(runs, |r| r.fan_before), 1),
            summary(&col(runs, |r| r.fan_peak), 1),
            summary(&col(runs, |r| r.fan_peak - r.fan_before), 1),
            summary(&col(runs, |r| r.fan_after), 1),
            summary(&col(runs, |r| r.fan_secs), 2),
        )?;
    }
    out += "\n#### Marginal cost per follower context (difference of medians ÷ difference of N)\n\n\
            | from → to | RSS MiB | threads | TCP conns | first sync s | requests/h | fan-out peak − before MiB |\n|---|---|---|---|---|---|---|\n";
    for pair in per_n.windows(2) {
        let ((n0, c0, a), (n1, c1, b)) = (&pair[0], &pair[1]);
        let dn = (*n1 as f64 - *n0 as f64).max(1.0);
        let slope = |f: fn(&Run) -> f64| (med(b, f) - med(a, f)) / dn;
        writeln!(
            out,
            "| {} → {} | {:.2} | {:.2} | {:.2} | {:.3} | {:.1} | {:.3} |",
            who(*n0, *c0),
            who(*n1, *c1),
            slope(|r| r.rss),
            slope(|r| r.threads),
            slope(|r| r.tcp),
            slope(|r| r.first_sync),
            slope(|r| r.requests_h),
            slope(|r| r.fan_peak - r.fan_before),
        )?;
    }
    out += "\n";
    Ok(out)
}
