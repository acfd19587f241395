//! What a failed model run leaves behind: the differences, the seed to replay it, the
//! operations and daemon log lines naming the first objects involved, and the files kept.
use super::*;
use crate::world::World;

impl World {
    /// Panics with the first differences, the seed, and for the first objects involved the
    /// operations and daemon log lines naming them; keeps the op log and daemon logs.
    pub(crate) fn fail(&self, m: &Model, what: &str, diffs: &[(String, String)]) -> ! {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("model-{}", self.seed));
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join("ops.log"), self.oplog.join("\n"));
        for log in &self.logs {
            if let Some(name) = log.file_name() {
                let _ = std::fs::copy(log, dir.join(name));
            }
        }
        // The daemon's own read-only view of the same clusters (same planner, fresh lists).
        let status = Daemon::command("status")
            .kubeconfig(&self.kubeconfig)
            .cluster_name(CLUSTER_NAME)
            .args(["-o", "json"])
            .output();
        if let Ok(out) = status {
            let _ = std::fs::write(dir.join("status.json"), &out.stdout);
        }
        let mut msg = format!(
            "{what}: {} difference(s) after {CONVERGE:?} (replay: KCS_MODEL_SEED={} cargo test -p e2e --test model -- --nocapture)\n",
            diffs.len(),
            self.seed
        );
        for (_, d) in diffs.iter().take(15) {
            msg += &format!("  {d}\n");
        }
        let mut names: Vec<&String> = diffs
            .iter()
            .map(|(n, _)| n)
            .filter(|n| !n.is_empty())
            .collect();
        names.dedup();
        for name in names.into_iter().take(3) {
            let needle = format!("/{name}");
            let ops: Vec<&String> = self.oplog.iter().filter(|l| l.contains(&needle)).collect();
            msg += &format!("operations on {name} (last 15 of {}):\n", ops.len());
            for l in ops.iter().rev().take(15).rev() {
                msg += &format!("  {l}\n");
            }
            msg += &format!("daemon log lines naming {name} (last 15):\n");
            let mut lines = Vec::new();
            for log in &self.logs {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let tag = log
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                lines.extend(
                    text.lines()
                        .filter(|l| l.contains(name.as_str()))
                        .map(|l| format!("  [{tag}] {l}")),
                );
            }
            for l in lines.iter().rev().take(15).rev() {
                msg += &format!("{l}\n");
            }
        }
        let events: Vec<&String> = self
            .oplog
            .iter()
            .filter(|l| l.contains("fault") || l.contains("daemon"))
            .collect();
        msg += "faults and daemon restarts (last 8):\n";
        for l in events.iter().rev().take(8).rev() {
            msg += &format!("  {l}\n");
        }
        msg += &format!(
            "model: {} sources, {} look-alikes, {} expected copies; op log and daemon logs kept in {}",
            m.sources.len(),
            m.lookalikes.len(),
            m.expected().len(),
            dir.display()
        );
        let _ = std::fs::write(dir.join("failure.txt"), &msg);
        panic!("{msg}");
    }
}
