//! Who is asking: visitors known by a cookie the node signed, and the
//! network address they come from.
//!
//! Every per-visitor limit (fair shares of calculations, the board's post
//! rate) counts by [`Client`]. A visitor cookie only counts if this node
//! (or, in a cluster, any node with the same secret) issued it: a client
//! that invents cookies is known by its address instead, and every
//! address has a ceiling of its own on top of the per-visitor shares, so
//! a script cannot multiply itself into many visitors.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Who asks for calculations and posts: a visitor's browser (a room of
/// phones behind one address is many visitors), or a client without a
/// visitor cookie, known by its address. Either way the address it came
/// from is kept, for the per-address ceilings.
///
/// ```
/// use owl_system::visitors::Client;
/// let ip = "10.0.0.7".parse().unwrap();
/// let a = Client::visitor("3f2a9c0d11e4", ip);
/// assert_eq!(a.to_string(), "visitor 3f2a9c0d");
/// // The whole id tells visitors apart; logs show its first 8 characters.
/// assert_ne!(a, Client::visitor("3f2a9c0d11e5", ip));
/// // A visitor is the same visitor from another network.
/// assert_eq!(a, Client::visitor("3f2a9c0d11e4", "10.0.0.8".parse().unwrap()));
/// assert_eq!(Client::address(ip).to_string(), "address 10.0.0.7");
/// assert_eq!(a.ip(), Some(ip));
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    id: Arc<str>,
    ip: Option<IpAddr>,
}

const VISITOR: &str = "visitor ";

impl Client {
    /// A browser with a visitor cookie this node signed (its id part),
    /// coming from `ip`.
    pub fn visitor(id: &str, ip: IpAddr) -> Client {
        Client {
            id: format!("{VISITOR}{id}").into(),
            ip: Some(ip),
        }
    }

    /// A client without a (valid) visitor cookie, known by its address.
    pub fn address(ip: IpAddr) -> Client {
        Client {
            id: format!("address {ip}").into(),
            ip: Some(ip),
        }
    }

    /// A client named by the caller (the console, tests): no address, so
    /// no address ceiling applies.
    pub fn named(name: &str) -> Client {
        Client {
            id: name.into(),
            ip: None,
        }
    }

    /// The address the client came from, if known.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }
}

impl PartialEq for Client {
    fn eq(&self, other: &Client) -> bool {
        self.id == other.id
    }
}

impl Eq for Client {}

impl Hash for Client {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A visitor's id is as good as its cookie: logs and pages get a
        // prefix that tells visitors apart by eye, not the whole value.
        match self.id.strip_prefix(VISITOR) {
            Some(id) => {
                let short: String = id.chars().take(8).collect();
                write!(f, "{VISITOR}{short}")
            }
            None => f.write_str(&self.id),
        }
    }
}

/// The key visitor cookies are signed with.
///
/// A cookie is `ID.TAG`: 16 random bytes and an HMAC-SHA256 tag of them
/// (truncated to 16 bytes), both in hex. Only [`verify`](Self::verify)ed
/// cookies make a [`Client::visitor`].
///
/// ```
/// use owl_system::visitors::VisitorKey;
/// let key = VisitorKey::from_bytes([7; 32]);
/// let cookie = key.issue().unwrap();
/// let id = key.verify(&cookie).unwrap();
/// assert_eq!(id.len(), 32);
/// assert!(key.verify("0123456789abcdef0123456789abcdef.00").is_none());
/// assert!(VisitorKey::from_bytes([8; 32]).verify(&cookie).is_none(), "another node's key");
/// ```
#[derive(Clone)]
pub struct VisitorKey([u8; 32]);

impl fmt::Debug for VisitorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VisitorKey(…)")
    }
}

/// Bytes of a cookie's id and of its tag.
const ID_BYTES: usize = 16;
const TAG_BYTES: usize = 16;

impl VisitorKey {
    /// A key from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> VisitorKey {
        VisitorKey(bytes)
    }

    /// The node's key: in a cluster, derived from the cluster secret (so a
    /// visitor keeps its identity on every node); alone, the one in
    /// `DATA_DIR/visitor-key`, made at first start (random, mode 0600), so
    /// visitors keep theirs across restarts.
    pub fn load(
        data_dir: &Path,
        cluster: Option<&owl_cluster::ClusterSecret>,
    ) -> Result<VisitorKey, String> {
        if let Some(secret) = cluster {
            return Ok(VisitorKey(secret.derive_key("owl visitor cookies v1")));
        }
        let path = data_dir.join("visitor-key");
        match std::fs::read_to_string(&path) {
            Ok(text) => unhex(text.trim())
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .map(VisitorKey)
                .ok_or_else(|| format!("{}: not a key (64 hex digits)", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let hex = crate::access::random_hex(32)?;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                writeln!(file, "{hex}")
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                VisitorKey::load(data_dir, None)
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// A new visitor cookie's value.
    pub fn issue(&self) -> Result<String, String> {
        let id = crate::access::random_hex(ID_BYTES)?;
        let tag = hex(&self.tag(id.as_bytes()));
        Ok(format!("{id}.{tag}"))
    }

    /// The visitor id of a cookie this key signed; `None` for anything else.
    pub fn verify<'c>(&self, cookie: &'c str) -> Option<&'c str> {
        let (id, tag) = cookie.split_once('.')?;
        if id.len() != ID_BYTES * 2 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let tag = unhex(tag).filter(|t| t.len() == TAG_BYTES)?;
        let mut mac = self.mac();
        mac.update(id.as_bytes());
        // Constant time, on the truncated tag.
        mac.verify_truncated_left(&tag).ok()?;
        Some(id)
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length")
    }

    fn tag(&self, id: &[u8]) -> [u8; TAG_BYTES] {
        let mut mac = self.mac();
        mac.update(id);
        let full = mac.finalize().into_bytes();
        let mut tag = [0; TAG_BYTES];
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }
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
