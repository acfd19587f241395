//! The payload bytes in flight across every cluster's reconciles. A source is reconciled by
//! each target cluster's workers at the same moment, and each reconcile holds a few copies of
//! its payload (decoded, viewed, built, serialised, and the write's response): a 1 MiB Secret
//! fanned out to N followers would otherwise peak at about 5 × N MiB (measured: 4.9 MiB per
//! follower). Large sources take a share of one process-wide budget for their whole reconcile,
//! so the peak is bounded whatever N; small ones (nearly all) never wait.
use tokio::sync::{Semaphore, SemaphorePermit};

/// Cached sources at least this large (their JSON, base64 included) take a share.
const LARGE: usize = 64 * 1024;
/// The budget, in KiB of cached JSON: about two 1 MiB Secrets at once.
const BUDGET_KIB: u32 = 3 * 1024;

pub struct PayloadBudget {
    kib: Semaphore,
}

impl Default for PayloadBudget {
    fn default() -> Self {
        PayloadBudget {
            kib: Semaphore::new(BUDGET_KIB as usize),
        }
    }
}

impl PayloadBudget {
    /// Waits for a share for a source of `bytes` (`None`: small, no share needed). A source
    /// larger than the whole budget takes all of it.
    pub async fn take(&self, bytes: usize) -> Option<SemaphorePermit<'_>> {
        if bytes < LARGE {
            return None;
        }
        let kib = u32::try_from(bytes / 1024)
            .unwrap_or(BUDGET_KIB)
            .clamp(1, BUDGET_KIB);
        self.kib.acquire_many(kib).await.ok()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn large_payloads_share_the_budget_small_ones_pass() {
        let b = PayloadBudget::default();
        assert!(b.take(1024).await.is_none(), "small: no share");
        let mib = 1400 * 1024; // a 1 MiB Secret's JSON
        let first = b.take(mib).await.unwrap();
        let second = b.take(mib).await.unwrap();
        let third = tokio::time::timeout(Duration::from_millis(50), b.take(mib)).await;
        assert!(third.is_err(), "a third 1 MiB source waits");
        drop(first);
        let third = tokio::time::timeout(Duration::from_millis(50), b.take(mib)).await;
        assert!(third.is_ok());
        drop(second);
        // Larger than the budget: all of it, never stuck.
        drop(third);
        let huge = tokio::time::timeout(Duration::from_millis(50), b.take(usize::MAX)).await;
        assert!(huge.is_ok_and(|p| p.is_some()));
    }
}
