//! The per-cluster TCP proxy in front of each apiserver (run as `testbed proxy`, a background
//! process): forwards bytes, so TLS stays end to end, and on command over a loopback control
//! port partitions (cuts open connections, then accepts new ones and never forwards them),
//! heals, or delays every chunk of data by a fixed latency in each direction.
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::error::TestbedError;
use crate::procs::write_file;

/// What the proxy does to traffic right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mode {
    pub partitioned: bool,
    /// Added to every chunk in each direction, so a request/response round trip costs twice this.
    pub latency_ms: u64,
}

/// The ports a proxy bound; it writes them to its ports file once it listens.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ProxyPorts {
    pub listen: u16,
    pub control: u16,
}

const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the proxy until killed. Both ports are chosen by the kernel (no race with other
/// processes) and written to `ports_file` once bound.
pub async fn run(upstream: SocketAddr, ports_file: &Path) -> Result<(), TestbedError> {
    let bind_err = |e| TestbedError::io("bind proxy port on", "127.0.0.1", e);
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(bind_err)?;
    let control = TcpListener::bind("127.0.0.1:0").await.map_err(bind_err)?;
    let ports = ProxyPorts {
        listen: listener.local_addr().map_err(bind_err)?.port(),
        control: control.local_addr().map_err(bind_err)?.port(),
    };
    let text = serde_json::to_vec(&ports).map_err(|e| TestbedError::Encode {
        what: "proxy ports",
        source: Box::new(e),
    })?;
    write_file(ports_file, &text, 0o600)?;
    tracing::info!(listen = ports.listen, control = ports.control, %upstream, "proxy listening");

    let (mode_tx, mode_rx) = watch::channel(Mode::default());
    let active = Arc::new(AtomicUsize::new(0));
    tokio::spawn(serve_control(control, mode_tx, active.clone()));
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tracing::debug!(%peer, "connection accepted");
        tokio::spawn(handle(client, upstream, mode_rx.clone(), active.clone()));
    }
}

/// Counts forwarded connections so that `partition` can wait until all are cut.
struct Active(Arc<AtomicUsize>);

impl Active {
    fn new(count: &Arc<AtomicUsize>) -> Active {
        count.fetch_add(1, Ordering::SeqCst);
        Active(count.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn until(rx: &mut watch::Receiver<Mode>, pred: impl FnMut(&Mode) -> bool) {
    if rx.wait_for(pred).await.is_err() {
        // The control side is gone only when the process exits.
        std::future::pending::<()>().await;
    }
}

async fn handle(
    client: TcpStream,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
    active: Arc<AtomicUsize>,
) {
    let _ = client.set_nodelay(true);
    if mode.borrow().partitioned {
        // Blackhole: the client's connect succeeds, nothing ever comes back; closed on heal.
        until(&mut mode, |m| !m.partitioned).await;
        return;
    }
    let server =
        match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(upstream)).await {
            Ok(Ok(s)) => s,
            outcome => {
                tracing::debug!(?outcome, "upstream unreachable, resetting client");
                // RST rather than FIN: the nearest a proxy gets to passing on "connection refused".
                let _ = client.set_zero_linger();
                return;
            }
        };
    let _ = server.set_nodelay(true);
    let _guard = Active::new(&active);
    if mode.borrow().partitioned {
        return;
    }
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let both = futures::future::join(pump(cr, sw, mode.clone()), pump(sr, cw, mode.clone()));
    tokio::select! {
        _ = both => {}
        _ = until(&mut mode, |m| m.partitioned) => tracing::debug!("connection cut by partition"),
    }
}

/// Copies one direction, delaying each chunk by the latency in force when it was read. A
/// queue between reader and writer keeps the delay from throttling throughput.
async fn pump(mut r: OwnedReadHalf, mut w: OwnedWriteHalf, mode: watch::Receiver<Mode>) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Option<Vec<u8>>)>(64);
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = r.read(&mut buf).await.unwrap_or(0);
            let due = Instant::now() + Duration::from_millis(mode.borrow().latency_ms);
            let chunk = (n > 0).then(|| buf[..n].to_vec());
            let eof = chunk.is_none();
            if tx.send((due, chunk)).await.is_err() || eof {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            match chunk {
                Some(data) => {
                    if w.write_all(&data).await.is_err() {
                        break;
                    }
                }
                None => {
                    let _ = w.shutdown().await;
                    break;
                }
            }
        }
    };
    futures::future::join(reader, writer).await;
}

async fn serve_control(listener: TcpListener, mode: watch::Sender<Mode>, active: Arc<AtomicUsize>) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            continue;
        };
        let (r, mut w) = sock.into_split();
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let reply = apply_command(line.trim(), &mode, &active).await;
            if w.write_all(format!("{reply}\n").as_bytes()).await.is_err() {
                break;
            }
        }
    }
}

async fn apply_command(line: &str, mode: &watch::Sender<Mode>, active: &AtomicUsize) -> String {
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some("partition"), None) => {
            mode.send_modify(|m| m.partitioned = true);
            // Answer once the open connections are really cut.
            let end = Instant::now() + Duration::from_secs(5);
            while active.load(Ordering::SeqCst) > 0 && Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        (Some("heal"), None) => mode.send_modify(|m| *m = Mode::default()),
        (Some("latency"), Some(ms)) => match ms.parse::<u64>() {
            Ok(ms) => mode.send_modify(|m| m.latency_ms = ms),
            Err(_) => return format!("error latency wants milliseconds, got {ms:?}"),
        },
        (Some("status"), None) => {}
        _ => return format!("error unknown command {line:?}"),
    }
    let now = *mode.borrow();
    tracing::info!(
        command = line,
        partitioned = now.partitioned,
        latency_ms = now.latency_ms,
        "mode"
    );
    match serde_json::to_string(&now) {
        Ok(json) => format!("ok {json}"),
        Err(e) => format!("error {e}"),
    }
}

/// Sends one command to a proxy's control port; returns the mode it answered with.
pub async fn control(port: u16, command: &str) -> Result<Mode, String> {
    let talk = async {
        let mut sock = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("cannot reach control port {port}: {e}"))?;
        sock.write_all(format!("{command}\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(sock)
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        match line.trim().strip_prefix("ok ") {
            Some(json) => serde_json::from_str(json).map_err(|e| e.to_string()),
            None => Err(line.trim().to_string()),
        }
    };
    tokio::time::timeout(CONTROL_TIMEOUT, talk)
        .await
        .map_err(|_| format!("control port {port} did not answer within {CONTROL_TIMEOUT:?}"))?
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// An echo server standing in for the apiserver.
    async fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.into_split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn start_proxy(upstream: SocketAddr) -> ProxyPorts {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ports.json");
        let f2 = file.clone();
        tokio::spawn(async move { run(upstream, &f2).await });
        loop {
            if let Ok(text) = tokio::fs::read(&file).await {
                std::mem::forget(dir);
                return serde_json::from_slice(&text).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn roundtrip(sock: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        sock.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        sock.read_exact(&mut buf).await?;
        Ok(buf.to_vec())
    }

    #[tokio::test]
    async fn forwards_partitions_heals_and_delays() {
        let ports = start_proxy(echo().await).await;
        let mut a = TcpStream::connect(("127.0.0.1", ports.listen))
            .await
            .unwrap();
        assert_eq!(roundtrip(&mut a).await.unwrap(), b"ping");

        let m = control(ports.control, "partition").await.unwrap();
        assert!(m.partitioned);
        // The open connection is cut...
        let mut buf = [0u8; 1];
        let cut = tokio::time::timeout(Duration::from_secs(2), a.read(&mut buf))
            .await
            .unwrap();
        assert!(matches!(cut, Ok(0) | Err(_)), "{cut:?}");
        // ...and a new one is accepted but never answered.
        let mut b = TcpStream::connect(("127.0.0.1", ports.listen))
            .await
            .unwrap();
        let blackholed = tokio::time::timeout(Duration::from_millis(500), roundtrip(&mut b)).await;
        assert!(blackholed.is_err(), "answered during partition");

        assert!(!control(ports.control, "heal").await.unwrap().partitioned);
        let mut c = TcpStream::connect(("127.0.0.1", ports.listen))
            .await
            .unwrap();
        assert_eq!(roundtrip(&mut c).await.unwrap(), b"ping");

        assert_eq!(
            control(ports.control, "latency 150")
                .await
                .unwrap()
                .latency_ms,
            150
        );
        let t = std::time::Instant::now();
        roundtrip(&mut c).await.unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );

        assert!(control(ports.control, "latency x").await.is_err());
        assert!(control(ports.control, "bogus").await.is_err());
    }

    #[tokio::test]
    async fn unreachable_upstream_resets_the_client() {
        let gone = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let ports = start_proxy(gone).await;
        let mut s = TcpStream::connect(("127.0.0.1", ports.listen))
            .await
            .unwrap();
        let r = tokio::time::timeout(Duration::from_secs(2), roundtrip(&mut s))
            .await
            .unwrap();
        assert!(r.is_err());
    }
}
