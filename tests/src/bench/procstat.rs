//! What the fleet bench reads about the daemon process from /proc: resident memory and its peak
//! (and resetting that peak), threads, established TCP connections, and the exec-plugin
//! children it is running; plus a sampler that keeps the series while a phase runs.
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::procs::status_kib;

/// One reading of the daemon process.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub rss_kib: u64,
    pub threads: u64,
    pub tcp: u64,
    /// Children running `child_comm` at that moment.
    pub plugins: u64,
}

pub fn sample(pid: u32, child_comm: &str) -> Option<Sample> {
    Some(Sample {
        rss_kib: status_kib(pid, "VmRSS:")?,
        threads: status_kib(pid, "Threads:")?,
        tcp: established_tcp(pid),
        plugins: children(pid, child_comm).len() as u64,
    })
}

/// VmHWM in KiB.
pub fn peak_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// Resets VmHWM to the current RSS (`clear_refs` 5), so a later peak is the peak since now.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// The socket inodes among the process's open files.
fn socket_inodes(pid: u32) -> HashSet<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let s = l.to_string_lossy().into_owned();
            s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// The process's TCP connections in state ESTABLISHED (IPv4 and IPv6), found by socket inode
/// in its network namespace's tables.
pub fn established_tcp(pid: u32) -> u64 {
    let inodes = socket_inodes(pid);
    let mut n = 0;
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            let (Some(st), Some(inode)) = (f.get(3), f.get(9)) else {
                continue;
            };
            if *st == "01" && inode.parse().is_ok_and(|i: u64| inodes.contains(&i)) {
                n += 1;
            }
        }
    }
    n
}

/// The pids of `pid`'s direct children whose command name is `comm`.
pub fn children(pid: u32, comm: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
                return false;
            };
            // pid (comm) state ppid ...: comm may hold spaces, so split at the last ')'.
            let Some((head, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let name = head.split_once('(').map(|(_, n)| n).unwrap_or_default();
            let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
            ppid == Some(pid) && comm.starts_with(name) && !name.is_empty()
        })
        .collect()
}

/// The samples taken every `every` since `start`, and the distinct plugin pids seen.
#[derive(Default)]
pub struct Series {
    pub samples: Vec<Sample>,
    pub plugin_pids: HashSet<u32>,
}

/// Samples `pid` on a thread of its own until dropped.
pub struct Sampler {
    series: Arc<Mutex<Series>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Sampler {
    pub fn start(pid: u32, child_comm: &'static str, every: Duration) -> Sampler {
        let series = Arc::new(Mutex::new(Series::default()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, st) = (series.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(std::sync::atomic::Ordering::Relaxed) {
                let pids = children(pid, child_comm);
                if let Some(mut x) = sample(pid, child_comm) {
                    x.plugins = pids.len() as u64;
                    let mut g = s.lock().unwrap_or_else(|e| e.into_inner());
                    g.samples.push(x);
                    g.plugin_pids.extend(pids);
                }
                std::thread::sleep(every);
            }
        });
        Sampler { series, stop }
    }

    /// Takes the samples so far and starts a new series.
    pub fn take(&self) -> Series {
        std::mem::take(&mut *self.series.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads() {
        let pid = std::process::id();
        let s = sample(pid, "no-such-child").unwrap_or_default();
        assert!(s.rss_kib > 0 && s.threads >= 1, "{s:?}");
        assert_eq!(s.plugins, 0);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let conn = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let accepted = listener.accept().unwrap();
        assert!(established_tcp(pid) >= 2, "client and accepted ends");
        drop((conn, accepted));
    }
}
