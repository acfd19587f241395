//! How a reconcile ended, and what the queue does next with its key: forget it, look again after
//! a delay, back it off, or pause the whole cluster's queue. One policy for `run` and `once`.
use std::time::Duration;

/// How a reconcile of one key in one cluster ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The target matches the plan (`converged`), or what is left waits for a change
    /// (conflicts and bad annotations).
    Done { converged: bool },
    /// Look again later (missing namespace, pending deletion, a stale cache).
    RetryAfter(Duration),
}

impl Outcome {
    pub const CONVERGED: Outcome = Outcome::Done { converged: true };

    /// This outcome followed by the outcome of one more action of the same reconcile: a retry
    /// wins (the last one asked for), then not converged.
    pub fn and(self, next: Outcome) -> Outcome {
        match (self, next) {
            (_, Outcome::RetryAfter(d)) => Outcome::RetryAfter(d),
            (Outcome::RetryAfter(d), Outcome::Done { .. }) => Outcome::RetryAfter(d),
            (Outcome::Done { converged: a }, Outcome::Done { converged: b }) => {
                Outcome::Done { converged: a && b }
            }
        }
    }

    /// A reconcile that left problems on its source is not converged.
    pub fn with_problems(self, any: bool) -> Outcome {
        if any && self == Outcome::CONVERGED {
            Outcome::Done { converged: false }
        } else {
            self
        }
    }
}

/// How a failed reconcile failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The target cluster failed (transport error, 5xx, 429), not this key.
    Outage,
    /// This key failed (a read that failed, a conflict on the write).
    Key,
    /// The target refused the write for good until something changes: 403 (RBAC, quota,
    /// admission) or 422/400 (invalid). Retried slowly, and at once when the source or the
    /// target's namespaces change.
    Refused,
}

/// What the queue does with the key after a reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Done: forget its backoff. `converged` as in [`Outcome::Done`].
    Forget { converged: bool },
    /// Reconcile it again after this delay.
    After(Duration),
    /// Retry it with its exponential backoff.
    Backoff,
    /// Retry it with the slow backoff of a refused write (minutes).
    BackoffRefused,
    /// Retry it soon, and pause the whole queue: an outage costs one request per pause rather
    /// than one per key; the next attempt after the pause is the probe that ends the outage.
    PauseCluster,
}

impl Next {
    pub fn of(result: Result<Outcome, Failure>) -> Next {
        match result {
            Ok(Outcome::Done { converged }) => Next::Forget { converged },
            Ok(Outcome::RetryAfter(d)) => Next::After(d),
            Err(Failure::Outage) => Next::PauseCluster,
            Err(Failure::Key) => Next::Backoff,
            Err(Failure::Refused) => Next::BackoffRefused,
        }
    }

    /// Nothing left to do for the key there (what `once` and the metrics count as converged).
    pub fn converged(self) -> bool {
        self == Next::Forget { converged: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LATER: Outcome = Outcome::RetryAfter(Duration::from_secs(5));
    const SOON: Outcome = Outcome::RetryAfter(Duration::from_millis(500));
    const OPEN: Outcome = Outcome::Done { converged: false };

    #[test]
    fn outcomes_fold_retry_first_then_unconverged() {
        let c = Outcome::CONVERGED;
        let table = [
            (c, c, c),
            (c, OPEN, OPEN),
            (OPEN, c, OPEN),
            (c, LATER, LATER),
            (LATER, OPEN, LATER),
            (LATER, c, LATER),
            (LATER, SOON, SOON),
            (OPEN, SOON, SOON),
        ];
        for (a, b, want) in table {
            assert_eq!(a.and(b), want, "{a:?} and {b:?}");
        }
        assert_eq!(c.with_problems(true), OPEN);
        assert_eq!(c.with_problems(false), c);
        assert_eq!(LATER.with_problems(true), LATER);
    }

    #[test]
    fn each_ending_has_one_next_step() {
        let table = [
            (
                Ok(Outcome::CONVERGED),
                Next::Forget { converged: true },
                true,
            ),
            (Ok(OPEN), Next::Forget { converged: false }, false),
            (Ok(LATER), Next::After(Duration::from_secs(5)), false),
            (Err(Failure::Outage), Next::PauseCluster, false),
            (Err(Failure::Key), Next::Backoff, false),
            (Err(Failure::Refused), Next::BackoffRefused, false),
        ];
        for (result, want, converged) in table {
            assert_eq!(Next::of(result), want, "{result:?}");
            assert_eq!(Next::of(result).converged(), converged, "{result:?}");
        }
    }
}
