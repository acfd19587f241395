//! "These caches hold a full list", for any number of waiters.
//!
//! kube-runtime's `Store::wait_until_ready` wakes only one of several concurrent waiters (it
//! polls one oneshot receiver from many tasks), so readiness is tracked with watch channels.

#[derive(Clone, Debug, Default)]
pub struct Ready(Vec<tokio::sync::watch::Receiver<bool>>);

impl Ready {
    pub(crate) fn one(rx: tokio::sync::watch::Receiver<bool>) -> Ready {
        Ready(vec![rx])
    }

    /// Ready from the start (a cache that is never filled).
    pub fn now() -> Ready {
        let (tx, rx) = tokio::sync::watch::channel(true);
        // The value stays readable after the sender is gone; `wait` sees `true` first.
        drop(tx);
        Ready(vec![rx])
    }

    /// Ready when every one of `parts` is.
    pub fn all(parts: impl IntoIterator<Item = Ready>) -> Ready {
        Ready(parts.into_iter().flat_map(|r| r.0).collect())
    }

    /// Waits until every cache is ready; `false` if a cache's watch task ended first.
    pub async fn wait(&self) -> bool {
        for rx in &self.0 {
            if rx.clone().wait_for(|r| *r).await.is_err() {
                return false;
            }
        }
        true
    }

    pub fn is_ready(&self) -> bool {
        self.0.iter().all(|rx| *rx.borrow())
    }
}
