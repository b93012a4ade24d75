//! Fair admission of calculations: no single client can deny service to the
//! others.
//!
//! The node runs at most `cap` calculations. Below the cap everyone is
//! admitted. At the cap, a newcomer is admitted by ending the *oldest*
//! calculation of the client that holds the most slots — max-min fairness —
//! as long as that client holds at least two more than the newcomer (so
//! slots never just change hands between equals); a client that already
//! holds as many as anyone else is refused: it has its fair share.
//!
//! A client is a visitor's browser (its session cookie: a whole room of
//! phones behind one address is many clients) or, for cookie-less scripts,
//! an address.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use owl_runtime::Pid;
use parking_lot::Mutex;

/// Who asks for calculations.
///
/// ```
/// use owl_system::math::Client;
/// let a = Client::browser("3f2a9c0d11e4");
/// assert_eq!(a.to_string(), "visitor 3f2a9c0d");
/// // The whole cookie tells visitors apart; logs show its first 8 characters.
/// assert_ne!(a, Client::browser("3f2a9c0d11e5"));
/// assert_eq!(Client::address("10.0.0.7".parse().unwrap()).to_string(), "address 10.0.0.7");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Client(Arc<str>);

const VISITOR: &str = "visitor ";

impl Client {
    /// A browser, known by its session cookie.
    pub fn browser(cookie: &str) -> Client {
        Client(format!("{VISITOR}{cookie}").into())
    }

    /// A script without a cookie, known by its address.
    pub fn address(ip: IpAddr) -> Client {
        Client(format!("address {ip}").into())
    }

    /// A client named by the caller (the console, tests).
    pub fn named(name: &str) -> Client {
        Client(name.into())
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A visitor's cookie is as good as its session: logs and pages get
        // a prefix that tells visitors apart by eye, not the whole value.
        match self.0.strip_prefix(VISITOR) {
            Some(cookie) => {
                let short: String = cookie.chars().take(8).collect();
                write!(f, "{VISITOR}{short}")
            }
            None => f.write_str(&self.0),
        }
    }
}

/// A running calculation as the admission table knows it.
#[derive(Debug)]
struct Slot {
    pid: Pid,
    /// The process that asked (a page's session, an API request).
    asker: Pid,
    /// When the sweep first saw the asker gone.
    orphaned_since: Option<Instant>,
}

#[derive(Default, Debug)]
struct Held {
    /// Oldest first.
    running: VecDeque<Slot>,
    /// Admitted, not started yet.
    pending: usize,
}

impl Held {
    fn count(&self) -> usize {
        self.running.len() + self.pending
    }
}

#[derive(Default, Debug)]
struct Table {
    clients: HashMap<Client, Held>,
}

impl Table {
    fn total(&self) -> usize {
        self.clients.values().map(Held::count).sum()
    }

    /// Forgets calculations that have ended.
    fn prune(&mut self) {
        self.clients.retain(|_, held| {
            held.running.retain(|s| s.pid.is_alive());
            held.count() > 0
        });
    }
}

/// Why a client was not admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Calculations this client runs.
    pub held: usize,
    /// The node's limit.
    pub cap: usize,
}

/// An admitted calculation, not started yet. Fill it with the started
/// process, or drop it to give the slot back.
pub(crate) struct Reservation {
    admission: Arc<Admission>,
    client: Client,
    /// A calculation of the heaviest client to end first, making room.
    pub victim: Option<(Pid, Client)>,
    filled: bool,
}

impl Reservation {
    pub(super) fn fill(mut self, pid: Pid, asker: Pid) {
        let mut table = self.admission.table.lock();
        let held = table.clients.entry(self.client.clone()).or_default();
        held.pending = held.pending.saturating_sub(1);
        held.running.push_back(Slot {
            pid,
            asker,
            orphaned_since: None,
        });
        self.filled = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.filled {
            return;
        }
        let mut table = self.admission.table.lock();
        if let Some(held) = table.clients.get_mut(&self.client) {
            held.pending = held.pending.saturating_sub(1);
        }
    }
}

#[derive(Debug)]
pub(crate) struct Admission {
    cap: usize,
    table: Mutex<Table>,
    /// When the last "at the limit" line was logged.
    last_log: Mutex<Option<Instant>>,
}

/// How often the node says that calculations are at their limit.
const LOG_EVERY: Duration = Duration::from_secs(5);

impl Admission {
    pub(super) fn new(cap: usize) -> Arc<Admission> {
        Arc::new(Admission {
            cap: cap.max(1),
            table: Mutex::default(),
            last_log: Mutex::default(),
        })
    }

    pub(super) fn cap(&self) -> usize {
        self.cap
    }

    /// Admits `client`, making room by naming a victim if it must.
    pub(super) fn reserve(self: &Arc<Self>, client: &Client) -> Result<Reservation, Refusal> {
        let mut table = self.table.lock();
        if table.total() >= self.cap {
            table.prune();
        }
        let victim = if table.total() < self.cap {
            None
        } else {
            let mine = table.clients.get(client).map_or(0, Held::count);
            let heaviest = table
                .clients
                .iter()
                .filter(|(c, h)| *c != client && !h.running.is_empty())
                .max_by(|(_, a), (_, b)| a.count().cmp(&b.count()))
                .map(|(c, h)| (c.clone(), h.count()));
            match heaviest {
                Some((heavy, count)) if count >= mine + 2 => {
                    let held = table.clients.get_mut(&heavy).expect("just found");
                    let slot = held.running.pop_front().expect("it runs some");
                    self.log(format_args!(
                        "calculations at their limit ({}): ending {} of {heavy} (holds {count}) to admit {client} (holds {mine})",
                        self.cap, slot.pid
                    ));
                    Some((slot.pid, heavy))
                }
                _ => {
                    self.log(format_args!(
                        "calculations at their limit ({}): refused {client}, which holds {mine}, its fair share",
                        self.cap
                    ));
                    return Err(Refusal {
                        held: mine,
                        cap: self.cap,
                    });
                }
            }
        };
        table.clients.entry(client.clone()).or_default().pending += 1;
        Ok(Reservation {
            admission: self.clone(),
            client: client.clone(),
            victim,
            filled: false,
        })
    }

    /// Calculations whose asker has been gone for longer than `grace`.
    pub(super) fn orphans(&self, grace: Duration) -> Vec<Pid> {
        let now = Instant::now();
        let mut table = self.table.lock();
        table.prune();
        let mut due = Vec::new();
        for held in table.clients.values_mut() {
            for slot in held.running.iter_mut() {
                if slot.asker.is_alive() {
                    slot.orphaned_since = None;
                    continue;
                }
                let since = *slot.orphaned_since.get_or_insert(now);
                if now.duration_since(since) >= grace {
                    due.push(slot.pid.clone());
                }
            }
        }
        due
    }

    /// Calculations `client` holds (running or about to start).
    pub(super) fn held(&self, client: &Client) -> usize {
        let mut table = self.table.lock();
        table.prune();
        table.clients.get(client).map_or(0, Held::count)
    }

    fn log(&self, line: fmt::Arguments<'_>) {
        let mut last = self.last_log.lock();
        if last.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(target: "owl::math", "{line}");
        }
    }
}
