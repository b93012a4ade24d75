//! The JSON API, for scripts and load tests.
//!
//! - `POST /api/sum?wait_ms=N` with `{"input":"5"}` runs ∑(1..n) like the sum
//!   page does and waits up to `wait_ms` (default 5,000, at most 60,000) for it.
//! - `GET /api/health`.
//!
//! Every answer, errors included, is a JSON object with a `status` field.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use owl_runtime::{Pid, SpawnOptions};
use serde::Deserialize;
use serde_json::{Value, json};

use owl_system::math::{self, MathService, Outcome, StartError};

use crate::App;

/// The largest request body the API reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
const DEFAULT_WAIT_MS: u64 = 5_000;
const MAX_WAIT_MS: u64 = 60_000;
/// How much of an input an answer repeats.
const ECHOED_INPUT_CHARS: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SumRequest {
    input: String,
}

#[derive(Deserialize)]
pub struct SumQuery {
    wait_ms: Option<u64>,
}

/// `GET /api/health`.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// An API error outside the calculation itself: a bad request.
fn bad_request(status: StatusCode, error: impl Into<String>) -> Response {
    let body = json!({"status": "bad_request", "error": error.into()});
    (status, Json(body)).into_response()
}

/// Answers for paths under `/api` that do not exist.
pub async fn not_found() -> Response {
    bad_request(StatusCode::NOT_FOUND, "no such API endpoint")
}

/// What the request's process learned.
enum Answer {
    Settled(Pid, Outcome),
    StillRunning(Pid),
    NotStarted(StartError),
}

/// `POST /api/sum`.
pub async fn sum(
    State(app): State<App>,
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
            let body = json!({"status": "invalid", "input": input, "error": "invalid input", "detail": invalid.detail()});
            return (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response();
        }
    };
    let answer = calculate(&app, n, Duration::from_millis(wait_ms)).await;
    respond(input, answer)
}

/// Runs the calculation from a short-lived request process, which monitors
/// it exactly as a page's session does.
async fn calculate(app: &App, n: i64, wait: Duration) -> Answer {
    let math = app.math.clone();
    let request = app.node.spawn_task_opts(
        SpawnOptions::new().label("api request /api/sum"),
        move |mut p| async move {
            let deadline = Instant::now() + wait;
            let pid = match math.start(&mut p, n).await {
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
    let (status, body) = match answer {
        Answer::Settled(pid, Outcome::Sum(sum)) => (
            StatusCode::OK,
            json!({"status": "ok", "input": input, "result": sum.to_string(), "pid": pid.to_string()}),
        ),
        Answer::Settled(pid, Outcome::Invalid) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"status": "invalid", "input": input, "error": "invalid input", "pid": pid.to_string()}),
        ),
        Answer::Settled(pid, Outcome::Crashed(reason)) => (
            StatusCode::OK,
            json!({"status": "error", "input": input, "error": reason.to_string(), "pid": pid.to_string()}),
        ),
        Answer::StillRunning(pid) => (
            StatusCode::ACCEPTED,
            json!({"status": "running", "input": input, "pid": pid.to_string()}),
        ),
        Answer::NotStarted(StartError::Overloaded) => {
            let body = json!({"status": "overloaded", "input": input, "error": "too many calculations running; try again later"});
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        }
        Answer::NotStarted(StartError::Unavailable(why)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unavailable", "input": input, "error": why}),
        ),
    };
    (status, Json(body)).into_response()
}
