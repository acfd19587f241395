//! The one way Events leave the daemon (`events.k8s.io/v1`, on the source object): Warning
//! problems from reconcile, `Synced` batches and `FollowerUnreachable` from the notices. A dry run
//! logs instead of writing; a standby writes nothing.
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Event notes are capped at 1 KiB by the API server.
const NOTE_MAX: usize = 1000;

#[derive(Clone)]
pub struct EventSink {
    recorder: Recorder,
    dry_run: bool,
    /// `false` while this replica is a standby (a flag, not a receiver of the lease's channel:
    /// the lease is released when the last receiver goes).
    writing: Arc<AtomicBool>,
}

impl EventSink {
    /// Events recorded through `client` (the source cluster) by controller `kubed-cross-sync`
    /// (instance `$POD_NAME`).
    pub fn new(client: kube::Client, dry_run: bool, writing: Arc<AtomicBool>) -> Self {
        let reporter = Reporter {
            controller: "kubed-cross-sync".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        EventSink {
            recorder: Recorder::new(client, reporter),
            dry_run,
            writing,
        }
    }

    /// A Warning Event with `reason` and `note` (truncated to what the API server accepts).
    pub async fn warning(&self, reference: &ObjectReference, reason: &str, note: &str) {
        let ev = Event {
            type_: EventType::Warning,
            reason: reason.to_string(),
            note: Some(truncate(note, NOTE_MAX)),
            action: "Sync".into(),
            secondary: None,
        };
        self.publish(reference, &ev).await;
    }

    /// Publishes `ev` on `reference`; a failure is logged (an Event is never worth a retry).
    pub async fn publish(&self, reference: &ObjectReference, ev: &Event) {
        if !self.writing.load(Ordering::Relaxed) {
            return; // a standby writes nothing, Events included
        }
        if self.dry_run {
            tracing::info!(reason = %ev.reason, source = ?reference.name, "dry run: would publish event");
            return;
        }
        if let Err(e) = self.recorder.publish(ev, reference).await {
            tracing::warn!(reason = %ev.reason, source = ?reference.name, error = %crate::chain(&e), "cannot publish event");
        }
    }
}

/// The longest prefix of `s` within `max` bytes that ends on a character boundary.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn notes_are_cut_on_a_character_boundary() {
        assert_eq!(super::truncate("abc", 5), "abc");
        assert_eq!(super::truncate("abcdef", 3), "abc");
        assert_eq!(super::truncate("aé", 2), "a");
    }
}
