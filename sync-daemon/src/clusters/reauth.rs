//! Exec-plugin credentials that are also renewed on a 401. kube-client renews an exec token
//! only by its `expirationTimestamp` (60 s ahead) and has no way to force a renewal, so a token
//! the API server rejects early (credentials revoked, a chained session cut short, clock skew)
//! would be sent until it expires — up to 14 minutes of 401s. This layer replaces kube's exec
//! handling for a context: it runs the plugin as kube does (args, env, KUBERNETES_EXEC_INFO),
//! renews 60 s before expiry like kube, and after a 401 runs the plugin again on the next request.
use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response, StatusCode};
use kube::config::{Config, ExecConfig, ExecInteractiveMode};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;
use tower::{Layer, Service};

/// Renew this long before the token's expiry (kube's margin).
const MARGIN: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("exec plugin has no command")]
    NoCommand,
    #[error("cannot run exec plugin {0}")]
    Start(String, #[source] std::io::Error),
    #[error("exec plugin {0} failed ({1})")]
    Failed(String, std::process::ExitStatus),
    #[error("exec plugin {0} printed no ExecCredential with a token")]
    Parse(String),
}

struct Token {
    value: HeaderValue,
    /// `None`: no expiry given (static until a 401).
    expires: Option<SystemTime>,
}

#[derive(Clone)]
pub struct ReauthLayer {
    exec: Arc<ExecConfig>,
    token: Arc<Mutex<Option<Token>>>,
    context: Arc<str>,
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
    Some(ReauthLayer {
        exec: Arc::new(exec),
        token: Arc::default(),
        context: context.into(),
    })
}

fn run_plugin(exec: &ExecConfig) -> Result<Token, ExecError> {
    let cmd_name = exec.command.clone().ok_or(ExecError::NoCommand)?;
    let mut cmd = std::process::Command::new(&cmd_name);
    cmd.args(exec.args.iter().flatten());
    for e in exec.env.iter().flatten() {
        if let (Some(n), Some(v)) = (e.get("name"), e.get("value")) {
            cmd.env(n, v);
        }
    }
    for n in exec.drop_env.iter().flatten() {
        cmd.env_remove(n);
    }
    let interactive = exec.interactive_mode != Some(ExecInteractiveMode::Never);
    let info = serde_json::json!({
        "apiVersion": exec.api_version,
        "kind": "ExecCredential",
        "spec": {"interactive": interactive},
    });
    cmd.env("KUBERNETES_EXEC_INFO", info.to_string());
    cmd.stdin(std::process::Stdio::null());
    cmd.stderr(std::process::Stdio::inherit());
    let out = cmd
        .output()
        .map_err(|e| ExecError::Start(cmd_name.clone(), e))?;
    if !out.status.success() {
        return Err(ExecError::Failed(cmd_name, out.status));
    }
    let v: serde_json::Value =
        serde_saphyr::from_slice(&out.stdout).map_err(|_| ExecError::Parse(cmd_name.clone()))?;
    let token = v["status"]["token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ExecError::Parse(cmd_name.clone()))?;
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| ExecError::Parse(cmd_name.clone()))?;
    value.set_sensitive(true);
    let expires = v["status"]["expirationTimestamp"]
        .as_str()
        .and_then(|s| s.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .map(SystemTime::from);
    Ok(Token { value, expires })
}

impl ReauthLayer {
    async fn header(&self) -> Result<HeaderValue, ExecError> {
        let mut g = self.token.lock().await;
        let fresh = g
            .as_ref()
            .is_some_and(|t| t.expires.is_none_or(|e| SystemTime::now() + MARGIN < e));
        if !fresh {
            let exec = self.exec.clone();
            let t = tokio::task::spawn_blocking(move || run_plugin(&exec))
                .await
                .map_err(|e| ExecError::Start("(task)".into(), std::io::Error::other(e)))??;
            tracing::debug!(cluster = %self.context, "exec plugin credentials renewed");
            *g = Some(t);
        }
        g.as_ref()
            .map(|t| t.value.clone())
            .ok_or_else(|| ExecError::Parse("(none)".into()))
    }

    async fn rejected(&self, sent: &HeaderValue) {
        let mut g = self.token.lock().await;
        if g.as_ref().is_some_and(|t| t.value == sent) {
            tracing::warn!(cluster = %self.context, "401 Unauthorized: the next request runs the exec plugin again");
            *g = None;
        }
    }
}

impl<S> Layer<S> for ReauthLayer {
    type Service = Reauth<S>;
    fn layer(&self, inner: S) -> Reauth<S> {
        Reauth {
            inner: Arc::new(Mutex::new(inner)),
            layer: self.clone(),
        }
    }
}

/// The service of [`ReauthLayer`] (the inner stack is shared behind a lock only to be polled
/// and called; the request itself runs unlocked).
pub struct Reauth<S> {
    inner: Arc<Mutex<S>>,
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
            let value = layer.header().await.map_err(Box::new)?;
            req.headers_mut()
                .insert(http::header::AUTHORIZATION, value.clone());
            let fut = {
                let mut svc = inner.lock().await;
                futures::future::poll_fn(|cx| svc.poll_ready(cx))
                    .await
                    .map_err(Into::into)?;
                svc.call(req)
            };
            let resp = fut.await.map_err(Into::into)?;
            if resp.status() == StatusCode::UNAUTHORIZED {
                layer.rejected(&value).await;
            }
            Ok(resp)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn exec(script: &str) -> ExecConfig {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "sh",
            "args": ["-c", script],
            "interactiveMode": "Never",
        }))
        .unwrap()
    }

    #[test]
    fn plugin_output_becomes_a_sensitive_bearer_header() {
        let t = run_plugin(&exec(
            r#"printf '{"kind":"ExecCredential","status":{"token":"abc","expirationTimestamp":"2030-01-01T00:00:00Z"}}'"#,
        ))
        .unwrap();
        assert_eq!(t.value, "Bearer abc");
        assert!(t.value.is_sensitive());
        assert!(t.expires.is_some());
        let info = run_plugin(&exec(
            r#"printf '{"status":{"token":"%s"}}' "$(echo "$KUBERNETES_EXEC_INFO" | tr -d '"{}: ,' )""#,
        ))
        .unwrap();
        assert!(info.expires.is_none(), "no expiry: static until a 401");
        assert!(matches!(
            run_plugin(&exec("echo '{}'")),
            Err(ExecError::Parse(_))
        ));
        assert!(matches!(
            run_plugin(&exec("exit 3")),
            Err(ExecError::Failed(..))
        ));
    }
}
