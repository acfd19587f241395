//! `Moto`: a recording, fault-injecting proxy in front of the testbed's moto, for the watch tests.
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::aws_env;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    Forward,
    /// Connections are closed as soon as they are accepted (and open ones are cut).
    Refuse,
    /// Connections are accepted and never answered (and open ones are cut).
    Hold,
}

/// A TCP proxy in front of the testbed's moto that notes each HTTP request's line (with the
/// `Action` of an STS form body, never the rest of it). Hand-written rather than
/// `e2e::proxy` (a separate process that forwards bytes only): the test needs the request lines
/// and the fault modes in process. It runs on its own thread and runtime, so the test's blocking
/// calls never stall it.
pub(super) struct Moto {
    pub(super) url: String,
    requests: Arc<Mutex<Vec<String>>>,
    held: Arc<Mutex<Vec<TcpStream>>>,
    mode: watch::Sender<Mode>,
}

impl Moto {
    pub(super) fn start() -> Moto {
        let moto = aws_env()
            .into_iter()
            .find(|(k, _)| k == "AWS_ENDPOINT_URL")
            .map(|(_, v)| v)
            .unwrap();
        let upstream = moto.trim_start_matches("http://").to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (mode, rx) = watch::channel(Mode::Forward);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let held = Arc::new(Mutex::new(Vec::new()));
        let (r, h) = (requests.clone(), held.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                serve(listener, upstream, r, rx, h).await;
            });
        });
        Moto {
            url,
            requests,
            held,
            mode,
        }
    }

    pub(super) fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    pub(super) fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    pub(super) fn held(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

async fn serve(
    listener: TcpListener,
    upstream: String,
    requests: Arc<Mutex<Vec<String>>>,
    mode: watch::Receiver<Mode>,
    held: Arc<Mutex<Vec<TcpStream>>>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let now = *mode.borrow();
        match now {
            Mode::Forward => {
                let (up, r, m) = (upstream.clone(), requests.clone(), mode.clone());
                tokio::spawn(forward(client, up, r, m));
            }
            Mode::Refuse => drop(client),
            Mode::Hold => held.lock().unwrap().push(client),
        }
    }
}

/// Forwards one connection both ways until either side closes or the mode leaves `Forward`.
async fn forward(
    client: TcpStream,
    upstream: String,
    requests: Arc<Mutex<Vec<String>>>,
    mut mode: watch::Receiver<Mode>,
) {
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let mut parser = Requests::default();
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = cr.read(&mut buf).await {
            parser.feed(&buf[..n], &requests);
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = sw.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
    };
    let cut = async {
        while mode.changed().await.is_ok() {
            if *mode.borrow() != Mode::Forward {
                return;
            }
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        () = cut => {}
    }
}

/// HTTP/1.1 request heads in a client's byte stream (bodies skipped by Content-Length).
#[derive(Default)]
struct Requests {
    pending: Vec<u8>,
    /// The request line whose body is still being read, and the body's length.
    open: Option<(String, usize)>,
}

impl Requests {
    fn feed(&mut self, bytes: &[u8], out: &Mutex<Vec<String>>) {
        self.pending.extend_from_slice(bytes);
        loop {
            if let Some((line, len)) = &self.open {
                if self.pending.len() < *len {
                    return;
                }
                let body: Vec<u8> = self.pending.drain(..*len).collect();
                let body = String::from_utf8_lossy(&body);
                let action = body.split('&').find(|kv| kv.starts_with("Action="));
                let noted = match action {
                    Some(a) => format!("{line} {a}"),
                    None => line.clone(),
                };
                out.lock().unwrap().push(noted);
                self.open = None;
                continue;
            }
            let Some(end) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                return;
            };
            let head = String::from_utf8_lossy(&self.pending[..end]).into_owned();
            self.pending.drain(..end + 4);
            let line = head.lines().next().unwrap_or_default();
            let len = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            self.open = Some((line.to_string(), len));
        }
    }
}

/// The clusters DescribeCluster was asked for (`GET /clusters/NAME`), in order.
pub(super) fn described(requests: &[String]) -> Vec<String> {
    requests
        .iter()
        .filter_map(|r| r.strip_prefix("GET /clusters/"))
        .map(|rest| {
            rest.split([' ', '?'])
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// How many eks:ListClusters calls (`GET /clusters` or `GET /clusters?...`).
pub(super) fn listed(requests: &[String]) -> usize {
    requests
        .iter()
        .filter(|r| r.starts_with("GET /clusters ") || r.starts_with("GET /clusters?"))
        .count()
}
