//! `status`'s report: one row per source × target namespace with one state, the table (problems
//! first, then a count of each state) and the JSON document.
use crate::plan::Action;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// The source itself is wrong (malformed annotation, unknown context, name too long).
    Invalid,
    TargetUnreachable,
    Conflict,
    Missing,
    Drifted,
    Skipped,
    InSync,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Invalid => "invalid",
            State::InSync => "in-sync",
            State::Drifted => "drifted",
            State::Missing => "missing",
            State::Conflict => "conflict",
            State::TargetUnreachable => "target-unreachable",
            State::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub kind: &'static str,
    pub source_namespace: String,
    pub name: String,
    pub context: String,
    pub namespace: String,
    pub state: State,
    /// The source's own policies in effect for this copy (`-`: kubed's behaviour).
    pub policy: String,
    pub detail: String,
}

/// The state of one planned action.
pub fn state_of(a: &Action) -> (State, String) {
    match a {
        Action::Noop { .. } => (State::InSync, String::new()),
        Action::Create(_) => (State::Missing, "no copy".into()),
        Action::Update { .. } => (State::Drifted, "copy differs from source".into()),
        Action::TakeOver { from, .. } => (
            State::Drifted,
            format!("copy made as cluster {from:?} (--previous-cluster-name): to be taken over"),
        ),
        Action::Recreate { .. } => (State::Drifted, "copy must be re-created".into()),
        Action::Delete { .. } => (State::Drifted, "stale copy, to be deleted".into()),
        Action::Release { .. } => (
            State::Drifted,
            "stale copy, to be kept and released (on-delete: retain)".into(),
        ),
        Action::Conflict { reason, .. } => (State::Conflict, reason.clone()),
    }
}

/// Rows in report order: problems first, then by source, kind, context, namespace.
pub fn sort(rows: &mut [Row]) {
    fn key(r: &Row) -> (State, &str, &str, &str, &str, &str) {
        let (ns, name, ctx) = (&r.source_namespace, &r.name, &r.context);
        (r.state, ns, name, r.kind, ctx, &r.namespace)
    }
    rows.sort_by(|a, b| key(a).cmp(&key(b)));
}

/// The `-o json` document.
pub fn json(rows: &[Row]) -> serde_json::Value {
    serde_json::json!({
        "items": rows,
        "summary": summary(rows).trim(),
    })
}

/// Problems first, then a one-line summary.
pub fn table(rows: &[Row]) -> String {
    let head = [
        "STATE",
        "KIND",
        "SOURCE",
        "CONTEXT",
        "TARGET NAMESPACE",
        "POLICY",
        "DETAIL",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.state.as_str().to_string(),
                r.kind.to_string(),
                format!("{}/{}", r.source_namespace, r.name),
                r.context.clone(),
                r.namespace.clone(),
                r.policy.clone(),
                r.detail.clone(),
            ]
        })
        .collect();
    let mut width = head.map(str::len);
    for c in &cells {
        for (i, v) in c.iter().enumerate() {
            width[i] = width[i].max(v.len());
        }
    }
    let line = |c: &[&str]| {
        let mut s = String::new();
        for (i, v) in c.iter().enumerate() {
            if i + 1 == c.len() {
                s.push_str(v);
            } else {
                s.push_str(&format!("{v:<w$}  ", w = width[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(&head);
    for c in &cells {
        out += &line(&c.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out += &summary(rows);
    out
}

pub fn summary(rows: &[Row]) -> String {
    let mut counts: BTreeMap<State, usize> = BTreeMap::new();
    for r in rows {
        *counts.entry(r.state).or_default() += 1;
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    format!(
        "\n{} copies: {}\n",
        rows.len(),
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        }
    )
}

/// `true` when every row is in-sync or skipped.
pub fn healthy(rows: &[Row]) -> bool {
    rows.iter()
        .all(|r| matches!(r.state, State::InSync | State::Skipped))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::plan::Kind;

    fn row(state: State) -> Row {
        Row {
            kind: Kind::ConfigMap.as_str(),
            source_namespace: "prod".into(),
            name: "cfg".into(),
            context: "mc-project-k8s".into(),
            namespace: "prod".into(),
            state,
            policy: "-".into(),
            detail: String::new(),
        }
    }

    #[test]
    fn table_and_json() {
        let rows = vec![row(State::Conflict), row(State::InSync)];
        let t = table(&rows);
        assert!(t.starts_with("STATE"), "{t}");
        assert!(t.contains("conflict"));
        assert!(t.contains("2 copies: 1 conflict, 1 in-sync"), "{t}");
        let j = serde_json::to_value(&rows).unwrap();
        assert_eq!(j[0]["state"], "conflict");
        assert!(!healthy(&rows));
    }
}
