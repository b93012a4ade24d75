//! The cluster secret: what makes a node a member. Every gossip datagram
//! carries an HMAC-SHA256 made with a key derived from it, and anything
//! without a valid one is dropped unread; distribution derives its TLS key
//! from it too ([`dist`](crate::dist)).
//!
//! Gossip is authenticated, not encrypted: node names, addresses and load
//! figures travel in clear. Run clusters on a private network.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Shortest secret accepted: guessing 16 random characters is out of reach.
pub const MIN_SECRET_LEN: usize = 16;

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

/// SHA-256 of the purpose, a zero byte and the secret.
fn derive(secret: &str, purpose: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(purpose.as_bytes());
    hash.update([0]);
    hash.update(secret.as_bytes());
    hash.finalize().into()
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
}
