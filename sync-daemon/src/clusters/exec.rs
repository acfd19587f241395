//! One run of a kubeconfig exec credential plugin, as kube runs it (args, env, dropped env,
//! KUBERNETES_EXEC_INFO), but bounded: a deadline (`--exec-timeout`) after which the plugin's
//! whole process group is killed, and its stderr captured (not inherited into our log stream
//! raw) so it can be logged as one JSON-safe field.
use kube::config::{ExecConfig, ExecInteractiveMode};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// The default deadline of one plugin run: `kubeconfig-gen token` makes at most two AWS calls
/// (web identity, then the role), each bounded by its own 30 s default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// At most this much of the plugin's stderr is kept (its last bytes, where the error is).
const STDERR_LIMIT: usize = 2048;

static TIMEOUT: OnceLock<Duration> = OnceLock::new();

type FailureHook = Box<dyn Fn(&str) + Send + Sync>;
static ON_FAILURE: OnceLock<FailureHook> = OnceLock::new();

/// Called with the context's name after each failed plugin run (the daemon counts them in
/// `kcs_credential_refresh_failures_total`); the first call wins.
pub fn on_failure(hook: impl Fn(&str) + Send + Sync + 'static) {
    let _ = ON_FAILURE.set(Box::new(hook));
}

pub(crate) fn report_failure(context: &str) {
    if let Some(h) = ON_FAILURE.get() {
        h(context);
    }
}

/// Sets the deadline of every plugin run (`--exec-timeout`); the first call wins.
pub fn configure(timeout: Duration) {
    let _ = TIMEOUT.set(timeout);
}

/// The configured deadline of one plugin run.
pub fn timeout() -> Duration {
    *TIMEOUT.get().unwrap_or(&DEFAULT_TIMEOUT)
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecError {
    #[error("exec plugin has no command")]
    NoCommand,
    #[error("cannot run exec plugin {0}: {1}")]
    Start(String, String),
    #[error("exec plugin {command} failed ({status}){}", summary(stderr))]
    Failed {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("exec plugin {command} did not finish within {after:?} (--exec-timeout); killed")]
    TimedOut { command: String, after: Duration },
    #[error("exec plugin {0} printed no ExecCredential with a token")]
    Parse(String),
    #[error(
        "exec plugin {command} is backing off after {failures} failure(s), next run in {retry_in:?}: {last}"
    )]
    BackingOff {
        command: String,
        failures: u32,
        retry_in: Duration,
        last: String,
    },
}

/// `: <stderr's non-empty lines joined by " | ">` (at most its last 400 characters, where a
/// plugin's error usually is), or nothing.
fn summary(stderr: &str) -> String {
    let lines: Vec<&str> = (stderr.lines().map(str::trim))
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let all = lines.join(" | ");
    let skip = all.chars().count().saturating_sub(400);
    format!(": {}", all.chars().skip(skip).collect::<String>())
}

/// A bearer token from the plugin.
#[derive(Clone)]
pub struct Token {
    pub value: http::HeaderValue,
    /// `None`: no expiry given (static until a 401).
    pub expires: Option<SystemTime>,
}

/// The plugin's command name, for messages.
pub fn command(exec: &ExecConfig) -> String {
    exec.command.clone().unwrap_or_default()
}

/// Runs the plugin once, within `limit`. `context` names the cluster in the log line that
/// carries the plugin's stderr.
pub async fn run(exec: &ExecConfig, context: &str, limit: Duration) -> Result<Token, ExecError> {
    let name = exec.command.clone().ok_or(ExecError::NoCommand)?;
    let mut cmd = tokio::process::Command::new(&name);
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
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills what it started too (`sh -c`, aws, ...).
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|e| ExecError::Start(name.clone(), e.to_string()))?;
    let group = child.id();
    let out = match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(ExecError::Start(name, e.to_string())),
        Err(_) => {
            kill_group(group);
            return Err(ExecError::TimedOut {
                command: name,
                after: limit,
            });
        }
    };
    let stderr = tail(&out.stderr);
    if !stderr.trim().is_empty() {
        // One field, escaped by the log format (JSON included); never the token (stdout).
        tracing::debug!(cluster = %context, plugin = %name, stderr = %stderr.trim_end(), "exec plugin stderr");
    }
    if !out.status.success() {
        return Err(ExecError::Failed {
            command: name,
            status: out.status,
            stderr,
        });
    }
    parse(&out.stdout).ok_or(ExecError::Parse(name))
}

/// Kills the plugin's process group (the plugin itself is killed on drop as well).
fn kill_group(group: Option<u32>) {
    let pid = group
        .and_then(|g| i32::try_from(g).ok())
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// The last [`STDERR_LIMIT`] bytes of `bytes`, as text.
fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(STDERR_LIMIT);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// The token and expiry of an ExecCredential document.
fn parse(stdout: &[u8]) -> Option<Token> {
    let v: serde_json::Value = serde_saphyr::from_slice(stdout).ok()?;
    let token = v["status"]["token"].as_str().filter(|t| !t.is_empty())?;
    let mut value = http::HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    let expires = v["status"]["expirationTimestamp"]
        .as_str()
        .and_then(|s| s.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .map(SystemTime::from);
    Some(Token { value, expires })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(10);

    pub(crate) fn exec(script: &str) -> ExecConfig {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "sh",
            "args": ["-c", script],
            "interactiveMode": "Never",
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn plugin_output_becomes_a_sensitive_bearer_header() {
        let t = run(
            &exec(
                r#"printf '{"kind":"ExecCredential","status":{"token":"abc","expirationTimestamp":"2030-01-01T00:00:00Z"}}'"#,
            ),
            "c",
            LIMIT,
        )
        .await
        .unwrap();
        assert_eq!(t.value, "Bearer abc");
        assert!(t.value.is_sensitive());
        assert!(t.expires.is_some());
        let info = run(
            &exec(
                r#"printf '{"status":{"token":"%s"}}' "$(echo "$KUBERNETES_EXEC_INFO" | tr -d '"{}: ,' )""#,
            ),
            "c",
            LIMIT,
        )
        .await
        .unwrap();
        assert!(info.expires.is_none(), "no expiry: static until a 401");
        assert!(matches!(
            run(&exec("echo '{}'"), "c", LIMIT).await,
            Err(ExecError::Parse(_))
        ));
    }

    #[tokio::test]
    async fn a_failure_carries_the_last_stderr_line() {
        let e = run(
            &exec("echo noise >&2; echo 'error: AccessDenied' >&2; exit 3"),
            "c",
            LIMIT,
        )
        .await
        .err()
        .unwrap();
        assert!(matches!(e, ExecError::Failed { .. }));
        let msg = e.to_string();
        assert!(msg.ends_with(": noise | error: AccessDenied"), "{msg}");
    }

    #[tokio::test]
    async fn a_hung_plugin_is_killed_with_what_it_started() {
        let marker = format!("kcs-exec-test-{}", std::process::id());
        let started = std::time::Instant::now();
        let e = run(
            &exec(&format!("sh -c 'sleep 300; : {marker}' & wait")),
            "c",
            Duration::from_secs(1),
        )
        .await
        .err()
        .unwrap();
        assert!(matches!(e, ExecError::TimedOut { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // The plugin's child (`sh -c ...`, itself waiting on `sleep`) went with it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let left = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .filter(|c| String::from_utf8_lossy(c).contains(&marker))
            .count();
        assert_eq!(left, 0, "the plugin's children were killed");
    }
}
