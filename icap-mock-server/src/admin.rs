//! The HTTP admin API (feature `admin`): JSON over HTTP/1.1 with keep-alive, served by
//! axum. The README's "Admin API reference" lists every route with an example; a test
//! checks that the table and the router agree. One file of about 520 lines on purpose: the
//! route list, the handlers and their JSON are read together against that table.
//!
//! Every answer is `application/json`, errors included (`{"error": "..."}`, with the
//! valid names where a name was wrong). Request bodies are read up to a limit
//! ([`DEFAULT_ADMIN_BODY_LIMIT`] unless the builder says otherwise); a larger one gets
//! `413`.

#![cfg(feature = "admin")]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State as Shared};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::{FAULT_NAMES, FaultSpec, RuleSpec};
use crate::journal::Transaction;
use crate::listener::{Listener, Outage};
use crate::state::{State, lock};

/// Largest request body the admin API reads by default (1 MiB).
pub const DEFAULT_ADMIN_BODY_LIMIT: usize = 1024 * 1024;

/// The routes, as `METHOD /path`; the README's table and the 404 answer list the same.
const ROUTES: &[&str] = &[
    "GET /health",
    "POST /reset",
    "GET /journal",
    "GET /journal/count",
    "DELETE /journal",
    "GET /rules",
    "POST /rules",
    "DELETE /rules",
    "GET /rules/{id}",
    "DELETE /rules/{id}",
    "POST /faults",
    "DELETE /faults",
    "GET /verify",
];

/// The outage modes `POST /faults` switches to, under the names `/health` reports.
const OUTAGE_NAMES: &[&str] = &["refuse", "accept_and_close", "none"];

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

/// What the handlers share: the state, the outage switch, and the specs of the rules
/// added through the API (so `GET /rules` can show their `when` and `then`).
struct Admin {
    state: Arc<State>,
    outage: Arc<Listener>,
    specs: Mutex<HashMap<u64, RuleSpec>>,
    body_limit: usize,
}

type AdminState = Shared<Arc<Admin>>;

/// An answer: a status and a JSON value.
struct Json(StatusCode, Value);

impl IntoResponse for Json {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec_pretty(&self.1).unwrap_or_default();
        (
            self.0,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

fn ok(v: Value) -> Json {
    Json(StatusCode::OK, v)
}

fn error(status: StatusCode, message: impl Into<String>) -> Json {
    Json(status, json!({"error": message.into()}))
}

/// Serves the admin API on `addr` over `state`, switching outages on `outage`.
pub(crate) async fn start(
    state: Arc<State>,
    outage: Arc<Listener>,
    addr: SocketAddr,
    body_limit: usize,
) -> std::io::Result<AdminHandle> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let app = router(Arc::new(Admin {
        state,
        outage,
        specs: Mutex::new(HashMap::new()),
        body_limit,
    }));
    let task = tokio::spawn(async move {
        // serve returns only on an accept error it cannot retry; the API then stops.
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "admin API stopped");
        }
    });
    Ok(AdminHandle { addr, task })
}

fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/reset", post(reset))
        .route("/journal", get(journal).delete(clear_journal))
        .route("/journal/count", get(journal_count))
        .route("/rules", get(rules).post(add_rule).delete(remove_all_rules))
        .route("/rules/{id}", get(rule).delete(remove_rule))
        .route("/faults", post(add_fault).delete(clear_faults))
        .route("/verify", get(verify))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(admin)
}

async fn not_found() -> Json {
    Json(
        StatusCode::NOT_FOUND,
        json!({"error": "no such route", "routes": ROUTES}),
    )
}

async fn method_not_allowed() -> Json {
    Json(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"error": "method not allowed on this path", "routes": ROUTES}),
    )
}

/// The body as JSON of type `T`, within the limit.
async fn read_json<T: serde::de::DeserializeOwned>(admin: &Admin, body: Body) -> Result<T, Json> {
    let bytes = axum::body::to_bytes(body, admin.body_limit)
        .await
        .map_err(|_| {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body over the limit of {} bytes (or cut short)",
                    admin.body_limit
                ),
            )
        })?;
    serde_json::from_slice(&bytes).map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))
}

async fn health(Shared(a): AdminState) -> Json {
    ok(json!({
        "status": "ok",
        "outage": a.outage.outage().name(),
        "istag": &*a.state.istag(),
    }))
}

async fn reset(Shared(a): AdminState) -> Json {
    let outage = set_outage(&a, Outage::None);
    let removed = a.state.remove_rules(|_| false);
    lock(&a.specs).clear();
    let journal = a.state.journal().len();
    a.state.clear_journal();
    outage.map_or_else(
        |e| e,
        |()| {
            ok(json!({
                "removed_rules": removed,
                "removed_journal_entries": journal,
                "outage": Outage::None.name(),
            }))
        },
    )
}

/// `GET /journal` and `GET /journal/count` filters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalQuery {
    /// At most this many entries (the oldest that pass the other filters).
    limit: Option<usize>,
    /// Only entries whose id is greater (a cursor: the last id seen).
    after: Option<u64>,
    /// Only requests received at or after this time (RFC 3339, e.g.
    /// `2026-12-01T15:00:00Z`, or milliseconds since the Unix epoch).
    since: Option<String>,
    /// Only requests to this service.
    service: Option<String>,
    /// Only requests whose file name matches this glob.
    filename: Option<String>,
    /// `true`: only requests no rule answered; `false`: only those a rule answered.
    unmatched: Option<bool>,
}

const JOURNAL_QUERY: &str = "limit, after, since, service, filename, unmatched";

/// `since`: an RFC 3339 time or milliseconds since the Unix epoch.
fn parse_since(s: &str) -> Result<std::time::SystemTime, Json> {
    if let Ok(ms) = s.parse::<u64>() {
        return std::time::UNIX_EPOCH
            .checked_add(std::time::Duration::from_millis(ms))
            .ok_or_else(|| error(StatusCode::BAD_REQUEST, format!("since={s}: out of range")));
    }
    humantime::parse_rfc3339_weak(s).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!(
                "since={s:?}: {e}; give an RFC 3339 time (2026-12-01T15:00:00Z) or ms since the Unix epoch"
            ),
        )
    })
}

fn journal_query(q: Result<Query<JournalQuery>, QueryRejection>) -> Result<JournalQuery, Json> {
    let q = q.map(|Query(q)| q).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("{}; valid parameters: {JOURNAL_QUERY}", e.body_text()),
        )
    })?;
    if let Some(s) = &q.since {
        parse_since(s)?;
    }
    Ok(q)
}

fn filtered(state: &State, q: &JournalQuery) -> Vec<Transaction> {
    state
        .journal()
        .into_iter()
        .filter(|t| q.after.is_none_or(|s| t.id > s))
        .filter(|t| {
            // Checked by journal_query: a bad time never gets here.
            let since = q.since.as_deref().and_then(|s| parse_since(s).ok());
            since.is_none_or(|s| t.received_at >= s)
        })
        .filter(|t| q.service.as_deref().is_none_or(|s| t.service == s))
        .filter(|t| q.unmatched.is_none_or(|u| t.rule.is_none() == u))
        .filter(|t| {
            q.filename
                .as_deref()
                .is_none_or(|g| filename(t).is_some_and(|n| crate::service::glob_match(g, &n)))
        })
        .take(q.limit.unwrap_or(usize::MAX))
        .collect()
}

/// The file name of a journal entry, as rules see it: the embedded heads'
/// `Content-Disposition`, else the last segment of the embedded URL's path.
fn filename(t: &Transaction) -> Option<String> {
    let disposition = t
        .http_response
        .as_ref()
        .and_then(|r| r.headers.get("Content-Disposition"))
        .or_else(|| {
            t.http_request
                .as_ref()
                .and_then(|r| r.headers.get("Content-Disposition"))
        });
    if let Some(n) =
        disposition.and_then(|v| crate::request::disposition_filename(&v.to_str_lossy()))
    {
        return Some(n);
    }
    let target = String::from_utf8_lossy(t.http_request.as_ref()?.target()).into_owned();
    // An absolute target: the path starts after the authority.
    let path = match target.find("://") {
        Some(i) => target[i + 3..]
            .find('/')
            .map_or("", |j| &target[i + 3 + j..]),
        None => &target,
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let last = path.rsplit('/').next().unwrap_or("");
    (!last.is_empty()).then(|| last.to_owned())
}

async fn journal(Shared(a): AdminState, q: Result<Query<JournalQuery>, QueryRejection>) -> Json {
    match journal_query(q) {
        Ok(q) => ok(Value::Array(
            filtered(&a.state, &q)
                .iter()
                .map(Transaction::to_json)
                .collect(),
        )),
        Err(e) => e,
    }
}

async fn journal_count(
    Shared(a): AdminState,
    q: Result<Query<JournalQuery>, QueryRejection>,
) -> Json {
    match journal_query(q) {
        Ok(q) => ok(json!({"count": filtered(&a.state, &q).len()})),
        Err(e) => e,
    }
}

async fn clear_journal(Shared(a): AdminState) -> Json {
    let n = a.state.journal().len();
    a.state.clear_journal();
    ok(json!({"cleared": true, "removed": n}))
}

/// One rule: its counters, and its `when`/`then` if it came through the API.
fn rule_json(a: &Admin, r: &crate::mock::Rule) -> Value {
    let (matched, applied) = {
        let st = lock(&r.state);
        (st.matched, st.applied)
    };
    let spec = lock(&a.specs).get(&r.id).cloned();
    let mut v = json!({
        "id": r.id,
        "name": r.mock.name,
        "matched": matched,
        "applied": applied,
        "expect": r.mock.expect.map(|t| t.to_string()),
        "priority": r.mock.priority,
        // Built in Rust and not described (a closure): only the counters are shown.
        "source": if spec.is_some() { "admin" } else { "code" },
    });
    if let (None, Some(Value::Object(d)), Some(obj)) =
        (&spec, &r.mock.description, v.as_object_mut())
    {
        for (k, val) in d {
            if k != "priority" {
                obj.insert(k.clone(), val.clone());
            }
        }
    }
    if let (Some(spec), Some(obj)) = (spec, v.as_object_mut()) {
        for (k, val) in [
            ("when", serde_json::to_value(&spec.when)),
            ("then", serde_json::to_value(&spec.then)),
            ("times", serde_json::to_value(spec.times)),
            ("every", serde_json::to_value(spec.every)),
            ("probability", serde_json::to_value(spec.probability)),
            ("seed", serde_json::to_value(spec.seed)),
        ] {
            obj.insert(k.to_owned(), val.unwrap_or(Value::Null));
        }
    }
    v
}

async fn rules(Shared(a): AdminState) -> Json {
    let c = a.state.snapshot();
    ok(Value::Array(
        c.rules.iter().map(|r| rule_json(&a, r)).collect(),
    ))
}

fn rule_id(id: Result<Path<String>, PathRejection>) -> Result<u64, Json> {
    let Ok(Path(id)) = id else {
        return Err(error(StatusCode::BAD_REQUEST, "bad rule id"));
    };
    id.parse::<u64>().map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            format!("rule id {id:?} is not a number (ids are in GET /rules)"),
        )
    })
}

async fn rule(Shared(a): AdminState, id: Result<Path<String>, PathRejection>) -> Json {
    let id = match rule_id(id) {
        Ok(id) => id,
        Err(e) => return e,
    };
    let c = a.state.snapshot();
    match c.rules.iter().find(|r| r.id == id) {
        Some(r) => ok(rule_json(&a, r)),
        None => error(StatusCode::NOT_FOUND, format!("no rule {id}")),
    }
}

async fn add_rule(Shared(a): AdminState, body: Body) -> Json {
    let spec: RuleSpec = match read_json(&a, body).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    match spec.to_mock() {
        Ok(mock) => {
            let spec = spec.effective();
            let id = mount(&a, mock, spec.clone());
            Json(
                StatusCode::CREATED,
                json!({"id": id, "when": spec.when, "then": spec.then}),
            )
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// Adds a rule and remembers its spec under its id.
fn mount(a: &Admin, mock: crate::mock::Mock, spec: RuleSpec) -> u64 {
    // The spec goes in under the lock, so a concurrent GET /rules never sees the rule
    // without it.
    let mut specs = lock(&a.specs);
    let id = a.state.add_rule(mock);
    specs.insert(id, spec);
    id
}

async fn remove_all_rules(Shared(a): AdminState) -> Json {
    let n = a.state.remove_rules(|_| false);
    lock(&a.specs).clear();
    ok(json!({"removed": n}))
}

async fn remove_rule(Shared(a): AdminState, id: Result<Path<String>, PathRejection>) -> Json {
    let id = match rule_id(id) {
        Ok(id) => id,
        Err(e) => return e,
    };
    match a.state.remove_rules(|r| r.id != id) {
        0 => error(StatusCode::NOT_FOUND, format!("no rule {id}")),
        n => {
            lock(&a.specs).remove(&id);
            ok(json!({"removed": n}))
        }
    }
}

fn set_outage(a: &Admin, o: Outage) -> Result<(), Json> {
    a.outage
        .set_outage(o)
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn add_fault(Shared(a): AdminState, body: Body) -> Json {
    let spec: FaultSpec = match read_json(&a, body).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    let outage = match spec.fault.as_str() {
        // `outage` is the old spelling of `refuse`; the answer uses /health's word.
        "refuse" | "outage" => Some(Outage::Refuse),
        "accept_and_close" => Some(Outage::AcceptAndClose),
        "none" => Some(Outage::None),
        _ => None,
    };
    if let Some(o) = outage {
        return match set_outage(&a, o) {
            Ok(()) => ok(json!({"outage": o.name()})),
            Err(e) => e,
        };
    }
    if !FAULT_NAMES.contains(&spec.fault.as_str())
        && crate::reply::FaultKind::parse(&spec.fault, None, None).is_none()
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown fault {:?}; valid faults: {}; outage modes: {}",
                spec.fault,
                FAULT_NAMES.join(", "),
                OUTAGE_NAMES.join(", ")
            ),
        );
    }
    let rule = spec.to_rule();
    match rule.to_mock() {
        Ok(mock) => {
            let rule = rule.effective();
            let id = mount(&a, mock, rule.clone());
            let t = &rule.then;
            Json(
                StatusCode::CREATED,
                json!({
                    "id": id,
                    "fault": t.fault,
                    "delay_ms": t.delay_ms,
                    "status": t.status,
                    "service": rule.when.service,
                    "times": rule.times,
                    "every": rule.every,
                    "probability": rule.probability,
                }),
            )
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn clear_faults(Shared(a): AdminState) -> Json {
    if let Err(e) = set_outage(&a, Outage::None) {
        return e;
    }
    let n = a.state.remove_rules(|r| {
        !r.mock
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("fault:"))
    });
    let live: Vec<u64> = a.state.snapshot().rules.iter().map(|r| r.id).collect();
    lock(&a.specs).retain(|id, _| live.contains(id));
    ok(json!({"removed": n, "outage": Outage::None.name()}))
}

async fn verify(Shared(a): AdminState) -> Json {
    let unmet = a.state.unmet_expectations();
    Json(
        if unmet.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::CONFLICT
        },
        json!({"unmet": unmet}),
    )
}
