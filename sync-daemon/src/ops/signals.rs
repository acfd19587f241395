//! SIGTERM and SIGINT, listened for once for the life of the process.
//!
//! Tokio replaces the default action of a signal the first time anyone listens for it, and a
//! signal that arrives while nobody listens is dropped. Listening afresh inside each turn of a
//! `select!` loop therefore loses a SIGTERM that lands between two turns (or while the loop's
//! other branches win the poll), and the pod then waits for its SIGKILL. So the listeners are
//! made here, once, before anything else starts, and their outcome is kept in a watch channel
//! that every waiter reads.
use tokio::sync::watch;

/// Starts listening now; the receiver turns `true` on the first SIGTERM or SIGINT and stays so.
pub fn stop_requested() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    let wait = listen();
    tokio::spawn(async move {
        wait.await;
        tracing::info!("stop requested by signal");
        let _ = tx.send(true);
    });
    rx
}

/// Registers the listeners before returning (not at the first poll), so that nothing is missed
/// between this call and the first wait.
#[cfg(unix)]
fn listen() -> futures::future::BoxFuture<'static, ()> {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => Box::pin(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the daemon");
            Box::pin(async {
                let _ = tokio::signal::ctrl_c().await;
            })
        }
    }
}

#[cfg(not(unix))]
fn listen() -> futures::future::BoxFuture<'static, ()> {
    Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Resolves once a stop was requested (at once when it already was). Cancel-safe.
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        // The listener task is gone (the runtime is shutting down): nothing will ask again.
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A signal sent while no one is polling is still seen by a waiter that starts afterwards.
    #[tokio::test]
    async fn a_signal_before_the_wait_is_kept() {
        let mut rx = stop_requested();
        tokio::task::yield_now().await;
        // Our own process; the listener above has replaced SIGINT's default action.
        let pid = std::process::id();
        let status = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        // Let the signal land while nothing waits on the receiver.
        tokio::time::sleep(Duration::from_millis(200)).await;
        tokio::time::timeout(Duration::from_secs(5), stopped(&mut rx))
            .await
            .expect("the stop is seen");
        assert!(*rx.borrow());
    }
}
