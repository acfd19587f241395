//! Client-side rate limit per cluster (kubed's `--qps`/`--burst`, which kubed sets to 1e6, i.e.
//! off): a token bucket in front of every request of a cluster's clients. The daemon makes no
//! request per event, so the limit only matters in storms (a mass relabel, a resync of
//! thousands of sources); it keeps one daemon from flooding a follower's API server.
//! tower's RateLimit has no burst and needs `&mut` readiness per clone, hence this small layer.
use futures::future::BoxFuture;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, Service};

pub const DEFAULT_QPS: f32 = 50.0;
pub const DEFAULT_BURST: u32 = 100;

static LIMITS: OnceLock<(f32, u32)> = OnceLock::new();

/// Sets the process-wide limits (from the flags, once at start-up; later calls are ignored).
pub fn configure(qps: Option<f32>, burst: Option<u32>) {
    let qps = qps
        .filter(|q| q.is_finite() && *q > 0.0)
        .unwrap_or(DEFAULT_QPS);
    let burst = burst.filter(|b| *b > 0).unwrap_or(DEFAULT_BURST);
    let _ = LIMITS.set((qps, burst));
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Clone)]
pub struct RateLimitLayer {
    qps: f64,
    burst: f64,
    bucket: Arc<Mutex<Bucket>>,
}

impl RateLimitLayer {
    /// One bucket, shared by every client of one cluster.
    pub fn new() -> Self {
        let (qps, burst) = *LIMITS.get_or_init(|| (DEFAULT_QPS, DEFAULT_BURST));
        RateLimitLayer {
            qps: f64::from(qps),
            burst: f64::from(burst),
            bucket: Arc::new(Mutex::new(Bucket {
                tokens: f64::from(burst),
                last: Instant::now(),
            })),
        }
    }

    /// How long to wait before this request may go (0: now); takes the token.
    fn reserve(&self) -> Duration {
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(b.last).as_secs_f64() * self.qps;
        b.tokens = (b.tokens + refill).min(self.burst);
        b.last = now;
        b.tokens -= 1.0; // may go negative: later callers queue behind
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / self.qps)
        }
    }
}

impl Default for RateLimitLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;
    fn layer(&self, inner: S) -> RateLimited<S> {
        RateLimited {
            inner: Arc::new(tokio::sync::Mutex::new(inner)),
            layer: self.clone(),
        }
    }
}

pub struct RateLimited<S> {
    inner: Arc<tokio::sync::Mutex<S>>,
    layer: RateLimitLayer,
}

impl<S, Req> Service<Req> for RateLimited<S>
where
    S: Service<Req> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tower::BoxError>,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future = BoxFuture<'static, Result<S::Response, tower::BoxError>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let inner = self.inner.clone();
        let wait = self.layer.reserve();
        Box::pin(async move {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let fut = {
                let mut svc = inner.lock().await;
                futures::future::poll_fn(|cx| svc.poll_ready(cx))
                    .await
                    .map_err(Into::into)?;
                svc.call(req)
            };
            fut.await.map_err(Into::into)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_qps() {
        let l = RateLimitLayer {
            qps: 10.0,
            burst: 3.0,
            bucket: Arc::new(Mutex::new(Bucket {
                tokens: 3.0,
                last: Instant::now(),
            })),
        };
        let waits: Vec<u128> = (0..5).map(|_| l.reserve().as_millis()).collect();
        assert_eq!(&waits[..3], &[0, 0, 0], "the burst goes at once");
        assert!((90..=100).contains(&waits[3]), "{waits:?}");
        assert!((190..=200).contains(&waits[4]), "{waits:?}");
    }
}
