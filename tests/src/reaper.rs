//! Guaranteed teardown: the shared testbed of a test binary, and the reaper (`testbed reap`), a
//! small process that waits for its parent (the test process) to end, however it ends, then
//! stops every process the testbed recorded and removes its temporary directory.
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::TestbedError;
use crate::procs::is_running;
use crate::state::State;
use crate::{Testbed, TestbedOptions, launch};

pub(crate) fn shared() -> &'static Testbed {
    static SHARED: OnceLock<Result<Testbed, String>> = OnceLock::new();
    let started = SHARED.get_or_init(|| {
        // Started on a thread with its own runtime: callers are often inside a test's runtime,
        // and the testbed holds nothing bound to a runtime.
        let start = || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot build a tokio runtime: {e}"))?;
            rt.block_on(Testbed::up(TestbedOptions::default_three(true)))
                .map_err(|e| error_chain(&e))
        };
        std::thread::scope(|s| {
            s.spawn(start)
                .join()
                .unwrap_or_else(|_| Err("the start-up thread panicked".to_string()))
        })
    });
    match started {
        Ok(tb) => tb,
        Err(e) => panic!("the shared testbed did not start: {e}"),
    }
}

/// An error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}

/// `testbed reap`: waits until the parent is gone, then tears the testbed in `dir` down.
pub fn reap(
    parent_pid: u32,
    parent_start: u64,
    dir: &Path,
    remove_dir: bool,
) -> Result<(), TestbedError> {
    while is_running(parent_pid, parent_start) {
        std::thread::sleep(Duration::from_millis(200));
    }
    tracing::info!(parent_pid, dir = %dir.display(), "parent gone, tearing the testbed down");
    let result = match State::load(dir) {
        Ok(state) => launch::teardown(&state),
        // Nothing recorded yet (the parent died very early): nothing to stop.
        Err(e) => {
            tracing::warn!(error = %e, "no state to tear down");
            Ok(())
        }
    };
    if remove_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}
