//! What `generate`'s profiles came to: entries and failures counted in their own units, and the
//! `--keep-going` rules (skip each failure, skip colliding contexts, report one line each). Pure.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::error::{Error, Tally, list};
use crate::kubeconfig::ClusterEntry;

/// What one profile came to.
pub enum Fetched {
    /// The profile (named) failed before its clusters were known (credentials, ListClusters, or
    /// its plan), in one region or in all.
    Profile(String, Error),
    /// One result per cluster.
    Clusters(Vec<Result<ClusterEntry, Error>>),
}

/// The clusters described, and every failure counted once in its unit.
pub struct Collected {
    pub entries: Vec<ClusterEntry>,
    /// In the profiles' order, a profile's own failure before those of its clusters'.
    pub failures: Vec<Error>,
    pub tally: Tally,
}

/// Sorts what the profiles came to into entries and failures, and counts both in the same units:
/// `profiles` (every profile asked for, run or not) against those that failed as a whole, and the
/// clusters of the others against those that failed. Counting failures per error against a total
/// of something else gave "2 of 1 failed". A profile that fails in two regions is one profile.
pub fn collect(profiles: usize, fetched: impl IntoIterator<Item = Fetched>) -> Collected {
    let mut failed_profiles = BTreeSet::new();
    let mut c = Collected {
        entries: Vec::new(),
        failures: Vec::new(),
        tally: Tally {
            profiles,
            ..Tally::default()
        },
    };
    for outcome in fetched {
        match outcome {
            Fetched::Profile(name, e) => {
                failed_profiles.insert(name);
                c.tally.failed_profiles = failed_profiles.len();
                c.failures.push(e);
            }
            Fetched::Clusters(results) => {
                for r in results {
                    c.tally.clusters += 1;
                    match r {
                        Ok(entry) => c.entries.push(entry),
                        Err(e) => {
                            c.tally.failed_clusters += 1;
                            c.failures.push(e);
                        }
                    }
                }
            }
        }
    }
    c
}

impl Collected {
    /// The failures when nothing is written: a lone failure as itself, several under their tally.
    pub fn error(mut self) -> Error {
        if self.failures.len() == 1 {
            self.failures.remove(0)
        } else {
            Error::Several {
                failures: self.failures,
                tally: self.tally,
            }
        }
    }

    /// `--keep-going`: every cluster whose context another cluster also wants is skipped and
    /// becomes a failure, except the root profile's own cluster, which a follower never displaces
    /// (the management context must survive a follower's misconfiguration).
    pub fn skip_collisions(&mut self, roots: &HashMap<String, String>) {
        let is_root = |e: &ClusterEntry| roots.values().any(|r| *r == e.profile);
        let mut by_context: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, e) in self.entries.iter().enumerate() {
            by_context.entry(&e.context).or_default().push(i);
        }
        let mut skip = vec![false; self.entries.len()];
        let mut failures = Vec::new();
        for (context, group) in by_context.into_iter().filter(|(_, g)| g.len() > 1) {
            let keep = group
                .iter()
                .copied()
                .filter(|&i| is_root(&self.entries[i]))
                .collect::<Vec<_>>();
            let keep = match keep.as_slice() {
                [one] => Some(*one),
                _ => None,
            };
            let name = |i: usize| {
                let e = &self.entries[i];
                format!("{} (profile {})", e.arn, e.profile)
            };
            for &i in group.iter().filter(|&&i| Some(i) != keep) {
                skip[i] = true;
                let others: Vec<String> = group
                    .iter()
                    .filter(|&&j| j != i)
                    .map(|&j| name(j))
                    .collect();
                failures.push(Error::ContextCollision {
                    context: context.to_string(),
                    skipped: name(i),
                    others: others.join(", "),
                });
            }
        }
        self.tally.failed_clusters += failures.len();
        self.failures.extend(failures);
        let mut flags = skip.into_iter();
        self.entries.retain(|_| !flags.next().unwrap_or(false));
    }

    /// The stderr report of a `--keep-going` run that wrote the management context: one line per
    /// skipped profile or cluster.
    pub fn skipped_report(&self) -> String {
        format!(
            "warning: {} failed and skipped (--keep-going; the rest was written){}",
            self.tally,
            list(&self.failures)
        )
    }
}

#[cfg(test)]
#[path = "outcome_tests.rs"]
mod tests;
