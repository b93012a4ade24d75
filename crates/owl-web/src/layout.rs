//! The page shell every page shares: head, navigation bar, scripts.
//! Pages are `maud::Markup`, which axum serves as HTML directly.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use maud::{DOCTYPE, Markup, html};

use crate::{Web, assets};

tokio::task_local! {
    /// Whether the request being answered comes from a logged-in admin
    /// browser: the nav bar shows it on every page without every handler
    /// passing it along.
    static ADMIN: bool;
}

/// Middleware: answers the request with [`ADMIN`] set for the nav bar.
pub(crate) async fn with_admin_state(
    State(web): State<Web>,
    request: Request,
    next: Next,
) -> Response {
    let admin = web.auth.admin_session(request.headers()).is_some();
    ADMIN.scope(admin, next.run(request)).await
}

/// One entry of the navigation bar.
pub(crate) struct NavItem {
    pub path: &'static str,
    pub title: &'static str,
}

/// Every page a visitor can open, in the order the navigation bar shows them.
pub(crate) const NAV: &[NavItem] = &[
    NavItem {
        path: "/",
        title: "Sum",
    },
    NavItem {
        path: "/load",
        title: "Load",
    },
    NavItem {
        path: "/board",
        title: "Board",
    },
    NavItem {
        path: "/dashboard/processes",
        title: "Processes",
    },
    NavItem {
        path: "/dashboard/system",
        title: "System",
    },
    NavItem {
        path: "/dashboard/tree",
        title: "Tree",
    },
];

/// A whole HTML page: `title`, the nav bar with `current` marked, and `main`.
/// Live pages put their `ws-connect` on an element inside `main`.
pub(crate) fn page(title: &str, current: &str, main: Markup) -> Markup {
    shell(title, current, main, false, false)
}

/// [`page`] with the full width of the screen, for tables.
pub(crate) fn wide(title: &str, current: &str, main: Markup) -> Markup {
    shell(title, current, main, true, false)
}

/// [`wide`] with the chart library loaded, for live charts.
pub(crate) fn with_charts(title: &str, current: &str, main: Markup) -> Markup {
    shell(title, current, main, true, true)
}

fn shell(title: &str, current: &str, main: Markup, wide: bool, charts: bool) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · owl" }
                link rel="icon" type="image/svg+xml" href=(assets::url("favicon.svg"));
                link rel="stylesheet" href=(assets::url("app.css"));
                @if charts {
                    link rel="stylesheet" href=(assets::url("uPlot-1.6.32.min.css"));
                    script src=(assets::url("uPlot-1.6.32.iife.min.js")) defer {}
                }
                script src=(assets::url("htmx-2.0.11.min.js")) defer {}
                script src=(assets::url("htmx-ext-ws-2.0.4.min.js")) defer {}
                script src=(assets::url("idiomorph-ext-0.8.0.min.js")) defer {}
                script src=(assets::url("app.js")) defer {}
            }
            body data-live="static" {
                nav aria-label="pages" {
                    a.brand href="/" { "owl" }
                    @for item in NAV {
                        @if item.path == current {
                            a href=(item.path) aria-current="page" { (item.title) }
                        } @else {
                            a href=(item.path) { (item.title) }
                        }
                    }
                    span.nav-session {
                        @if ADMIN.try_with(|admin| *admin).unwrap_or(false) {
                            span.admin-mark title="logged in as the admin" { "admin" }
                            form.logout method="post" action="/logout" {
                                button type="submit" { "Log out" }
                            }
                        } @else {
                            a href="/login" { "Log in" }
                        }
                    }
                }
                main.wide[wide] { (main) }
            }
        }
    }
}
