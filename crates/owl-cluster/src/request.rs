//! Node-to-node requests: HTTP to another member's web address (which it
//! publishes as `http`), signed with the cluster secret. The other node's
//! dashboards, process details and console are reached this way.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::{Cluster, Envelope, MemberState, REQUEST_HEADER};

/// How long a node-to-node request may take.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// The key a member publishes its web address under.
pub const HTTP_KEY: &str = "http";

/// Why a request to another node failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerError {
    /// No member has that name.
    UnknownNode(String),
    /// The member is down.
    NodeDown(String),
    /// It has not published a web address (yet).
    NoAddress(String),
    /// The request did not get through or timed out.
    Unreachable(String),
    /// The node answered with an error status (and this message).
    Refused(u16, String),
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerError::UnknownNode(n) => write!(f, "no node named {n:?} in the cluster"),
            PeerError::NodeDown(n) => write!(f, "node {n} is down"),
            PeerError::NoAddress(n) => write!(f, "node {n} has not told its web address yet"),
            PeerError::Unreachable(e) => write!(f, "{e}"),
            PeerError::Refused(status, message) => write!(f, "refused ({status}): {message}"),
        }
    }
}

impl std::error::Error for PeerError {}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Cluster {
    /// Checks a node-to-node request that arrived here: signed with the
    /// cluster secret over everything it carries, recent, meant for this
    /// node (not another one it was sniffed on the way to), and not seen
    /// before. Returns the envelope it came in (who sent it).
    pub fn verify_request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        header: &str,
    ) -> Result<Envelope, crate::RequestRefused> {
        let now = now_secs();
        let envelope = self
            .secret()
            .verify_request(method, path, body, header, now)?;
        if envelope.to != self.node_name() {
            return Err(crate::RequestRefused(
                "this node-to-node request is meant for another node",
            ));
        }
        self.inner.replays.admit(&envelope, now)?;
        Ok(envelope)
    }

    /// Sends a signed request to node `node`: `GET` when `body` is `None`,
    /// else `POST` with the JSON body. `path` (with its query, already
    /// encoded) is signed as given. Returns the JSON answer.
    pub async fn request(
        &self,
        node: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, PeerError> {
        let member = self
            .member(node)
            .ok_or_else(|| PeerError::UnknownNode(node.chars().take(64).collect()))?;
        if member.state != MemberState::Up {
            return Err(PeerError::NodeDown(member.name));
        }
        let base = member
            .values
            .get(HTTP_KEY)
            .ok_or_else(|| PeerError::NoAddress(member.name.clone()))?;
        let (method, bytes) = match body {
            Some(v) => ("POST", serde_json::to_vec(v).unwrap_or_default()),
            None => ("GET", Vec::new()),
        };
        let envelope = Envelope::new(self.node_name(), &member.name, now_secs())
            .map_err(|e| PeerError::Unreachable(format!("no randomness for a nonce: {e}")))?;
        let signature = self.secret().sign_request(&envelope, method, path, &bytes);
        let client = self.inner.http.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(PEER_TIMEOUT)
                .build()
                .expect("a plain HTTP client builds")
        });
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let request = match body {
            Some(_) => client
                .post(&url)
                .header("content-type", "application/json")
                .body(bytes),
            None => client.get(&url),
        };
        let response = request
            .header(REQUEST_HEADER, signature)
            .send()
            .await
            .map_err(|e| PeerError::Unreachable(format!("node {node}: {e}")))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| PeerError::Unreachable(format!("node {node}: {e}")))?;
        if !status.is_success() {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(String::from))
                .unwrap_or_else(|| text.chars().take(200).collect());
            return Err(PeerError::Refused(status.as_u16(), message));
        }
        serde_json::from_str(&text)
            .map_err(|e| PeerError::Unreachable(format!("node {node} answered no JSON: {e}")))
    }
}
