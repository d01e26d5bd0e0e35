//! The HTTP admin API: a small HTTP/1.1 server (one request per connection) speaking JSON.
//!
//! | request | effect |
//! |---|---|
//! | `GET /health` | `{"status":"ok","outage":"none","istag":"..."}` |
//! | `GET /journal` | the transactions, oldest first |
//! | `DELETE /journal` | empties the journal |
//! | `GET /rules` | the rules with their counters |
//! | `POST /rules` | adds a rule ([`RuleSpec`](crate::config::RuleSpec) as JSON); answers `{"id": N}` |
//! | `DELETE /rules/N` | removes rule N |
//! | `DELETE /rules` | removes every rule |
//! | `POST /faults` | [`FaultSpec`](crate::config::FaultSpec): a fault rule, or an outage mode |
//! | `DELETE /faults` | ends the outage, removes the rules added through `/faults` |
//! | `GET /verify` | `{"unmet": [...]}`, status 409 if an expectation is unmet |

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::config::{FaultSpec, RuleSpec};
use crate::journal::Transaction;
use crate::listener::{Listener, Outage};
use crate::state::State;

const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 1024 * 1024;

/// A running admin API.
#[derive(Debug)]
pub(crate) struct AdminHandle {
    pub(crate) addr: SocketAddr,
    task: JoinHandle<()>,
}

impl AdminHandle {
    pub(crate) fn stop(self) {
        self.task.abort();
    }
}

/// The two things the admin API acts on: the state, and the outage switch.
struct Admin {
    state: Arc<State>,
    outage: Arc<Listener>,
}

/// Serves the admin API on `addr` over `state`, switching outages on `outage`.
pub(crate) async fn start(
    state: Arc<State>,
    outage: Arc<Listener>,
    addr: SocketAddr,
) -> std::io::Result<AdminHandle> {
    let shared = Arc::new(Admin { state, outage });
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(10), serve(stream, &shared)).await;
            });
        }
    });
    Ok(AdminHandle { addr, task })
}

async fn serve(mut stream: TcpStream, shared: &Admin) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let (method, path, body_start, content_length) = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(end)) => {
                let len = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("Content-Length"))
                    .and_then(|h| {
                        std::str::from_utf8(h.value)
                            .ok()?
                            .trim()
                            .parse::<usize>()
                            .ok()
                    })
                    .unwrap_or(0);
                break (
                    req.method.unwrap_or("").to_owned(),
                    req.path.unwrap_or("/").to_owned(),
                    end,
                    len,
                );
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            _ => {
                return reply(&mut stream, 400, &json!({"error": "malformed request"})).await;
            }
        }
    };
    if content_length > MAX_BODY {
        return reply(&mut stream, 413, &json!({"error": "body too large"})).await;
    }
    while buf.len() < body_start + content_length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = &buf[body_start..body_start + content_length];
    let (status, value) = route(shared, &method, &path, body);
    reply(&mut stream, status, &value).await
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, (u16, Value)> {
    serde_json::from_slice(body).map_err(|e| (400, json!({"error": e.to_string()})))
}

fn route(shared: &Admin, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let path = path.split('?').next().unwrap_or("");
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let result: Result<(u16, Value), (u16, Value)> = match (method, segments.as_slice()) {
        ("GET", ["health"]) => Ok((
            200,
            json!({
                "status": "ok",
                "outage": shared.outage.outage().name(),
                "istag": shared.state.istag(),
            }),
        )),
        ("GET", ["journal"]) => Ok((
            200,
            Value::Array(
                shared
                    .state
                    .journal()
                    .iter()
                    .map(Transaction::to_json)
                    .collect(),
            ),
        )),
        ("DELETE", ["journal"]) => {
            shared.state.clear_journal();
            Ok((200, json!({"cleared": true})))
        }
        ("GET", ["rules"]) => Ok((200, rules_json(&shared.state))),
        ("POST", ["rules"]) => parse::<RuleSpec>(body).and_then(|spec| {
            let mock = spec
                .to_mock()
                .map_err(|e| (400, json!({"error": e.to_string()})))?;
            Ok((201, json!({"id": shared.state.add_rule(mock)})))
        }),
        ("DELETE", ["rules"]) => Ok((
            200,
            json!({"removed": shared.state.remove_rules(|_| false)}),
        )),
        ("DELETE", ["rules", id]) => match id.parse::<u64>() {
            Ok(id) => match shared.state.remove_rules(|r| r.id != id) {
                0 => Err((404, json!({"error": format!("no rule {id}")}))),
                n => Ok((200, json!({"removed": n}))),
            },
            Err(_) => Err((400, json!({"error": "rule id must be a number"}))),
        },
        ("POST", ["faults"]) => parse::<FaultSpec>(body).and_then(|spec| {
            let outage = match spec.fault.as_str() {
                "outage" | "refuse" => Some(Outage::Refuse),
                "accept_and_close" => Some(Outage::AcceptAndClose),
                "none" => Some(Outage::None),
                _ => None,
            };
            if let Some(o) = outage {
                shared
                    .outage
                    .set_outage(o)
                    .map_err(|e| (500, json!({"error": e.to_string()})))?;
                return Ok((200, json!({"outage": spec.fault})));
            }
            let mock = spec
                .to_rule()
                .to_mock()
                .map_err(|e| (400, json!({"error": e.to_string()})))?;
            Ok((201, json!({"id": shared.state.add_rule(mock)})))
        }),
        ("DELETE", ["faults"]) => {
            let _ = shared.outage.set_outage(Outage::None);
            let n = shared.state.remove_rules(|r| {
                !r.mock
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("fault:"))
            });
            Ok((200, json!({"removed": n, "outage": "none"})))
        }
        ("GET", ["verify"]) => {
            let unmet = shared.state.unmet_expectations();
            Ok((
                if unmet.is_empty() { 200 } else { 409 },
                json!({"unmet": unmet}),
            ))
        }
        (_, ["health" | "journal" | "rules" | "faults" | "verify", ..]) => {
            Err((405, json!({"error": "method not allowed"})))
        }
        _ => Err((404, json!({"error": "not found"}))),
    };
    result.unwrap_or_else(|e| e)
}

/// The rules, most recently mounted first, with their counters.
fn rules_json(state: &State) -> Value {
    let c = state.snapshot();
    Value::Array(
        c.rules
            .iter()
            .map(|r| {
                let st = r
                    .state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                json!({
                    "id": r.id,
                    "name": r.mock.name,
                    "matched": st.matched,
                    "applied": st.applied,
                    "expect": r.mock.expect.map(|t| t.to_string()),
                })
            })
            .collect(),
    )
}

async fn reply(stream: &mut TcpStream, status: u16, value: &Value) -> std::io::Result<()> {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    let reason = match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        _ => "Internal Server Error",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}
