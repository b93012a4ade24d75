//! The board topic a route names (`/board/{topic}…`, `/api/board/{topic}…`),
//! checked once: a page for an unknown topic leads to the default topic,
//! the API answers 404.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::StatusCode;
use axum::http::request::Parts;
use owl_system::board::{Board, DEFAULT_TOPIC, Topic};

use crate::error::WebError;

/// The `{topic}` of the path, if it is one.
async fn topic_of<S: Send + Sync>(parts: &mut Parts, state: &S) -> Option<&'static Topic> {
    let params = RawPathParams::from_request_parts(parts, state).await.ok()?;
    params
        .iter()
        .find(|(key, _)| *key == "topic")
        .and_then(|(_, slug)| Board::topic(slug))
}

/// A page's topic: an unknown one moves to the default topic.
pub(crate) struct PageTopic(pub &'static Topic);

impl<S: Send + Sync> FromRequestParts<S> for PageTopic {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, WebError> {
        topic_of(parts, state)
            .await
            .map(PageTopic)
            .ok_or_else(|| WebError::Moved(format!("/board/{DEFAULT_TOPIC}")))
    }
}

/// The API's topic: an unknown one is a 404.
pub(crate) struct ApiTopic(pub &'static Topic);

impl<S: Send + Sync> FromRequestParts<S> for ApiTopic {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, WebError> {
        topic_of(parts, state)
            .await
            .map(ApiTopic)
            .ok_or_else(|| WebError::api(StatusCode::NOT_FOUND, "no such topic"))
    }
}

/// A live page's topic: an unknown one is a 404 (no page to move).
pub(crate) struct LiveTopic(pub &'static Topic);

impl<S: Send + Sync> FromRequestParts<S> for LiveTopic {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, WebError> {
        topic_of(parts, state)
            .await
            .map(LiveTopic)
            .ok_or_else(|| WebError::text(StatusCode::NOT_FOUND, "no such topic"))
    }
}
