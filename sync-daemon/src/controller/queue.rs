//! A per-cluster work queue of source keys with per-key exponential backoff: one queue and its
//! own workers per target cluster, so a dead follower only ever delays its own keys. Several
//! workers share a queue, and a key is never handed to two of them at once: a key added while it
//! is being reconciled waits until [`Queue::done`] (client-go's workqueue "dirty/processing" rule).
//!
//! Full passes (the start-up sweep, a re-list, the periodic resync) are not queued key by key:
//! [`Queue::sweep`] takes one sorted list of keys, shared by every cluster's queue, and hands them
//! out after the keys that are due. Queuing every source in every cluster at once cost about
//! 200 bytes per key per cluster (13 MiB at 10,000 sources × 6 clusters), and freed memory is not
//! always returned to the system.
use crate::plan::SourceKey;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Capacity an emptied map keeps (a full queue of 10,000 keys holds about 1 MiB).
const SHRINK_TO: usize = 64;

const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Cap for retries of a key that failed because its cluster was unavailable, and for the
/// worker's pause between attempts during such an outage: the cluster is tried at least this
/// often, so it is caught up within about this long of its return (the fault suite holds us
/// to 10 s).
pub const OUTAGE_RETRY_MAX: Duration = Duration::from_secs(2);

/// A refused write (403, 422) is retried after 10 s, doubling to 5 min: it fails the same way
/// until someone changes the RBAC, quota or object, and a change of the source or of the
/// target's namespaces retries it at once anyway.
const REFUSED_BASE: Duration = Duration::from_secs(10);
const REFUSED_MAX: Duration = Duration::from_secs(300);

fn refused_backoff(n: u32) -> Duration {
    REFUSED_BASE
        .saturating_mul(1u32 << n.saturating_sub(1).min(10))
        .min(REFUSED_MAX)
}

/// Delay before retry number `n` (1-based).
fn backoff(n: u32) -> Duration {
    BACKOFF_BASE
        .saturating_mul(1u32 << n.saturating_sub(1).min(10))
        .min(BACKOFF_MAX)
}

/// The worker's pause after the `n`th consecutive cluster-level failure (1-based): 250 ms
/// doubling to [`OUTAGE_RETRY_MAX`]. While it pauses, nothing else is tried against that cluster,
/// so a partitioned follower costs one hanging request per pause, not one per queued key.
pub fn outage_pause(n: u32) -> Duration {
    backoff(n).min(OUTAGE_RETRY_MAX)
}

/// A full pass in progress: `keys` from `start`, wrapping around, `taken` of them handed out.
struct Sweep {
    keys: Arc<[SourceKey]>,
    start: usize,
    taken: usize,
}

#[derive(Default)]
struct Inner {
    due: HashMap<SourceKey, Instant>,
    /// `due` ordered by time, so the next key is found without a scan of the whole queue.
    order: BTreeSet<(Instant, SourceKey)>,
    failures: HashMap<SourceKey, u32>,
    /// Keys whose last write was refused (403/422): sweeps pass them over, so a busy cluster's
    /// namespace churn (each change sweeps the queue) does not defeat their slow backoff; an
    /// explicit `add` (the source changed) retries them at once.
    refused: HashSet<SourceKey>,
    /// Keys handed out by `next` and not yet `done`.
    processing: HashSet<SourceKey>,
    sweep: Option<Sweep>,
    /// The last key a sweep handed out: a new sweep that replaces an unfinished one starts
    /// after it, so a pass longer than the resync period still reaches every key.
    last_swept: Option<SourceKey>,
}

impl Inner {
    /// Schedules `key` at `at` unless it is already due earlier.
    fn schedule(&mut self, key: SourceKey, at: Instant) {
        match self.due.get(&key).copied() {
            Some(old) if old <= at => {}
            old => {
                if let Some(old) = old {
                    self.order.remove(&(old, key.clone()));
                }
                self.order.insert((at, key.clone()));
                self.due.insert(key, at);
            }
        }
    }

    fn unschedule(&mut self, key: &SourceKey) {
        if let Some(at) = self.due.remove(key) {
            self.order.remove(&(at, key.clone()));
            if self.due.is_empty() {
                self.due.shrink_to(SHRINK_TO);
            }
        }
    }

    fn next_swept(&mut self) -> Option<SourceKey> {
        let s = self.sweep.as_mut()?;
        let len = s.keys.len();
        let key = s.keys.get((s.start + s.taken) % len.max(1)).cloned();
        s.taken += 1;
        if s.taken >= len {
            self.sweep = None;
        }
        self.last_swept.clone_from(&key);
        key
    }

    fn swept_left(&self) -> usize {
        self.sweep
            .as_ref()
            .map_or(0, |s| s.keys.len().saturating_sub(s.taken))
    }
}

#[derive(Default)]
pub struct Queue {
    inner: Mutex<Inner>,
    notify: Notify,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another worker panicked mid-update; the map is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Schedules `key` now (a pending later retry is brought forward, a refused one included).
    pub fn add(&self, key: SourceKey) {
        self.lock().refused.remove(&key);
        self.add_after(key, Duration::ZERO);
    }

    pub fn add_after(&self, key: SourceKey, delay: Duration) {
        let at = Instant::now() + delay;
        self.lock().schedule(key, at);
        self.notify.notify_one();
    }

    /// Starts a full pass over `keys` (sorted), handed out after the keys already due. It
    /// replaces an unfinished pass, continuing after the last key that one handed out.
    pub fn sweep(&self, keys: Arc<[SourceKey]>) {
        let mut g = self.lock();
        let start = match (&g.sweep, &g.last_swept) {
            (Some(_), Some(last)) => keys.partition_point(|k| k <= last),
            _ => 0,
        };
        g.sweep = (!keys.is_empty()).then_some(Sweep {
            keys,
            start,
            taken: 0,
        });
        drop(g);
        self.notify.notify_one();
    }

    /// Schedules a retry with the key's backoff (250 ms doubling to 10 s).
    pub fn retry(&self, key: SourceKey) -> Duration {
        self.lock().refused.remove(&key);
        self.retry_with(key, backoff)
    }

    /// Like [`Queue::retry`] for a refused write: 10 s doubling to 5 min, and sweeps pass the
    /// key over until then.
    pub fn retry_refused(&self, key: SourceKey) -> Duration {
        self.lock().refused.insert(key.clone());
        self.retry_with(key, refused_backoff)
    }

    /// Like [`Queue::retry`] for a failure of the cluster rather than of the key: the key's
    /// backoff grows as usual but never past [`OUTAGE_RETRY_MAX`], so a returning cluster does not
    /// wait out a long per-key backoff.
    pub fn retry_outage(&self, key: SourceKey) -> Duration {
        self.lock().refused.remove(&key);
        self.retry_with(key, outage_pause)
    }

    /// Counts one more failure of `key` and schedules it after `delay(failures)`.
    fn retry_with(&self, key: SourceKey, delay: fn(u32) -> Duration) -> Duration {
        let n = {
            let mut g = self.lock();
            let n = g.failures.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let delay = delay(n);
        self.add_after(key, delay);
        delay
    }

    /// Clears the key's backoff after a success.
    pub fn forget(&self, key: &SourceKey) {
        let mut g = self.lock();
        g.failures.remove(key);
        g.refused.remove(key);
        if g.failures.is_empty() {
            // A cold start or an outage may have grown it to every key; give that back.
            g.failures.shrink_to(SHRINK_TO);
        }
    }

    /// Keys due plus keys the current sweep has yet to hand out (a key can be in both).
    pub fn len(&self) -> usize {
        let g = self.lock();
        g.due.len() + g.swept_left()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Marks a key handed out by [`Queue::next`] as finished; if it was added again meanwhile,
    /// it becomes available to the next worker.
    pub fn done(&self, key: &SourceKey) {
        let mut g = self.lock();
        g.processing.remove(key);
        let again = g.due.contains_key(key);
        drop(g);
        if again {
            self.notify.notify_one();
        }
    }

    /// Waits for the next due key that no other worker holds (when none is due: the sweep's
    /// next key), removes it from the queue and marks it as being processed (call
    /// [`Queue::done`] afterwards).
    pub async fn next(&self) -> SourceKey {
        loop {
            let earliest = {
                let mut g = self.lock();
                let now = Instant::now();
                let first = g
                    .order
                    .iter()
                    .find(|(_, k)| !g.processing.contains(k))
                    .map(|(at, k)| (k.clone(), *at));
                let earliest = first.as_ref().map(|(_, at)| *at);
                let key = match first {
                    Some((k, at)) if at <= now => Some(k),
                    _ => loop {
                        // Nothing due now: the sweep's next key. One being reconciled is
                        // marked to run again once it is done.
                        match g.next_swept() {
                            Some(k) if g.processing.contains(&k) => g.schedule(k, now),
                            // Still scheduled at its backoff time.
                            Some(k) if g.refused.contains(&k) => {}
                            k => break k,
                        }
                    },
                };
                match key {
                    Some(k) => {
                        g.unschedule(&k);
                        g.processing.insert(k.clone());
                        // Another worker may take the next key.
                        if !g.due.is_empty() || g.sweep.is_some() {
                            self.notify.notify_one();
                        }
                        return k;
                    }
                    None => earliest,
                }
            };
            match earliest {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = self.notify.notified() => {}
                    }
                }
                None => self.notify.notified().await,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::plan::Kind;

    fn key(n: &str) -> SourceKey {
        SourceKey::new(Kind::ConfigMap, "ns", n)
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(3), Duration::from_secs(1));
        assert_eq!(backoff(7), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
        assert_eq!(outage_pause(1), Duration::from_millis(250));
        assert_eq!(outage_pause(20), OUTAGE_RETRY_MAX);
        let refused: Vec<u64> = (1..=7).map(|n| refused_backoff(n).as_secs()).collect();
        assert_eq!(refused, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(refused_backoff(u32::MAX), REFUSED_MAX);
    }

    #[tokio::test]
    async fn a_key_is_never_handed_out_twice_at_once() {
        let q = Queue::default();
        q.add(key("a"));
        assert_eq!(q.next().await, key("a"));
        q.add(key("a")); // changed while being reconciled
        q.add(key("b"));
        assert_eq!(q.next().await, key("b"));
        let blocked = tokio::time::timeout(Duration::from_millis(50), q.next()).await;
        assert!(
            blocked.is_err(),
            "a was handed out while still being processed"
        );
        q.done(&key("a"));
        assert_eq!(q.next().await, key("a"));
        q.done(&key("a"));
        q.done(&key("b"));
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn outage_retries_stay_short() {
        let q = Queue::default();
        for _ in 0..20 {
            assert!(q.retry_outage(key("a")) <= OUTAGE_RETRY_MAX);
        }
        // A key-level failure after the outage continues the key's own, longer backoff.
        q.next().await;
        assert_eq!(q.retry(key("a")), BACKOFF_MAX);
    }

    #[tokio::test]
    async fn keys_come_out_in_due_order() {
        let q = Queue::default();
        q.add_after(key("c"), Duration::from_millis(60));
        q.add_after(key("b"), Duration::from_millis(30));
        q.add_after(key("d"), Duration::from_secs(60));
        q.add(key("a"));
        // Brought forward: its later entry must not survive in the order.
        q.add_after(key("d"), Duration::from_millis(90));
        let mut got = Vec::new();
        for _ in 0..4 {
            let k = q.next().await;
            q.done(&k);
            got.push(k.name().to_string());
        }
        assert_eq!(got, ["a", "b", "c", "d"]);
        assert!(q.is_empty());
        assert!(q.lock().order.is_empty());
    }

    fn keys(names: &[&str]) -> Arc<[SourceKey]> {
        names.iter().map(|n| key(n)).collect()
    }

    async fn take(q: &Queue, n: usize) -> Vec<String> {
        let mut got = Vec::new();
        for _ in 0..n {
            let k = q.next().await;
            q.done(&k);
            got.push(k.name().to_string());
        }
        got
    }

    #[tokio::test]
    async fn sweeps_pass_over_a_refused_key_but_a_source_change_does_not() {
        let q = Queue::default();
        q.add(key("r"));
        let r = q.next().await;
        assert_eq!(q.retry_refused(r.clone()), REFUSED_BASE);
        q.done(&r);
        q.sweep(keys(&["a", "r", "b"]));
        assert_eq!(take(&q, 2).await, ["a", "b"]);
        let nothing = tokio::time::timeout(Duration::from_millis(50), q.next()).await;
        assert!(nothing.is_err(), "the refused key waits for its backoff");
        q.add(key("r"));
        assert_eq!(take(&q, 1).await, ["r"]);
    }

    #[tokio::test]
    async fn a_sweep_comes_after_due_keys_and_once_per_key() {
        let q = Queue::default();
        q.sweep(keys(&["a", "b", "c"]));
        q.add(key("z"));
        // A pending retry of a swept key is taken by the sweep, not run twice.
        q.add_after(key("b"), Duration::from_secs(60));
        assert_eq!(q.len(), 5);
        assert_eq!(take(&q, 4).await, ["z", "a", "b", "c"]);
        assert!(q.is_empty());
        assert!(q.lock().order.is_empty());
        let nothing = tokio::time::timeout(Duration::from_millis(50), q.next()).await;
        assert!(nothing.is_err(), "a key came out of an empty queue");
    }

    #[tokio::test]
    async fn a_swept_key_being_processed_runs_again_after_done() {
        let q = Queue::default();
        q.add(key("b"));
        assert_eq!(q.next().await, key("b"));
        q.sweep(keys(&["a", "b", "c"]));
        assert_eq!(q.next().await, key("a"));
        // b is still being processed: the sweep passes it on to after `done`.
        assert_eq!(q.next().await, key("c"));
        let blocked = tokio::time::timeout(Duration::from_millis(50), q.next()).await;
        assert!(blocked.is_err(), "b was handed out twice at once");
        q.done(&key("b"));
        assert_eq!(q.next().await, key("b"));
    }

    #[tokio::test]
    async fn a_new_sweep_continues_where_the_unfinished_one_was() {
        let q = Queue::default();
        q.sweep(keys(&["a", "b", "c", "d"]));
        assert_eq!(take(&q, 2).await, ["a", "b"]);
        // A resync before the pass ended: nothing is starved, every key comes once.
        q.sweep(keys(&["a", "b", "bb", "c", "d"]));
        assert_eq!(q.len(), 5);
        assert_eq!(take(&q, 5).await, ["bb", "c", "d", "a", "b"]);
        assert!(q.is_empty());
        // After a finished pass, a new one starts at the beginning.
        q.sweep(keys(&["a", "b"]));
        assert_eq!(take(&q, 2).await, ["a", "b"]);
    }

    #[tokio::test]
    async fn dedups_orders_and_backs_off() {
        let q = Queue::default();
        q.add(key("a"));
        q.add(key("a"));
        assert_eq!(q.len(), 1);
        assert_eq!(q.next().await, key("a"));
        q.done(&key("a"));
        assert_eq!(q.retry(key("b")), Duration::from_millis(250));
        assert_eq!(q.next().await, key("b"));
        // The worker's order: next, (reconcile), retry/add, done.
        assert_eq!(q.retry(key("b")), Duration::from_millis(500));
        q.done(&key("b"));
        let start = Instant::now();
        assert_eq!(q.next().await, key("b"));
        assert!(Instant::now() - start >= Duration::from_millis(500));
        q.forget(&key("b"));
        assert_eq!(q.retry(key("b")), Duration::from_millis(250));
        q.done(&key("b"));
        // a later retry is brought forward by a fresh event
        q.add(key("b"));
        let start = Instant::now();
        q.next().await;
        assert!(Instant::now() - start < Duration::from_millis(100));
    }
}
