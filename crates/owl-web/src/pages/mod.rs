//! The pages a visitor opens, one module each.

pub mod login;
pub mod processes;
pub mod sum;
pub mod system;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::html;

use crate::layout;

/// Any path that is no page.
pub async fn not_found() -> Response {
    let main = html! {
        h1 { "Not found" }
        p { "There is no page here. The navigation bar above lists every page." }
    };
    (
        StatusCode::NOT_FOUND,
        Html(layout::page("Not found", "", main).into_string()),
    )
        .into_response()
}
