//! How the observed clusters differ from the model: missing, wrong and unexpected copies,
//! look-alikes and sources someone else touched. Pure.
use std::collections::BTreeMap;

use super::*;

impl Model {
    /// Every way `observed` (all ConfigMaps and Secrets of every cluster) differs from the model,
    /// as (object name, what differs).
    pub fn diff(&self, observed: &BTreeMap<Pos, Obj>) -> Vec<(String, String)> {
        self.diff_text(observed)
            .into_iter()
            .map(|(p, t)| (p.name.clone(), format!("{p}: {t}")))
            .collect()
    }

    fn diff_text(&self, observed: &BTreeMap<Pos, Obj>) -> Vec<(Pos, String)> {
        let expected = self.expected();
        let mut out = Vec::new();
        for (pos, want) in &expected {
            let Some(o) = observed.get(pos) else {
                out.push((
                    pos.clone(),
                    format!("missing copy of {}", key_str(&want.source)),
                ));
                continue;
            };
            if o.labels.get(ORIGIN_CLUSTER).map(String::as_str) != Some(CLUSTER_NAME) {
                out.push((
                    pos.clone(),
                    "holds an object without our origin, want a copy".into(),
                ));
                continue;
            }
            let mut what = Vec::new();
            if o.data != want.data {
                what.push(if want.secret_type.is_some() {
                    let keys = |d: &BTreeMap<String, String>| d.keys().cloned().collect::<Vec<_>>();
                    format!(
                        "Secret data differs (keys want {:?}, have {:?}; values not shown)",
                        keys(&want.data),
                        keys(&o.data)
                    )
                } else {
                    format!("data want {:?}, have {:?}", want.data, o.data)
                });
            }
            if o.secret_type != want.secret_type {
                what.push(format!(
                    "type want {:?}, have {:?}",
                    want.secret_type, o.secret_type
                ));
            }
            if o.labels != want.labels {
                what.push(format!(
                    "labels want {:?}, have {:?}",
                    want.labels, o.labels
                ));
            }
            let mut ann = o.annotations.clone();
            let origin = ann.remove(ORIGIN);
            if ann != want.annotations {
                what.push(format!(
                    "annotations want {:?} (+ origin), have {:?}",
                    want.annotations, o.annotations
                ));
            }
            if !origin.is_some_and(|v| v.contains(&format!("\"name\":\"{}\"", pos.name))) {
                what.push("no origin annotation naming the source".into());
            }
            if !what.is_empty() {
                out.push((pos.clone(), what.join("; ")));
            }
        }
        for (pos, o) in observed {
            if o.labels.get(ORIGIN_CLUSTER).map(String::as_str) == Some(CLUSTER_NAME)
                && !expected.contains_key(pos)
            {
                out.push((
                    pos.clone(),
                    format!(
                        "unexpected copy (origin {}/{})",
                        o.labels.get(ORIGIN_NAMESPACE).cloned().unwrap_or_default(),
                        o.labels.get(ORIGIN_NAME).cloned().unwrap_or_default()
                    ),
                ));
            }
        }
        for (pos, la) in &self.lookalikes {
            match observed.get(pos) {
                None => out.push((pos.clone(), "unmanaged look-alike deleted".into())),
                Some(o) if o.rv != la.rv => out.push((
                    pos.clone(),
                    format!(
                        "unmanaged look-alike modified (resourceVersion {} -> {}, labels now {:?})",
                        la.rv, o.rv, o.labels
                    ),
                )),
                Some(_) => {}
            }
        }
        for ((kind, ns, name), src) in &self.sources {
            let pos = Pos {
                cluster: SRC,
                kind: *kind,
                ns: ns.clone(),
                name: name.clone(),
            };
            match observed.get(&pos) {
                None => out.push((pos, "source deleted by someone else".into())),
                Some(o) if o.rv != src.rv => out.push((
                    pos,
                    format!(
                        "source modified by someone else (resourceVersion {} -> {})",
                        src.rv, o.rv
                    ),
                )),
                Some(_) => {}
            }
        }
        out
    }
}
