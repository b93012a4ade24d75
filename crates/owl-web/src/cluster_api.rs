//! The node-to-node API: `POST /cluster/node` carries one
//! [`NodeRequest`](owl_system::at::NodeRequest) from another node of the
//! cluster — its process list, one process, a kill, its figures, a console
//! command — and answers the [`NodeReply`](owl_system::at::NodeReply). The
//! operator's handle (`owl_system::at`) sends them; this route is only the
//! way they travel.
//!
//! Every request must carry a signature made with the cluster secret over
//! the sending and the receiving node, the time, a nonce, the method, the
//! path and the body (see `owl_cluster::ClusterSecret::sign_request`); a
//! request meant for another node, or seen before, is refused like an
//! unsigned one — before it is read. A node outside a cluster answers 404.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use owl_cluster::REQUEST_HEADER;
use owl_system::at::{self, NodeRequest};

use crate::Web;
use crate::error::WebError;
use crate::throttle::{Target, Throttled};

/// A request signed by a member of this node's cluster, for this node,
/// not seen before, with its body. Extracting it checks all of that;
/// anything else is refused before a handler runs.
pub(crate) struct Signed {
    body: Bytes,
}

impl FromRequest<Web> for Signed {
    type Rejection = WebError;

    async fn from_request(req: Request, web: &Web) -> Result<Self, WebError> {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, crate::MAX_BODY_BYTES)
            .await
            .map_err(|_| {
                WebError::node(StatusCode::PAYLOAD_TOO_LARGE, "the request is too large")
            })?;
        verify(web, &parts, &body)?;
        Ok(Signed { body })
    }
}

/// Refused node-to-node requests: anyone can send them, so they are
/// counted and logged at most once per few seconds.
static REFUSED: Throttled = Throttled::new(Target::Cluster, "node-to-node requests refused");

fn verify(web: &Web, parts: &Parts, body: &[u8]) -> Result<(), WebError> {
    let Some(cluster) = &web.services.cluster else {
        return Err(WebError::node(
            StatusCode::NOT_FOUND,
            "this node is not in a cluster",
        ));
    };
    let Some(signature) = parts
        .headers
        .get(REQUEST_HEADER)
        .and_then(|v| v.to_str().ok())
    else {
        REFUSED.hit(&"latest: unsigned");
        return Err(WebError::node(
            StatusCode::UNAUTHORIZED,
            "node-to-node requests must be signed with the cluster secret",
        ));
    };
    let uri = &parts.uri;
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let envelope = cluster
        .verify_request(parts.method.as_str(), path, body, signature)
        .map_err(|why| {
            let shown: String = uri.path().chars().take(64).collect();
            REFUSED.hit(&format_args!("latest: {shown}: {why}"));
            WebError::node(StatusCode::FORBIDDEN, why.0)
        })?;
    tracing::debug!(target: "owl::cluster", from = envelope.from, path = uri.path(), "node-to-node request");
    Ok(())
}

/// `POST /cluster/node`.
pub(crate) async fn node(
    State(web): State<Web>,
    signed: Signed,
) -> Result<Json<at::NodeReply>, WebError> {
    let request: NodeRequest = serde_json::from_slice(&signed.body)
        .map_err(|e| WebError::node(StatusCode::BAD_REQUEST, format!("not a node request: {e}")))?;
    Ok(Json(at::serve(&web.services, request).await))
}
