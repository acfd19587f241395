//! Talks to a cluster's etcd through its v3 JSON gateway (plain HTTP on the loopback client URL):
//! the current revision, and compaction up to it (the testbed's "expired resourceVersion" fault).
//!
//! Hand-written HTTP/1.1 (one request per connection) rather than an HTTP client crate: these
//! are two fixed POSTs to a loopback port, and etcdctl is not in Debian bookworm's etcd-server.
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(30);

/// POSTs `body` to `path` of the gateway on 127.0.0.1:`port`; the answer's JSON, or why not.
async fn post(port: u16, path: &str, body: &Value) -> Result<Value, String> {
    let talk = async {
        let body = body.to_string();
        let mut sock = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("cannot reach etcd on port {port}: {e}"))?;
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        sock.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("send {path}: {e}"))?;
        let mut raw = Vec::new();
        sock.read_to_end(&mut raw)
            .await
            .map_err(|e| format!("read the answer to {path}: {e}"))?;
        let text = String::from_utf8_lossy(&raw);
        let (head, rest) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("{path}: no HTTP header in the answer"))?;
        // The gateway answers in one piece or chunked; the JSON object is the part in braces.
        let json = match (rest.find('{'), rest.rfind('}')) {
            (Some(a), Some(b)) if a <= b => &rest[a..=b],
            _ => return Err(format!("{path}: no JSON in the answer ({head})")),
        };
        let value: Value =
            serde_json::from_str(json).map_err(|e| format!("{path}: bad JSON ({e}): {json}"))?;
        if head.starts_with("HTTP/1.1 200") {
            Ok(value)
        } else {
            Err(format!(
                "{path}: {}: {value}",
                head.lines().next().unwrap_or("")
            ))
        }
    };
    tokio::time::timeout(TIMEOUT, talk)
        .await
        .map_err(|_| format!("etcd on port {port} did not answer {path} within {TIMEOUT:?}"))?
}

/// The store's current revision (the header of a count-only range over every key).
pub(crate) async fn revision(port: u16) -> Result<i64, String> {
    // key "\0" with range_end "\0" = every key; base64 "AA==".
    let req = serde_json::json!({ "key": "AA==", "range_end": "AA==", "count_only": true });
    let answer = post(port, "/v3/kv/range", &req).await?;
    let rev = &answer["header"]["revision"];
    // int64 fields are strings in proto3 JSON.
    rev.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| rev.as_i64())
        .ok_or_else(|| format!("no revision in {answer}"))
}

/// Compacts the history up to the current revision and waits until it is physically gone;
/// returns that revision. Already compacted that far counts as done.
pub(crate) async fn compact(port: u16) -> Result<i64, String> {
    let rev = revision(port).await?;
    let req = serde_json::json!({ "revision": rev.to_string(), "physical": true });
    match post(port, "/v3/kv/compaction", &req).await {
        Ok(_) => Ok(rev),
        Err(e) if e.contains("has been compacted") => Ok(rev),
        Err(e) => Err(e),
    }
}
