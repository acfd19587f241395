//! Logging set-up: `tracing` to stderr, plain or JSON; RUST_LOG wins, else kubed's `--v`.
//! Whatever the filter says, the HTTP/TLS stacks never log at trace level: there they dump
//! raw frames and headers, which would put Secret data and bearer tokens into the log.
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::prelude::*;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

/// Targets (crate prefixes) whose trace-level events are always dropped.
const WIRE_TARGETS: &[&str] = &[
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tower",
    "tokio_rustls",
];

/// The filter for klog verbosity `v` (kubed's `--v`): 0-3 info, 4-5 debug, 6+ trace.
pub fn level_for(v: Option<u8>) -> &'static str {
    match v.unwrap_or(0) {
        0..=3 => "info",
        4..=5 => "debug",
        _ => "trace",
    }
}

pub fn filter(rust_log: Option<&str>, v: Option<u8>) -> EnvFilter {
    rust_log
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| EnvFilter::new(level_for(v)))
}

/// `false` for trace events of the wire-level crates.
pub fn allowed(target: &str, level: &tracing::Level) -> bool {
    *level != tracing::Level::TRACE
        || !WIRE_TARGETS.iter().any(|t| {
            target == *t
                || target
                    .strip_prefix(t)
                    .is_some_and(|rest| rest.starts_with("::"))
        })
}

/// Installs the global subscriber (once, at start-up).
pub fn init(format: LogFormat, v: Option<u8>) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let env = filter(rust_log.as_deref(), v);
    let wire = filter_fn(|m| allowed(m.target(), m.level()));
    let ansi = std::io::stderr().is_terminal();
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let registry = tracing_subscriber::registry();
    let _ = match format {
        LogFormat::Plain => registry
            .with(layer.with_filter(env).with_filter(wire))
            .try_init(),
        LogFormat::Json => registry
            .with(
                layer
                    .json()
                    .flatten_event(true)
                    .with_filter(env)
                    .with_filter(wire),
            )
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn verbosity_levels() {
        let table = [
            (None, "info"),
            (Some(3), "info"),
            (Some(4), "debug"),
            (Some(6), "trace"),
        ];
        for (v, want) in table {
            assert_eq!(level_for(v), want, "{v:?}");
        }
    }

    #[test]
    fn wire_traces_are_dropped() {
        assert!(!allowed("hyper::proto::h1::io", &Level::TRACE));
        assert!(!allowed("h2", &Level::TRACE));
        assert!(allowed("hyper::client", &Level::DEBUG));
        assert!(allowed("hyperx", &Level::TRACE));
        assert!(allowed("sync_daemon::reconcile", &Level::TRACE));
    }
}
