//! `GET /api/load` (anyone) and `PUT /api/load` (the admin's bearer token,
//! checked by the route group's guard).

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::unreadable;
use crate::Web;
use crate::error::WebError;

/// What `GET /api/load` answers: `target` is the cluster's (the node's
/// alone outside a cluster), `share`, `workers` and `jobs_per_s` this
/// node's, `nodes` every node's.
#[derive(Serialize)]
pub(crate) struct LoadState {
    target: u64,
    share: u64,
    workers: u64,
    jobs_per_s: f64,
    /// What the workers would do on time (one job each per second).
    expected_jobs_per_s: f64,
    /// "behind: 730k of 1,000k jobs/s, the core is full" while the jobs
    /// fall behind (background work yields to everything else), else null.
    behind: Option<String>,
    utilization: f64,
    schedulers_online: usize,
    schedulers: usize,
    nodes: Vec<owl_system::load::NodeLoad>,
}

fn load_state(web: &Web) -> LoadState {
    let load = &web.services.load;
    let latest = load.latest();
    let (online, schedulers) = web.services.operator.schedulers();
    let nodes = load
        .nodes()
        .into_iter()
        .map(|n| owl_system::load::NodeLoad {
            jobs_per_s: n.jobs_per_s.round(),
            ..n
        })
        .collect();
    LoadState {
        target: load.target(),
        share: load.share(),
        nodes,
        workers: load.workers(),
        jobs_per_s: latest.jobs_per_s.round(),
        expected_jobs_per_s: latest.expected_jobs_per_s.round(),
        behind: latest.behind_text(online),
        utilization: (latest.utilization * 1000.0).round() / 1000.0,
        schedulers_online: online,
        schedulers,
    }
}

/// `GET /api/load`.
pub(crate) async fn get_load(State(web): State<Web>) -> Json<LoadState> {
    Json(load_state(&web))
}

/// The body of `PUT /api/load`: either or both.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoadChange {
    target: Option<Value>,
    schedulers: Option<Value>,
}

/// `PUT /api/load` with `Authorization: Bearer TOKEN`.
pub(crate) async fn put_load(
    State(web): State<Web>,
    body: Result<Json<LoadChange>, JsonRejection>,
) -> Result<Json<LoadState>, WebError> {
    let Json(change) = body.map_err(unreadable)?;
    let invalid = |why: String| Err(WebError::api(StatusCode::UNPROCESSABLE_ENTITY, why));
    let target = match change.target.as_ref().map(integer) {
        None => None,
        Some(Ok(n)) => match owl_system::load::parse_target(&n.to_string()) {
            Ok(n) => Some(n),
            Err(e) => return invalid(e.to_string()),
        },
        Some(Err(())) => {
            return invalid(format!(
                "target must be a whole number of jobs from 0 to {}",
                owl_system::load::MAX_TARGET
            ));
        }
    };
    let schedulers = match change.schedulers.as_ref().map(integer) {
        None => None,
        Some(Ok(n)) if n >= 1 => Some(n as usize),
        Some(_) => return invalid("schedulers must be a whole number from 1 to the CPUs".into()),
    };
    if target.is_none() && schedulers.is_none() {
        return invalid("give a target, schedulers, or both".into());
    }
    // Both are checked before either changes: a refused request changes nothing.
    let change = owl_system::load::LoadChange { target, schedulers };
    if let Err(e) = web
        .services
        .operator
        .change_load(&web.services.load, change)
    {
        return invalid(e.to_string());
    }
    Ok(Json(load_state(&web)))
}

/// A JSON number that is a non-negative whole number.
fn integer(value: &Value) -> Result<u64, ()> {
    value.as_u64().ok_or(())
}
