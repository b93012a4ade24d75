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
//! A client is a visitor's browser (its signed visitor cookie: a whole
//! room of phones behind one address is many clients) or, for clients
//! without one, an address. On top of the node's cap, every address has
//! a ceiling of its own (by default half the node's cap), shared by its
//! visitors the same max-min way: a script that invents visitors — or
//! fetches a fresh signed cookie per request — can take at most that
//! address's ceiling, never the whole node.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use owl_runtime::Pid;
use parking_lot::Mutex;

pub use crate::visitors::Client;

/// A running calculation as the admission table knows it.
#[derive(Debug)]
struct Slot {
    pid: Pid,
    /// The process that asked (a page's session, an API request).
    asker: Pid,
    /// When the sweep first saw the asker gone.
    orphaned_since: Option<Instant>,
    /// Whether it ends when its asker has been gone for a while: a page's
    /// calculation does; one started through the API outlives its request
    /// on purpose (the client polls or comes back).
    reapable: bool,
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

    /// Calculations held by the clients of address `ip`.
    fn at_address(&self, ip: IpAddr) -> usize {
        self.clients
            .iter()
            .filter(|(c, _)| c.ip() == Some(ip))
            .map(|(_, h)| h.count())
            .sum()
    }

    /// Ends the oldest calculation of the client holding the most among
    /// those `within` admits, if it holds at least two more than `mine`
    /// (so slots never just change hands between equals).
    fn squeeze(
        &mut self,
        client: &Client,
        mine: usize,
        within: impl Fn(&Client) -> bool,
    ) -> Option<(Pid, Client, usize)> {
        let (heavy, count) = self
            .clients
            .iter()
            .filter(|(c, h)| *c != client && within(c) && !h.running.is_empty())
            .max_by(|(_, a), (_, b)| a.count().cmp(&b.count()))
            .map(|(c, h)| (c.clone(), h.count()))?;
        if count < mine + 2 {
            return None;
        }
        let held = self.clients.get_mut(&heavy).expect("just found");
        let slot = held.running.pop_front().expect("it runs some");
        Some((slot.pid, heavy, count))
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
    /// The limit that was reached.
    pub cap: usize,
    /// Which limit: the node's, or its address's.
    pub scope: Scope,
}

/// Which of the limits refused a calculation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The node runs as many as it may, shared fairly.
    Node,
    /// The client's address holds its ceiling, shared fairly among the
    /// visitors behind it.
    Address,
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
    pub(super) fn fill(mut self, pid: Pid, asker: Pid, reapable: bool) {
        let mut table = self.admission.table.lock();
        let held = table.clients.entry(self.client.clone()).or_default();
        held.pending = held.pending.saturating_sub(1);
        held.running.push_back(Slot {
            pid,
            asker,
            orphaned_since: None,
            reapable,
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
    /// The most one address may hold.
    address_cap: usize,
    table: Mutex<Table>,
    /// When the last "at the limit" line was logged.
    last_log: Mutex<Option<Instant>>,
}

/// How often the node says that calculations are at their limit.
const LOG_EVERY: Duration = Duration::from_secs(5);

impl Admission {
    pub(super) fn new(cap: usize, address_cap: usize) -> Arc<Admission> {
        Arc::new(Admission {
            cap: cap.max(1),
            address_cap: address_cap.clamp(1, cap.max(1)),
            table: Mutex::default(),
            last_log: Mutex::default(),
        })
    }

    pub(super) fn cap(&self) -> usize {
        self.cap
    }

    pub(super) fn address_cap(&self) -> usize {
        self.address_cap
    }

    /// Admits `client`, making room by naming a victim if it must. At the
    /// node's cap the heaviest client gives one up; when the client's
    /// address is at its ceiling, the room must come from that address's
    /// own clients (so an address never grows past its ceiling).
    pub(super) fn reserve(self: &Arc<Self>, client: &Client) -> Result<Reservation, Refusal> {
        let mut table = self.table.lock();
        let address_full = |t: &Table| {
            client
                .ip()
                .is_some_and(|ip| t.at_address(ip) >= self.address_cap)
        };
        if table.total() >= self.cap || address_full(&table) {
            table.prune();
        }
        let node_full = table.total() >= self.cap;
        let full_address = client.ip().filter(|_| address_full(&table));
        let victim = if !node_full && full_address.is_none() {
            None
        } else {
            // The binding limit: the address's ceiling when it is below
            // the node's cap and reached, the node's cap otherwise.
            let scope = match full_address {
                Some(_) if self.address_cap < self.cap || !node_full => Scope::Address,
                _ => Scope::Node,
            };
            let (cap, what) = match scope {
                Scope::Address => (self.address_cap, "its address at its ceiling"),
                Scope::Node => (self.cap, "calculations at their limit"),
            };
            let mine = table.clients.get(client).map_or(0, Held::count);
            let squeezed = match full_address {
                Some(ip) => table.squeeze(client, mine, |c| c.ip() == Some(ip)),
                None => table.squeeze(client, mine, |_| true),
            };
            match squeezed {
                Some((pid, heavy, count)) => {
                    self.log(format_args!(
                        "{client}: {what} ({cap}): ending {pid} of {heavy} (holds {count}) to admit it (holds {mine})"
                    ));
                    Some((pid, heavy))
                }
                None => {
                    self.log(format_args!(
                        "{client}: {what} ({cap}): refused, it holds {mine}, its fair share"
                    ));
                    return Err(Refusal {
                        held: mine,
                        cap,
                        scope,
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
            for slot in held.running.iter_mut().filter(|s| s.reapable) {
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

    /// Every calculation started and not ended, oldest first per client.
    pub(super) fn running(&self) -> Vec<Pid> {
        let mut table = self.table.lock();
        table.prune();
        table
            .clients
            .values()
            .flat_map(|held| held.running.iter().map(|slot| slot.pid.clone()))
            .collect()
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
