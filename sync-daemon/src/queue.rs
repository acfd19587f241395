//! A per-cluster work queue of source keys with per-key exponential backoff: one queue and its
//! own workers per target cluster, so a dead follower only ever delays its own keys. Several
//! workers share a queue, and a key is never handed to two of them at once: a key added while it
//! is being reconciled waits until [`Queue::done`] (client-go's workqueue "dirty/processing" rule).
use crate::desired::Kind;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A source object, by kind and `namespace/name` in the source cluster. The names are shared
/// (`Arc<str>`): a key is cloned into every cluster's queue and the metrics on each event, and
/// at a cold start every source is queued in every cluster at once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKey {
    pub kind: Kind,
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl SourceKey {
    pub fn new(kind: Kind, namespace: &str, name: &str) -> Self {
        Self {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for SourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.kind.as_str(), self.namespace, self.name)
    }
}

/// Capacity an emptied map keeps (a full queue of 10,000 keys holds about 1 MiB).
const SHRINK_TO: usize = 64;

const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Cap for retries of a key that failed because its cluster was unavailable, and for the
/// worker's pause between attempts during such an outage: the cluster is tried at least this
/// often, so it is caught up within about this long of its return (the fault suite holds us
/// to 10 s).
pub const OUTAGE_RETRY_MAX: Duration = Duration::from_secs(2);

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

#[derive(Default)]
struct Inner {
    due: HashMap<SourceKey, Instant>,
    /// `due` ordered by time, so the next key is found without a scan of the whole queue.
    order: BTreeSet<(Instant, SourceKey)>,
    failures: HashMap<SourceKey, u32>,
    /// Keys handed out by `next` and not yet `done`.
    processing: HashSet<SourceKey>,
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

    /// Schedules `key` now (a pending later retry is brought forward).
    pub fn add(&self, key: SourceKey) {
        self.add_after(key, Duration::ZERO);
    }

    pub fn add_after(&self, key: SourceKey, delay: Duration) {
        let at = Instant::now() + delay;
        let mut g = self.lock();
        match g.due.get(&key).copied() {
            Some(old) if old <= at => {}
            old => {
                if let Some(old) = old {
                    g.order.remove(&(old, key.clone()));
                }
                g.order.insert((at, key.clone()));
                g.due.insert(key, at);
            }
        }
        drop(g);
        self.notify.notify_one();
    }

    /// Schedules a retry with the key's backoff (250 ms doubling to 10 s).
    pub fn retry(&self, key: SourceKey) -> Duration {
        let n = {
            let mut g = self.lock();
            let n = g.failures.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let delay = backoff(n);
        self.add_after(key, delay);
        delay
    }

    /// Like [`Queue::retry`] for a failure of the cluster rather than of the key: the key's
    /// backoff grows as usual but never past [`OUTAGE_RETRY_MAX`], so a returning cluster does not
    /// wait out a long per-key backoff.
    pub fn retry_outage(&self, key: SourceKey) -> Duration {
        let n = {
            let mut g = self.lock();
            let n = g.failures.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let delay = outage_pause(n);
        self.add_after(key, delay);
        delay
    }

    /// Clears the key's backoff after a success.
    pub fn forget(&self, key: &SourceKey) {
        let mut g = self.lock();
        g.failures.remove(key);
        if g.failures.is_empty() {
            // A cold start or an outage may have grown it to every key; give that back.
            g.failures.shrink_to(SHRINK_TO);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().due.len()
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

    /// Waits for the next due key that no other worker holds, removes it from the queue and
    /// marks it as being processed (call [`Queue::done`] afterwards).
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
                match first {
                    Some((k, at)) if at <= now => {
                        g.order.remove(&(at, k.clone()));
                        g.due.remove(&k);
                        if g.due.is_empty() {
                            g.due.shrink_to(SHRINK_TO);
                        }
                        g.processing.insert(k.clone());
                        // Another worker may take the next due key.
                        if !g.due.is_empty() {
                            self.notify.notify_one();
                        }
                        return k;
                    }
                    Some((_, at)) => Some(at),
                    None => None,
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

    fn key(n: &str) -> SourceKey {
        SourceKey {
            kind: Kind::ConfigMap,
            namespace: "ns".into(),
            name: n.into(),
        }
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(3), Duration::from_secs(1));
        assert_eq!(backoff(7), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
        assert_eq!(outage_pause(1), Duration::from_millis(250));
        assert_eq!(outage_pause(20), OUTAGE_RETRY_MAX);
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
            got.push(k.name.to_string());
        }
        assert_eq!(got, ["a", "b", "c", "d"]);
        assert!(q.is_empty());
        assert!(q.lock().order.is_empty());
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
