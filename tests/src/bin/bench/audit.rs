//! Counting requests in an apiserver audit log (JSON lines, one event per request at
//! ResponseComplete; a watch is logged when it ends). Reads only what was appended since a mark,
//! so repeated counts over a growing log stay cheap. Parsing is pure.
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

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
    let mut out = Counts::default();
    for line in text.lines() {
        let Ok(ev) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let ua = ev.get("userAgent").and_then(|v| v.as_str()).unwrap_or("");
        if !ua.starts_with(agent) {
            continue;
        }
        let verb = ev.get("verb").and_then(|v| v.as_str()).unwrap_or("?");
        let resource = ev
            .pointer("/objectRef/resource")
            .and_then(|v| v.as_str())
            .unwrap_or("-");
        *out.0
            .entry((verb.to_string(), resource.to_string()))
            .or_default() += 1;
    }
    out
}

/// A position in one audit log; `take` returns the counts since the mark and moves it.
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

    /// Counts complete lines appended since the mark by clients whose userAgent starts with
    /// `agent`, and moves the mark past them.
    pub fn take(&mut self, agent: &str) -> std::io::Result<Counts> {
        let mut f = std::fs::File::open(&self.path)?;
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        self.offset += complete as u64;
        Ok(count(&String::from_utf8_lossy(&buf[..complete]), agent))
    }
}

#[cfg(test)]
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
