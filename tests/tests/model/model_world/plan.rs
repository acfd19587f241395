//! The seeded sequence of operations: source and namespace changes, hand edits and deletes of
//! copies, look-alikes, and — on a schedule fixed by the seed — follower faults, daemon kills
//! and checkpoints. Each op is chosen from the model's state, so a seed replays the same run
//! (up to the few ops whose outcome depends on timing, e.g. a look-alike create that meets a copy).
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use e2e::Fault;
use e2e::rng::Rng;

use super::*;

#[derive(Clone, Debug)]
pub enum Op {
    CreateSource(Key, Source),
    /// New data; the old keys not in it are removed.
    SetData(Key, BTreeMap<String, String>),
    /// New `app` label and `model/note` annotation (None: removed).
    SetMeta(Key, Option<String>, Option<String>),
    SetSync(Key, Option<Intra>),
    SetContexts(Key, Option<String>),
    DeleteSource(Key),
    LabelNs(String, &'static str, Option<&'static str>),
    CreateNs(String, Labels),
    CreateFollowerNs(&'static str, String),
    /// A person changes a copy's value (`v` or `password`) to this.
    HandEdit(Pos, String),
    HandDelete(Pos),
    /// An object of our name and kind without our markers; `true`: with another cluster's.
    LookAlike(Pos, bool),
    Fault(&'static str, Fault),
    Unfault(&'static str, Fault),
    KillDaemon,
    StartDaemon,
    /// Heal everything, then wait until every cluster equals the model.
    Checkpoint,
}

impl Op {
    /// A short name for the tally of operations.
    pub fn class(&self) -> &'static str {
        match self {
            Op::CreateSource(..) => "create source",
            Op::SetData(..) => "update source data",
            Op::SetMeta(..) => "update source labels/annotations",
            Op::SetSync(..) => "change sync",
            Op::SetContexts(..) => "change sync-contexts",
            Op::DeleteSource(..) => "delete source",
            Op::LabelNs(..) => "relabel namespace",
            Op::CreateNs(..) => "create namespace",
            Op::CreateFollowerNs(..) => "create follower namespace",
            Op::HandEdit(..) => "hand edit of copy",
            Op::HandDelete(..) => "hand delete of copy",
            Op::LookAlike(..) => "create look-alike",
            Op::Fault(..) => "follower fault",
            Op::Unfault(..) => "follower fault undone",
            Op::KillDaemon => "daemon SIGKILL",
            Op::StartDaemon => "daemon start",
            Op::Checkpoint => "checkpoint",
        }
    }
}

/// Never prints Secret values.
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = |k: &Key, d: &BTreeMap<String, String>| -> String {
            if k.0 == Kind::Secret {
                format!("keys {:?}", d.keys().collect::<Vec<_>>())
            } else {
                format!("{d:?}")
            }
        };
        match self {
            Op::CreateSource(k, s) => write!(
                f,
                "create {} {} type {:?} labels {:?} sync {:?} contexts {:?}",
                key_str(k),
                data(k, &s.data),
                s.secret_type,
                s.labels,
                s.sync.as_ref().map(Intra::text),
                s.contexts
            ),
            Op::SetData(k, d) => write!(f, "set data of {} to {}", key_str(k), data(k, d)),
            Op::SetMeta(k, app, note) => {
                write!(f, "set {} label app={app:?} note={note:?}", key_str(k))
            }
            Op::SetSync(k, s) => write!(
                f,
                "set {} sync = {:?}",
                key_str(k),
                s.as_ref().map(Intra::text)
            ),
            Op::SetContexts(k, c) => write!(f, "set {} sync-contexts = {c:?}", key_str(k)),
            Op::DeleteSource(k) => write!(f, "delete {}", key_str(k)),
            Op::LabelNs(ns, k, v) => write!(f, "label namespace {ns} {k}={v:?}"),
            Op::CreateNs(ns, l) => write!(f, "create namespace {ns} labels {l:?}"),
            Op::CreateFollowerNs(c, ns) => write!(f, "create namespace {ns} in {c}"),
            Op::HandEdit(p, v) => write!(f, "hand edit {p}: value -> {v}"),
            Op::HandDelete(p) => write!(f, "hand delete {p}"),
            Op::LookAlike(p, foreign) => write!(
                f,
                "look-alike {p}{}",
                if *foreign {
                    " (other cluster's origin labels)"
                } else {
                    ""
                }
            ),
            Op::Fault(c, x) => write!(f, "fault {c}: {x:?}"),
            Op::Unfault(c, x) => write!(f, "undo fault {c}: {x:?}"),
            Op::KillDaemon => write!(f, "SIGKILL the daemon"),
            Op::StartDaemon => write!(f, "start the daemon"),
            Op::Checkpoint => write!(f, "checkpoint"),
        }
    }
}

struct ScheduledFault {
    at: usize,
    len: usize,
    cluster: &'static str,
    fault: Fault,
    undo: Fault,
}

pub struct Plan {
    rng: Rng,
    total: usize,
    /// Ops handed out so far (checkpoints not counted).
    pub done: usize,
    faults: Vec<ScheduledFault>,
    kills: Vec<(usize, usize)>,
    checkpoints: Vec<usize>,
    /// The follower under a fault now, its undo and the op count at which it ends.
    active: Option<(&'static str, Fault, usize)>,
    down_until: Option<usize>,
    /// A hand delete is sometimes followed at once by a look-alike in the same place.
    follow_up: Option<Pos>,
    created_ns: usize,
}

impl Plan {
    pub fn new(seed: u64, total: usize) -> Plan {
        let mut rng = Rng::new(seed);
        let kinds = [
            (Fault::Partition, Fault::Heal),
            (Fault::Stop, Fault::Start),
            (Fault::KillEtcd, Fault::StartEtcd),
            (Fault::Latency(Duration::from_millis(150)), Fault::Heal),
        ];
        let offset = rng.below(4) as usize;
        let faults = (0..total / 100)
            .map(|k| {
                let (fault, undo) = kinds[(k + offset) % kinds.len()];
                ScheduledFault {
                    at: k * 100 + 20 + rng.below(40) as usize,
                    len: 25 + rng.below(50) as usize,
                    cluster: FOLLOWERS[rng.below(FOLLOWERS.len() as u64) as usize],
                    fault,
                    undo,
                }
            })
            .collect();
        let mut kills: Vec<(usize, usize)> = (0..(total / 300).max(1))
            .map(|_| {
                let at = 40 + rng.below(total.saturating_sub(80).max(1) as u64) as usize;
                (at, 5 + rng.below(40) as usize)
            })
            .collect();
        kills.sort();
        let checkpoints = (1..4).map(|q| q * total / 4).collect();
        Plan {
            rng,
            total,
            done: 0,
            faults,
            kills,
            checkpoints,
            active: None,
            down_until: None,
            follow_up: None,
            created_ns: 0,
        }
    }

    /// The follower under a fault now (the test leaves it alone until the fault is undone).
    pub fn faulted(&self) -> Option<&'static str> {
        self.active.map(|(c, _, _)| c)
    }

    pub fn next(&mut self, m: &Model) -> Option<Op> {
        let op = match self.scheduled() {
            Some(op) => op,
            None if self.done >= self.total => return None,
            None => self.random_op(m),
        };
        if !matches!(op, Op::Checkpoint) {
            self.done += 1;
        }
        Some(op)
    }

    fn scheduled(&mut self) -> Option<Op> {
        let i = self.done;
        let at_end = i >= self.total;
        let checkpoint = self.checkpoints.first().is_some_and(|&c| c <= i);
        if let Some((c, undo, end)) = self.active
            && (end <= i || checkpoint || at_end)
        {
            self.active = None;
            return Some(Op::Unfault(c, undo));
        }
        if let Some(end) = self.down_until
            && (end <= i || checkpoint || at_end)
        {
            self.down_until = None;
            return Some(Op::StartDaemon);
        }
        if checkpoint {
            self.checkpoints.remove(0);
            return Some(Op::Checkpoint);
        }
        if at_end {
            return None;
        }
        if self.active.is_none() && self.faults.first().is_some_and(|f| f.at <= i) {
            let f = self.faults.remove(0);
            self.active = Some((f.cluster, f.undo, i + f.len));
            return Some(Op::Fault(f.cluster, f.fault));
        }
        if self.kills.first().is_some_and(|k| k.0 <= i) {
            let (_, len) = self.kills.remove(0);
            if self.down_until.is_none() {
                self.down_until = Some(i + len);
                return Some(Op::KillDaemon);
            }
        }
        None
    }

    fn random_op(&mut self, m: &Model) -> Op {
        if let Some(pos) = self.follow_up.take() {
            return Op::LookAlike(pos, self.rng.chance(30));
        }
        let few = m.sources.len() < 8;
        loop {
            let roll = self.rng.below(100);
            let op = match roll {
                _ if few && self.rng.chance(50) => self.create_source(m),
                0..14 => self.create_source(m),
                14..32 => self.existing(m).map(|k| {
                    let data = self.data(&k);
                    Op::SetData(k, data)
                }),
                32..37 => self.existing(m).map(|k| {
                    let app = self.app_label();
                    let note = self.rng.chance(60).then(|| format!("n{}", self.done));
                    Op::SetMeta(k, app, note)
                }),
                37..45 => self.existing(m).map(|k| {
                    let s = self.sync();
                    Op::SetSync(k, s)
                }),
                45..53 => self.existing(m).map(|k| {
                    let c = self.contexts();
                    Op::SetContexts(k, c)
                }),
                53..59 => self.existing(m).map(Op::DeleteSource),
                59..69 => self.label_ns(m),
                69..71 => self.create_ns(),
                71..72 => self.create_follower_ns(m),
                72..85 => self.copy_pos(m).map(|p| {
                    let v = format!("hand-{}", self.done);
                    Op::HandEdit(p, v)
                }),
                85..94 => self.copy_pos(m).map(|p| {
                    if self.rng.chance(30) {
                        self.follow_up = Some(p.clone());
                    }
                    Op::HandDelete(p)
                }),
                _ => self
                    .lookalike_pos(m)
                    .map(|p| Op::LookAlike(p, self.rng.chance(30))),
            };
            if let Some(op) = op {
                return op;
            }
        }
    }

    fn create_source(&mut self, m: &Model) -> Option<Op> {
        let free: Vec<Key> = pool()
            .into_iter()
            .filter(|k| !m.sources.contains_key(k))
            .collect();
        if free.is_empty() {
            return None;
        }
        let key = self.rng.pick(&free).clone();
        let data = self.data(&key);
        let secret_type = (key.0 == Kind::Secret).then(|| {
            if self.rng.chance(20) {
                "example.com/model"
            } else {
                "Opaque"
            }
            .to_string()
        });
        let mut labels = Labels::new();
        if let Some(app) = self.app_label() {
            labels.insert("app".into(), app);
        }
        let mut annotations = Labels::new();
        if self.rng.chance(50) {
            annotations.insert("model/note".into(), format!("n{}", self.done));
        }
        let src = Source {
            data,
            secret_type,
            labels,
            annotations,
            sync: self.sync(),
            contexts: self.contexts(),
            rv: String::new(),
        };
        Some(Op::CreateSource(key, src))
    }

    fn existing(&mut self, m: &Model) -> Option<Key> {
        let keys: Vec<&Key> = m.sources.keys().collect();
        (!keys.is_empty()).then(|| (*self.rng.pick(&keys)).clone())
    }

    /// New data: `v` (`password` for Secrets: a fresh, distinctive value) and sometimes `k2`.
    fn data(&mut self, key: &Key) -> BTreeMap<String, String> {
        let mut d = BTreeMap::new();
        match key.0 {
            Kind::ConfigMap => d.insert("v".into(), format!("r{}", self.done)),
            Kind::Secret => d.insert(
                "password".into(),
                format!("mdl-secret-{:016x}", self.rng.next_u64()),
            ),
        };
        if self.rng.chance(50) {
            d.insert("k2".into(), format!("k{}", self.done));
        }
        d
    }

    fn app_label(&mut self) -> Option<String> {
        self.rng
            .chance(60)
            .then(|| self.rng.pick(&["x", "y", "z"]).to_string())
    }

    fn sync(&mut self) -> Option<Intra> {
        self.rng
            .chance(60)
            .then(|| self.rng.pick(&selectors()).clone())
    }

    fn contexts(&mut self) -> Option<String> {
        self.rng
            .chance(60)
            .then(|| self.rng.pick(&context_values()).clone())
    }

    fn label_ns(&mut self, m: &Model) -> Option<Op> {
        let ours: Vec<&String> = m
            .namespaces
            .keys()
            .filter(|n| n.starts_with("m-"))
            .collect();
        let ns = (*self.rng.pick(&ours)).clone();
        let (key, values) = *self.rng.pick(&NS_LABELS);
        let value = self.rng.chance(70).then(|| *self.rng.pick(values));
        Some(Op::LabelNs(ns, key, value))
    }

    fn create_ns(&mut self) -> Option<Op> {
        if self.created_ns >= 6 {
            return None;
        }
        let ns = format!("m-n{}", self.created_ns);
        self.created_ns += 1;
        Some(Op::CreateNs(ns, self.ns_labels()))
    }

    pub fn ns_labels(&mut self) -> Labels {
        let mut l = Labels::new();
        for (k, values) in NS_LABELS {
            if self.rng.chance(50) {
                l.insert(k.to_string(), self.rng.pick(values).to_string());
            }
        }
        l
    }

    fn create_follower_ns(&mut self, m: &Model) -> Option<Op> {
        let missing: Vec<(&'static str, &str)> = FOLLOWERS
            .iter()
            .filter(|c| Some(**c) != self.faulted())
            .flat_map(|c| FOLLOWER_NS_POOL.iter().map(move |ns| (*c, *ns)))
            .filter(|(c, ns)| !m.follower_ns.get(c).is_some_and(|s| s.contains(*ns)))
            .collect();
        (!missing.is_empty()).then(|| {
            let (c, ns) = *self.rng.pick(&missing);
            Op::CreateFollowerNs(c, ns.to_string())
        })
    }

    /// A place where the model wants a copy, outside the faulted follower.
    fn copy_pos(&mut self, m: &Model) -> Option<Pos> {
        let want: Vec<Pos> = m
            .expected()
            .into_keys()
            .filter(|p| Some(p.cluster) != self.faulted())
            .collect();
        (!want.is_empty()).then(|| self.rng.pick(&want).clone())
    }

    /// A place for a look-alike: any known namespace of a reachable cluster, a pool name,
    /// never a source itself and never where a look-alike already is.
    fn lookalike_pos(&mut self, m: &Model) -> Option<Pos> {
        let clusters: Vec<&'static str> = [SRC, A, B]
            .into_iter()
            .filter(|c| Some(*c) != self.faulted())
            .collect();
        let cluster = *self.rng.pick(&clusters);
        let namespaces = m.namespaces_of(cluster);
        if namespaces.is_empty() {
            return None;
        }
        let ns = self.rng.pick(&namespaces).clone();
        let (kind, _, name) = self.rng.pick(&pool()).clone();
        let pos = Pos {
            cluster,
            kind,
            ns,
            name,
        };
        let is_source = cluster == SRC && pos.ns == owner_ns(&pos.name);
        (!is_source && !m.lookalikes.contains_key(&pos)).then_some(pos)
    }
}

/// Every possible source: 5 ConfigMaps and 3 Secrets per source namespace.
pub fn pool() -> Vec<Key> {
    let mut out = Vec::new();
    for (i, ns) in SOURCE_NS.iter().enumerate() {
        for k in 0..5 {
            out.push((Kind::ConfigMap, ns.to_string(), format!("cm-{i}-{k}")));
        }
        for k in 0..3 {
            out.push((Kind::Secret, ns.to_string(), format!("sec-{i}-{k}")));
        }
    }
    out
}

/// How many ops of each class a run made.
pub fn tally<'a>(ops: impl Iterator<Item = &'a Op>) -> BTreeMap<&'static str, usize> {
    let mut t = BTreeMap::new();
    for op in ops {
        *t.entry(op.class()).or_insert(0) += 1;
    }
    t
}

/// The namespaces every follower starts with.
pub fn initial_follower_ns() -> BTreeMap<&'static str, BTreeSet<String>> {
    INITIAL_FOLLOWER_NS
        .iter()
        .map(|(c, ns)| (*c, ns.iter().map(|s| s.to_string()).collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        let mut m = Model {
            follower_ns: initial_follower_ns(),
            ..Default::default()
        };
        for ns in SOURCE_NS.iter().chain(&TARGET_NS) {
            m.namespaces.insert(ns.to_string(), Labels::new());
        }
        m
    }

    /// A plan replays from its seed, and schedules faults, kills and checkpoints.
    #[test]
    fn plan_is_deterministic_and_schedules_everything() {
        let run = |seed| {
            let mut m = model();
            let mut p = Plan::new(seed, 1000);
            let mut ops = Vec::new();
            while let Some(op) = p.next(&m) {
                if let Op::CreateSource(k, s) = &op {
                    m.sources.insert(k.clone(), s.clone());
                }
                ops.push(op.to_string());
            }
            ops
        };
        let a = run(42);
        assert_eq!(a, run(42));
        assert_ne!(a, run(43));
        let count = |s: &str| a.iter().filter(|o| o.starts_with(s)).count();
        assert_eq!(count("checkpoint"), 3);
        assert_eq!(count("fault "), 10);
        assert_eq!(count("undo fault "), 10);
        assert_eq!(count("SIGKILL"), count("start the daemon"));
        assert!(count("SIGKILL") >= 1);
        // 1,000 ops and 3 checkpoints, plus the undo of whatever is still active at the end.
        assert!((1003..=1005).contains(&a.len()), "{}", a.len());
    }
}
