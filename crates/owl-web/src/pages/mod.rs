//! The pages a visitor opens, one module each.

pub(crate) mod board;
pub(crate) mod format;
pub(crate) mod load;
pub(crate) mod login;
pub(crate) mod node_menu;
pub(crate) mod processes;
pub(crate) mod sum;
pub(crate) mod system;
pub(crate) mod tree;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use crate::layout;

/// Any path that is no page.
pub(crate) async fn not_found() -> Response {
    let main = html! {
        h1 { "Not found" }
        p { "There is no page here. The navigation bar above lists every page." }
    };
    (StatusCode::NOT_FOUND, layout::page("Not found", "", main)).into_response()
}
