//! Reading an apiserver's JSON audit log (one event per request at level Metadata, written at
//! ResponseComplete; a watch is logged when it ends): the events, requests counted per verb and
//! resource, the writes of the daemon, who wrote an object. Reads only what was appended since a
//! mark, so repeated reads of a growing log stay cheap. Parsing is pure.
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The userAgent prefix of sync-daemon's requests: audit events are attributed to it by this.
pub const DAEMON_AGENT: &str = "kubed-cross-sync/";

/// The fields of one audit event the harness looks at (empty when the event lacks them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    pub verb: String,
    pub user_agent: String,
    pub username: String,
    /// None for non-resource requests (/version, /healthz, ...).
    pub resource: Option<String>,
    pub namespace: String,
    pub name: String,
    pub code: Option<u64>,
    /// The request's path and query (label selectors included).
    pub uri: String,
}

impl Event {
    /// One line of the log; None for anything that is not a JSON object.
    pub fn parse(line: &str) -> Option<Event> {
        let ev: Value = serde_json::from_str(line).ok()?;
        if !ev.is_object() {
            return None;
        }
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        Some(Event {
            verb: text(&ev["verb"]),
            user_agent: text(&ev["userAgent"]),
            username: text(&ev["user"]["username"]),
            resource: ev["objectRef"]["resource"].as_str().map(str::to_string),
            namespace: text(&ev["objectRef"]["namespace"]),
            name: text(&ev["objectRef"]["name"]),
            code: ev["responseStatus"]["code"].as_u64(),
            uri: text(&ev["requestURI"]),
        })
    }

    /// create, update, patch or delete (server-side apply is a patch).
    pub fn is_object_write(&self) -> bool {
        ["create", "update", "patch", "delete"].contains(&self.verb.as_str())
    }
}

/// Every event in `text` (lines that do not parse are skipped).
pub fn parse(text: &str) -> Vec<Event> {
    text.lines().filter_map(Event::parse).collect()
}

/// Every event of the log at `path` so far (none when it does not exist yet).
pub fn read(path: &Path) -> Vec<Event> {
    parse(&std::fs::read_to_string(path).unwrap_or_default())
}

/// The daemon's writes (create, update, patch, delete) in namespaces `in_scope` accepts, as
/// "verb resource ns/name" lines.
pub fn daemon_writes(events: &[Event], in_scope: &dyn Fn(&str) -> bool) -> Vec<String> {
    events
        .iter()
        .filter(|e| {
            e.user_agent.starts_with(DAEMON_AGENT) && e.is_object_write() && in_scope(&e.namespace)
        })
        .map(|e| {
            let resource = e.resource.as_deref().unwrap_or_default();
            format!("{} {resource} {}/{}", e.verb, e.namespace, e.name)
        })
        .collect()
}

/// The users whose create, update or patch of `resource`/`name` succeeded, sorted, once each.
pub fn writers(events: &[Event], resource: &str, name: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| {
            ["create", "update", "patch"].contains(&e.verb.as_str())
                && e.resource.as_deref() == Some(resource)
                && e.name == name
                && e.code.is_some_and(|c| c < 300)
        })
        .map(|e| e.username.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Requests per (verb, resource), e.g. ("patch", "configmaps").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts(pub BTreeMap<(String, String), u64>);

impl Counts {
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
    pub fn verb(&self, verb: &str) -> u64 {
        self.0
            .iter()
            .filter(|((v, _), _)| v == verb)
            .map(|(_, n)| n)
            .sum()
    }
    /// Requests for API resources (not /version, /healthz and other non-resource paths).
    pub fn resource_requests(&self) -> u64 {
        self.0
            .iter()
            .filter(|((_, r), _)| r != "-")
            .map(|(_, n)| n)
            .sum()
    }
    /// Writes: create, update, patch, delete, deletecollection.
    pub fn writes(&self) -> u64 {
        ["create", "update", "patch", "delete", "deletecollection"]
            .iter()
            .map(|v| self.verb(v))
            .sum()
    }
    /// The events of clients whose userAgent starts with `agent`, by (verb, resource); "-" for
    /// non-resource requests, "?" for an event without a verb.
    pub fn of(events: &[Event], agent: &str) -> Counts {
        let mut out = Counts::default();
        for e in events.iter().filter(|e| e.user_agent.starts_with(agent)) {
            let verb = if e.verb.is_empty() { "?" } else { &e.verb };
            let resource = e.resource.as_deref().unwrap_or("-");
            *out.0
                .entry((verb.to_string(), resource.to_string()))
                .or_default() += 1;
        }
        out
    }

    pub fn add(&mut self, other: &Counts) {
        for (k, n) in &other.0 {
            *self.0.entry(k.clone()).or_default() += n;
        }
    }
    /// `verb resource ×n, …` sorted by count, for the report.
    pub fn describe(&self) -> String {
        let mut v: Vec<_> = self.0.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        v.iter()
            .map(|((verb, res), n)| format!("{verb} {res} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Counts the events in `text` (whole lines only) whose userAgent starts with `agent`.
pub fn count(text: &str, agent: &str) -> Counts {
    Counts::of(&parse(text), agent)
}

/// A position in one audit log; `take_events` and `take` return what was appended since the mark
/// and move it.
pub struct Mark {
    path: PathBuf,
    offset: u64,
}

impl Mark {
    /// Marks the current end of the log (0 if it does not exist yet).
    pub fn now(path: &Path) -> Mark {
        let offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Mark {
            path: path.to_path_buf(),
            offset,
        }
    }

    /// The events of the complete lines appended since the mark; moves the mark past them.
    pub fn take_events(&mut self) -> std::io::Result<Vec<Event>> {
        let mut f = std::fs::File::open(&self.path)?;
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        self.offset += complete as u64;
        Ok(parse(&String::from_utf8_lossy(&buf[..complete])))
    }

    /// Counts the complete lines appended since the mark by clients whose userAgent starts
    /// with `agent`, and moves the mark past them.
    pub fn take(&mut self, agent: &str) -> std::io::Result<Counts> {
        Ok(Counts::of(&self.take_events()?, agent))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const LOG: &str = r#"{"kind":"Event","stage":"ResponseComplete","verb":"list","userAgent":"kubed-cross-sync/0.1.0","objectRef":{"resource":"configmaps"}}
{"kind":"Event","stage":"ResponseComplete","verb":"patch","userAgent":"kubed-cross-sync/0.1.0","objectRef":{"resource":"configmaps","namespace":"a","name":"x"}}
{"kind":"Event","stage":"ResponseComplete","verb":"patch","userAgent":"kube-rs/1","objectRef":{"resource":"configmaps"}}
{"kind":"Event","stage":"ResponseComplete","verb":"get","userAgent":"kubed-cross-sync/0.1.0","requestURI":"/readyz"}
not json
"#;

    #[test]
    fn counts_by_agent_verb_and_resource() {
        let c = count(LOG, "kubed-cross-sync/");
        assert_eq!(c.total(), 3);
        assert_eq!(c.verb("patch"), 1);
        assert_eq!(c.writes(), 1);
        assert_eq!(c.0.get(&("get".into(), "-".into())), Some(&1));
        assert_eq!(
            c.describe(),
            "get - ×1, list configmaps ×1, patch configmaps ×1"
        );
    }

    #[test]
    fn daemon_writes_and_writers_read_the_object_and_the_user() {
        let text = r#"{"verb":"patch","userAgent":"kubed-cross-sync/0.1.0","user":{"username":"kubed-follower:p"},"objectRef":{"resource":"configmaps","namespace":"a","name":"x"},"responseStatus":{"code":200}}
{"verb":"create","userAgent":"kubed-cross-sync/0.1.0","user":{"username":"kubed-follower:p"},"objectRef":{"resource":"configmaps","namespace":"b","name":"x"},"responseStatus":{"code":409}}
{"verb":"get","userAgent":"kubed-cross-sync/0.1.0","objectRef":{"resource":"configmaps","namespace":"a","name":"x"}}
{"verb":"update","userAgent":"kubectl/1.32","user":{"username":"admin"},"objectRef":{"resource":"configmaps","namespace":"a","name":"x"},"responseStatus":{"code":200}}
"#;
        let events = parse(text);
        assert_eq!(
            daemon_writes(&events, &|ns| ns == "a"),
            ["patch configmaps a/x"]
        );
        assert_eq!(daemon_writes(&events, &|_| true).len(), 2);
        assert_eq!(
            writers(&events, "configmaps", "x"),
            ["admin", "kubed-follower:p"]
        );
        assert!(writers(&events, "secrets", "x").is_empty());
    }

    #[test]
    fn marks_read_only_new_complete_lines() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("audit.log");
        std::fs::write(&p, LOG).unwrap_or_else(|e| panic!("{e}"));
        let mut m = Mark::now(&p);
        assert_eq!(m.take("kubed-cross-sync/").map(|c| c.total()).ok(), Some(0));
        let half = LOG.lines().nth(1).unwrap_or_default();
        let mut text = LOG.to_string();
        text.push_str(half);
        text.push('\n');
        text.push_str(&half[..10]); // a line still being written
        std::fs::write(&p, &text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            m.take("kubed-cross-sync/").map(|c| c.writes()).ok(),
            Some(1)
        );
        assert_eq!(m.take("kubed-cross-sync/").map(|c| c.total()).ok(), Some(0));
    }
}
