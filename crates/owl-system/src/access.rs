//! The admin token: who may act on the node (kill, upgrade, change the load)
//! from the web. One set of rules for every place a token comes from.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use subtle::ConstantTimeEq;

/// The shortest admin token accepted.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Where the admin token comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TokenSource {
    /// `DATA_DIR/admin-token`, generated (random, mode 0600) at first start.
    #[default]
    DataDir,
    /// Given directly (`--admin-token`, or `OWL_ADMIN_TOKEN`).
    Given(String),
    /// Read from a file (`--admin-token-file`), e.g. a secret a service
    /// manager provides: not visible in the process list.
    File(std::path::PathBuf),
}

/// The node's admin token. Compared in constant time; never printed.
#[derive(Clone)]
pub struct AdminToken(String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

impl AdminToken {
    /// A token from text: at least [`MIN_TOKEN_CHARS`] characters, surrounding
    /// whitespace ignored.
    ///
    /// ```
    /// use owl_system::access::AdminToken;
    /// assert!(AdminToken::new("short").is_err());
    /// let token = AdminToken::new("a-long-enough-token").unwrap();
    /// assert!(token.matches("a-long-enough-token"));
    /// assert!(!token.matches("a-long-enough-tokem"));
    /// ```
    pub fn new(text: &str) -> Result<AdminToken, String> {
        let token = text.trim();
        if token.chars().count() < MIN_TOKEN_CHARS {
            return Err(format!(
                "the admin token must have at least {MIN_TOKEN_CHARS} characters"
            ));
        }
        Ok(AdminToken(token.to_string()))
    }

    /// The token as `source` says, creating `DATA_DIR/admin-token` if needed.
    pub fn load(source: &TokenSource, data_dir: &Path) -> Result<AdminToken, String> {
        match source {
            TokenSource::Given(text) => AdminToken::new(text),
            TokenSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!("cannot read the admin token from {}: {e}", path.display())
                })?;
                AdminToken::new(&text).map_err(|e| format!("{}: {e}", path.display()))
            }
            TokenSource::DataDir => {
                let path = data_dir.join("admin-token");
                match std::fs::read_to_string(&path) {
                    Ok(text) => {
                        AdminToken::new(&text).map_err(|e| format!("{}: {e}", path.display()))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let token = random_hex(16)?;
                        let mut file = std::fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .mode(0o600)
                            .open(&path)
                            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                        writeln!(file, "{token}")
                            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                        AdminToken::new(&token)
                    }
                    Err(e) => Err(format!("cannot read {}: {e}", path.display())),
                }
            }
        }
    }

    /// Whether `candidate` is this token (constant time).
    pub fn matches(&self, candidate: &str) -> bool {
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

/// `bytes` random bytes from the operating system, as hex.
///
/// ```
/// let a = owl_system::access::random_hex(16).unwrap();
/// assert_eq!(a.len(), 32);
/// assert_ne!(a, owl_system::access::random_hex(16).unwrap());
/// ```
pub fn random_hex(bytes: usize) -> Result<String, String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| format!("no randomness from the system: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether `a` and `b` are equal, in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// How long a one-time login link is good for.
pub const LOGIN_LINK_LIFETIME: std::time::Duration = std::time::Duration::from_secs(300);
/// Links that may be waiting at once (older ones are dropped beyond).
const MAX_LOGIN_LINKS: usize = 16;

/// One-time login links, for the operator at the node's machine: `owl
/// console login-link` makes one; opening it logs a browser in once,
/// within [`LOGIN_LINK_LIFETIME`], without the token and without the
/// login form's rate limits (so an attack on the form cannot lock the
/// admin out). Cheap to clone; every clone shares the links.
///
/// ```
/// use owl_system::access::LoginLinks;
/// let links = LoginLinks::default();
/// let link = links.issue().unwrap();
/// assert!(links.redeem(&link));
/// assert!(!links.redeem(&link), "once only");
/// assert!(!links.redeem("made-up"));
/// ```
#[derive(Clone, Default)]
pub struct LoginLinks(std::sync::Arc<parking_lot::Mutex<Vec<(String, std::time::Instant)>>>);

impl std::fmt::Debug for LoginLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginLinks(…)")
    }
}

impl LoginLinks {
    /// A new link's secret part.
    pub fn issue(&self) -> Result<String, String> {
        let secret = random_hex(24)?;
        let mut links = self.0.lock();
        links.retain(|(_, at)| at.elapsed() < LOGIN_LINK_LIFETIME);
        if links.len() >= MAX_LOGIN_LINKS {
            links.remove(0);
        }
        links.push((secret.clone(), std::time::Instant::now()));
        Ok(secret)
    }

    /// Whether `secret` is a live link; it is used up either way.
    pub fn redeem(&self, secret: &str) -> bool {
        let mut links = self.0.lock();
        let found = links
            .iter()
            .position(|(s, at)| same_secret(s, secret) && at.elapsed() < LOGIN_LINK_LIFETIME);
        match found {
            Some(i) => {
                links.remove(i);
                true
            }
            None => false,
        }
    }
}
