//! The cluster secret: what makes a node a member. Every gossip datagram
//! and every node-to-node HTTP request carries an HMAC-SHA256 made with a
//! key derived from it; anything without a valid one is dropped unread.
//!
//! The secret authenticates, it does not encrypt: gossip (node names,
//! addresses, load figures) travels in clear. Run clusters on a private
//! network.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Shortest secret accepted: guessing 16 random characters is out of reach.
pub const MIN_SECRET_LEN: usize = 16;

/// How far a signed request's clock may be from ours (replays older than
/// this are refused).
pub const REQUEST_WINDOW_SECS: u64 = 30;

/// The cluster secret, with the keys derived from it. Cheap to clone.
///
/// ```
/// use owl_cluster::ClusterSecret;
///
/// let a = ClusterSecret::new("correct horse battery staple").unwrap();
/// let b = ClusterSecret::new("another secret of enough length").unwrap();
/// assert_ne!(a.cluster_id(), b.cluster_id());
/// assert!(ClusterSecret::new("short").is_err());
/// ```
#[derive(Clone)]
pub struct ClusterSecret {
    /// The secret itself, for deriving further keys.
    secret: String,
    gossip_key: [u8; 32],
    request_key: [u8; 32],
    cluster_id: String,
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret or its keys: only the public cluster id.
        f.debug_struct("ClusterSecret")
            .field("cluster_id", &self.cluster_id)
            .finish_non_exhaustive()
    }
}

impl ClusterSecret {
    /// A secret from its text (at least [`MIN_SECRET_LEN`] characters,
    /// surrounding whitespace ignored).
    pub fn new(secret: &str) -> Result<ClusterSecret, SecretError> {
        let secret = secret.trim();
        if secret.chars().count() < MIN_SECRET_LEN {
            return Err(SecretError(format!(
                "the cluster secret must be at least {MIN_SECRET_LEN} characters long"
            )));
        }
        let derive = |purpose: &str| derive(secret, purpose);
        let id = derive("owl cluster id v1");
        let cluster_id = format!(
            "owl-{}",
            id[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        Ok(ClusterSecret {
            secret: secret.to_string(),
            gossip_key: derive("owl cluster gossip v1"),
            request_key: derive("owl cluster request v1"),
            cluster_id,
        })
    }

    /// The secret given on the command line, else the one in
    /// `DATA_DIR/cluster-secret`.
    pub fn load(given: Option<&str>, data_dir: &Path) -> Result<ClusterSecret, SecretError> {
        if let Some(secret) = given {
            return ClusterSecret::new(secret)
                .map_err(|e| SecretError(format!("--cluster-secret: {}", e.0)));
        }
        let path = data_dir.join("cluster-secret");
        match std::fs::read_to_string(&path) {
            Ok(text) => ClusterSecret::new(&text)
                .map_err(|e| SecretError(format!("{}: {}", path.display(), e.0))),
            Err(e) => Err(SecretError(format!(
                "a cluster node needs the cluster's secret: pass --cluster-secret-file \
                 (or OWL_CLUSTER_SECRET), or write it to {} ({e})",
                path.display()
            ))),
        }
    }

    /// A key for `purpose`, derived from the secret: the same on every node
    /// of the cluster, unrelated to the keys of any other purpose.
    ///
    /// ```
    /// use owl_cluster::ClusterSecret;
    /// let s = ClusterSecret::new("correct horse battery staple").unwrap();
    /// assert_eq!(s.derive_key("cookies"), s.derive_key("cookies"));
    /// assert_ne!(s.derive_key("cookies"), s.derive_key("tickets"));
    /// ```
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        derive(&self.secret, purpose)
    }

    /// The cluster's public name, derived from the secret: nodes with other
    /// secrets have other ids and are told apart before any state is read.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub(crate) fn tag_gossip(&self, payload: &[u8]) -> [u8; 32] {
        mac(&self.gossip_key, &[payload])
    }

    pub(crate) fn verify_gossip(&self, payload: &[u8], tag: &[u8]) -> bool {
        verify(&self.gossip_key, &[payload], tag)
    }

    /// Signs a node-to-node request: the value of the
    /// [`REQUEST_HEADER`](crate::REQUEST_HEADER) header for `method` on
    /// `path` (with its query) carrying `body`, sent as `envelope` says —
    /// from which node, to which, when, with which nonce. The signature
    /// covers all of it, so a request cannot be turned towards another
    /// node, and (with a [`ReplayGuard`]) not replayed.
    ///
    /// ```
    /// use owl_cluster::{ClusterSecret, Envelope};
    ///
    /// let secret = ClusterSecret::new("correct horse battery staple").unwrap();
    /// let to_b = Envelope::new("a", "b", 1_000).unwrap();
    /// let header = secret.sign_request(&to_b, "POST", "/cluster/node", b"");
    /// let seen = secret.verify_request("POST", "/cluster/node", b"", &header, 1_010).unwrap();
    /// assert_eq!((seen.from.as_str(), seen.to.as_str()), ("a", "b"));
    /// assert!(secret.verify_request("GET", "/cluster/node", b"", &header, 1_010).is_err());
    /// assert!(secret.verify_request("POST", "/cluster/node", b"x", &header, 1_010).is_err());
    /// assert!(secret.verify_request("POST", "/cluster/node", b"", &header, 2_000).is_err());
    /// // Naming another target breaks the signature.
    /// let to_c = header.replacen(";b;", ";c;", 1);
    /// assert!(secret.verify_request("POST", "/cluster/node", b"", &to_c, 1_010).is_err());
    /// ```
    pub fn sign_request(
        &self,
        envelope: &Envelope,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> String {
        let stamp = envelope.at.to_string();
        let tag = mac(
            &self.request_key,
            &request_parts(envelope, &stamp, method, path, body),
        );
        format!(
            "{stamp};{};{};{};{}",
            envelope.from,
            envelope.to,
            envelope.nonce,
            hex(&tag)
        )
    }

    /// Checks a request signed by [`sign_request`](Self::sign_request)
    /// within [`REQUEST_WINDOW_SECS`] of `now_secs`; the envelope it was
    /// sent in. (Whether it is meant for this node, and new, is for the
    /// caller: see `Cluster::verify_request`.)
    pub fn verify_request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        header: &str,
        now_secs: u64,
    ) -> Result<Envelope, RequestRefused> {
        const MALFORMED: RequestRefused = RequestRefused("malformed node signature");
        let mut parts = header.split(';');
        let (Some(stamp), Some(from), Some(to), Some(nonce), Some(tag), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(MALFORMED);
        };
        let at: u64 = stamp.parse().map_err(|_| MALFORMED)?;
        if at.abs_diff(now_secs) > REQUEST_WINDOW_SECS {
            return Err(RequestRefused(
                "node signature expired (are the nodes' clocks apart?)",
            ));
        }
        if crate::check_node_name(from).is_err()
            || crate::check_node_name(to).is_err()
            || nonce.len() != NONCE_BYTES * 2
            || !nonce.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(MALFORMED);
        }
        let tag = unhex(tag).ok_or(MALFORMED)?;
        let envelope = Envelope {
            from: from.to_string(),
            to: to.to_string(),
            at,
            nonce: nonce.to_string(),
        };
        if verify(
            &self.request_key,
            &request_parts(&envelope, stamp, method, path, body),
            &tag,
        ) {
            Ok(envelope)
        } else {
            Err(RequestRefused("bad node signature"))
        }
    }
}

/// Why a cluster secret is refused or missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretError(pub String);

impl std::fmt::Display for SecretError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for SecretError {}

/// Why a node-to-node request was refused: said to the sender (and
/// counted in the log), never more specific than it needs to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestRefused(pub &'static str);

impl std::fmt::Display for RequestRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}
impl std::error::Error for RequestRefused {}

/// Random bytes in a request's nonce.
const NONCE_BYTES: usize = 16;

/// Who sends a node-to-node request to whom, and when, with a nonce of its
/// own: what a request signature covers besides the request itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The sending node's name.
    pub from: String,
    /// The node the request is meant for.
    pub to: String,
    /// When it was signed, in Unix seconds.
    pub at: u64,
    /// Random, once per request (32 hex digits).
    pub nonce: String,
}

impl Envelope {
    /// A request from `from` to `to` signed at `at` (Unix seconds), with a
    /// fresh nonce.
    pub fn new(from: &str, to: &str, at: u64) -> std::io::Result<Envelope> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Envelope {
            from: from.to_string(),
            to: to.to_string(),
            at,
            nonce: hex(&nonce),
        })
    }
}

/// Remembers the nonces of the requests accepted within the signature
/// window, so that no signed request is accepted twice: a sniffed request
/// replayed to the same node is refused, and (since the target node is
/// signed) one replayed to another node is refused there.
///
/// Memory is bounded: at most `capacity` nonces are kept; a node asked to
/// remember more within one window refuses further requests until old
/// ones expire (it never forgets a nonce that could still be replayed).
///
/// ```
/// use owl_cluster::{Envelope, ReplayGuard};
/// let guard = ReplayGuard::new(2);
/// let first = Envelope::new("a", "b", 100).unwrap();
/// assert!(guard.admit(&first, 100).is_ok());
/// assert!(guard.admit(&first, 101).is_err(), "a replay");
/// assert!(guard.admit(&Envelope::new("a", "b", 100).unwrap(), 101).is_ok());
/// assert!(guard.admit(&Envelope::new("a", "b", 100).unwrap(), 102).is_err(), "full");
/// assert!(guard.admit(&Envelope::new("a", "b", 200).unwrap(), 200).is_ok(), "the old ones expired");
/// ```
#[derive(Debug)]
pub struct ReplayGuard {
    capacity: usize,
    seen: parking_lot::Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    nonces: std::collections::HashSet<String>,
    /// (when it expires, nonce), oldest first.
    order: std::collections::VecDeque<(u64, String)>,
}

impl ReplayGuard {
    /// A guard remembering up to `capacity` nonces.
    pub fn new(capacity: usize) -> ReplayGuard {
        ReplayGuard {
            capacity: capacity.max(1),
            seen: Default::default(),
        }
    }

    /// Accepts `envelope` once, at `now_secs`; refuses a nonce seen within
    /// the window, and anything while full.
    pub fn admit(&self, envelope: &Envelope, now_secs: u64) -> Result<(), RequestRefused> {
        let mut seen = self.seen.lock();
        while seen
            .order
            .front()
            .is_some_and(|(until, _)| *until < now_secs)
        {
            if let Some((_, nonce)) = seen.order.pop_front() {
                seen.nonces.remove(&nonce);
            }
        }
        if seen.nonces.contains(&envelope.nonce) {
            return Err(RequestRefused(
                "this node-to-node request was already handled (a replay)",
            ));
        }
        if seen.nonces.len() >= self.capacity {
            return Err(RequestRefused(
                "too many node-to-node requests at once; try again shortly",
            ));
        }
        // Remember it for as long as its signature could still pass.
        let until = envelope.at + REQUEST_WINDOW_SECS;
        seen.nonces.insert(envelope.nonce.clone());
        let at = seen.order.partition_point(|(u, _)| *u <= until);
        seen.order.insert(at, (until, envelope.nonce.clone()));
        Ok(())
    }
}

/// SHA-256 of the purpose, a zero byte and the secret.
fn derive(secret: &str, purpose: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(purpose.as_bytes());
    hash.update([0]);
    hash.update(secret.as_bytes());
    hash.finalize().into()
}

/// What a request signature covers: who sends it to whom, when, its
/// nonce, the method, the path with its query, and a digest of the body.
fn request_parts(
    envelope: &Envelope,
    stamp: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> Vec<Vec<u8>> {
    let body_digest: [u8; 32] = Sha256::digest(body).into();
    vec![
        b"owl request v2".to_vec(),
        envelope.from.as_bytes().to_vec(),
        envelope.to.as_bytes().to_vec(),
        stamp.as_bytes().to_vec(),
        envelope.nonce.as_bytes().to_vec(),
        method.as_bytes().to_vec(),
        path.as_bytes().to_vec(),
        body_digest.to_vec(),
    ]
}

fn mac(key: &[u8], parts: &[impl AsRef<[u8]>]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        // Length-prefixed, so that parts cannot be shifted into each other.
        mac.update(&(part.as_ref().len() as u64).to_be_bytes());
        mac.update(part.as_ref());
    }
    mac.finalize().into_bytes().into()
}

fn verify(key: &[u8], parts: &[impl AsRef<[u8]>], tag: &[u8]) -> bool {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(&(part.as_ref().len() as u64).to_be_bytes());
        mac.update(part.as_ref());
    }
    // Constant time: a forger learns nothing from how fast we say no.
    mac.verify_slice(tag).is_ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_made_with_one_secret_fails_with_another() {
        let a = ClusterSecret::new("aaaaaaaaaaaaaaaaaaaa").unwrap();
        let b = ClusterSecret::new("bbbbbbbbbbbbbbbbbbbb").unwrap();
        let tag = a.tag_gossip(b"hello");
        assert_eq!(tag, a.tag_gossip(b"hello"));
        assert!(a.verify_gossip(b"hello", &tag));
        assert!(!b.verify_gossip(b"hello", &tag));
        assert!(!a.verify_gossip(b"hellO", &tag));
        assert!(!a.verify_gossip(b"hello", &tag[..31]));
    }

    #[test]
    fn request_signatures_cover_method_path_body_time_and_nodes() {
        let s = ClusterSecret::new("correct horse battery staple").unwrap();
        let path = "/cluster/processes/12/kill";
        let envelope = Envelope::new("a", "b", 100).unwrap();
        let h = s.sign_request(&envelope, "POST", path, b"{}");
        assert_eq!(
            s.verify_request("POST", path, b"{}", &h, 100),
            Ok(envelope.clone())
        );
        assert!(
            s.verify_request("POST", "/cluster/processes/13/kill", b"{}", &h, 100)
                .is_err()
        );
        assert!(s.verify_request("POST", path, b"{} ", &h, 100).is_err());
        assert!(s.verify_request("POST", path, b"{}", &h, 131).is_err());
        for forged in [
            h.replacen(";a;", ";c;", 1),
            h.replacen(";b;", ";c;", 1),
            h.replacen(&envelope.nonce, &"0".repeat(32), 1),
        ] {
            assert!(
                s.verify_request("POST", path, b"{}", &forged, 100).is_err(),
                "{forged}"
            );
        }
        for junk in ["junk", "1.zz", "100;a;b;c;d", "100;a/b;b;00;00", ""] {
            assert!(
                s.verify_request("POST", path, b"{}", junk, 100).is_err(),
                "{junk}"
            );
        }
    }
}
