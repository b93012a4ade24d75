//! The board over the API: list, post (anyone), delete (the admin's
//! bearer token, checked by the route group's guard).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use owl_runtime::SpawnOptions;
use owl_system::board::{Board, PostError, SaveOutcome};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::unreadable;
use crate::Web;
use crate::error::WebError;
use crate::topic::ApiTopic;
use crate::visitor::Visitor;

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
    let (year, month, day, of_day, millis) = crate::pages::format::civil(ms);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
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
    ApiTopic(topic): ApiTopic,
    query: Result<Query<PostsQuery>, QueryRejection>,
) -> Result<Json<Value>, WebError> {
    let Ok(Query(q)) = query else {
        return Err(WebError::api(
            StatusCode::BAD_REQUEST,
            "before and limit must be whole numbers",
        ));
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_POSTS_PAGE).contains(&limit) {
        return Err(WebError::api(
            StatusCode::BAD_REQUEST,
            format!("limit must be from 1 to {MAX_POSTS_PAGE}"),
        ));
    }
    let posts = web
        .services
        .board
        .list(topic.slug, q.before, limit)
        .await
        .map_err(|e| WebError::api(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let next = (posts.len() == limit)
        .then(|| posts.last().map(|p| p.id))
        .flatten();
    let posts: Vec<ApiPost> = posts.into_iter().map(ApiPost::from).collect();
    Ok(Json(serde_json::json!({"posts": posts, "next": next})))
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
    ApiTopic(topic): ApiTopic,
    body: Result<Json<serde_json::Map<String, Value>>, JsonRejection>,
) -> Result<Response, WebError> {
    let Json(object) = body.map_err(unreadable)?;
    let post: NewPost = serde_json::from_value(Value::Object(object)).map_err(|e| {
        WebError::api(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("expected {{\"text\": \"…\", \"author\": \"…\"}}: {e}"),
        )
    })?;
    let topic = topic.slug;
    let board = web.services.board.clone();
    let request = web.services.node.spawn_task_opts(
        SpawnOptions::new().label("api request /api/board"),
        move |mut p| async move {
            let pid = board
                .start_save(&mut p, &client, topic, &post.text, &post.author)
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
    let outcome: Result<SaveOutcome, PostError> = request
        .join()
        .await
        .unwrap_or_else(|reason| Err(PostError::Unavailable(reason.to_string())));
    Ok(match outcome {
        Ok(SaveOutcome::Saved(post)) => {
            (StatusCode::CREATED, Json(ApiPost::from(post))).into_response()
        }
        Ok(SaveOutcome::Failed(_)) | Err(PostError::Unavailable(_)) => {
            let body =
                serde_json::json!({"status": "failed", "error": owl_system::board::SAVE_FAILED});
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
        Err(PostError::NoTopic) => {
            WebError::api(StatusCode::NOT_FOUND, "no such topic").into_response()
        }
    })
}

/// `DELETE /api/board/{topic}/{id}` with the admin's bearer token.
pub(crate) async fn board_delete(
    State(web): State<Web>,
    ApiTopic(topic): ApiTopic,
    axum::extract::Path((_, id)): axum::extract::Path<(String, i64)>,
) -> Result<StatusCode, WebError> {
    match web
        .services
        .board
        .delete(&web.services.node, Some(topic.slug), id)
        .await
    {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(WebError::api(
            StatusCode::NOT_FOUND,
            "no such post in this topic",
        )),
        Err(e) => Err(WebError::api(
            StatusCode::SERVICE_UNAVAILABLE,
            e.to_string(),
        )),
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
