//! `generate --watch` (the sidecar): a round of `generate` every `--interval`, the profile files
//! read again each round. A round rewrites the file only when its bytes change, logs each context
//! added or removed, and describes only the clusters it has not described before (ListClusters
//! each round; every cluster again every `REDESCRIBE_AFTER` and whenever a profile file changes).
//! The first round fails as plain `generate` does (an init container's contract); a later round's
//! failure is logged and the last written file stays. SIGTERM and SIGINT end it with exit 0 at
//! once: the round in flight, AWS calls included, is dropped (the write itself is synchronous, so
//! it is never cut in half, and the temporary file of a write that did not finish is removed).
use std::collections::BTreeSet;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::Instant;

use crate::aws::Files;
use crate::deadline::parse_duration;
use crate::error::{Error, Result, chain, list, one_line};
use crate::generate::{self, Memory, Mode, Options};
use crate::output;

/// `--interval`'s floor: a round costs each profile's STS chain and a ListClusters per region;
/// more often than this buys nothing a sidecar needs and eats into the account's API quotas.
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);
/// `--interval`'s default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Every cluster is described again at least this often. ListClusters shows which names exist,
/// not what they are: a cluster deleted and created again under its name within an interval has
/// a new endpoint and CA, and one being deleted (status DELETING) is still listed. Ten minutes
/// bounds how long such a context can be stale, at one DescribeCluster per cluster per ten minutes.
pub const REDESCRIBE_AFTER: Duration = Duration::from_secs(600);

/// `--interval`: a duration as `--timeout` takes it (`30s`, `5m`, `1h30m`), at least `MIN_INTERVAL`.
pub fn parse_interval(s: &str) -> std::result::Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < MIN_INTERVAL {
        return Err(format!(
            "{s:?}: at least {}s (each round calls STS and eks:ListClusters)",
            MIN_INTERVAL.as_secs()
        ));
    }
    Ok(d)
}

/// SIGTERM (the kubelet stopping the pod) and SIGINT (Ctrl-C), through tokio's signal handling.
struct Shutdown {
    term: Signal,
    int: Signal,
}

impl Shutdown {
    fn install() -> Result<Shutdown> {
        let listen = |kind| signal(kind).map_err(|source| Error::Signals { source });
        Ok(Shutdown {
            term: listen(SignalKind::terminate())?,
            int: listen(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

fn stopped(signal: &str) -> Result<()> {
    output::say(&format!("watch: {signal}: stopping"));
    Ok(())
}

/// The bytes of both profile files (a missing file: none): a change re-describes every cluster.
fn fingerprint(files: &Files) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    (
        std::fs::read(&files.config).ok(),
        std::fs::read(&files.credentials).ok(),
    )
}

/// The log lines of a round that went from the contexts BEFORE to those AFTER.
pub fn changes(before: &BTreeSet<String>, after: &BTreeSet<String>) -> Vec<String> {
    let added = after
        .difference(before)
        .map(|c| format!("watch: added context {c}"));
    let removed = before
        .difference(after)
        .map(|c| format!("watch: removed context {c}"));
    added.chain(removed).collect()
}

/// The report of a later round that wrote nothing. `Partial` says "wrote the rest" for plain
/// `generate`; here nothing was written, so it gets its own first line.
fn failed_round(n: u64, e: &Error) -> String {
    let head = format!("watch: round {n} failed; the last written file stays");
    match e {
        Error::Partial {
            failures,
            tally,
            reason,
        } => format!(
            "{head}: {tally} failed, and without the management context ({}) nothing was written{}",
            one_line(&chain(reason.as_ref())),
            list(failures)
        ),
        other => format!("{head}\n{}", other.render()),
    }
}

/// `generate --watch --interval INTERVAL`: runs until SIGTERM or SIGINT.
pub async fn watch(opts: Options, interval: Duration) -> Result<()> {
    if output::is_stdout(&output::path(opts.kubeconfig.clone())) {
        return Err(Error::Usage(
            "--watch rewrites a file; it cannot watch into stdout (--kubeconfig -)".into(),
        ));
    }
    let mut stop = Shutdown::install()?;
    let mut memory = Memory::default();
    let mut files = fingerprint(&opts.files);
    let mut described_all = Instant::now();
    let mut next = Instant::now() + interval;
    let first = tokio::select! {
        r = generate::round(&opts, &mut memory, Mode::WatchFirst) => r?,
        sig = stop.recv() => return stopped(sig),
    };
    if let Some(partial) = first.partial {
        return Err(partial);
    }
    let mut contexts = first.contexts;
    output::say(&format!(
        "watch: round 1 done; next rounds every {interval:?} (SIGTERM or SIGINT stops)"
    ));
    let mut n: u64 = 1;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            sig = stop.recv() => return stopped(sig),
        }
        n += 1;
        next = Instant::now() + interval;
        let now = fingerprint(&opts.files);
        if now != files || described_all.elapsed() >= REDESCRIBE_AFTER {
            tracing::info!(round = n, "describing every cluster again");
            memory.described.clear();
            described_all = Instant::now();
            files = now;
        }
        let result = tokio::select! {
            r = generate::round(&opts, &mut memory, Mode::WatchLater) => r,
            sig = stop.recv() => return stopped(sig),
        };
        match result {
            Ok(w) => {
                for line in changes(&contexts, &w.contexts) {
                    output::say(&line);
                }
                let what = if w.changed {
                    "file rewritten"
                } else {
                    "unchanged"
                };
                tracing::info!(round = n, contexts = w.contexts.len(), "{what}");
                contexts = w.contexts;
            }
            Err(e) => output::say(&failed_round(n, &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Tally;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("10s").unwrap(), MIN_INTERVAL);
        assert_eq!(parse_interval("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_interval("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_interval("60").unwrap(), DEFAULT_INTERVAL);
        for bad in ["9s", "9999ms", "0s", "", "1x", "-10s"] {
            assert!(parse_interval(bad).is_err(), "{bad:?}");
        }
        assert!(parse_interval("9s").unwrap_err().contains("at least 10s"));
    }

    #[test]
    fn a_round_that_would_lose_the_management_context_says_nothing_was_written() {
        let reason = Error::NoRootContext {
            root: "mc-mgmt".into(),
        };
        let failure = Error::ClusterNotFound {
            profile: "mc-mgmt".into(),
            cluster: "mc-mgmt-k8s".into(),
            region: "r".into(),
        };
        let partial = Error::Partial {
            failures: vec![failure],
            tally: Tally {
                profiles: 2,
                clusters: 2,
                failed_clusters: 1,
                ..Tally::default()
            },
            reason: Box::new(reason),
        };
        let text = failed_round(3, &partial);
        assert!(
            text.starts_with("watch: round 3 failed; the last written file stays: 1 of 2 clusters failed, and without the management context (")
                && text.contains(") nothing was written\n  - profile mc-mgmt: cluster mc-mgmt-k8s not found in r"),
            "{text}"
        );
        assert!(!text.contains("wrote the rest"), "{text}");
        let usage = failed_round(4, &Error::Usage("x".into()));
        assert_eq!(
            usage,
            "watch: round 4 failed; the last written file stays\nerror: x"
        );
    }

    #[test]
    fn changes_name_each_added_and_removed_context() {
        let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
        let before: BTreeSet<String> = set(&["a", "b", "mgmt"]);
        assert!(changes(&before, &before).is_empty());
        assert_eq!(
            changes(&before, &set(&["b", "c", "d", "mgmt"])),
            [
                "watch: added context c",
                "watch: added context d",
                "watch: removed context a"
            ]
        );
        assert_eq!(
            changes(&BTreeSet::new(), &set(&["x"])),
            ["watch: added context x"]
        );
    }
}
