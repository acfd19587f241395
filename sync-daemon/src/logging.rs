//! Logging set-up: `tracing` to stderr, plain or JSON; RUST_LOG wins, else kubed's `--v`.
//! Whatever the filter, the HTTP/TLS stacks are capped at debug: at trace they dump raw
//! frames, which would put Secret data and bearer tokens into the log.
use crate::opsargs::LogFormat;
use tracing_subscriber::EnvFilter;

/// Directives appended after the user's: they override the level for these targets only.
const WIRE_CAPS: &[&str] = &[
    "hyper=debug",
    "hyper_util=debug",
    "h2=debug",
    "rustls=debug",
    "tower=debug",
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
    let base = rust_log
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| level_for(v).to_string());
    let mut spec = base;
    for cap in WIRE_CAPS {
        spec.push(',');
        spec.push_str(cap);
    }
    EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new(level_for(v)))
}

/// Installs the global subscriber (once, at start-up).
pub fn init(format: LogFormat, v: Option<u8>) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = filter(rust_log.as_deref(), v);
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    let _ = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(
            filter(Some("trace"), None)
                .to_string()
                .contains("hyper=debug")
        );
    }
}
