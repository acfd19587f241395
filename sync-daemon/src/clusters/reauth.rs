//! Exec-plugin credentials that are also renewed on a 401. kube-client renews an exec token
//! only by its `expirationTimestamp` (60 s ahead) and has no way to force a renewal, so a token
//! the API server rejects early (credentials revoked, a chained session cut short, clock skew)
//! would be sent until it expires — up to 14 minutes of 401s. This layer replaces kube's exec
//! handling for a context: it runs the plugin (see [`exec`]: a deadline, stderr captured),
//! renews 60 s before expiry (a quarter of a shorter token's lifetime) in the background while
//! the current token is still sent, runs the
//! plugin again after a 401, and backs off after failures (1 s doubling to 2 min) instead of
//! running a failing plugin for every request. One run at a time per cluster; requests that
//! need its result wait for it without holding any lock, and a hung plugin (killed at its
//! deadline) stalls only its own cluster.
use crate::clusters::exec::{self, ExecError, Token};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use http::{HeaderValue, Request, Response, StatusCode};
use kube::config::{Config, ExecConfig};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant, SystemTime};
use tower::{Layer, Service};

/// Renew this long before the token's expiry (kube's margin), or a quarter of the token's
/// lifetime when that is shorter (a 60 s margin on a 60 s token would run the plugin for every
/// request).
const MARGIN: Duration = Duration::from_secs(60);
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(120);

type Run = Shared<BoxFuture<'static, Result<Token, ExecError>>>;

#[derive(Default)]
struct State {
    token: Option<Token>,
    /// When the token is renewed in the background (see [`MARGIN`]); `None`: kept until a 401.
    renew_at: Option<SystemTime>,
    /// The plugin run in progress, if any (awaited by whoever needs its token).
    running: Option<Run>,
    /// Consecutive failed runs, the last one's message, and when the next run may start.
    failures: u32,
    last_error: String,
    retry_at: Option<Instant>,
}

#[derive(Clone)]
pub struct ReauthLayer {
    exec: Arc<ExecConfig>,
    state: Arc<Mutex<State>>,
    context: Arc<str>,
    limit: Duration,
}

/// Takes the exec entry out of `config` (so kube adds no auth layer of its own) and returns the
/// layer that authenticates instead; `None` for contexts without an exec plugin.
pub fn take(config: &mut Config, context: &str) -> Option<ReauthLayer> {
    // provideClusterInfo needs the cluster block in KUBERNETES_EXEC_INFO: left to kube.
    if config
        .auth_info
        .exec
        .as_ref()
        .is_none_or(|e| e.provide_cluster_info)
    {
        return None;
    }
    let exec = config.auth_info.exec.take()?;
    Some(ReauthLayer::new(exec, context, exec::timeout()))
}

/// What a request does about credentials, decided under the lock.
enum Next {
    Send(HeaderValue),
    Wait(Run),
}

impl ReauthLayer {
    fn new(exec: ExecConfig, context: &str, limit: Duration) -> Self {
        ReauthLayer {
            exec: Arc::new(exec),
            state: Arc::default(),
            context: context.into(),
            limit,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent: take it back.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn header(&self) -> Result<HeaderValue, ExecError> {
        let next = {
            let mut s = self.lock();
            let now = SystemTime::now();
            let backing_off = s.retry_at.is_some_and(|at| Instant::now() < at);
            let fresh = s.renew_at.is_none_or(|at| now < at);
            match s.token.as_ref().map(|t| (t.value.clone(), t.expires)) {
                // Fresh, or no expiry (kept until a 401).
                Some((v, _)) if fresh => Next::Send(v),
                // About to expire: renew in the background, send this one meanwhile.
                Some((v, Some(e))) if now < e => {
                    if !backing_off {
                        let _background = self.start(&mut s);
                    }
                    Next::Send(v)
                }
                _ if backing_off => return Err(self.backing_off(&s)),
                _ => Next::Wait(self.start(&mut s)),
            }
        };
        match next {
            Next::Send(v) => Ok(v),
            Next::Wait(run) => run.await.map(|t| t.value),
        }
    }

    /// The run in progress, else a new one (spawned, so it finishes even if nobody waits).
    fn start(&self, s: &mut State) -> Run {
        if let Some(r) = &s.running {
            return r.clone();
        }
        let this = self.clone();
        let run: Run = async move {
            let r = exec::run(&this.exec, &this.context, this.limit).await;
            this.finish(&r);
            r
        }
        .boxed()
        .shared();
        s.running = Some(run.clone());
        tokio::spawn(run.clone());
        run
    }

    fn finish(&self, r: &Result<Token, ExecError>) {
        let mut s = self.lock();
        s.running = None;
        match r {
            Ok(t) => {
                if s.failures > 0 {
                    tracing::info!(cluster = %self.context, failures = s.failures, "exec plugin credentials renewed after failures");
                } else {
                    tracing::debug!(cluster = %self.context, "exec plugin credentials renewed");
                }
                s.renew_at = t.expires.map(|e| renew_at(SystemTime::now(), e));
                s.token = Some(t.clone());
                s.failures = 0;
                s.retry_at = None;
            }
            Err(e) => {
                s.failures = s.failures.saturating_add(1);
                let wait = backoff(s.failures);
                s.retry_at = Some(Instant::now() + wait);
                s.last_error = e.to_string();
                exec::report_failure(&self.context);
                tracing::warn!(cluster = %self.context, failures = s.failures, retry_in_ms = wait.as_millis() as u64, error = %e, "exec plugin failed");
            }
        }
    }

    fn backing_off(&self, s: &State) -> ExecError {
        ExecError::BackingOff {
            command: exec::command(&self.exec),
            failures: s.failures,
            retry_in: (s.retry_at)
                .map(|at| at.saturating_duration_since(Instant::now()))
                .unwrap_or_default(),
            last: s.last_error.clone(),
        }
    }

    fn rejected(&self, sent: &HeaderValue) {
        let mut s = self.lock();
        if s.token.as_ref().is_some_and(|t| t.value == sent) {
            tracing::warn!(cluster = %self.context, "401 Unauthorized: the next request runs the exec plugin again");
            s.token = None;
        }
    }
}

/// When a token obtained at `now` and expiring at `expires` is renewed: [`MARGIN`] before its
/// expiry, or a quarter of its lifetime before when that is less.
fn renew_at(now: SystemTime, expires: SystemTime) -> SystemTime {
    let life = expires.duration_since(now).unwrap_or_default();
    expires.checked_sub(MARGIN.min(life / 4)).unwrap_or(expires)
}

/// The pause after `failures` consecutive failed runs: 1 s, 2 s, 4 s, ... at most 2 min.
fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    BACKOFF_MIN.saturating_mul(1 << exp).min(BACKOFF_MAX)
}

impl<S> Layer<S> for ReauthLayer {
    type Service = Reauth<S>;
    fn layer(&self, inner: S) -> Reauth<S> {
        Reauth {
            inner: Arc::new(tokio::sync::Mutex::new(inner)),
            layer: self.clone(),
        }
    }
}

/// The service of [`ReauthLayer`] (the inner stack is shared behind a lock only to be polled
/// and called; the request itself runs unlocked).
pub struct Reauth<S> {
    inner: Arc<tokio::sync::Mutex<S>>,
    layer: ReauthLayer,
}

impl<S> Clone for Reauth<S> {
    fn clone(&self) -> Self {
        Reauth {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Reauth<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tower::BoxError>,
    ReqB: Send + 'static,
    ResB: Send + 'static,
{
    type Response = Response<ResB>;
    type Error = tower::BoxError;
    type Future = BoxFuture<'static, Result<Response<ResB>, tower::BoxError>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is checked on the inner service when the request is sent.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let inner = self.inner.clone();
        let layer = self.layer.clone();
        Box::pin(async move {
            let value = layer
                .header()
                .await
                .map_err(|e| -> tower::BoxError { Box::new(e) })?;
            req.headers_mut()
                .insert(http::header::AUTHORIZATION, value.clone());
            let resp = crate::clusters::send(&inner, req).await?;
            if resp.status() == StatusCode::UNAUTHORIZED {
                layer.rejected(&value);
            }
            Ok(resp)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::clusters::exec::tests::exec;

    /// A plugin that counts its runs in `dir/n` and fails while `dir/fail` exists.
    fn counting(dir: &std::path::Path, expiry: &str) -> ExecConfig {
        let d = dir.display();
        exec(&format!(
            r#"echo x >> {d}/n; if [ -e {d}/fail ]; then echo 'error: AccessDenied' >&2; exit 1; fi
               printf '{{"status":{{"token":"t%s","expirationTimestamp":"{expiry}"}}}}' "$(wc -l < {d}/n)""#
        ))
    }

    fn runs(dir: &std::path::Path) -> usize {
        std::fs::read_to_string(dir.join("n"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    #[test]
    fn backoff_doubles_to_two_minutes() {
        let secs: Vec<u64> = (1..=9).map(|f| backoff(f).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 120, 120]);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[tokio::test]
    async fn one_run_for_concurrent_requests_and_a_backoff_after_a_failure() {
        let dir = tempdir();
        let layer = ReauthLayer::new(
            counting(&dir, "2099-01-01T00:00:00Z"),
            "c",
            Duration::from_secs(10),
        );
        let all = futures::future::join_all((0..8).map(|_| layer.header())).await;
        assert!(
            all.iter()
                .all(|r| r.as_ref().is_ok_and(|v| v == "Bearer t1"))
        );
        assert_eq!(runs(&dir), 1, "eight requests, one run");
        // A 401 on that token: the next request runs the plugin again.
        layer.rejected(&HeaderValue::from_static("Bearer t1"));
        std::fs::write(dir.join("fail"), "").unwrap();
        let e = layer.header().await.unwrap_err();
        assert!(e.to_string().ends_with("error: AccessDenied"), "{e}");
        assert_eq!(runs(&dir), 2);
        // Within the backoff: refused at once, without running the plugin.
        let e = layer.header().await.unwrap_err();
        assert!(
            matches!(e, ExecError::BackingOff { failures: 1, .. }),
            "{e}"
        );
        assert_eq!(runs(&dir), 2);
        // After it, a successful run resets the count.
        std::fs::remove_file(dir.join("fail")).unwrap();
        tokio::time::sleep(BACKOFF_MIN + Duration::from_millis(100)).await;
        assert_eq!(layer.header().await.unwrap(), "Bearer t3");
        assert_eq!(layer.lock().failures, 0);
    }

    #[tokio::test]
    async fn a_token_about_to_expire_is_sent_while_it_is_renewed() {
        let dir = tempdir();
        // A 4 s token: renewed a quarter of its lifetime (1 s) before it expires.
        let soon = k8s_openapi::jiff::Timestamp::now() + std::time::Duration::from_secs(4);
        let layer = ReauthLayer::new(
            counting(&dir, &soon.to_string()),
            "c",
            Duration::from_secs(10),
        );
        assert_eq!(layer.header().await.unwrap(), "Bearer t1");
        // Fresh: sent as it is, no run.
        assert_eq!(layer.header().await.unwrap(), "Bearer t1");
        assert_eq!(runs(&dir), 1);
        tokio::time::sleep(Duration::from_millis(3200)).await;
        // Within the margin: the request does not wait, it sends t1 and starts a renewal.
        assert_eq!(layer.header().await.unwrap(), "Bearer t1");
        let run = layer.lock().running.clone();
        if let Some(run) = run {
            run.await.unwrap();
        }
        assert_eq!(runs(&dir), 2);
        assert_eq!(layer.lock().token.as_ref().unwrap().value, "Bearer t2");
    }

    #[test]
    fn the_margin_is_a_minute_or_a_quarter_of_a_short_lifetime() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let s = Duration::from_secs;
        assert_eq!(renew_at(now, now + s(14 * 60)), now + s(13 * 60));
        assert_eq!(renew_at(now, now + s(20)), now + s(15));
        assert_eq!(renew_at(now, now - s(5)), now - s(5));
    }

    fn tempdir() -> std::path::PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("kcs-reauth-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
