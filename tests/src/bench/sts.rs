//! A counting TCP proxy in front of the testbed's moto for the fleet bench: it forwards bytes
//! both ways and counts the STS actions it sees in the request bodies (the form's `Action=`
//! field only; nothing else of a request is kept). Runs on its own thread and runtime, so the
//! bench's waits never stall an exec plugin.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::error::TestbedError;

const MARK: &[u8] = b"Action=AssumeRole";

/// STS calls seen so far: (AssumeRoleWithWebIdentity, AssumeRole).
#[derive(Default)]
struct Counts {
    web: AtomicU64,
    assume: AtomicU64,
}

pub struct StsProxy {
    pub url: String,
    counts: Arc<Counts>,
}

impl StsProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> Result<StsProxy, TestbedError> {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| TestbedError::io("bind", "127.0.0.1:0 (STS proxy)", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| TestbedError::io("configure", "the STS proxy socket", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| TestbedError::io("read the address of", "the STS proxy socket", e))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TestbedError::io("start", "the STS proxy runtime", e))?;
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        std::thread::spawn(move || {
            rt.block_on(async move {
                let Ok(listener) = TcpListener::from_std(listener) else {
                    return;
                };
                while let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(forward(client, upstream.clone(), c.clone()));
                }
            });
        });
        Ok(StsProxy {
            url: format!("http://{addr}"),
            counts,
        })
    }

    /// (AssumeRoleWithWebIdentity, AssumeRole) calls so far.
    pub fn calls(&self) -> (u64, u64) {
        (
            self.counts.web.load(Ordering::Relaxed),
            self.counts.assume.load(Ordering::Relaxed),
        )
    }
}

async fn forward(client: TcpStream, upstream: String, counts: Arc<Counts>) {
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        // What may hold the start of a mark not yet complete (split across two reads).
        let mut pending: Vec<u8> = Vec::new();
        while let Ok(n @ 1..) = cr.read(&mut buf).await {
            pending.extend_from_slice(&buf[..n]);
            let consumed = count(&pending, &counts);
            let keep_from = consumed.max(pending.len().saturating_sub(MARK.len()));
            pending.drain(..keep_from);
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = sw.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
        let _ = cw.shutdown().await;
    };
    tokio::join!(up, down);
}

/// Counts the marks in `bytes` whose next byte is there too (it tells the two actions apart);
/// returns the offset after the last one counted.
fn count(bytes: &[u8], counts: &Counts) -> usize {
    let mut i = 0;
    while let Some(at) = find(&bytes[i..], MARK) {
        let end = i + at + MARK.len();
        let Some(next) = bytes.get(end) else { break };
        if *next == b'W' {
            counts.web.fetch_add(1, Ordering::Relaxed);
        } else {
            counts.assume.fetch_add(1, Ordering::Relaxed);
        }
        i = end + 1;
    }
    i
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_split_across_reads_are_counted_once() {
        let counts = Counts::default();
        let body = b"POST / HTTP/1.1\r\n\r\nAction=AssumeRoleWithWebIdentity&V=1POST /\r\n\r\nAction=AssumeRole&V=1";
        for cut in 0..body.len() {
            let before = (
                counts.web.load(Ordering::Relaxed),
                counts.assume.load(Ordering::Relaxed),
            );
            let mut pending = Vec::new();
            for chunk in [&body[..cut], &body[cut..]] {
                pending.extend_from_slice(chunk);
                let consumed = count(&pending, &counts);
                let keep_from = consumed.max(pending.len().saturating_sub(MARK.len()));
                pending.drain(..keep_from);
            }
            let after = (
                counts.web.load(Ordering::Relaxed),
                counts.assume.load(Ordering::Relaxed),
            );
            assert_eq!(
                (after.0 - before.0, after.1 - before.1),
                (1, 1),
                "cut at {cut}"
            );
        }
    }
}
