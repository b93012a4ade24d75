//! Which node a dashboard shows: this one, or another of the cluster —
//! the node menu, and the `?node=NAME` of a process page.

use maud::{Markup, html};
use owl_system::at::At;
use serde::Deserialize;

use crate::Web;

/// The nodes a dashboard can show, for its menu: this one first (value
/// ""), then the others that are up. Empty outside a cluster.
pub(crate) fn choices(web: &Web) -> Vec<(String, String)> {
    let Some(cluster) = &web.services.cluster else {
        return Vec::new();
    };
    let mut choices = vec![(
        String::new(),
        format!("{} (this node)", cluster.node_name()),
    )];
    for m in cluster.members() {
        if !m.is_self && m.state == owl_cluster::MemberState::Up {
            choices.push((m.name.clone(), m.name));
        }
    }
    choices
}

/// The menu itself (nothing outside a cluster).
pub(crate) fn menu(web: &Web) -> Markup {
    let nodes = choices(web);
    html! {
        @if !nodes.is_empty() {
            select #node name="node" aria-label="node" {
                @for (value, label) in &nodes { option value=(value) { (label) } }
            }
        }
    }
}

/// `?node=NAME` on a dashboard page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NodeQuery {
    #[serde(default)]
    node: Option<String>,
}

impl NodeQuery {
    /// The node it names (this one when none), or why it names none.
    pub(crate) fn at(&self, web: &Web) -> Result<At, String> {
        At::choose(&web.services, self.node.as_deref().unwrap_or("")).map_err(|e| e.to_string())
    }
}

/// How a pid of the node `at` is written: `<0.45.0>` here, `b <0.45.0>`
/// for node b's.
pub(crate) fn pid_text(at: &At, id: u64) -> String {
    match at.name() {
        Some(node) => format!("{node} {}", owl_runtime::PidId(id)),
        None => owl_runtime::PidId(id).to_string(),
    }
}

/// The query that keeps a link on node `at` (`""` for this node).
pub(crate) fn node_suffix(at: &At) -> String {
    at.name().map(|n| format!("?node={n}")).unwrap_or_default()
}
