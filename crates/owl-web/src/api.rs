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
use crate::visitor::Visitor;

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
    Visitor(client): Visitor,
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
            // The request returns while a long calculation runs on (202):
            // it is the client's, not an orphan to reap.
            let pid = match math.start_detached(&mut p, n, &client).await {
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

/// What `GET /api/load` answers: `target` is the cluster's (the node's
/// alone outside a cluster), `share`, `workers` and `jobs_per_s` this
/// node's, `nodes` every node's.
#[derive(Serialize)]
pub(crate) struct LoadState {
    target: u64,
    share: u64,
    workers: u64,
    jobs_per_s: f64,
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
    // Both are checked before either changes: a refused request changes nothing.
    let change = owl_system::load::LoadChange { target, schedulers };
    if let Err(e) = web
        .services
        .operator
        .change_load(&web.services.load, change)
    {
        return invalid(e.to_string());
    }
    Json(load_state(&web)).into_response()
}

/// A JSON number that is a non-negative whole number.
fn integer(value: &Value) -> Result<u64, ()> {
    value.as_u64().ok_or(())
}

/// One post, as the API shows it.
#[derive(Serialize)]
pub(crate) struct ApiPost {
    id: i64,
    text: String,
    author: String,
    /// RFC 3339, UTC.
    inserted_at: String,
}

impl From<owl_system::board::Post> for ApiPost {
    fn from(p: owl_system::board::Post) -> ApiPost {
        ApiPost {
            id: p.id,
            text: p.text,
            author: p.author,
            inserted_at: rfc3339(p.inserted_at),
        }
    }
}

/// `2026-11-28T02:31:07.123Z` from Unix milliseconds.
fn rfc3339(ms: i64) -> String {
    let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[derive(Deserialize)]
pub(crate) struct PostsQuery {
    before: Option<i64>,
    limit: Option<usize>,
}

/// Posts a page of the API holds at most.
const MAX_POSTS_PAGE: usize = 1_000;

/// `GET /api/board/{topic}?before=ID&limit=N`: newest first; `next` is the
/// `before` of the following page.
pub(crate) async fn board_posts(
    State(web): State<Web>,
    axum::extract::Path(topic): axum::extract::Path<String>,
    query: Result<Query<PostsQuery>, QueryRejection>,
) -> Response {
    if owl_system::board::Board::topic(&topic).is_none() {
        return bad_request(StatusCode::NOT_FOUND, "no such topic");
    }
    let Ok(Query(q)) = query else {
        return bad_request(
            StatusCode::BAD_REQUEST,
            "before and limit must be whole numbers",
        );
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_POSTS_PAGE).contains(&limit) {
        return bad_request(
            StatusCode::BAD_REQUEST,
            format!("limit must be from 1 to {MAX_POSTS_PAGE}"),
        );
    }
    match web.services.board.list(&topic, q.before, limit).await {
        Ok(posts) => {
            let next = (posts.len() == limit)
                .then(|| posts.last().map(|p| p.id))
                .flatten();
            let posts: Vec<ApiPost> = posts.into_iter().map(ApiPost::from).collect();
            Json(serde_json::json!({"posts": posts, "next": next})).into_response()
        }
        Err(e) => bad_request(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPost {
    text: String,
    author: String,
}

/// `POST /api/board/{topic}` with `{"text","author"}`: 201 once the post is
/// durably committed.
pub(crate) async fn board_post(
    State(web): State<Web>,
    Visitor(client): Visitor,
    axum::extract::Path(topic): axum::extract::Path<String>,
    body: Result<Json<serde_json::Map<String, Value>>, JsonRejection>,
) -> Response {
    use owl_system::board::{Board, PostError};
    if Board::topic(&topic).is_none() {
        return bad_request(StatusCode::NOT_FOUND, "no such topic");
    }
    let object = match body {
        Ok(Json(object)) => object,
        Err(rejection) => return bad_request(rejection.status(), rejection.body_text()),
    };
    let post: NewPost = match serde_json::from_value(Value::Object(object)) {
        Ok(post) => post,
        Err(e) => {
            let why = format!("expected {{\"text\": \"…\", \"author\": \"…\"}}: {e}");
            return bad_request(StatusCode::UNPROCESSABLE_ENTITY, why);
        }
    };
    let board = web.services.board.clone();
    let request = web.services.node.spawn_task_opts(
        SpawnOptions::new().label("api request /api/board"),
        move |mut p| async move {
            let pid = board
                .start_save(&mut p, &client, &topic, &post.text, &post.author)
                .await?;
            loop {
                let msg = p.recv_any().await;
                if let Ok((from, outcome)) = Board::settle(msg)
                    && from == pid
                {
                    return Ok(outcome);
                }
            }
        },
    );
    let outcome: Result<owl_system::board::SaveOutcome, PostError> = request
        .join()
        .await
        .unwrap_or_else(|reason| Err(PostError::Unavailable(reason.to_string())));
    match outcome {
        Ok(owl_system::board::SaveOutcome::Saved(post)) => {
            (StatusCode::CREATED, Json(ApiPost::from(post))).into_response()
        }
        Ok(owl_system::board::SaveOutcome::Failed(_)) | Err(PostError::Unavailable(_)) => {
            let body =
                serde_json::json!({"status": "failed", "error": crate::pages::board::SAVE_FAILED});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
        Err(PostError::Invalid(errors)) => {
            let body = serde_json::json!({
                "status": "invalid",
                "errors": {"text": errors.text, "author": errors.author},
            });
            (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
        }
        Err(e @ (PostError::TooOften(_) | PostError::AddressTooOften(_))) => {
            let (PostError::TooOften(wait) | PostError::AddressTooOften(wait)) = e else {
                unreachable!("matched above")
            };
            let seconds = wait.as_secs() + 1;
            let body = serde_json::json!({"status": "rate_limited", "error": e.to_string()});
            let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
            if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        }
        Err(PostError::NoTopic) => bad_request(StatusCode::NOT_FOUND, "no such topic"),
    }
}

/// `DELETE /api/board/{topic}/{id}` with the admin's bearer token.
pub(crate) async fn board_delete(
    State(web): State<Web>,
    headers: HeaderMap,
    axum::extract::Path((topic, id)): axum::extract::Path<(String, i64)>,
) -> Response {
    if web.auth.credential(&headers) != crate::auth::Credential::Bearer {
        return bad_request(
            StatusCode::UNAUTHORIZED,
            "deleting posts needs the admin token (Authorization: Bearer …)",
        );
    }
    if owl_system::board::Board::topic(&topic).is_none() {
        return bad_request(StatusCode::NOT_FOUND, "no such topic");
    }
    match web
        .services
        .board
        .delete(&web.services.node, Some(&topic), id)
        .await
    {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => bad_request(StatusCode::NOT_FOUND, "no such post in this topic"),
        Err(e) => bad_request(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_read_as_rfc3339() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::rfc3339(1_795_833_067_123),
            "2026-11-28T02:31:07.123Z"
        );
        assert_eq!(super::rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
