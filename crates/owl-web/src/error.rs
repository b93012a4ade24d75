//! Every way the web side says no, as one type that answers for itself
//! (axum's `IntoResponse`): a handler returns `Result<_, WebError>` and
//! the right kind of answer follows — a page for a browser, JSON for the
//! API and for other nodes, the login form where the admin is needed.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use crate::layout;

/// A refusal, and who it is said to.
#[derive(Debug)]
pub(crate) enum WebError {
    /// To a browser: a page titled `title` that says `message`.
    Page {
        status: StatusCode,
        title: &'static str,
        message: String,
    },
    /// To a script of the JSON API: `{"status": "bad_request", "error": …}`.
    Api { status: StatusCode, message: String },
    /// To a browser that must log in first: the form, coming back to `next`.
    Login { next: String },
    /// To anything else (a WebSocket handshake, an asset): plain text.
    Text { status: StatusCode, message: String },
    /// Elsewhere: a page that moved (an unknown topic to the default one).
    Moved(String),
}

impl WebError {
    /// A page saying `message`.
    pub(crate) fn page(
        status: StatusCode,
        title: &'static str,
        message: impl Into<String>,
    ) -> Self {
        WebError::Page {
            status,
            title,
            message: message.into(),
        }
    }

    /// An API refusal.
    pub(crate) fn api(status: StatusCode, message: impl Into<String>) -> Self {
        WebError::Api {
            status,
            message: message.into(),
        }
    }

    /// A plain-text refusal.
    pub(crate) fn text(status: StatusCode, message: impl Into<String>) -> Self {
        WebError::Text {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::Page {
                status,
                title,
                message,
            } => {
                let main = html! { h1 { (title) } p { (message) } };
                (status, layout::page(title, "", main)).into_response()
            }
            WebError::Api { status, message } => (
                status,
                Json(serde_json::json!({"status": "bad_request", "error": message})),
            )
                .into_response(),
            WebError::Login { next } => crate::pages::login::required(&next),
            WebError::Text { status, message } => (status, message).into_response(),
            WebError::Moved(to) => Redirect::to(&to).into_response(),
        }
    }
}
