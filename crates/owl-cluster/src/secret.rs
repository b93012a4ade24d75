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
    pub fn new(secret: &str) -> Result<ClusterSecret, String> {
        let secret = secret.trim();
        if secret.chars().count() < MIN_SECRET_LEN {
            return Err(format!(
                "the cluster secret must be at least {MIN_SECRET_LEN} characters long"
            ));
        }
        let derive = |purpose: &str| -> [u8; 32] {
            let mut hash = Sha256::new();
            hash.update(purpose.as_bytes());
            hash.update([0]);
            hash.update(secret.as_bytes());
            hash.finalize().into()
        };
        let id = derive("owl cluster id v1");
        let cluster_id = format!(
            "owl-{}",
            id[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        Ok(ClusterSecret {
            gossip_key: derive("owl cluster gossip v1"),
            request_key: derive("owl cluster request v1"),
            cluster_id,
        })
    }

    /// The secret given on the command line, else the one in
    /// `DATA_DIR/cluster-secret`.
    pub fn load(given: Option<&str>, data_dir: &Path) -> Result<ClusterSecret, String> {
        if let Some(secret) = given {
            return ClusterSecret::new(secret).map_err(|e| format!("--cluster-secret: {e}"));
        }
        let path = data_dir.join("cluster-secret");
        match std::fs::read_to_string(&path) {
            Ok(text) => ClusterSecret::new(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) => Err(format!(
                "a cluster node needs the cluster's secret: pass --cluster-secret \
                 (or OWL_CLUSTER_SECRET), or write it to {} ({e})",
                path.display()
            )),
        }
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
    /// `path` (with its query) carrying `body`, at `unix_secs`.
    ///
    /// ```
    /// use owl_cluster::ClusterSecret;
    ///
    /// let secret = ClusterSecret::new("correct horse battery staple").unwrap();
    /// let header = secret.sign_request("GET", "/cluster/processes", b"", 1_000);
    /// assert!(secret.verify_request("GET", "/cluster/processes", b"", &header, 1_010).is_ok());
    /// assert!(secret.verify_request("POST", "/cluster/processes", b"", &header, 1_010).is_err());
    /// assert!(secret.verify_request("GET", "/cluster/processes", b"x", &header, 1_010).is_err());
    /// assert!(secret.verify_request("GET", "/cluster/processes", b"", &header, 2_000).is_err());
    /// ```
    pub fn sign_request(&self, method: &str, path: &str, body: &[u8], unix_secs: u64) -> String {
        let stamp = unix_secs.to_string();
        let tag = mac(
            &self.request_key,
            &request_parts(method, path, body, &stamp),
        );
        format!("{stamp}.{}", hex(&tag))
    }

    /// Checks a request signed by [`sign_request`](Self::sign_request)
    /// within [`REQUEST_WINDOW_SECS`] of `now_secs`.
    pub fn verify_request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        header: &str,
        now_secs: u64,
    ) -> Result<(), &'static str> {
        let (stamp, tag) = header.split_once('.').ok_or("malformed node signature")?;
        let at: u64 = stamp.parse().map_err(|_| "malformed node signature")?;
        if at.abs_diff(now_secs) > REQUEST_WINDOW_SECS {
            return Err("node signature expired (are the nodes' clocks apart?)");
        }
        let tag = unhex(tag).ok_or("malformed node signature")?;
        if verify(
            &self.request_key,
            &request_parts(method, path, body, stamp),
            &tag,
        ) {
            Ok(())
        } else {
            Err("bad node signature")
        }
    }
}

/// What a request signature covers: method, path with query, a digest of
/// the body, and the time.
fn request_parts<'a>(method: &'a str, path: &'a str, body: &[u8], stamp: &'a str) -> Vec<Vec<u8>> {
    let body_digest: [u8; 32] = Sha256::digest(body).into();
    vec![
        method.as_bytes().to_vec(),
        path.as_bytes().to_vec(),
        body_digest.to_vec(),
        stamp.as_bytes().to_vec(),
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
    fn request_signatures_cover_method_path_body_and_time() {
        let s = ClusterSecret::new("correct horse battery staple").unwrap();
        let path = "/cluster/processes/12/kill";
        let h = s.sign_request("POST", path, b"{}", 100);
        assert!(s.verify_request("POST", path, b"{}", &h, 100).is_ok());
        assert!(
            s.verify_request("POST", "/cluster/processes/13/kill", b"{}", &h, 100)
                .is_err()
        );
        assert!(s.verify_request("POST", path, b"{} ", &h, 100).is_err());
        assert!(s.verify_request("POST", path, b"{}", &h, 131).is_err());
        assert!(s.verify_request("POST", path, b"{}", "junk", 100).is_err());
        assert!(s.verify_request("POST", "/x", b"", "1.zz", 1).is_err());
    }
}
