//! The node-to-node API, `/cluster/…`: what another node of the cluster
//! asks of this one for its dashboards and console. Every request must
//! carry a signature made with the cluster secret over the sending and the
//! receiving node, the time, a nonce, the method, the path and the body
//! (see `owl_cluster::ClusterSecret::sign_request`); a request meant for
//! another node, or seen before, is refused like an unsigned one — before
//! it is read. A node outside a cluster answers 404.
//!
//! - `GET /cluster/processes?sort=cpu&q=&limit=50` — the process list
//! - `GET /cluster/processes/{n}` — one process, with its stack
//! - `POST /cluster/processes/{n}/kill` — kill it
//! - `GET /cluster/system` — the system figures
//! - `POST /cluster/console` `{"words": […]}` — one console command

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use owl_cluster::{Cluster, REQUEST_HEADER};
use owl_runtime::{ExitReason, PidId, ProcessInfo};
use owl_system::Services;
use owl_system::operator::{SortKey, Stack};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Web;
use crate::pages::processes::bytes;
use crate::throttle::{Target, Throttled};

/// The answer of a console command: its text and its JSON.
pub type ConsoleAnswer = Result<(String, Value), String>;

/// The future a [`RemoteConsole`] returns.
pub type ConsoleFuture = Pin<Box<dyn Future<Output = ConsoleAnswer> + Send>>;

/// Runs console command lines sent by other nodes (`owl console on NODE …`)
/// against this node's services. The console lives in the `owl` binary; it
/// hands the web side this hook.
#[derive(Clone)]
pub struct RemoteConsole(pub Arc<dyn Fn(Services, Vec<String>) -> ConsoleFuture + Send + Sync>);

impl std::fmt::Debug for RemoteConsole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteConsole")
    }
}

/// One row of another node's process list.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RemoteRow {
    pub id: u64,
    pub pid: String,
    pub name: String,
    pub cpu_ms: f64,
    pub reductions: u64,
    pub memory: u64,
    pub queue: usize,
    pub activity: String,
}

/// Another node's process list.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RemoteList {
    pub total: usize,
    pub rows: Vec<RemoteRow>,
}

/// One process of another node, as label/value pairs ready to show.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RemoteProcess {
    pub pid: String,
    pub name: Option<String>,
    pub fields: Vec<(String, String)>,
    pub stack: Option<Vec<String>>,
}

/// Which node a dashboard page shows: `?node=NAME`; absent, empty or this
/// node's own name means this node.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AtNode {
    #[serde(default)]
    node: Option<String>,
}

impl AtNode {
    /// The other node named, if any (with the cluster to reach it), or why
    /// it cannot be shown.
    pub(crate) fn remote(&self, web: &Web) -> Result<Option<(Cluster, String)>, String> {
        let Some(node) = self.node.as_deref().filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        let Some(cluster) = &web.services.cluster else {
            return Err("this node is not in a cluster".into());
        };
        if node == cluster.node_name() {
            return Ok(None);
        }
        owl_cluster::check_node_name(node).map_err(|e| e.to_string())?;
        Ok(Some((cluster.clone(), node.to_string())))
    }
}

/// The other node a live dashboard was asked to show (its menu's value):
/// `None` for this node, an empty choice, or outside a cluster.
pub(crate) fn other_node(cluster: Option<&Cluster>, choice: &str) -> Option<String> {
    let cluster = cluster?;
    (!choice.is_empty() && choice != cluster.node_name()).then(|| choice.chars().take(64).collect())
}

/// A signed request to `node`, its answer read as `T`.
pub(crate) async fn fetch<T: serde::de::DeserializeOwned>(
    cluster: &Cluster,
    node: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<T, String> {
    let answer = cluster
        .request(node, path, body)
        .await
        .map_err(|e| format!("node {node}: {e}"))?;
    serde_json::from_value(answer).map_err(|e| format!("node {node} answered unexpectedly: {e}"))
}

/// The nodes a dashboard can show, for its node menu: this one first
/// (value ""), then the others that are up. Empty outside a cluster.
pub(crate) fn node_choices(web: &Web) -> Vec<(String, String)> {
    let Some(cluster) = &web.services.cluster else {
        return Vec::new();
    };
    let mut choices = vec![(
        String::new(),
        format!("{} (this node)", cluster.node_name()),
    )];
    for m in cluster.members() {
        if !m.is_self && m.state == owl_cluster::MemberState::Up {
            choices.push((m.name.clone(), m.name));
        }
    }
    choices
}

fn refuse(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

/// Why a node-to-node request was refused.
struct Refusal(StatusCode, &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        refuse(self.0, self.1)
    }
}

/// A request signed by a member of this node's cluster, with its body.
/// Extracting it checks the signature (method, path with query, body,
/// time); anything else is refused before a handler runs.
pub(crate) struct Signed {
    body: Bytes,
}

impl FromRequest<Web> for Signed {
    type Rejection = Response;

    async fn from_request(req: Request, web: &Web) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, crate::api::MAX_BODY_BYTES)
            .await
            .map_err(|_| refuse(StatusCode::PAYLOAD_TOO_LARGE, "the request is too large"))?;
        verify(web, &parts, &body).map_err(IntoResponse::into_response)?;
        Ok(Signed { body })
    }
}

/// Refused node-to-node requests: anyone can send them, so they are
/// counted and logged at most once per few seconds.
static REFUSED: Throttled = Throttled::new(Target::Cluster, "node-to-node requests refused");

fn verify(web: &Web, parts: &Parts, body: &[u8]) -> Result<(), Refusal> {
    let Some(cluster) = &web.services.cluster else {
        return Err(Refusal(
            StatusCode::NOT_FOUND,
            "this node is not in a cluster",
        ));
    };
    let Some(signature) = parts
        .headers
        .get(REQUEST_HEADER)
        .and_then(|v| v.to_str().ok())
    else {
        REFUSED.hit(&"latest: unsigned");
        return Err(Refusal(
            StatusCode::UNAUTHORIZED,
            "node-to-node requests must be signed with the cluster secret",
        ));
    };
    let uri = &parts.uri;
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let envelope = cluster
        .verify_request(parts.method.as_str(), path, body, signature)
        .map_err(|why| {
            let shown: String = uri.path().chars().take(64).collect();
            REFUSED.hit(&format_args!("latest: {shown}: {why}"));
            Refusal(StatusCode::FORBIDDEN, why.0)
        })?;
    tracing::debug!(target: "owl::cluster", from = envelope.from, path = uri.path(), "node-to-node request");
    Ok(())
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    sort: Option<String>,
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /cluster/processes`.
pub(crate) async fn processes(
    State(web): State<Web>,
    Query(query): Query<ListQuery>,
    _: Signed,
) -> Response {
    let sort: SortKey = query
        .sort
        .as_deref()
        .and_then(|s| s.parse().ok())
        .unwrap_or_default();
    let filter: String = query.q.unwrap_or_default().chars().take(100).collect();
    let limit = query.limit.unwrap_or(50).min(500);
    let operator = &web.services.operator;
    let rows = operator
        .processes(sort, limit, &filter, None)
        .into_iter()
        .map(|row| {
            let i = row.info;
            RemoteRow {
                id: i.pid.id().0,
                pid: i.pid.to_string(),
                name: i.name.unwrap_or(i.label),
                cpu_ms: i.cpu_time.as_secs_f64() * 1e3,
                reductions: i.reductions,
                memory: i.memory_bytes as u64,
                queue: i.message_queue_len,
                activity: i.current_activity,
            }
        })
        .collect();
    Json(RemoteList {
        total: operator.node().process_count(),
        rows,
    })
    .into_response()
}

/// `GET /cluster/processes/{n}`.
pub(crate) async fn process(State(web): State<Web>, Path(n): Path<u64>, _: Signed) -> Response {
    let operator = &web.services.operator;
    let Some(info) = operator.lookup(PidId(n)) else {
        return refuse(
            StatusCode::NOT_FOUND,
            "no such process: it has ended (or never existed)",
        );
    };
    let stack = match operator.stack(&info.pid).await {
        Ok(Stack::Guest(frames)) => Some(frames),
        _ => None,
    };
    Json(RemoteProcess {
        pid: info.pid.to_string(),
        name: info.name.clone(),
        fields: fields(&info),
        stack,
    })
    .into_response()
}

fn fields(i: &ProcessInfo) -> Vec<(String, String)> {
    let pids = |list: &[owl_runtime::Pid]| {
        if list.is_empty() {
            "—".to_string()
        } else {
            list.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    let uptime = i.started_at.elapsed().unwrap_or_default();
    let mut memory = bytes(i.memory_bytes as u64);
    if let Some(limit) = i.memory_limit {
        memory += &format!(" (linear memory limit {})", bytes(limit as u64));
    }
    let mut queue = i.message_queue_len.to_string();
    if let Some(c) = i.mailbox_capacity {
        queue += &format!(" of {c}");
    }
    [
        ("label", i.label.clone()),
        ("status", format!("{:?}", i.status).to_lowercase()),
        ("current activity", i.current_activity.clone()),
        ("parent", i.parent.map_or("—".into(), |p| p.to_string())),
        ("running for", format!("{:.1} s", uptime.as_secs_f64())),
        (
            "CPU time",
            format!("{:.3} ms", i.cpu_time.as_secs_f64() * 1e3),
        ),
        ("reductions", i.reductions.to_string()),
        ("memory", memory),
        ("message queue", queue),
        ("traps exits", i.trap_exit.to_string()),
        ("links", pids(&i.links)),
        ("monitors", pids(&i.monitors)),
        ("monitored by", pids(&i.monitored_by)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// `POST /cluster/processes/{n}/kill`.
pub(crate) async fn kill(State(web): State<Web>, Path(n): Path<u64>, _: Signed) -> Response {
    if n == 0 {
        return refuse(StatusCode::BAD_REQUEST, "<0.0.0> is the node itself");
    }
    let operator = &web.services.operator;
    let Some(info) = operator.lookup(PidId(n)) else {
        return refuse(
            StatusCode::NOT_FOUND,
            "no such process: it has ended (or never existed)",
        );
    };
    match operator.kill(&info.pid, ExitReason::Kill) {
        Ok(()) => {
            tracing::info!(target: "owl::cluster", pid = %info.pid, "killed at another node's request");
            Json(json!({ "killed": info.pid.to_string() })).into_response()
        }
        Err(e) => refuse(StatusCode::CONFLICT, &e.to_string()),
    }
}

/// `GET /cluster/system`.
pub(crate) async fn system(State(web): State<Web>, _: Signed) -> Response {
    let s = web
        .services
        .operator
        .stats_over(std::time::Duration::from_millis(500))
        .await;
    Json(json!({
        "uptime_s": s.uptime.as_secs(),
        "processes": s.processes,
        "by_label": s.by_label,
        "spawned": s.spawned,
        "exited": s.exited,
        "crashed": s.crashed,
        "memory_rss": s.memory_rss,
        "schedulers": s.schedulers,
        "schedulers_online": s.schedulers_online,
        "utilization": s.utilization.total,
        "modules": s.modules.iter().map(|m| json!({"name": m.name, "version": m.current})).collect::<Vec<_>>(),
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsoleRequest {
    words: Vec<String>,
}

/// `POST /cluster/console`.
pub(crate) async fn console(State(web): State<Web>, signed: Signed) -> Response {
    let Some(hook) = web.remote_console.clone() else {
        return refuse(StatusCode::NOT_FOUND, "this node has no console");
    };
    let request: ConsoleRequest = match serde_json::from_slice(&signed.body) {
        Ok(r) => r,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("bad console request: {e}"),
            );
        }
    };
    let shown: String = request.words.join(" ").chars().take(200).collect();
    tracing::info!(target: "owl::console", command = shown, "console command from another node");
    match (hook.0)(web.services.clone(), request.words).await {
        Ok((text, json)) => Json(json!({ "ok": true, "text": text, "json": json })).into_response(),
        Err(error) => Json(json!({ "ok": false, "error": error })).into_response(),
    }
}
