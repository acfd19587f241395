//! Starting, watching and stopping the testbed's background processes by pid. Every process is
//! recorded with its kernel start time, so a pid reused by an unrelated process is never signalled.
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use serde::{Deserialize, Serialize};

use crate::error::TestbedError;

/// One background process: enough to find it again (pid + start time) and to start it again
/// with the same command line (a restarted apiserver keeps its port, certificates and etcd).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcRecord {
    pub pid: u32,
    /// Field 22 of /proc/PID/stat (clock ticks after boot): tells a reused pid apart.
    pub start_time: u64,
    pub argv: Vec<String>,
    pub log: PathBuf,
}

impl ProcRecord {
    pub fn is_running(&self) -> bool {
        is_running(self.pid, self.start_time)
    }
}

/// Starts `argv` detached from the caller: own process group (a Ctrl-C aimed at the test run
/// does not reach it; the reaper or `testbed down` stops it), stdin from /dev/null, stdout and
/// stderr appended to `log`. A thread waits for the child so it never lingers as a zombie while
/// the caller lives; after the caller exits, init adopts it.
pub fn spawn(what: &str, argv: &[String], log: &Path) -> Result<ProcRecord, TestbedError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(TestbedError::Spawn {
            what: what.to_string(),
            program: String::new(),
            source: std::io::Error::other("empty command line"),
        });
    };
    let out = open_log(log)?;
    let err = out
        .try_clone()
        .map_err(|e| TestbedError::io("duplicate", log, e))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|source| TestbedError::Spawn {
            what: what.to_string(),
            program: program.clone(),
            source,
        })?;
    let pid = child.id();
    // The child exists until it is reaped, which only the thread below does: /proc/PID is there.
    let start_time = start_time(pid).unwrap_or(0);
    let _ = std::thread::Builder::new()
        .name(format!("wait-{pid}"))
        .spawn(move || child.wait());
    tracing::debug!(what, pid, log = %log.display(), "started process");
    Ok(ProcRecord {
        pid,
        start_time,
        argv: argv.to_vec(),
        log: log.to_path_buf(),
    })
}

fn open_log(log: &Path) -> Result<File, TestbedError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log)
        .map_err(|e| TestbedError::io("open log", log, e))
}

/// Parses /proc/PID/stat: (state, start time). The command name may contain spaces and
/// parentheses, so fields are counted after the last ')'.
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); start time is field 22.
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

pub fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|(_, start)| start)
}

/// True while the recorded process exists and is not yet fully dead. A zombie counts as dead
/// only once its other threads are gone too: a killed multi-threaded process (an apiserver)
/// shows its leader as a zombie while the other threads still hold its sockets open.
pub fn is_running(pid: u32, recorded_start: u64) -> bool {
    match stat(pid) {
        Some((_, start)) if recorded_start != 0 && start != recorded_start => false,
        Some(('Z' | 'X', _)) => std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|tasks| tasks.count() > 1)
            .unwrap_or(false),
        Some(_) => true,
        None => false,
    }
}

fn signal(pid: u32, sig: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if let Some(pid) = Pid::from_raw(raw) {
        // ESRCH (already gone) is the expected race; nothing else can happen to our own children.
        let _ = kill_process(pid, sig);
    }
}

/// Stops processes: SIGTERM (or SIGKILL when `grace` is zero), SIGKILL after `grace`, then waits
/// until each is gone. Returns the pids that survived SIGKILL (should never happen).
pub fn stop_all(procs: &[&ProcRecord], grace: Duration) -> Vec<u32> {
    let running: Vec<&ProcRecord> = procs.iter().copied().filter(|p| p.is_running()).collect();
    let first = if grace.is_zero() {
        Signal::KILL
    } else {
        Signal::TERM
    };
    for p in &running {
        signal(p.pid, first);
    }
    let wait_gone = |deadline: Instant| {
        while Instant::now() < deadline && running.iter().any(|p| p.is_running()) {
            std::thread::sleep(Duration::from_millis(25));
        }
    };
    wait_gone(Instant::now() + grace);
    for p in running.iter().filter(|p| p.is_running()) {
        signal(p.pid, Signal::KILL);
    }
    wait_gone(Instant::now() + Duration::from_secs(10));
    running
        .iter()
        .filter(|p| p.is_running())
        .map(|p| p.pid)
        .collect()
}

/// Resident set size in KiB (VmRSS), if the process is running.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// A size field of /proc/PID/status in KiB (`VmRSS:`, `VmHWM:`), if the process is running.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A currently free loopback port for a server that may have to bind it again later (an
/// apiserver restarted by a fault). Drawn at random from below the kernel's ephemeral range, so
/// neither client connections nor `bind(0)` elsewhere on the machine ever take it while its
/// server is stopped; within this process, a port is handed out once.
pub fn free_port() -> Result<u16, TestbedError> {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let (low, high) = server_port_range();
    let span = u32::from(high - low);
    for _ in 0..200 {
        let mut b = [0u8; 4];
        let _ = getrandom::fill(&mut b);
        let port = low + (u32::from_le_bytes(b) % span) as u16;
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        let given = given.get_or_insert_with(HashSet::new);
        if given.contains(&port) || std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        given.insert(port);
        return Ok(port);
    }
    Err(TestbedError::io(
        "find a free port below the ephemeral range on",
        "127.0.0.1",
        std::io::Error::from(std::io::ErrorKind::AddrInUse),
    ))
}

/// [10000, start of the ephemeral range), or [40000, 50000) if that range is too small.
fn server_port_range() -> (u16, u16) {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if start > 12000 {
        (10000, start)
    } else {
        (40000, 50000)
    }
}

/// Writes a file atomically (temp file + rename) with the given mode.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), TestbedError> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| TestbedError::io("create", &tmp, e))?;
    f.write_all(contents)
        .map_err(|e| TestbedError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TestbedError::io("rename into", path, e))
}

pub fn create_dir(path: &Path) -> Result<(), TestbedError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| TestbedError::io("create directory", path, e))
}

/// The last `lines` lines of a log, for error messages (logs hold no secrets: tokens live
/// only in files the processes read).
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_running_and_a_wrong_start_time_is_not() {
        let pid = std::process::id();
        let start = start_time(pid).unwrap();
        assert!(is_running(pid, start));
        assert!(!is_running(pid, start + 1));
        assert!(!is_running(u32::MAX - 1, 0));
    }

    #[test]
    fn spawn_and_stop_a_process() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sleep.log");
        let argv = vec!["sleep".to_string(), "600".to_string()];
        let rec = spawn("sleep", &argv, &log).unwrap();
        assert!(rec.is_running());
        assert!(rss_kib(rec.pid).is_some());
        let left = stop_all(&[&rec], Duration::from_secs(5));
        assert!(left.is_empty());
        assert!(!rec.is_running());
    }

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let a = free_port().unwrap();
        let b = free_port().unwrap();
        assert_ne!(a, b);
        let (low, high) = server_port_range();
        assert!((low..high).contains(&a));
        std::net::TcpListener::bind(("127.0.0.1", a)).unwrap();
    }

    #[test]
    fn spawn_of_a_missing_program_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let argv = vec!["/nonexistent/program".to_string()];
        let err = spawn("ghost", &argv, &dir.path().join("x.log")).unwrap_err();
        assert!(err.to_string().contains("ghost"), "{err}");
    }
}
