//! Waiting on conditions with deadlines (never sleep-and-hope): the public `wait_for` for tests,
//! and the testbed's own readiness checks (TCP port, /readyz, ready file).
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::TestbedError;
use crate::procs::ProcRecord;

const POLL: Duration = Duration::from_millis(100);

/// Polls `f` until it returns `Some`, or panics after `deadline` naming `what` (test-only API).
pub async fn wait_for<F, Fut, T>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() >= end {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `f` until `Ok`, keeping the last error for the report; fails early when `proc` exits.
pub(crate) async fn poll<F, Fut, T>(
    what: &str,
    deadline: Duration,
    proc: Option<&ProcRecord>,
    log: &Path,
    mut f: F,
) -> Result<T, TestbedError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let end = Instant::now() + deadline;
    loop {
        let last = match f().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if let Some(p) = proc
            && !p.is_running()
        {
            return Err(TestbedError::Exited {
                what: what.to_string(),
                log: log.to_path_buf(),
            });
        }
        if Instant::now() >= end {
            return Err(TestbedError::NotReady {
                what: what.to_string(),
                secs: deadline.as_secs(),
                last,
                log: log.to_path_buf(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Succeeds once something accepts TCP connections on 127.0.0.1:`port`.
pub(crate) async fn tcp_open(port: u16) -> Result<(), String> {
    tokio::time::timeout(
        Duration::from_secs(1),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// GET /readyz with the admin client: Ok when the body is "ok".
pub(crate) async fn readyz(client: &kube::Client) -> Result<(), String> {
    let req = http::Request::get("/readyz")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let body = tokio::time::timeout(Duration::from_secs(5), client.request_text(req))
        .await
        .map_err(|_| "GET /readyz timed out".to_string())?
        .map_err(|e| format!("GET /readyz: {e}"))?;
    if body.trim() == "ok" {
        Ok(())
    } else {
        Err(format!("GET /readyz answered {body:?}"))
    }
}

/// Ok once the apiserver's bootstrap controller has created the `default` namespace, which
/// can come a few seconds after /readyz first says "ok".
pub(crate) async fn default_namespace(client: &kube::Client) -> Result<(), String> {
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    tokio::time::timeout(Duration::from_secs(5), api.get("default"))
        .await
        .map_err(|_| "GET namespace default timed out".to_string())?
        .map(|_| ())
        .map_err(|e| format!("GET namespace default: {e}"))
}

/// Ok once `path` exists.
pub(crate) async fn file_exists(path: PathBuf) -> Result<(), String> {
    if tokio::fs::try_exists(&path).await.unwrap_or(false) {
        Ok(())
    } else {
        Err(format!("{} does not exist yet", path.display()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_for_returns_the_first_some() {
        let mut n = 0;
        let v = wait_for("n to reach 3", Duration::from_secs(5), || {
            n += 1;
            let v = n;
            async move { (v >= 3).then_some(v) }
        })
        .await;
        assert_eq!(v, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after")]
    async fn wait_for_panics_at_the_deadline() {
        wait_for::<_, _, ()>("never", Duration::from_millis(200), || async { None }).await;
    }

    #[tokio::test]
    async fn poll_reports_the_last_error() {
        let err = poll::<_, _, ()>(
            "thing",
            Duration::from_millis(200),
            None,
            Path::new("x.log"),
            || async { Err("still broken".to_string()) },
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("thing") && text.contains("still broken"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn tcp_open_sees_a_listener() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(tcp_open(port).await.is_ok());
        drop(l);
        assert!(tcp_open(port).await.is_err());
    }
}
