//! The JSON API, for scripts and load tests.
//!
//! - `POST /api/sum?wait_ms=N` with `{"input":"5"}` runs ∑(1..n) like the sum
//!   page does and waits up to `wait_ms` (default 5,000, at most 60,000) for it.
//! - `GET /api/health`.
//! - `GET /api/load` (anyone) and `PUT /api/load` (the admin's bearer token):
//!   load control's target and schedulers online.
//!
//! Every answer, errors included, is a JSON object with a `status` field.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use owl_runtime::{Pid, SpawnOptions};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use owl_system::math::{self, Client, MathService, Outcome, StartError};

use crate::Web;

/// The largest request body the API reads.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;
const DEFAULT_WAIT_MS: u64 = 5_000;
const MAX_WAIT_MS: u64 = 60_000;
/// How much of an input an answer repeats.
const ECHOED_INPUT_CHARS: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SumRequest {
    input: String,
}

#[derive(Deserialize)]
pub(crate) struct SumQuery {
    wait_ms: Option<u64>,
}

/// Every answer of the API: a status, and whatever else applies.
#[derive(Serialize, Default)]
pub(crate) struct ApiAnswer {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'static str>,
}

/// `GET /api/health`.
pub(crate) async fn health() -> Json<ApiAnswer> {
    Json(ApiAnswer {
        status: "ok",
        ..ApiAnswer::default()
    })
}

/// An API error outside the calculation itself: a bad request.
pub(crate) fn bad_request(status: StatusCode, error: impl Into<String>) -> Response {
    let body = ApiAnswer {
        status: "bad_request",
        error: Some(error.into()),
        ..ApiAnswer::default()
    };
    (status, Json(body)).into_response()
}

/// Answers for paths under `/api` that do not exist.
pub(crate) async fn not_found() -> Response {
    bad_request(StatusCode::NOT_FOUND, "no such API endpoint")
}

/// What the request's process learned.
enum Answer {
    Settled(Pid, Outcome),
    StillRunning(Pid),
    NotStarted(StartError),
}

/// `POST /api/sum`. The client is the visitor cookie if the request
/// carries one, its address otherwise.
pub(crate) async fn sum(
    State(web): State<Web>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    query: Result<Query<SumQuery>, QueryRejection>,
    body: Result<Json<serde_json::Map<String, Value>>, JsonRejection>,
) -> Response {
    // An object first (serde would take `["5"]` for the struct), then its fields.
    let object = match body {
        Ok(Json(object)) => object,
        Err(rejection) => return bad_request(rejection.status(), rejection.body_text()),
    };
    let request: SumRequest = match serde_json::from_value(Value::Object(object)) {
        Ok(request) => request,
        Err(e) => {
            let why = format!("expected {{\"input\": \"<integer as typed>\"}}: {e}");
            return bad_request(StatusCode::UNPROCESSABLE_ENTITY, why);
        }
    };
    let wait_ms = match query {
        Ok(Query(SumQuery { wait_ms: None })) => DEFAULT_WAIT_MS,
        Ok(Query(SumQuery { wait_ms: Some(ms) })) if ms <= MAX_WAIT_MS => ms,
        Ok(_) | Err(_) => {
            return bad_request(
                StatusCode::BAD_REQUEST,
                format!("wait_ms must be an integer from 0 to {MAX_WAIT_MS}"),
            );
        }
    };
    let input: String = request.input.chars().take(ECHOED_INPUT_CHARS).collect();
    let n = match math::parse_input(&request.input) {
        Ok(n) => n,
        Err(invalid) => {
            let body = ApiAnswer {
                status: "invalid",
                input: Some(input),
                error: Some("invalid input".into()),
                detail: Some(invalid.detail()),
                ..ApiAnswer::default()
            };
            return (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response();
        }
    };
    let client = crate::pages::sum::client_of(&headers, &extensions);
    let answer = calculate(&web, n, client, Duration::from_millis(wait_ms)).await;
    respond(input, answer)
}

/// Runs the calculation from a short-lived request process, which monitors
/// it exactly as a page's session does.
async fn calculate(web: &Web, n: i64, client: Client, wait: Duration) -> Answer {
    let math = web.services.math.clone();
    let request = web.services.node.spawn_task_opts(
        SpawnOptions::new().label("api request /api/sum"),
        move |mut p| async move {
            let deadline = Instant::now() + wait;
            let pid = match math.start(&mut p, n, &client).await {
                Ok(pid) => pid,
                Err(e) => return Answer::NotStarted(e),
            };
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let Some(msg) = p.recv_any_timeout(left).await else {
                    return Answer::StillRunning(pid);
                };
                if let Ok(settled) = MathService::settle(msg)
                    && settled.pid == pid
                {
                    return Answer::Settled(pid, settled.outcome);
                }
            }
        },
    );
    request.join().await.unwrap_or_else(|reason| {
        Answer::NotStarted(StartError::Unavailable(format!(
            "the request's process ended: {reason}"
        )))
    })
}

fn respond(input: String, answer: Answer) -> Response {
    let base = ApiAnswer {
        input: Some(input),
        ..ApiAnswer::default()
    };
    let (status, body, retry_after) = match answer {
        Answer::Settled(pid, Outcome::Sum(sum)) => (
            StatusCode::OK,
            ApiAnswer {
                status: "ok",
                result: Some(sum.to_string()),
                pid: Some(pid.to_string()),
                ..base
            },
            None,
        ),
        Answer::Settled(pid, Outcome::Invalid) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            ApiAnswer {
                status: "invalid",
                error: Some("invalid input".into()),
                pid: Some(pid.to_string()),
                ..base
            },
            None,
        ),
        Answer::Settled(pid, Outcome::Crashed(reason)) => (
            StatusCode::OK,
            ApiAnswer {
                status: "error",
                error: Some(reason.to_string()),
                pid: Some(pid.to_string()),
                ..base
            },
            None,
        ),
        Answer::StillRunning(pid) => (
            StatusCode::ACCEPTED,
            ApiAnswer {
                status: "running",
                pid: Some(pid.to_string()),
                ..base
            },
            None,
        ),
        // Honest about why: this client holds its fair share; a slot of its
        // own must end first, which a second does not promise.
        Answer::NotStarted(e @ StartError::FairShare(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            ApiAnswer {
                status: "overloaded",
                error: Some(e.to_string()),
                ..base
            },
            Some("10"),
        ),
        Answer::NotStarted(StartError::Overloaded) => (
            StatusCode::SERVICE_UNAVAILABLE,
            ApiAnswer {
                status: "overloaded",
                error: Some("too many calculations running; try again later".into()),
                ..base
            },
            Some("1"),
        ),
        Answer::NotStarted(StartError::Unavailable(why)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            ApiAnswer {
                status: "unavailable",
                error: Some(why),
                ..base
            },
            Some("1"),
        ),
    };
    let mut response = (status, Json(body)).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static(seconds));
    }
    response
}

/// What `GET /api/load` answers.
#[derive(Serialize)]
pub(crate) struct LoadState {
    target: u64,
    workers: u64,
    jobs_per_s: f64,
    utilization: f64,
    schedulers_online: usize,
    schedulers: usize,
}

fn load_state(web: &Web) -> LoadState {
    let load = &web.services.load;
    let latest = load.latest();
    let (online, schedulers) = web.services.operator.schedulers();
    LoadState {
        target: load.target(),
        workers: load.workers(),
        jobs_per_s: latest.jobs_per_s.round(),
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
    headers: HeaderMap,
    body: Result<Json<LoadChange>, JsonRejection>,
) -> Response {
    if web.auth.credential(&headers) != crate::auth::Credential::Bearer {
        return bad_request(
            StatusCode::UNAUTHORIZED,
            "changing the load needs the admin token (Authorization: Bearer …)",
        );
    }
    let change = match body {
        Ok(Json(change)) => change,
        Err(rejection) => return bad_request(rejection.status(), rejection.body_text()),
    };
    let invalid = |why: String| bad_request(StatusCode::UNPROCESSABLE_ENTITY, why);
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
    // Check both before changing either: a refused request changes nothing.
    let (_, max) = web.services.operator.schedulers();
    if let Some(n) = schedulers
        && n > max
    {
        return invalid(format!("schedulers must be from 1 to {max}"));
    }
    if let Some(n) = schedulers
        && let Err(e) = web.services.operator.set_schedulers(n)
    {
        return invalid(e.to_string());
    }
    if let Some(n) = target
        && let Err(e) = web.services.load.set_target(n)
    {
        return invalid(e.to_string());
    }
    Json(load_state(&web)).into_response()
}

/// A JSON number that is a non-negative whole number.
fn integer(value: &Value) -> Result<u64, ()> {
    value.as_u64().ok_or(())
}
