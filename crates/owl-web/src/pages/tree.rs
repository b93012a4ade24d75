//! The supervision tree, `/dashboard/tree` (LiveDashboard's Applications
//! page): every supervisor and its children, each linked to its process
//! page, of this node or another (`?node=NAME`).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use owl_system::at::At;
use owl_system::console::{Answer, Command, Origin, TreeView};

use super::format::thousands;
use super::node_menu::{NodeQuery, node_suffix, pid_text};
use crate::{Web, layout};

/// Children of one supervisor listed one by one; beyond, a count per kind
/// (a hundred thousand load workers are one line).
const LISTED: usize = 20;

/// `GET /dashboard/tree`.
pub(crate) async fn index(State(web): State<Web>, Query(node): Query<NodeQuery>) -> Response {
    let at = match node.at(&web) {
        Ok(at) => at,
        Err(e) => {
            let main = html! { h1 { "Supervision tree" } p { (e) } };
            return (
                StatusCode::BAD_REQUEST,
                layout::wide("Tree", "/dashboard/tree", main),
            )
                .into_response();
        }
    };
    let answer = web
        .services
        .at(at.clone())
        .console(Command::Tree, &Origin::default())
        .await;
    let main = html! {
        h1 { "Supervision tree" }
        @if let Some(node) = at.name() { p.hint { "Node " strong { (node) } ", over the cluster." } }
        p.hint { "Who restarts whom. Each process links to its page; reload for a fresh look." }
        @match answer {
            Ok(Answer::Tree(root)) => ul.tree { (branch(&at, &root)) },
            Ok(_) => p.error { "the node answered something else" },
            Err(e) => p.error { (e.to_string()) },
        }
    };
    layout::wide("Tree", "/dashboard/tree", main).into_response()
}

fn branch(at: &At, node: &TreeView) -> Markup {
    let supervisor = node.kind == "supervisor";
    html! {
        li.supervisor[supervisor] {
            @match node.pid {
                Some(id) => a href=(format!("/dashboard/processes/{id}{}", node_suffix(at))) { (pid_text(at, id)) },
                None => span.hint { "(not running)" },
            }
            // A dynamic child's id is its pid: said once is enough.
            @if node.pid.map(|id| owl_runtime::PidId(id).to_string()).as_ref() != Some(&node.id) {
                " " strong { (node.id) }
            }
            @if node.label != node.id { " " span.hint { (node.label) } }
            @if supervisor {
                " " span.hint { "· " (thousands(node.child_count())) " children" }
                @if !node.children.is_empty() {
                    ul {
                        @for child in node.children.iter().take(LISTED) { (branch(at, child)) }
                        @if node.children.len() > LISTED {
                            @for (label, n) in beyond(&node.children[LISTED..]) {
                                li.hint { "… and " (thousands(n)) " more " (label) }
                            }
                        }
                        // Not read at all: a look at the tree costs the same
                        // beside a million workers as beside ten.
                        @if node.unlisted > 0 {
                            li.hint { "… and " (thousands(node.unlisted)) " more" }
                        }
                    }
                }
            }
        }
    }
}

/// How many of `children` there are of each label, most first.
fn beyond(children: &[TreeView]) -> Vec<(String, u64)> {
    let mut counts: Vec<(String, u64)> = Vec::new();
    for child in children {
        match counts.iter_mut().find(|(label, _)| *label == child.label) {
            Some((_, n)) => *n += 1,
            None => counts.push((child.label.clone(), 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts
}
