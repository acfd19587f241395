//! Client-side flow control per cluster, a layer in front of every request of a cluster's
//! clients (request and watch client share one state).
//!
//! By default there is no fixed request rate: a follower's API server says when it is too busy.
//! Every supported version (1.20+) runs API Priority and Fairness, which answers a request it
//! cannot seat or queue with 429 and `Retry-After`. The layer follows it like TCP follows loss:
//! requests in flight (watches excepted) are limited by a window that grows by one per window's
//! worth of answered requests up to [`WINDOW_MAX`] and halves on each 429 (at least 1), and the
//! whole cluster waits the `Retry-After` (capped at [`PAUSE_MAX`]) before its next request. The
//! refused request is sent again (at most [`RETRIES`] times, when its body can be replayed; then
//! the 429 goes to the caller, whose queue pauses the cluster). A fixed token bucket (kubed's
//! `--qps`/`--burst`, which kubed sets to 1e6, i.e. off) is added only when `--qps` is given.
//! tower's RateLimit has no burst, pause or window, hence this small layer.
use futures::future::BoxFuture;
use http::{Request, Response, StatusCode};
use kube::client::Body;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, Service};

/// `--burst` when only `--qps` is given.
pub const DEFAULT_BURST: u32 = 100;
/// Times a request refused with 429 is sent again.
const RETRIES: u32 = 3;
/// A 429 without a usable `Retry-After` pauses this long (what API Priority and Fairness sends).
const PAUSE_DEFAULT: Duration = Duration::from_secs(1);
/// The longest pause one 429 causes, whatever it asks for.
const PAUSE_MAX: Duration = Duration::from_secs(10);
/// The largest window of requests in flight (above what `--workers` ever sends at once).
const WINDOW_MAX: f64 = 64.0;

/// `None`: no fixed rate (the default).
static LIMITS: OnceLock<Option<(f32, u32)>> = OnceLock::new();

/// Sets the process-wide limits (from the flags, once at start-up; later calls are ignored).
/// A fixed rate only with `qps`; `burst` alone changes nothing.
pub fn configure(qps: Option<f32>, burst: Option<u32>) {
    let limits = qps
        .filter(|q| q.is_finite() && *q > 0.0)
        .map(|q| (q, burst.filter(|b| *b > 0).unwrap_or(DEFAULT_BURST)));
    let _ = LIMITS.set(limits);
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

struct State {
    /// `Some` with `--qps`.
    bucket: Option<Bucket>,
    qps: f64,
    burst: f64,
    /// No request of this cluster goes before this (after a 429).
    paused_until: Option<Instant>,
    /// Requests (not watches) allowed in flight, and those in flight.
    window: f64,
    in_flight: u32,
}

#[derive(Clone)]
pub struct RateLimitLayer {
    state: Arc<Mutex<State>>,
    /// Woken when a request leaves the window.
    freed: Arc<tokio::sync::Notify>,
}

/// A place in the window, given back when dropped (also when the request is abandoned).
struct Permit(RateLimitLayer);

impl Drop for Permit {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        drop(s);
        self.0.freed.notify_waiters();
    }
}

impl RateLimitLayer {
    /// One state, shared by every client of one cluster.
    pub fn new() -> Self {
        let limits = *LIMITS.get_or_init(|| None);
        Self::with(limits)
    }

    fn with(limits: Option<(f32, u32)>) -> Self {
        let (qps, burst) = limits.unwrap_or((0.0, 0));
        RateLimitLayer {
            state: Arc::new(Mutex::new(State {
                bucket: limits.map(|_| Bucket {
                    tokens: f64::from(burst),
                    last: Instant::now(),
                }),
                qps: f64::from(qps),
                burst: f64::from(burst),
                paused_until: None,
                window: WINDOW_MAX,
                in_flight: 0,
            })),
            freed: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Waits for a place in the window.
    async fn enter(&self) -> Permit {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut s = self.lock();
                if f64::from(s.in_flight) < s.window.floor() {
                    s.in_flight += 1;
                    return Permit(self.clone());
                }
            }
            freed.await;
        }
    }

    /// An answer other than 429: the window grows by one per window of answers.
    fn answered(&self) {
        let mut s = self.lock();
        s.window = (s.window + 1.0 / s.window).min(WINDOW_MAX);
    }

    /// A 429: the window halves (from what was in flight, if less), at least 1.
    fn refused(&self) {
        let mut s = self.lock();
        let from = s.window.min(f64::from(s.in_flight.max(1)));
        s.window = (from / 2.0).max(1.0);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long to wait before this request may go (0: now); takes a token when a rate is set.
    fn reserve(&self) -> Duration {
        let mut s = self.lock();
        let now = Instant::now();
        let paused = s
            .paused_until
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
        let (qps, burst) = (s.qps, s.burst);
        let Some(b) = s.bucket.as_mut() else {
            return paused;
        };
        let refill = now.duration_since(b.last).as_secs_f64() * qps;
        b.tokens = (b.tokens + refill).min(burst);
        b.last = now;
        b.tokens -= 1.0; // may go negative: later callers queue behind
        let rate = match b.tokens >= 0.0 {
            true => Duration::ZERO,
            false => Duration::from_secs_f64(-b.tokens / qps),
        };
        rate.max(paused)
    }

    /// A 429: every request of the cluster waits `pause` from now (a longer pause stands).
    fn pause(&self, pause: Duration) {
        let until = Instant::now() + pause;
        let mut s = self.lock();
        if s.paused_until.is_none_or(|u| u < until) {
            s.paused_until = Some(until);
        }
    }
}

impl Default for RateLimitLayer {
    fn default() -> Self {
        Self::new()
    }
}

/// The pause a 429 asks for: `Retry-After` in seconds (the form the API server sends), else
/// [`PAUSE_DEFAULT`]; at most [`PAUSE_MAX`].
fn retry_after<B>(r: &Response<B>) -> Duration {
    let asked = (r.headers().get(http::header::RETRY_AFTER))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(PAUSE_DEFAULT);
    asked.clamp(Duration::from_millis(100), PAUSE_MAX)
}

/// A watch holds its connection open: it takes no place in the window.
fn is_watch<B>(req: &Request<B>) -> bool {
    (req.uri().query().unwrap_or_default())
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1")
}

/// A copy of `req` to send again after a 429 (`None`: its body cannot be replayed).
fn replay(req: &Request<Body>) -> Option<Request<Body>> {
    let mut copy = Request::new(req.body().try_clone()?);
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
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

impl<S, B> Service<Request<Body>> for RateLimited<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tower::BoxError>,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = tower::BoxError;
    type Future = BoxFuture<'static, Result<Response<B>, tower::BoxError>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let layer = self.layer.clone();
        Box::pin(async move {
            let mut req = req;
            let mut attempt = 0;
            loop {
                let wait = layer.reserve();
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                let again = (attempt < RETRIES).then(|| replay(&req)).flatten();
                let permit = match is_watch(&req) {
                    true => None,
                    false => Some(layer.enter().await),
                };
                let res = crate::clusters::send(&inner, req).await?;
                if res.status() != StatusCode::TOO_MANY_REQUESTS {
                    layer.answered();
                    return Ok(res);
                }
                layer.refused();
                drop(permit);
                let pause = retry_after(&res);
                layer.pause(pause);
                let Some(next) = again else {
                    return Ok(res);
                };
                attempt += 1;
                tracing::debug!(
                    attempt,
                    pause_ms = pause.as_millis() as u64,
                    "429 Too Many Requests: the cluster's requests wait, then this one is sent again"
                );
                req = next;
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn burst_then_qps() {
        let l = RateLimitLayer::with(Some((10.0, 3)));
        let waits: Vec<u128> = (0..5).map(|_| l.reserve().as_millis()).collect();
        assert_eq!(&waits[..3], &[0, 0, 0], "the burst goes at once");
        assert!((90..=100).contains(&waits[3]), "{waits:?}");
        assert!((190..=200).contains(&waits[4]), "{waits:?}");
    }

    #[test]
    fn no_fixed_rate_by_default() {
        let l = RateLimitLayer::with(None);
        assert!((0..10_000).all(|_| l.reserve().is_zero()));
        l.pause(Duration::from_secs(2));
        let w = l.reserve();
        assert!(
            w > Duration::from_millis(1900) && w <= Duration::from_secs(2),
            "{w:?}"
        );
    }

    #[tokio::test]
    async fn the_window_halves_on_a_429_and_grows_back() {
        let l = RateLimitLayer::with(None);
        let permits: Vec<Permit> = futures::future::join_all((0..8).map(|_| l.enter())).await;
        l.refused();
        assert_eq!(l.lock().window, 4.0, "half of what was in flight");
        drop(permits);
        let held: Vec<Permit> = futures::future::join_all((0..4).map(|_| l.enter())).await;
        let fifth = tokio::time::timeout(Duration::from_millis(50), l.enter()).await;
        assert!(fifth.is_err(), "the window is full");
        // About one more per window's worth (4) of answers.
        for _ in 0..5 {
            l.answered();
        }
        assert_eq!(l.lock().window.floor(), 5.0);
        let fifth = tokio::time::timeout(Duration::from_millis(50), l.enter()).await;
        assert!(fifth.is_ok(), "one more fits");
        drop(held);
        for _ in 0..10 {
            l.refused();
        }
        assert_eq!(l.lock().window, 1.0, "never below one");
        assert!(is_watch(
            &Request::get("/api/v1/configmaps?labelSelector=a&watch=true")
                .body(())
                .unwrap()
        ));
        assert!(!is_watch(
            &Request::get("/api/v1/configmaps?limit=500")
                .body(())
                .unwrap()
        ));
    }

    #[test]
    fn retry_after_is_read_and_capped() {
        let r = |v: Option<&str>| {
            let mut b = Response::builder().status(429);
            if let Some(v) = v {
                b = b.header("Retry-After", v);
            }
            retry_after(&b.body(()).unwrap())
        };
        assert_eq!(r(Some("3")), Duration::from_secs(3));
        assert_eq!(r(Some("0")), Duration::from_millis(100));
        assert_eq!(r(Some("3600")), PAUSE_MAX);
        assert_eq!(r(Some("Wed, 21 Oct 2015 07:28:00 GMT")), PAUSE_DEFAULT);
        assert_eq!(r(None), PAUSE_DEFAULT);
    }

    /// Answers 429 (Retry-After: 0) `refusals` times, then 200; counts the calls.
    #[derive(Clone)]
    struct Busy {
        calls: Arc<AtomicU32>,
        refusals: u32,
    }

    impl Service<Request<Body>> for Busy {
        type Response = Response<()>;
        type Error = tower::BoxError;
        type Future = BoxFuture<'static, Result<Response<()>, tower::BoxError>>;
        fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Request<Body>) -> Self::Future {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let status = if n < self.refusals { 429 } else { 200 };
            let res = Response::builder()
                .status(status)
                .header("Retry-After", "0")
                .body(());
            Box::pin(async move { res.map_err(Into::into) })
        }
    }

    #[tokio::test]
    async fn a_429_is_sent_again_after_the_pause_then_given_up() {
        let post = || {
            Request::post("/api/v1/namespaces/a/configmaps")
                .body(Body::from(b"{}".to_vec()))
                .unwrap()
        };
        let calls = Arc::new(AtomicU32::new(0));
        let busy = |refusals| Busy {
            calls: calls.clone(),
            refusals,
        };
        let mut svc = RateLimitLayer::with(None).layer(busy(2));
        let res = svc.call(post()).await.unwrap();
        assert_eq!(
            (res.status(), calls.load(Ordering::SeqCst)),
            (StatusCode::OK, 3)
        );
        calls.store(0, Ordering::SeqCst);
        let mut svc = RateLimitLayer::with(None).layer(busy(100));
        let res = svc.call(post()).await.unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(calls.load(Ordering::SeqCst), RETRIES + 1, "bounded");
    }
}
