//! `Portal`: a minimal fake of the two credential endpoints moto lacks, for the laptop tests.
//! - the IAM Identity Center portal's GetRoleCredentials, in its documented shape:
//!   `GET /federation/credentials?role_name=R&account_id=A` with header `x-amz-sso_bearer_token`,
//!   answering `{"roleCredentials":{"accessKeyId","secretAccessKey","sessionToken","expiration"}}`
//!   (expiration in epoch milliseconds), or 401 `UnauthorizedException` for an unknown token;
//! - the EKS Pod Identity agent (`AWS_CONTAINER_CREDENTIALS_FULL_URI`): `GET /v1/credentials` with
//!   the token of `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` as `Authorization`, answering the
//!   container credentials JSON (`AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration`).
//!
//! The keys it hands out are real moto session keys (AssumeRole of the role named, in its
//! account), so the tokens signed with them pass the testbed's verifier like any other.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use super::aws_env;

/// One request as the fake saw it (the bearer token compared, never kept).
#[derive(Clone, Debug)]
pub(super) struct Seen {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: BTreeMap<String, String>,
    pub(super) token_known: bool,
}

pub(super) struct Portal {
    pub(super) url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// The secret keys and session tokens handed out, for the tests that look for leaks.
    secrets: Arc<Mutex<Vec<String>>>,
}

/// Temporary keys from moto.
#[derive(Clone, Debug)]
pub(super) struct Keys {
    pub(super) access_key_id: String,
    pub(super) secret_access_key: String,
    pub(super) session_token: String,
    /// RFC 3339, as moto wrote it.
    pub(super) expiration: String,
}

struct Config {
    /// SSO access tokens the portal knows.
    sso_tokens: Vec<String>,
    /// The Pod Identity agent's token and the role whose keys it hands out.
    pod_identity: Option<(String, String)>,
}

impl Portal {
    /// A portal that accepts SSO_TOKENS, and, with POD_IDENTITY = (token, role ARN), an agent.
    pub(super) fn start(sso_tokens: &[&str], pod_identity: Option<(&str, &str)>) -> Portal {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let secrets = Arc::new(Mutex::new(Vec::new()));
        let config = Arc::new(Config {
            sso_tokens: sso_tokens.iter().map(|t| t.to_string()).collect(),
            pod_identity: pod_identity.map(|(t, r)| (t.to_string(), r.to_string())),
        });
        let (s, k) = (seen.clone(), secrets.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (s, k, config) = (s.clone(), k.clone(), config.clone());
                std::thread::spawn(move || serve(conn, &config, &s, &k));
            }
        });
        Portal { url, seen, secrets }
    }

    pub(super) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub(super) fn secrets(&self) -> Vec<String> {
        self.secrets.lock().unwrap().clone()
    }
}

/// One request per connection (`Connection: close`): the SDK opens another for the next.
fn serve(conn: TcpStream, config: &Config, seen: &Mutex<Vec<Seen>>, secrets: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query: BTreeMap<String, String> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (status, body) = match (method.as_str(), path) {
        ("GET", "/federation/credentials") => {
            let known = headers
                .get("x-amz-sso_bearer_token")
                .is_some_and(|t| config.sso_tokens.contains(t));
            seen.lock().unwrap().push(Seen {
                method: method.clone(),
                path: path.to_string(),
                query: query.clone(),
                token_known: known,
            });
            match (known, query.get("role_name"), query.get("account_id")) {
                (false, _, _) => (
                    "401 Unauthorized",
                    r#"{"__type":"UnauthorizedException","message":"Session token not found or invalid"}"#.to_string(),
                ),
                (true, Some(role), Some(account)) => {
                    let keys = assume_role(&format!("arn:aws:iam::{account}:role/{role}"), "sso-user");
                    secrets.lock().unwrap().extend([keys.secret_access_key.clone(), keys.session_token.clone()]);
                    let ms = time::OffsetDateTime::parse(
                        &keys.expiration,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .map(|t| t.unix_timestamp() * 1000)
                    .unwrap();
                    let doc = serde_json::json!({"roleCredentials": {
                        "accessKeyId": keys.access_key_id,
                        "secretAccessKey": keys.secret_access_key,
                        "sessionToken": keys.session_token,
                        "expiration": ms,
                    }});
                    ("200 OK", doc.to_string())
                }
                _ => (
                    "400 Bad Request",
                    r#"{"__type":"InvalidRequestException","message":"role_name and account_id are required"}"#.to_string(),
                ),
            }
        }
        ("GET", "/v1/credentials") => {
            let known = config
                .pod_identity
                .as_ref()
                .filter(|(token, _)| headers.get("authorization") == Some(token));
            seen.lock().unwrap().push(Seen {
                method: method.clone(),
                path: path.to_string(),
                query: query.clone(),
                token_known: known.is_some(),
            });
            match known {
                Some((_, role)) => {
                    let keys = assume_role(role, "pod-identity");
                    secrets
                        .lock()
                        .unwrap()
                        .extend([keys.secret_access_key.clone(), keys.session_token.clone()]);
                    let doc = serde_json::json!({
                        "AccessKeyId": keys.access_key_id,
                        "SecretAccessKey": keys.secret_access_key,
                        "Token": keys.session_token,
                        "Expiration": keys.expiration,
                    });
                    ("200 OK", doc.to_string())
                }
                None => (
                    "401 Unauthorized",
                    r#"{"message":"unauthorized"}"#.to_string(),
                ),
            }
        }
        _ => ("404 Not Found", r#"{"message":"not found"}"#.to_string()),
    };
    let error_type = if status.starts_with("401") && path.starts_with("/federation") {
        "x-amzn-errortype: UnauthorizedException\r\n"
    } else {
        ""
    };
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{error_type}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// AssumeRole of ROLE_ARN in the testbed's moto (which checks no signature; the Authorization
/// header only routes the request to STS).
pub(super) fn assume_role(role_arn: &str, session: &str) -> Keys {
    let moto = aws_env()
        .into_iter()
        .find(|(k, _)| k == "AWS_ENDPOINT_URL")
        .map(|(_, v)| v)
        .unwrap();
    let host = moto.trim_start_matches("http://");
    let body = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName={session}",
        role_arn.replace(':', "%3A").replace('/', "%2F")
    );
    let mut conn = TcpStream::connect(host).unwrap();
    write!(
        conn,
        "POST / HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/x-www-form-urlencoded\r\n\
         authorization: AWS4-HMAC-SHA256 Credential=AKIDTESTPORTAL/20260101/eu-central-1/sts/aws4_request, SignedHeaders=host, Signature=0\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let field = |name: &str| {
        let open = format!("<{name}>");
        let start = response
            .find(&open)
            .unwrap_or_else(|| panic!("moto AssumeRole {role_arn}: no {name} in {response}"))
            + open.len();
        let end = response[start..].find('<').unwrap() + start;
        response[start..end].to_string()
    };
    Keys {
        access_key_id: field("AccessKeyId"),
        secret_access_key: field("SecretAccessKey"),
        session_token: field("SessionToken"),
        expiration: field("Expiration"),
    }
}
