//! `POST /api/sum`: a calculation, as the sum page runs it.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use owl_runtime::{Pid, SpawnOptions};
use owl_system::math::{self, Client, MathService, Outcome, StartError};
use serde::Deserialize;
use serde_json::Value;

use super::{ApiAnswer, unreadable};
use crate::Web;
use crate::error::WebError;
use crate::visitor::Visitor;

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
    Visitor(client): Visitor,
    query: Result<Query<SumQuery>, QueryRejection>,
    body: Result<Json<serde_json::Map<String, Value>>, JsonRejection>,
) -> Result<Response, WebError> {
    // An object first (serde would take `["5"]` for the struct), then its fields.
    let Json(object) = body.map_err(unreadable)?;
    let request: SumRequest = serde_json::from_value(Value::Object(object)).map_err(|e| {
        WebError::api(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("expected {{\"input\": \"<integer as typed>\"}}: {e}"),
        )
    })?;
    let wait_ms = match query {
        Ok(Query(SumQuery { wait_ms: None })) => DEFAULT_WAIT_MS,
        Ok(Query(SumQuery { wait_ms: Some(ms) })) if ms <= MAX_WAIT_MS => ms,
        Ok(_) | Err(_) => {
            return Err(WebError::api(
                StatusCode::BAD_REQUEST,
                format!("wait_ms must be an integer from 0 to {MAX_WAIT_MS}"),
            ));
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
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response());
        }
    };
    let answer = calculate(&web, n, client, Duration::from_millis(wait_ms)).await;
    Ok(respond(input, answer))
}

/// Runs the calculation from a short-lived request process, which monitors
/// it exactly as a page's session does.
async fn calculate(web: &Web, n: math::Input, client: Client, wait: Duration) -> Answer {
    let math = web.services.math.clone();
    let request = web.services.node.spawn_task_opts(
        SpawnOptions::new().label("api request /api/sum"),
        move |mut p| async move {
            let deadline = Instant::now() + wait;
            // The request returns while a long calculation runs on (202):
            // it is the client's, not an orphan to reap.
            let pid = match math.start_detached(&mut p, &n, &client).await {
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
                result: Some(sum),
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
