//! The JSON API, for scripts and load tests.
//!
//! - `POST /api/sum?wait_ms=N` with `{"input":"5"}` runs ∑(1..n) like the sum
//!   page does and waits up to `wait_ms` (default 5,000, at most 60,000) for it.
//! - `GET /api/health`.
//! - `GET /api/load` (anyone) and `PUT /api/load` (the admin's bearer token):
//!   load control's target and schedulers online.
//! - `GET /api/board/{topic}`, `POST /api/board/{topic}` (anyone), `DELETE
//!   /api/board/{topic}/{id}` (the admin's bearer token): the board.
//!
//! Every answer, errors included, is a JSON object with a `status` field.

mod board;
mod load;
mod sum;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use serde::Serialize;

pub(crate) use board::{board_delete, board_post, board_posts};
pub(crate) use load::{get_load, put_load};
pub(crate) use sum::sum;

use crate::error::WebError;

/// Every answer of the sum API: a status, and whatever else applies.
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

/// Answers for paths under `/api` that do not exist.
pub(crate) async fn not_found() -> WebError {
    WebError::api(StatusCode::NOT_FOUND, "no such API endpoint")
}

/// A JSON body the API could not read.
fn unreadable(rejection: JsonRejection) -> WebError {
    WebError::api(rejection.status(), rejection.body_text())
}

#[cfg(test)]
mod tests {
    /// The module's header is the API's reference: every `/api/` route the
    /// router serves must be in it (it once lacked the board's).
    #[test]
    fn the_header_lists_every_api_route() {
        let router = include_str!("../endpoint.rs");
        let header: String = include_str!("mod.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        let routes: Vec<&str> = router
            .split('"')
            .filter(|s| s.starts_with("/api/") && !s.contains('*'))
            .collect();
        assert!(routes.len() >= 5, "{routes:?}");
        for route in routes {
            assert!(
                header.contains(route),
                "{route} is missing from the API's header"
            );
        }
    }
}
